import type { Guid, InvocationId, NodeId, Usn } from "../ids.ts";
import { deletedItem } from "../replication/items.ts";
import { type UtdVector, utdCovers } from "../replication/utd.ts";
import type { EntryRow, TombstoneCursor } from "../store.ts";
import type { ReplicaContext } from "./context.ts";
import { refreshNaming } from "./naming.ts";

/** Tombstones examined by one purge call; the caller repeats until `remaining` is false. */
export const purgeBatchMax = 10_000;

export interface PurgeOutcome {
  readonly purged: number;
  readonly examined: number;
  /** More tombstones are left to examine. */
  readonly remaining: boolean;
}

/**
 * Removes tombstones that can no longer matter: every replica in `replicas` has reported a UTD
 * that covers the deletion, or the tombstone is older than the tombstone lifetime (replicas that
 * have not caught up by then are treated as gone, and strict mode quarantines them if they come
 * back). Age is measured on this replica's own clock from when it stored the tombstone, so a
 * skewed originating clock cannot make a deletion expire early.
 */
export function purgeTombstones(ctx: ReplicaContext, replicas: readonly NodeId[]): PurgeOutcome {
  const now = ctx.now();
  const reports = new Map(ctx.store.readPeerReports().map((report) => [report.node, report.utd]));
  const others = replicas.filter((node) => node !== ctx.meta.nodeId);
  let after: TombstoneCursor | null = null;
  let purged = 0;
  let examined = 0;
  for (;;) {
    const page = ctx.store.listTombstones(after, Math.min(1000, purgeBatchMax - examined));
    for (const row of page) {
      examined++;
      if (canPurge(ctx, row, now, others, reports)) {
        ctx.store.removeEntry(row.guid);
        purged++;
      }
    }
    const last = page.at(-1);
    if (
      last === undefined ||
      last.tombstoneSince === null ||
      page.length < 1000 ||
      examined >= purgeBatchMax
    ) {
      if (purged > 0) ctx.event("tombstones-purged", `${purged} tombstones purged`);
      return { purged, examined, remaining: examined >= purgeBatchMax && page.length > 0 };
    }
    after = { tombstoneSince: last.tombstoneSince, guid: last.guid };
  }
}

function canPurge(
  ctx: ReplicaContext,
  row: EntryRow,
  now: number,
  others: readonly NodeId[],
  reports: ReadonlyMap<NodeId, UtdVector>,
): boolean {
  if (row.tombstoneSince !== null && now - row.tombstoneSince > ctx.settings.tombstoneLifetimeMs) return true;
  const deletion = ctx.store.getItem(row.guid, deletedItem, "");
  if (deletion === undefined) return false;
  const covers = (node: NodeId): boolean => {
    const utd = reports.get(node);
    return utd !== undefined && utdCovers(utd, deletion.stamp);
  };
  if (ctx.canaries.purgeTombstonesEarly === true) return others.length === 0 || others.some(covers);
  return others.every(covers);
}

/**
 * Strict mode. A replica that has not completed an inbound pull for longer than the tombstone
 * lifetime may hold entries whose deletions it never saw and that everyone else has purged
 * ("lingering objects"); sending them would bring them back to life. It refuses to send until
 * a lingering-object check against a healthy partner has run. A replica with no partners at
 * all (a directory of one) is never quarantined for age. A restored or rolled-back copy is
 * quarantined until its check has run (`lingeringCheckDue`), partners or not: the driver, which
 * knows whether the directory has other replicas, ends it at once for a directory of one.
 */
export function isQuarantined(ctx: ReplicaContext): boolean {
  if (ctx.meta.lingeringCheckDue) return true;
  if (ctx.store.listWatermarks().length === 0) return false;
  return ctx.now() - ctx.meta.lastInboundSuccess > ctx.settings.tombstoneLifetimeMs;
}

export interface LingeringCandidate {
  readonly guid: Guid;
  readonly origin: { readonly invocation: InvocationId; readonly usn: Usn };
}

/** A page of this replica's entries (live and tombstones), in GUID order, for a lingering check. */
export function lingeringCandidates(
  ctx: ReplicaContext,
  after: Guid | null,
  limit: number,
): LingeringCandidate[] {
  return ctx.store.listEntries(after, limit).map((row) => ({ guid: row.guid, origin: row.origin }));
}

/**
 * Removes, without replicating anything, the candidates a healthy reference replica does not
 * hold although its UTD covers their creation: it saw them, deleted them and purged the
 * tombstones. Entries the reference never saw (created here, or too recent) are kept.
 */
export function removeLingering(
  ctx: ReplicaContext,
  candidates: readonly LingeringCandidate[],
  absentOnReference: ReadonlySet<Guid>,
  referenceUtd: UtdVector,
): number {
  let removed = 0;
  for (const candidate of candidates) {
    if (!absentOnReference.has(candidate.guid) || !utdCovers(referenceUtd, candidate.origin)) continue;
    const row = ctx.store.getEntry(candidate.guid);
    if (row === undefined) continue;
    ctx.store.removeEntry(candidate.guid);
    const previousGroup =
      row.deleted || row.parentEff === null ? null : { parent: row.parentEff, rdnNorm: row.rdnNorm };
    refreshNaming(ctx.store, [{ guid: row.guid, previousGroup, existenceChanged: true }]);
    removed++;
  }
  if (removed > 0) ctx.event("lingering-removed", `${removed} lingering entries removed`);
  return removed;
}
