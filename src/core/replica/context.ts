import { assert } from "../assert.ts";
import type { Canaries } from "../canaries.ts";
import type { Schema } from "../directory/schema.ts";
import { type Guid, hexFromBytes, type InvocationId, type Millis, type NodeId, type Usn } from "../ids.ts";
import type { Clock, Random } from "../ports.ts";
import { type Stamp, stampVersionMax } from "../replication/stamp.ts";
import { type UtdVector, utdEquals, utdWith } from "../replication/utd.ts";
import type { HorizonKind, PeerReport, ReplicaEventKind, ReplicaMeta, Store } from "../store.ts";
import { invalidateNaming } from "./naming.ts";

/** Replica-wide settings. Later read from the config partition; defaults here. */
export interface ReplicaSettings {
  /** How long a tombstone is kept for replicas that may not have seen it yet. */
  readonly tombstoneLifetimeMs: number;
}

/** A GUID is 16 bytes (32 hex digits): 6 bytes of milliseconds, then 10 random ones. */
const guidTimeHexDigits = 12;
const guidRandomBytes = 10;
/** The largest millisecond count 48 bits hold (the year 10889); later clocks are clamped. */
const guidTimeMax = 0xffff_ffff_ffff;

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

  /**
   * The UTD and the purge horizons are read on every pull; they are cached here, written
   * through to the store, and dropped when a transaction rolls back.
   */
  private cachedUtd: UtdVector | undefined;
  private readonly cachedHorizons = new Map<HorizonKind, UtdVector>();
  private cachedRequired: Map<HorizonKind, UtdVector> | undefined;

  /** Every partner's outstanding requirement (see core/replica/tombstones.ts). */
  requiredHorizons(): UtdVector[] {
    if (this.cachedRequired === undefined) {
      this.cachedRequired = new Map();
      for (const { kind, vector } of this.store.listHorizons()) {
        if (kind.startsWith("required:")) this.cachedRequired.set(kind, vector);
      }
    }
    return [...this.cachedRequired.values()];
  }

  utd(): UtdVector {
    this.cachedUtd ??= this.store.readUtd();
    return this.cachedUtd;
  }

  private cachedCurrent: { base: UtdVector; invocation: InvocationId; usn: Usn; utd: UtdVector } | undefined;

  /**
   * The UTD this replica tells others: the stored vector plus its own invocation at its USN.
   * Every page and every purge check asks for it; it is rebuilt only when either part changed.
   */
  currentUtd(): UtdVector {
    const base = this.utd();
    const { invocation, usn } = this.meta;
    const cached = this.cachedCurrent;
    if (cached?.base === base && cached.invocation === invocation && cached.usn === usn) return cached.utd;
    const utd = utdWith(base, invocation, usn);
    this.cachedCurrent = { base, invocation, usn, utd };
    return utd;
  }

  setUtd(utd: UtdVector): void {
    const stored = this.utd();
    if (utdEquals(stored, utd)) return;
    this.store.writeUtd(utd, stored);
    this.cachedUtd = utd;
  }

  horizon(kind: HorizonKind): UtdVector {
    let vector = this.cachedHorizons.get(kind);
    if (vector === undefined) {
      vector = this.store.readHorizon(kind);
      this.cachedHorizons.set(kind, vector);
    }
    return vector;
  }

  setHorizon(kind: HorizonKind, vector: UtdVector): void {
    if (utdEquals(this.horizon(kind), vector)) return;
    this.store.writeHorizon(kind, vector);
    this.cachedHorizons.set(kind, vector);
    if (kind.startsWith("required:")) this.cachedRequired = undefined;
  }

  /**
   * What this replica last heard of each peer's UTD. Reports arrive with every pull request
   * and completed cycle; they live in memory and are written to the store only when a purge
   * reads them (and at most once per change), so that replication pays nothing for them.
   */
  private reports: Map<NodeId, PeerReport> | undefined;
  private readonly unsavedReports = new Set<NodeId>();

  recordPeerReport(report: PeerReport): void {
    const reports = this.peerReports();
    const last = reports.get(report.node);
    if (last !== undefined && last.invocation === report.invocation && utdEquals(last.utd, report.utd))
      return;
    reports.set(report.node, report);
    this.unsavedReports.add(report.node);
  }

  peerReports(): Map<NodeId, PeerReport> {
    this.reports ??= new Map(this.store.readPeerReports().map((report) => [report.node, report]));
    return this.reports;
  }

  /** Writes the reports that changed since the last save (inside the caller's transaction). */
  saveReports(): void {
    const reports = this.peerReports();
    for (const node of this.unsavedReports) {
      const report = reports.get(node);
      if (report !== undefined) this.store.writePeerReport(report);
    }
    this.unsavedReports.clear();
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
      this.cachedUtd = undefined;
      this.cachedHorizons.clear();
      invalidateNaming(this.store);
      this.cachedRequired = undefined;
      this.reports = undefined;
      this.unsavedReports.clear();
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

  /**
   * A new entry's GUID: 48 bits of the clock's milliseconds, then 80 random bits (as UUIDv7
   * does). Random GUIDs land on a random page of every GUID-keyed b-tree, so each add dirtied
   * one more page per index on every replica; time-ordered ones append to the same few pages
   * (measured: a fifth less CPU per add, half the system time). 80 random bits per millisecond
   * keep collisions out of reach; an add still draws again if its GUID is taken (unusedGuid in
   * originating.ts), since writing over another entry is not a price to risk.
   */
  newGuid(): Guid {
    const time = Math.max(0, Math.min(this.clock.now(), guidTimeMax));
    return (time.toString(16).padStart(guidTimeHexDigits, "0") +
      hexFromBytes(this.random.bytes(guidRandomBytes))) as Guid;
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
