import type { InvocationId, NodeId, Usn } from "../core/ids.ts";
import { type UtdVector, utdCovers } from "../core/replication/utd.ts";
import type { SiteLink, TopologyConfig } from "../core/topology/model.ts";

/**
 * A node's topology as it learned it by replication, for the site simulator. In the runtime a
 * node reads the topology from its own replica of the config partition (readTopology), which
 * holds only the config writes that reached it: a server joined elsewhere is unknown to it
 * until the write of its server object arrives. The simulator writes those objects for real
 * (topologyWrites on the directory's creator, a server object on the node that admits each
 * joiner, invocationWrite by each node) and tracks each write's stamp; a node knows what its
 * UTD covers. Sites, settings and the first links are written once, when the directory is
 * created, and every node syncs them from its admitter before it plans; servers, their
 * invocation ids, and the links an operator adds or removes later lag.
 */
export interface ConfigWrite {
  readonly invocation: InvocationId;
  readonly usn: Usn;
  /** The site of the node that made it. */
  readonly site: string;
  readonly effect: ConfigEffect;
}

/**
 * What a config write did: made a server object or changed its published invocation ids, or
 * (an operator) added a site link or removed one (`link` null: its object deleted).
 */
export type ConfigEffect =
  | { readonly kind: "create"; readonly server: NodeId; readonly invocations: readonly InvocationId[] }
  | {
      readonly kind: "add-invocation" | "replace-invocations";
      readonly server: NodeId;
      readonly invocation: InvocationId;
    }
  | { readonly kind: "link"; readonly name: string; readonly link: SiteLink | null };

/** A link's newest write a node holds: its index in the write log, and the link (null: removed). */
export interface LinkVersion {
  readonly index: number;
  readonly link: SiteLink | null;
}

/**
 * The links of a topology after the operator's writes: `initial` with each link written since
 * replaced in place or left out (removed), then the links added, in the order written. The
 * simulator's oracle and every node's view build their links this one way, so that they list
 * links alike (a tie between two links of one pair of sites keeps the earlier).
 */
export function linksAfter(
  initial: readonly SiteLink[],
  versions: ReadonlyMap<string, LinkVersion>,
): SiteLink[] {
  const key = (name: string): string => name.toLowerCase();
  const kept = initial.flatMap((link) => {
    const version = versions.get(key(link.name));
    if (version === undefined) return [link];
    return version.link === null ? [] : [version.link];
  });
  const initialNames = new Set(initial.map((link) => key(link.name)));
  const added = [...versions.entries()]
    .filter(([name, version]) => !initialNames.has(name) && version.link !== null)
    .sort((a, b) => a[1].index - b[1].index)
    .map(([, version]) => version.link as SiteLink);
  return [...kept, ...added];
}

/** Takes `write` (log position `index`) into `versions` unless a newer write of the link is there. */
export function noteLinkWrite(
  versions: Map<string, LinkVersion>,
  index: number,
  effect: Extract<ConfigEffect, { kind: "link" }>,
): boolean {
  const name = effect.name.toLowerCase();
  const known = versions.get(name);
  if (known !== undefined && known.index > index) return false;
  versions.set(name, { index, link: effect.link });
  return true;
}

export class LearnedTopology {
  readonly servers = new Set<NodeId>();
  private readonly invocations = new Map<NodeId, InvocationId[]>();
  /**
   * Per link (lower-case name) an operator wrote after the directory's creation, the newest
   * write this node holds: a removal seen before the add it removes leaves the link out, as the
   * replica keeps the tombstone (the delete observed the add, so it wins).
   */
  private readonly links = new Map<string, LinkVersion>();
  /** Indices (into the world's write log) of the writes this node's UTD does not cover yet. */
  private pending: number[];

  constructor(pending: readonly number[]) {
    this.pending = [...pending];
  }

  get complete(): boolean {
    return this.pending.length === 0;
  }

  /** The writes not learned yet. */
  missingOf(log: readonly ConfigWrite[]): ConfigWrite[] {
    return this.pending.map((index) => log[index] as ConfigWrite);
  }

  expect(index: number): void {
    this.pending.push(index);
  }

  /**
   * Takes in the writes `utd` covers, in log order; true when the node's view changed. A
   * change to a server object brings the whole object with it (a change for an entry the
   * destination cannot place brings every item it lacks), so an invocation write the node
   * holds makes the server known even before the UTD covers the object's creation.
   */
  learn(utd: UtdVector, log: readonly ConfigWrite[]): boolean {
    if (this.pending.length === 0) return false;
    const still: number[] = [];
    let changed = false;
    for (const index of this.pending) {
      const write = log[index] as ConfigWrite;
      if (!utdCovers(utd, write)) {
        still.push(index);
        continue;
      }
      changed = true;
      this.take(index, write.effect);
    }
    this.pending = still;
    return changed;
  }

  private take(index: number, effect: ConfigEffect): void {
    switch (effect.kind) {
      case "create":
        this.servers.add(effect.server);
        // The creator's server object carries its invocation id from the start.
        if (effect.invocations.length > 0 && !this.invocations.has(effect.server))
          this.invocations.set(effect.server, [...effect.invocations]);
        return;
      case "add-invocation": {
        this.servers.add(effect.server);
        const known = this.invocations.get(effect.server) ?? [];
        if (!known.includes(effect.invocation))
          this.invocations.set(effect.server, [...known, effect.invocation]);
        return;
      }
      case "replace-invocations":
        this.servers.add(effect.server);
        this.invocations.set(effect.server, [effect.invocation]);
        return;
      case "link":
        noteLinkWrite(this.links, index, effect);
        return;
      default: {
        const unknown: never = effect;
        throw new Error(`unknown config effect ${JSON.stringify(unknown)}`);
      }
    }
  }

  invocationsOf(server: NodeId): readonly InvocationId[] {
    return this.invocations.get(server) ?? [];
  }

  /**
   * Servers known, one character per server of `all` (its position), and the link writes
   * held: a cache key.
   */
  key(all: readonly { readonly node: NodeId }[]): string {
    const servers = all.map((server) => (this.servers.has(server.node) ? "1" : "0")).join("");
    const links = [...this.links.values()].map((version) => version.index).sort((a, b) => a - b);
    return links.length === 0 ? servers : `${servers}/${links.join(",")}`;
  }

  /** The links this node holds: `initial` (the directory's first links) after the writes it holds. */
  linksOf(initial: readonly SiteLink[]): SiteLink[] {
    return linksAfter(initial, this.links);
  }

  /**
   * The topology as this node holds it: `full` (the directory as created) with only the
   * servers it knows, and their ids, and the links after the operator's writes it holds.
   */
  config(full: TopologyConfig): TopologyConfig {
    return {
      ...full,
      links: linksAfter(full.links, this.links),
      servers: full.servers
        .filter((server) => this.servers.has(server.node))
        .map((server) => ({ ...server, invocations: [...this.invocationsOf(server.node)] })),
    };
  }
}
