import { assert } from "../assert.ts";
import type { Canaries } from "../canaries.ts";
import type { Schema } from "../directory/schema.ts";
import { type Guid, hexFromBytes, type InvocationId, type Millis, type Usn } from "../ids.ts";
import type { Clock, Random } from "../ports.ts";
import { type Stamp, stampVersionMax } from "../replication/stamp.ts";
import type { ReplicaEventKind, ReplicaMeta, Store } from "../store.ts";

/** Replica-wide settings. Later read from the config partition; defaults here. */
export interface ReplicaSettings {
  /** How long a tombstone is kept for replicas that may not have seen it yet. */
  readonly tombstoneLifetimeMs: number;
}

export const tombstoneLifetimeMsDefault = 180 * 24 * 60 * 60 * 1000;

/**
 * Everything one replica's core functions work on. `meta` is the in-memory copy of the
 * store's meta row: changed inside a transaction, written back when the transaction ends, and
 * re-read if the transaction throws (so a rolled-back USN is never reused in memory either).
 */
export class ReplicaContext {
  meta: ReplicaMeta;
  private metaDirty = false;

  constructor(
    readonly store: Store,
    readonly clock: Clock,
    readonly random: Random,
    readonly schema: Schema,
    readonly settings: ReplicaSettings,
    readonly canaries: Canaries,
    meta: ReplicaMeta,
  ) {
    this.meta = meta;
  }

  /** Runs `fn` in one store transaction and persists meta changes with it. */
  transact<T>(fn: () => T): T {
    if (this.inTransaction) return fn();
    this.inTransaction = true;
    try {
      return this.store.transaction(() => {
        const result = fn();
        if (this.metaDirty) this.store.writeMeta(this.meta);
        this.metaDirty = false;
        return result;
      });
    } catch (error) {
      const stored = this.store.readMeta();
      if (stored !== undefined) this.meta = stored;
      this.metaDirty = false;
      throw error;
    } finally {
      this.inTransaction = false;
    }
  }

  private inTransaction = false;

  updateMeta(change: Partial<ReplicaMeta>): void {
    this.meta = { ...this.meta, ...change };
    this.metaDirty = true;
  }

  /** Takes the next USN. Every entry update (originating or replicated) takes exactly one. */
  nextUsn(): Usn {
    const next = (this.meta.usn + 1) as Usn;
    this.updateMeta({ usn: next });
    return next;
  }

  now(): Millis {
    return this.clock.now();
  }

  newGuid(): Guid {
    return hexFromBytes(this.random.bytes(16)) as Guid;
  }

  newInvocationId(): InvocationId {
    return hexFromBytes(this.random.bytes(16)) as InvocationId;
  }

  /** A stamp for an originating write of an item last stamped `previous` (if any). */
  originatingStamp(previous: Stamp | undefined, usn: Usn): Stamp {
    const version = (previous?.version ?? 0) + 1;
    assert(
      version <= stampVersionMax,
      "stamp version above stampVersionMax (pages are validated against it)",
    );
    return { version, time: this.now(), invocation: this.meta.invocation, usn };
  }

  event(kind: ReplicaEventKind, detail: string): void {
    this.store.appendEvent({ time: this.now(), kind, detail });
  }
}
