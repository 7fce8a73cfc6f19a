import type { Guid, InvocationId, NodeId, Usn } from "../ids.ts";
import type { EntryChange } from "../replication/page.ts";
import type { Stamp } from "../replication/stamp.ts";
import { type UtdVector, utdCovers, utdCoversVector, utdGet, utdMerge, utdWith } from "../replication/utd.ts";
import type { EntryRow, TombstoneCursor } from "../store.ts";
import type { ReplicaContext } from "./context.ts";
import { applyEntryChange } from "./inbound.ts";
import { type NamingChange, refreshNaming } from "./naming.ts";

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
  ctx.saveReports();
  const reports = new Map([...ctx.peerReports()].map(([node, report]) => [node, report.utd]));
  const others = replicas.filter((node) => node !== ctx.meta.nodeId);
  let after: TombstoneCursor | null = null;
  let purged = 0;
  let examined = 0;
  for (;;) {
    const page = ctx.store.listTombstones(after, Math.min(1000, purgeBatchMax - examined));
    for (const row of page) {
      examined++;
      const stamps = canPurge(ctx, row, now, others, reports);
      if (stamps !== undefined) {
        ctx.store.removeEntry(row.guid);
        extendHorizon(ctx, stamps);
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

function expired(ctx: ReplicaContext, row: EntryRow, now: number): boolean {
  return row.tombstoneSince !== null && now - row.tombstoneSince > ctx.settings.tombstoneLifetimeMs;
}

/**
 * A replica purges only what its own UTD covers: the entry's creation and every stamp of the
 * tombstone. Otherwise it could not later vouch, in a lingering-object check, that it once held
 * the entry, and its purge horizon would name deletions beyond its own UTD, which no check
 * against it could settle (two replicas could then quarantine each other for good). Items of
 * an invocation retired by a restore can stay beyond every UTD for ever; their tombstones stay.
 */
function vouches(ctx: ReplicaContext, row: EntryRow, stamps: readonly Stamp[]): boolean {
  const utd = ctx.currentUtd();
  return utdCovers(utd, row.origin) && stamps.every((stamp) => utdCovers(utd, stamp));
}

/**
 * The stamps of a tombstone that may go now, or undefined to keep it. A tombstone carries its
 * deletion and its name, which a rename concurrent with the delete may have changed: it goes
 * when every replica covers all of them, or when it is older than the lifetime.
 */
function canPurge(
  ctx: ReplicaContext,
  row: EntryRow,
  now: number,
  others: readonly NodeId[],
  reports: ReadonlyMap<NodeId, UtdVector>,
): Stamp[] | undefined {
  const stamps = ctx.store.getItems(row.guid).map((item) => item.stamp);
  if (stamps.length === 0) return undefined;
  if (!vouches(ctx, row, stamps) && ctx.canaries.purgeTombstonesEarly !== true) return undefined;
  if (expired(ctx, row, now)) return stamps;
  const covers = (node: NodeId): boolean => {
    const utd = reports.get(node);
    return utd !== undefined && stamps.every((stamp) => utdCovers(utd, stamp));
  };
  const early = ctx.canaries.purgeTombstonesEarly === true && (others.length === 0 || others.some(covers));
  return early || others.every(covers) ? stamps : undefined;
}

/**
 * Strict mode. A replica that missed a deletion whose tombstone the others have since purged
 * holds a "lingering object": sending it would bring a deleted entry back to life. Plexus
 * detects that exactly, without clocks: every replica keeps a purge horizon (per invocation id,
 * the highest deletion USN it purged or heard was purged) and sends it with every page and
 * request. A replica whose UTD, together with what earlier lingering checks settled, does not
 * cover a partner's horizon may lack some of those deletions: it quarantines itself — it sends
 * nothing — until a lingering-object check against a partner has run. A restored copy needs no
 * special case: its UTD went back with it, so any purge it missed shows in a partner's horizon.
 */
export function isQuarantined(ctx: ReplicaContext): boolean {
  const checked = ctx.horizon("checked");
  return ctx.requiredHorizons().some((required) => !utdCoversVector(checked, required));
}

/**
 * Compares a partner's purge horizon with what this replica has (its UTD) or has settled (its
 * checks). Every deletion the horizon names beyond both becomes required: the replica stays
 * quarantined until checks have settled it. Must run before a page's UTD is merged, which
 * would otherwise cover deletions that were never received. Returns whether it quarantined.
 */
export function checkPurgeHorizon(ctx: ReplicaContext, horizon: UtdVector, partner: NodeId): boolean {
  const checked = ctx.horizon("checked");
  const settled = utdMerge(ctx.currentUtd(), checked);
  const deficit: Record<string, Usn> = {};
  for (const [invocation, usn] of Object.entries(horizon) as Array<[InvocationId, Usn]>) {
    if (usn > utdGet(settled, invocation)) deficit[invocation] = usn;
  }
  // Each partner's latest horizon replaces its earlier one: a partner restored from a backup no
  // longer claims the purges it forgot, and holds what it held before them.
  const wasQuarantined = isQuarantined(ctx);
  ctx.setHorizon(`required:${partner}`, deficit);
  if (Object.keys(deficit).length === 0) return false;
  if (!wasQuarantined) {
    const [invocation, usn] = Object.entries(deficit)[0] as [InvocationId, Usn];
    ctx.event(
      "quarantined",
      `${partner} purged deletions this replica may never have received (up to USN ${usn} of ${invocation}, which this replica has up to ${utdGet(settled, invocation)})`,
    );
  }
  return true;
}

/**
 * Records a purged tombstone's stamps (deletion and name) in this replica's purge horizon: a
 * replica that lacks any of them can no longer get it from here.
 */
function extendHorizon(ctx: ReplicaContext, stamps: readonly Stamp[]): void {
  let horizon = ctx.horizon("purged");
  for (const stamp of stamps) {
    if (utdGet(horizon, stamp.invocation) < stamp.usn)
      horizon = utdWith(horizon, stamp.invocation, stamp.usn);
  }
  ctx.setHorizon("purged", horizon);
}

/**
 * A full lingering-object check against `reference` has run. This replica now holds (or has
 * removed the entry of) every deletion the reference's UTD covers, and every deletion a
 * healthy reference purged: those are settled (`settles`, from the reference's answer). The
 * quarantine ends once everything required is settled; otherwise another check follows.
 */
export function endQuarantine(ctx: ReplicaContext, reference: NodeId, settles: UtdVector): void {
  ctx.setHorizon("checked", utdMerge(ctx.horizon("checked"), settles));
  if (isQuarantined(ctx)) {
    ctx.event(
      "quarantined",
      `a lingering-object check against ${reference} settled only part of what is required`,
    );
  } else {
    ctx.event("quarantine-ended", `after a lingering-object check against ${reference}`);
  }
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

/** What a reference replica answers about a page of candidates. */
export interface LingeringAnswer {
  /** Candidates the reference holds neither live nor as tombstones. */
  readonly absent: readonly Guid[];
  /** Candidates the reference holds as tombstones: their name and deletion items. */
  readonly tombstones: readonly EntryChange[];
}

/** The reference's side of a lingering-object check. */
export function answerLingeringCheck(ctx: ReplicaContext, guids: readonly Guid[]): LingeringAnswer {
  const absent: Guid[] = [];
  const tombstones: EntryChange[] = [];
  for (const guid of guids) {
    const row = ctx.store.getEntry(guid);
    if (row === undefined) absent.push(guid);
    else if (row.deleted) {
      const items = ctx.store
        .getItems(guid)
        .map(({ attribute, key, value, stamp }) => ({ attribute, key, value, stamp }));
      tombstones.push({ guid, partition: row.partition, origin: row.origin, items });
    }
  }
  return { absent, tombstones };
}

/**
 * The checking replica's side, per page of candidates: an entry the reference purged (absent
 * there although its UTD covers the entry's creation: it saw it, deleted it and dropped the
 * tombstone) is removed here without replicating anything; an entry the reference holds as a
 * tombstone takes that tombstone here. Entries the reference never saw (created here, or too
 * recent) are kept. Afterwards this replica holds every deletion the reference's UTD covers.
 */
export function applyLingeringAnswer(
  ctx: ReplicaContext,
  candidates: readonly LingeringCandidate[],
  answer: LingeringAnswer,
  referenceUtd: UtdVector,
): number {
  const absent = new Set(answer.absent);
  let removed = 0;
  for (const candidate of candidates) {
    if (!absent.has(candidate.guid) || !utdCovers(referenceUtd, candidate.origin)) continue;
    const row = ctx.store.getEntry(candidate.guid);
    if (row === undefined) continue;
    ctx.store.removeEntry(candidate.guid);
    const previousGroup =
      row.deleted || row.parentEff === null ? null : { parent: row.parentEff, rdnNorm: row.rdnNorm };
    refreshNaming(ctx.store, [{ guid: row.guid, previousGroup, existenceChanged: true }]);
    removed++;
  }
  const naming: NamingChange[] = [];
  for (const tombstone of answer.tombstones) applyEntryChange(ctx, tombstone, naming);
  if (naming.length > 0) refreshNaming(ctx.store, naming);
  if (removed > 0) ctx.event("lingering-removed", `${removed} lingering entries removed`);
  return removed;
}
