import { type Canaries, noCanaries } from "../core/canaries.ts";
import type { Guid, Millis, NodeId, Usn } from "../core/ids.ts";
import { type NodeConfig, NodeMachine } from "../core/node/machine.ts";
import type { Clock } from "../core/ports.ts";
import { Replica, readPageFrom } from "../core/replica/replica.ts";
import type { ChangePage, ChangeRequest } from "../core/replication/page.ts";
import type { Result } from "../core/result.ts";
import type { EntryRow, ItemRow, Store } from "../core/store.ts";
import { SqliteStore } from "../store/sqlite-store.ts";
import { SeededRandom } from "./ports.ts";

/** Thrown by an armed store in the middle of a write: the simulated process dies right there. */
export class SimulatedCrash extends Error {
  readonly code = "simulated-crash";
}

/** A node's wall clock: simulated time, plus an offset (skew, jumps) and a drift rate. */
export class SkewedClock implements Clock {
  offsetMs = 0;
  driftPpm = 0;

  constructor(
    private readonly world: { readonly time: number },
    private readonly epochMs: number,
  ) {}

  now(): Millis {
    return Math.round(
      this.epochMs + this.world.time + this.offsetMs + (this.world.time * this.driftPpm) / 1e6,
    ) as Millis;
  }
}

export interface NodeHooks {
  /** A replica made a deleted entry live again. */
  onResurrection(node: SimNode, guid: Guid): void;
}

/**
 * One simulated Plexus node: the production Replica and NodeMachine over an in-memory SQLite
 * store, wrapped so that the simulator can crash it in the middle of a write and watch for
 * deleted entries coming back. Crashing drops the machine and replica (everything in memory);
 * the store keeps exactly what was committed, as a disk would.
 */
export class SimNode {
  replica: Replica | null = null;
  machine: NodeMachine | null = null;
  private base: SqliteStore;
  private store: Store;
  /** Entries this replica has seen deleted: none may ever be live here again. */
  private deleted = new Set<Guid>();
  /** The canaries the node runs with, for pages it reads outside its replica (readPage). */
  private canaries: Canaries = noCanaries;
  /** Puts left before an armed crash strikes; null when not armed. */
  private crashAfterPuts: number | null = null;
  /** Counts tombstone purges and restores, which legitimately let a duplicate page change state. */
  epoch = 0;
  readonly clock: SkewedClock;
  wakeAt = Number.POSITIVE_INFINITY;
  private starts = 0;

  constructor(
    readonly index: number,
    readonly id: NodeId,
    readonly site: number,
    private readonly world: { readonly time: number },
    private readonly hooks: NodeHooks,
    private readonly seed: number,
    epochMs: number,
  ) {
    this.clock = new SkewedClock(world, epochMs);
    this.base = SqliteStore.open({ path: ":memory:" });
    this.store = this.instrument(this.base);
  }

  get up(): boolean {
    return this.machine !== null;
  }

  get sqlite(): SqliteStore {
    return this.base;
  }

  create(config: NodeConfig, canaries: Canaries, tombstoneLifetimeMs: number): void {
    const replica = Replica.create(this.store, this.ports(), this.id, {
      canaries,
      settings: { tombstoneLifetimeMs },
    });
    this.attach(replica, config, canaries);
  }

  /** Starts the process again on what the store committed. */
  restart(config: NodeConfig, canaries: Canaries, tombstoneLifetimeMs: number, restored = false): void {
    const replica = Replica.open(this.store, this.ports(), {
      canaries,
      restored,
      settings: { tombstoneLifetimeMs },
    });
    this.attach(replica, config, canaries);
  }

  crash(): void {
    this.machine = null;
    this.replica = null;
    this.crashAfterPuts = null;
    this.wakeAt = Number.POSITIVE_INFINITY;
  }

  /** The next writes to the store throw after `puts` row writes (rolling the transaction back). */
  armCrash(puts: number): void {
    this.crashAfterPuts = puts;
  }

  disarmCrash(): void {
    this.crashAfterPuts = null;
  }

  snapshot(): Uint8Array {
    return this.base.serialize();
  }

  /** Replaces the database with an older copy (the node must be down). */
  restoreFrom(snapshot: Uint8Array): void {
    this.base.close();
    this.base = SqliteStore.open({ path: ":memory:", snapshot });
    this.store = this.instrument(this.base);
    this.deleted = new Set(this.tombstones());
    this.epoch++;
  }

  private tombstones(): Guid[] {
    const out: Guid[] = [];
    let after: { tombstoneSince: Millis; guid: Guid } | null = null;
    for (;;) {
      const page = this.base.listTombstones(after, 1000);
      for (const row of page) out.push(row.guid);
      const last = page.at(-1);
      if (last === undefined || last.tombstoneSince === null || page.length < 1000) return out;
      after = { tombstoneSince: last.tombstoneSince, guid: last.guid };
    }
  }

  /** Each process start draws a fresh random stream (GUIDs, invocation ids), as crypto would. */
  private ports(): { clock: Clock; random: SeededRandom } {
    this.starts++;
    const seed = this.seed * 7919 + this.index * 104_729 + this.starts * 15_485_863;
    return { clock: this.clock, random: new SeededRandom(seed) };
  }

  /**
   * The page for a pull the machine admitted, read from the store as it is now: what the
   * runtime's page worker does on its own connection (src/runtime/page-builder.ts).
   */
  readPage(request: ChangeRequest): Result<ChangePage> {
    return readPageFrom(this.store, request, { canaries: this.canaries });
  }

  private attach(replica: Replica, config: NodeConfig, canaries: Canaries): void {
    this.canaries = canaries;
    this.replica = replica;
    this.machine = new NodeMachine(replica, { now: () => this.world.time }, config, canaries);
  }

  private instrument(target: SqliteStore): Store {
    const countdown = (): void => {
      if (this.crashAfterPuts === null) return;
      this.crashAfterPuts--;
      if (this.crashAfterPuts <= 0) {
        this.crashAfterPuts = null;
        throw new SimulatedCrash(`${this.id} crashed in the middle of a write`);
      }
    };
    // Deletions count once their transaction commits: a crash rolls them back with the rows.
    let pending: Guid[] = [];
    let depth = 0;
    const transaction = <T>(fn: () => T): T => {
      if (depth > 0) return fn();
      depth++;
      pending = [];
      try {
        const result = target.transaction(fn);
        for (const guid of pending) this.deleted.add(guid);
        return result;
      } finally {
        depth--;
        pending = [];
      }
    };
    const putEntry = (row: EntryRow): void => {
      countdown();
      if (row.deleted) pending.push(row.guid);
      else if (this.deleted.has(row.guid)) this.hooks.onResurrection(this, row.guid);
      target.putEntry(row);
    };
    const putItem = (row: ItemRow): void => {
      countdown();
      target.putItem(row);
    };
    const replaceItem = (row: ItemRow): void => {
      countdown();
      target.replaceItem(row);
    };
    const setUsnChanged = (guid: Guid, usn: Usn): void => {
      countdown();
      target.setUsnChanged(guid, usn);
    };
    const removeEntry = (guid: Guid): void => {
      this.epoch++;
      target.removeEntry(guid);
    };
    return new Proxy(target as Store, {
      get(store, property, receiver) {
        if (property === "transaction") return transaction;
        if (property === "putEntry") return putEntry;
        if (property === "putItem") return putItem;
        if (property === "replaceItem") return replaceItem;
        if (property === "setUsnChanged") return setUsnChanged;
        if (property === "removeEntry") return removeEntry;
        const value = Reflect.get(store, property, receiver);
        return typeof value === "function" ? value.bind(store) : value;
      },
    });
  }
}
