import type { InvocationId, NodeId, Usn } from "../core/ids.ts";
import { type UtdVector, utdCovers } from "../core/replication/utd.ts";
import type { TopologyConfig } from "../core/topology/model.ts";

/**
 * A node's topology as it learned it by replication, for the site simulator. In the runtime a
 * node reads the topology from its own replica of the config partition (readTopology), which
 * holds only the config writes that reached it: a server joined elsewhere is unknown to it
 * until the write of its server object arrives. The simulator writes those objects for real
 * (topologyWrites on the directory's creator, a server object on the node that admits each
 * joiner, invocationWrite by each node) and tracks each write's stamp; a node knows what its
 * UTD covers. Sites, links and settings are written once, when the directory is created, and
 * every node syncs them from its admitter before it plans, so only servers and their
 * invocation ids lag.
 */
export interface ConfigWrite {
  readonly invocation: InvocationId;
  readonly usn: Usn;
  /** The site of the node that made it. */
  readonly site: string;
  /** The server object the write made or changed. */
  readonly server: NodeId;
  /** What it did to the server's published invocation ids. */
  readonly effect:
    | { readonly kind: "create"; readonly invocations: readonly InvocationId[] }
    | { readonly kind: "add-invocation" | "replace-invocations"; readonly invocation: InvocationId };
}

export class LearnedTopology {
  readonly servers = new Set<NodeId>();
  private readonly invocations = new Map<NodeId, InvocationId[]>();
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
      this.servers.add(write.server);
      const effect = write.effect;
      switch (effect.kind) {
        case "create":
          // The creator's server object carries its invocation id from the start.
          if (effect.invocations.length > 0 && !this.invocations.has(write.server))
            this.invocations.set(write.server, [...effect.invocations]);
          break;
        case "add-invocation": {
          const known = this.invocations.get(write.server) ?? [];
          if (!known.includes(effect.invocation))
            this.invocations.set(write.server, [...known, effect.invocation]);
          break;
        }
        case "replace-invocations":
          this.invocations.set(write.server, [effect.invocation]);
          break;
      }
    }
    this.pending = still;
    return changed;
  }

  invocationsOf(server: NodeId): readonly InvocationId[] {
    return this.invocations.get(server) ?? [];
  }

  /** Servers known, one character per server of `all` (its position): a cache key. */
  key(all: readonly { readonly node: NodeId }[]): string {
    return all.map((server) => (this.servers.has(server.node) ? "1" : "0")).join("");
  }

  /** The topology as this node holds it: `full` with only the servers it knows, and their ids. */
  config(full: TopologyConfig): TopologyConfig {
    return {
      ...full,
      servers: full.servers
        .filter((server) => this.servers.has(server.node))
        .map((server) => ({ ...server, invocations: [...this.invocationsOf(server.node)] })),
    };
  }
}
