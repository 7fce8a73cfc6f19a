import type { Guid, InvocationId, NodeId, Usn } from "../core/ids.ts";
import type { Item } from "../core/replication/items.ts";
import type { Stamp } from "../core/replication/stamp.ts";

/**
 * What clients were told: every acknowledged originating write with the exact items it
 * stored, the causal pairs (a write issued after its client read another write), and the
 * writes a restore from an older backup legitimately lost. The invariants check the final
 * state against this ledger.
 */
export interface AckedWrite {
  readonly node: NodeId;
  readonly op: string;
  readonly guid: Guid;
  readonly invocation: InvocationId;
  readonly usn: Usn;
  readonly items: readonly Item[];
  readonly at: number;
}

export interface CausalPair {
  readonly guid: Guid;
  readonly attribute: string;
  /** The stamp the client read on one node. */
  readonly observed: Stamp;
  /** The stamp of the write it then made on another node. */
  readonly written: Stamp;
  readonly readOn: NodeId;
  readonly writtenOn: NodeId;
}

export class Ledger {
  readonly writes: AckedWrite[] = [];
  readonly causal: CausalPair[] = [];
  /** `${invocation}:${usn}` of writes lost with a restored node's newer, unreplicated state. */
  readonly excused = new Set<string>();
  /** Every GUID any client created, for picking targets. */
  readonly guids: Guid[] = [];
  readonly containers: Guid[] = [];

  static key(invocation: InvocationId, usn: Usn): string {
    return `${invocation}:${usn}`;
  }
}
