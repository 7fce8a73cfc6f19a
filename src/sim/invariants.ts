import { normalizeDn, parseDn } from "../core/directory/dn.ts";
import type { InvocationId, Usn } from "../core/ids.ts";
import { compareStamps, formatStamp } from "../core/replication/stamp.ts";
import { type UtdVector, utdCovers, utdGet } from "../core/replication/utd.ts";
import { type AckedWrite, Ledger } from "./ledger.ts";
import type { SimNode } from "./node.ts";
import { type ConvergedEntry, convergedState } from "./state.ts";
import type { World } from "./world.ts";

/**
 * The simulator's invariants. Checked during the run (monotonic USN and UTD per invocation,
 * unique live DNs, no resurrection — the latter in SimNode's store hook) and after the
 * liveness phase (convergence, no acknowledged write lost, causality, complete UTDs, and
 * watermarks that advance).
 */
export class Invariants {
  private readonly seen = new Map<InvocationId, { usn: Usn; utd: UtdVector; node: string }>();

  constructor(private readonly world: World) {}

  private check(invariant: string, ok: boolean, message: () => string): boolean {
    this.world.stats.invariantChecks++;
    if (!ok) this.world.violate(invariant, message());
    return ok;
  }

  /** (f) USN and UTD never go down for one invocation id; (e) live DNs are unique on a node. */
  audit(): void {
    for (const node of this.world.nodes) {
      const replica = node.replica;
      if (replica === null) continue;
      const usn = replica.usn;
      const utd = replica.utd();
      const previous = this.seen.get(replica.invocationId);
      if (previous !== undefined) {
        this.check(
          "monotonic",
          usn >= previous.usn,
          () => `${node.id}: USN of ${replica.invocationId.slice(0, 8)} went from ${previous.usn} to ${usn}`,
        );
        for (const [invocation, value] of Object.entries(previous.utd) as [InvocationId, Usn][]) {
          if (invocation === replica.invocationId) continue;
          this.check(
            "monotonic",
            utdGet(utd, invocation) >= value,
            () =>
              `${node.id}: UTD[${invocation.slice(0, 8)}] went from ${value} to ${utdGet(utd, invocation)}`,
          );
        }
      }
      this.seen.set(replica.invocationId, { usn, utd, node: node.id });
    }
    const sample = this.world.random.pick(this.world.nodes);
    if (sample.up) this.uniqueDns(sample, convergedState(sample.sqlite));
  }

  private uniqueDns(node: SimNode, state: readonly ConvergedEntry[]): void {
    const seen = new Map<string, string>();
    for (const entry of state) {
      if (entry.dn === null) continue;
      const parsed = parseDn(entry.dn);
      const key = parsed.ok ? normalizeDn(parsed.value) : entry.dn;
      const other = seen.get(key);
      this.check(
        "unique-dns",
        other === undefined,
        () => `${node.id}: ${entry.dn} names both ${other} and ${entry.guid}`,
      );
      seen.set(key, entry.guid);
    }
  }

  /** Every replica has every change every other replica has: the liveness phase's goal. */
  utdsCrossCovered(): boolean {
    for (const node of this.world.nodes) {
      const replica = node.replica;
      if (replica === null || replica.isQuarantined()) return false;
      for (const other of this.world.nodes) {
        const peer = other.replica;
        if (peer === null || peer === replica) continue;
        if (utdGet(replica.utd(), peer.invocationId) < peer.usn) return false;
      }
    }
    return true;
  }

  /**
   * One digest of the state when every replica holds the same state (all up), else null; it
   * includes every replica's UTD, so it stays the same only when nothing moves at all.
   */
  stateDigest(): string | null {
    let digest: string | null = null;
    for (const node of this.world.nodes) {
      if (!node.up) return null;
      const next = JSON.stringify(convergedState(node.sqlite));
      if (digest !== null && next !== digest) return null;
      digest = next;
    }
    // With the UTDs: while they still move, replication is still making progress.
    return `${digest}${JSON.stringify(this.world.nodes.map((node) => node.replica?.utd()))}`;
  }

  /** All checks that need the converged end state. Returns the state of the first node. */
  final(): readonly ConvergedEntry[] {
    const states = this.world.nodes.map((node) => convergedState(node.sqlite));
    this.convergence(states);
    const reference = states[0] ?? [];
    const byGuid = new Map(reference.map((entry) => [entry.guid, entry]));
    this.acknowledgedWrites(byGuid);
    this.causality(byGuid);
    this.completeUtds(reference);
    this.honestUtds();
    this.watermarks();
    for (const [index, node] of this.world.nodes.entries()) this.uniqueDns(node, states[index] ?? []);
    return reference;
  }

  /** (a) Identical state everywhere: live entries, values, stamps, and tombstones not yet purged. */
  private convergence(states: ReadonlyArray<readonly ConvergedEntry[]>): void {
    const maps = states.map((state) => new Map(state.map((entry) => [entry.guid, entry])));
    const guids = new Set(maps.flatMap((map) => [...map.keys()]));
    for (const guid of guids) {
      const versions = maps.map((map) => map.get(guid));
      const present = versions.filter((entry): entry is ConvergedEntry => entry !== undefined);
      const live = present.some((entry) => !entry.deleted);
      // A tombstone may be purged on some replicas before others; a live entry must be everywhere.
      if (live)
        this.check(
          "convergence",
          present.length === versions.length,
          () => `${guid} is live on some replicas and missing on others`,
        );
      const first = JSON.stringify(present[0]);
      const differing = present.findIndex((entry) => JSON.stringify(entry) !== first);
      this.check(
        "convergence",
        differing < 0,
        () => `${guid} differs between replicas: ${first} vs ${JSON.stringify(present[differing])}`,
      );
    }
  }

  /** (b) Each acknowledged write is present, or superseded by a write that dominates it. */
  private acknowledgedWrites(final: ReadonlyMap<string, ConvergedEntry>): void {
    for (const write of this.world.ledger.writes) {
      if (this.world.ledger.excused.has(Ledger.key(write.invocation, write.usn))) continue;
      const entry = final.get(write.guid);
      // Absent everywhere: the entry was deleted and its tombstone purged. Deleted: a delete
      // supersedes every write to the entry, and any delete does what any other would.
      if (entry === undefined || entry.deleted) continue;
      for (const item of write.items) {
        const found = entry.items.find(
          (candidate) => candidate.attribute === item.attribute && candidate.key === item.key,
        );
        this.check("no-lost-write", found !== undefined && compareStamps(found.stamp, item.stamp) >= 0, () =>
          describeLoss(write, item.attribute, found?.stamp),
        );
      }
    }
  }

  /** (c) A write made after its client read another write wins over it. */
  private causality(final: ReadonlyMap<string, ConvergedEntry>): void {
    for (const pair of this.world.ledger.causal) {
      this.check(
        "causality",
        compareStamps(pair.written, pair.observed) > 0,
        () => `a write after reading ${formatStamp(pair.observed)} got ${formatStamp(pair.written)}`,
      );
      if (this.world.ledger.excused.has(Ledger.key(pair.written.invocation, pair.written.usn))) continue;
      const entry = final.get(pair.guid);
      if (entry === undefined || entry.deleted) continue;
      const found = entry.items.find((item) => item.attribute === pair.attribute);
      this.check(
        "causality",
        found === undefined || compareStamps(found.stamp, pair.written) >= 0,
        () =>
          `${pair.guid}: ${pair.writtenOn}'s write ${formatStamp(pair.written)}, made after reading ${formatStamp(pair.observed)} on ${pair.readOn}, lost to ${found === undefined ? "nothing" : formatStamp(found.stamp)}`,
      );
    }
  }

  /**
   * A replica's UTD never claims a write it does not hold: every acknowledged write its UTD
   * covers is there, superseded, or its entry deleted. (A UTD that lies keeps the replica from
   * ever receiving what it claims — propagation dampening trusts it.)
   */
  honestUtds(): void {
    for (const node of this.world.nodes) {
      const utd = node.replica?.utd();
      if (utd === undefined) continue;
      for (const write of this.world.ledger.writes) {
        if (!utdCovers(utd, write) || this.world.ledger.excused.has(Ledger.key(write.invocation, write.usn)))
          continue;
        const entry = node.sqlite.getEntry(write.guid);
        if (entry === undefined || entry.deleted) continue;
        const missing = write.items.find((item) => {
          const found = node.sqlite.getItem(write.guid, item.attribute, item.key);
          return found === undefined || compareStamps(found.stamp, item.stamp) < 0;
        });
        this.check(
          "honest-utd",
          missing === undefined,
          () =>
            `${node.id}'s UTD covers ${write.op} on ${write.node} (${write.guid} ${missing?.attribute}) but does not hold it`,
        );
      }
    }
  }

  /**
   * Every replica's UTD covers every write present in the converged state that a current
   * database instance made. (A retired instance — restored away — may have lost some of its
   * writes with the restore, so nobody can ever claim all of it.)
   */
  private completeUtds(state: readonly ConvergedEntry[]): void {
    const current = new Set(this.world.nodes.map((node) => node.replica?.invocationId));
    const stamps = state.flatMap((entry) => entry.items).filter((item) => current.has(item.stamp.invocation));
    for (const node of this.world.nodes) {
      const utd = node.replica?.utd();
      if (utd === undefined) continue;
      const missing = stamps.find((item) => !utdCovers(utd, item.stamp));
      this.check(
        "complete-utd",
        missing === undefined,
        () =>
          `${node.id}'s UTD does not cover ${missing === undefined ? "" : formatStamp(missing.stamp)}, which it holds`,
      );
    }
  }

  /** A replica that pulled a whole cycle from a partner keeps the advanced watermark. */
  private watermarks(): void {
    for (const node of this.world.nodes) {
      for (const partner of node.machine?.partnerStatus() ?? []) {
        if (partner.lastSuccessAt === null) continue;
        // (A partner restored since then has a watermark reset to zero: present is enough.)
        const watermark = node.sqlite.readWatermark(partner.partner);
        this.check(
          "watermark",
          watermark !== undefined,
          () => `${node.id} completed pulls from ${partner.partner} but kept no watermark`,
        );
      }
    }
  }
}

function describeLoss(
  write: AckedWrite,
  attribute: string,
  found: Parameters<typeof formatStamp>[0] | undefined,
): string {
  const wrote = write.items.find((item) => item.attribute === attribute);
  return (
    `${write.op} on ${write.node} at ${write.at} ms (${write.guid}, ${attribute} ${wrote === undefined ? "" : formatStamp(wrote.stamp)}) ` +
    `is neither present nor superseded: final ${found === undefined ? "missing" : formatStamp(found)}`
  );
}
