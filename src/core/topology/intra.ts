import type { NodeId } from "../ids.ts";

/**
 * Connections inside one site: a bidirectional ring over the site's servers in node-id order
 * (every node orders them alike), plus shortcuts so that any two servers are at most three hops
 * apart. Up to seven servers the ring alone does that. Beyond, the ring is cut into blocks of
 * about √n consecutive servers; each block's first server is its head, every server is joined
 * to its head, and the heads to each other: server → head → head → server is three hops, and a
 * head has about 2√n partners, a member three or four.
 *
 * Stale servers (K consecutive failed pulls, as this node sees them) are left out, so the ring
 * closes around them; a stale server is still probed at the retry interval (see `probes`), and
 * rejoins as soon as a pull from it succeeds.
 */
export const ringOnlyServersMax = 7;

/** Every live server's partners (symmetric: a partner pulls from and notifies each other). */
export function intraSiteGraph(
  servers: readonly NodeId[],
  stale: ReadonlySet<NodeId> = new Set(),
): Map<NodeId, NodeId[]> {
  const live = [...new Set(servers)].filter((server) => !stale.has(server)).sort();
  const partners = new Map<NodeId, Set<NodeId>>(live.map((server) => [server, new Set<NodeId>()]));
  const join = (a: NodeId, b: NodeId): void => {
    if (a === b) return;
    partners.get(a)?.add(b);
    partners.get(b)?.add(a);
  };
  const count = live.length;
  for (let index = 0; index < count && count > 1; index++) {
    join(live[index] as NodeId, live[(index + 1) % count] as NodeId);
  }
  if (count > ringOnlyServersMax) {
    const block = Math.ceil(Math.sqrt(count));
    const heads: NodeId[] = [];
    for (let start = 0; start < count; start += block) {
      const head = live[start] as NodeId;
      heads.push(head);
      for (let member = start + 1; member < Math.min(start + block, count); member++)
        join(head, live[member] as NodeId);
    }
    for (let a = 0; a < heads.length; a++) {
      for (let b = a + 1; b < heads.length; b++) join(heads[a] as NodeId, heads[b] as NodeId);
    }
  }
  return new Map([...partners].map(([server, set]) => [server, [...set].sort()]));
}

/** This server's intra-site partners, and the stale servers it keeps probing. */
export function intraSitePartners(
  self: NodeId,
  servers: readonly NodeId[],
  stale: ReadonlySet<NodeId>,
): { partners: NodeId[]; probes: NodeId[] } {
  const withoutSelf = new Set(stale);
  withoutSelf.delete(self);
  const partners = intraSiteGraph(servers, withoutSelf).get(self) ?? [];
  const probes = servers.filter((server) => server !== self && withoutSelf.has(server)).sort();
  return { partners, probes };
}

/** Hops between every pair (breadth-first), for the diameter invariant and the text view. */
export function graphDiameter(graph: ReadonlyMap<NodeId, readonly NodeId[]>): number {
  let diameter = 0;
  for (const start of graph.keys()) {
    const distance = new Map<NodeId, number>([[start, 0]]);
    const queue = [start];
    for (let head = 0; head < queue.length; head++) {
      const at = queue[head] as NodeId;
      for (const next of graph.get(at) ?? []) {
        if (distance.has(next)) continue;
        distance.set(next, (distance.get(at) as number) + 1);
        queue.push(next);
      }
    }
    if (distance.size < graph.size) return Number.POSITIVE_INFINITY;
    for (const hops of distance.values()) diameter = Math.max(diameter, hops);
  }
  return diameter;
}

/**
 * FNV-1a, 32 bits: a stable, portable hash for rendezvous choices (no crypto in the core, and
 * every node must compute the same value).
 */
export function stableHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  // A final avalanche: FNV's low bits mix poorly for short, similar keys.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b) >>> 0;
  hash ^= hash >>> 13;
  return hash >>> 0;
}

/**
 * The bridgehead of a site for one purpose (`key`: a neighbouring site, or "routing"), chosen by
 * rendezvous hashing over the site's live servers: deterministic on every node, spread over the
 * candidates (different neighbours mostly get different bridgeheads), and when one goes stale
 * only the choices it held move. Undefined when the site has no live server.
 */
export function bridgehead(
  servers: readonly NodeId[],
  key: string,
  stale: ReadonlySet<NodeId> = new Set(),
): NodeId | undefined {
  let chosen: NodeId | undefined;
  let best = -1;
  for (const server of servers) {
    if (stale.has(server)) continue;
    const score = stableHash(`${key}\u0000${server}`);
    if (score > best || (score === best && chosen !== undefined && server < chosen)) {
      best = score;
      chosen = server;
    }
  }
  return chosen;
}
