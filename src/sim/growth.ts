import type { NodeId } from "../core/ids.ts";
import { compileServedGraph, siteIndex } from "../core/topology/graph.ts";
import { siteKey, type TopologyConfig } from "../core/topology/model.ts";
import { routesTo } from "../core/topology/reference.ts";
import type { SeededRandom } from "./ports.ts";

/**
 * The order in which a seed's servers join the directory (site simulator, sites.ts); every
 * server but in "any" is admitted by the creator (one join URL, as in
 * src/runtime/isolated-site.test.ts).
 *
 * - "routed": the first server of every site joins when its site has a route to the creator's
 *   site, except one early site that joins right after the creator while none of its
 *   neighbouring sites has a server: it has no route then, and learns of the servers that give
 *   it one only through its pulls from elsewhere (isolatedSiteSources). The core handles this;
 *   the canary dropIsolatedSiteSources must be caught on it.
 * - "early": the same with up to three early sites. Each pulls from one server of every other
 *   group of linked sites it knows: early sites that picked only one another never learned of
 *   the later servers (`--growth early --seed 4 --sites-max 40`, before it pulled from each group).
 * - "any": any order, each admitted by a random server already synced. A group of two or more
 *   sites whose servers joined before any server between them and the rest has routes among
 *   themselves but none to the others: it learns of the later servers through the pulls from
 *   outside its group of each of its sites linked to a site with no server in its view
 *   (isolatedSiteSources; without them 14 of 20 seeds of up to 40 sites never learned).
 */
export type GrowthOrder = "routed" | "early" | "any";

export const growthOrders: readonly GrowthOrder[] = ["routed", "early", "any"];

/**
 * Servers join in this many waves after the creator, all of one wave at the same moment: a
 * node far away then learns of a wave in one page, and plans once per wave, not once per
 * server (each plan computes routes over every site it knows).
 */
const waveCount = 6;

/** Early sites (joining with no neighbouring site served): how many, at most, per order. */
const earlySitesMax: Readonly<Record<Exclude<GrowthOrder, "any">, number>> = { routed: 1, early: 3 };

/**
 * The servers in the order they join, in waves: the creator alone first, then (but in "any")
 * the early sites' first servers, then the rest in waveCount consecutive slices of the order.
 */
export function joinWaves(topology: TopologyConfig, order: GrowthOrder, random: SeededRandom): NodeId[][] {
  const nodes = topology.servers.map((server) => server.node);
  switch (order) {
    case "any": {
      const [creator, ...rest] = shuffled(nodes, random);
      return creator === undefined ? [] : [[creator], ...slices(rest, waveCount)];
    }
    case "routed":
    case "early": {
      const routed = routedOrder(topology, earlySitesMax[order], random);
      const [creator, ...rest] = routed.order;
      if (creator === undefined) return [];
      // routedOrder puts the early sites' first servers right after the creator.
      const early = routed.earlySites;
      return [[creator], rest.slice(0, early), ...slices(rest.slice(early), waveCount)].filter(
        (wave) => wave.length > 0,
      );
    }
  }
}

function slices<T>(items: readonly T[], count: number): T[][] {
  const size = Math.ceil(items.length / count);
  const out: T[][] = [];
  for (let at = 0; at < items.length; at += size) out.push(items.slice(at, at + size));
  return out;
}

function routedOrder(
  topology: TopologyConfig,
  earlyMax: number,
  random: SeededRandom,
): { readonly order: NodeId[]; readonly earlySites: number } {
  const bySite = new Map<string, NodeId[]>();
  for (const server of topology.servers) {
    const site = siteKey(server.site);
    bySite.set(site, [...(bySite.get(site) ?? []), server.node]);
  }
  const neighbours = new Map<string, Set<string>>();
  for (const link of topology.links) {
    for (const a of link.sites) {
      const set = neighbours.get(siteKey(a)) ?? new Set<string>();
      neighbours.set(siteKey(a), set);
      for (const b of link.sites) if (siteKey(b) !== siteKey(a)) set.add(siteKey(b));
    }
  }
  const linked = (a: string, b: string): boolean => neighbours.get(a)?.has(b) === true;
  const sites = shuffled([...bySite.keys()], random);
  const [creator, ...rest] = sites;
  if (creator === undefined) return { order: [], earlySites: 0 };
  const early: string[] = [];
  for (const site of rest) {
    if (early.length >= earlyMax) break;
    if (linked(site, creator) || early.some((other) => linked(site, other))) continue;
    early.push(site);
  }
  const served = [creator, ...early];
  let remaining = rest.filter((site) => !early.includes(site));
  while (remaining.length > 0) {
    // Sites next to a served one first: the others cannot have a route yet.
    const near = remaining.filter((site) => served.some((other) => linked(site, other)));
    const next = near.find((site) => routedToward(topology, [...served, site], site, creator));
    // A site no order can route to the creator's (the policy, or no link) joins last.
    const chosen = next ?? (remaining[0] as string);
    served.push(chosen);
    remaining = remaining.filter((site) => site !== chosen);
  }
  // Each site's first server in that order; its other servers at random points after it (and
  // after the early sites' first servers, which join alone).
  const order: NodeId[] = served.map((site) => (bySite.get(site) as NodeId[])[0] as NodeId);
  for (const site of served) {
    const [first, ...others] = bySite.get(site) as NodeId[];
    for (const node of others) {
      const after = Math.max(order.indexOf(first as NodeId) + 1, 1 + early.length);
      order.splice(random.int(after, order.length), 0, node);
    }
  }
  return { order, earlySites: early.length };
}

/** Whether `site` has a route toward `destination` once the servers of `served` sites exist. */
function routedToward(
  topology: TopologyConfig,
  served: readonly string[],
  site: string,
  destination: string,
): boolean {
  const keys = new Set(served);
  const graph = compileServedGraph({
    ...topology,
    servers: topology.servers.filter((server) => keys.has(siteKey(server.site))),
  });
  const from = siteIndex(graph, site);
  const to = siteIndex(graph, destination);
  if (from === undefined || to === undefined) return false;
  return (routesTo(graph, to).nextHop[from] as number) >= 0;
}

/** A seeded Fisher–Yates shuffle. */
export function shuffled<T>(items: readonly T[], random: SeededRandom): T[] {
  const out = [...items];
  for (let k = out.length - 1; k > 0; k--) {
    const j = random.int(0, k);
    [out[k], out[j]] = [out[j] as T, out[k] as T];
  }
  return out;
}
