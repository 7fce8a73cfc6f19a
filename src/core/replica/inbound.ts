import { normalizeDn, normalizeRdn, parseDn, parseRdn } from "../directory/dn.ts";
import type { Guid, InvocationId, NodeId, Usn } from "../ids.ts";
import { deletedItem, type Item, nameItem } from "../replication/items.ts";
import {
  type ChangePage,
  type EntryChange,
  excludesAll,
  initialWatermark,
  sameExcluded,
  sortedInvocations,
  type Watermark,
} from "../replication/page.ts";
import { compareStamps } from "../replication/stamp.ts";
import { isUrgentPage } from "../replication/urgent.ts";
import { type UtdVector, utdGet, utdMerge } from "../replication/utd.ts";
import { utdEntriesMax } from "../replication/validate.ts";
import type { EntryRow } from "../store.ts";
import type { ReplicaContext } from "./context.ts";
import { type NamingChange, refreshNaming } from "./naming.ts";
import { tombstoneFields } from "./originating.ts";
import { evictSquatter, squats } from "./squatters.ts";
import { isQuarantined } from "./tombstones.ts";

export interface ApplyOutcome {
  /** Entries this page changed on this replica (0 for a page of things it already had). */
  readonly entriesChanged: number;
  readonly itemsApplied: number;
  /** The watermark for the source after this page. */
  readonly watermark: Watermark;
  /** The page answered the current watermark and advanced it. */
  readonly contiguous: boolean;
  /** The source's database instance changed: pull again from zero. */
  readonly restart: boolean;
  /** The pull cycle is complete: the source's UTD was merged. */
  readonly cycleComplete: boolean;
  /** The page changed something urgent here (replication/urgent.ts): pass it on at once. */
  readonly urgent: boolean;
  /** The partitions (normalised DNs) of the entries this page changed here. */
  readonly partitionsChanged: readonly string[];
}

/**
 * Applies a validated page in the caller's transaction. Merging is idempotent and commutative
 * per item (the winning stamp is kept), so pages applied twice, late or out of order change
 * nothing wrong; only a page that answers exactly the current watermark advances it.
 */
export function applyPage(ctx: ReplicaContext, page: ChangePage): ApplyOutcome {
  let entriesChanged = 0;
  let itemsApplied = 0;
  const naming: NamingChange[] = [];
  const partitionsChanged = new Set<string>();
  for (const change of page.entries) {
    const applied = applyEntryChange(ctx, change, naming, partitionsChanged);
    if (applied > 0) {
      entriesChanged++;
      partitionsChanged.add(change.partition);
    }
    itemsApplied += applied;
  }
  // Once per page: placement and conflicts are derived from the replicated state alone, and
  // nothing above reads them but each entry's previous group, which refreshNaming is given.
  if (naming.length > 0) refreshNaming(ctx.store, naming);
  const urgent = entriesChanged > 0 && isUrgentPage(page);
  return {
    entriesChanged,
    itemsApplied,
    urgent,
    partitionsChanged: [...partitionsChanged],
    ...advanceWatermark(ctx, page),
  };
}

function advanceWatermark(
  ctx: ReplicaContext,
  page: ChangePage,
): Omit<ApplyOutcome, "entriesChanged" | "itemsApplied" | "urgent" | "partitionsChanged"> {
  const stored = ctx.store.readWatermark(page.source) ?? initialWatermark;
  // Made for another instance of this replica (it was restored after asking): the items the
  // page leaves out are those that instance had, not necessarily this one's.
  if (page.destinationInvocation !== ctx.meta.invocation) {
    return { watermark: stored, contiguous: false, restart: false, cycleComplete: false };
  }
  const fromZero = page.from.objectUsn === 0 && page.from.propertyUsn === 0;
  const sameInstance = stored.invocation === page.sourceInvocation;
  // A page made under another origin filter than the stored one vouches for other changes:
  // ignore it, as a page answering an old watermark is ignored (the next pull asks again).
  const answersStored =
    (sameInstance || stored.invocation === null) &&
    page.from.objectUsn === stored.objectUsn &&
    page.from.propertyUsn === stored.propertyUsn &&
    sameExcluded(page.from, stored);
  let next: Watermark;
  let contiguous = false;
  let restart = false;
  if (answersStored || (fromZero && !sameInstance)) {
    const base = answersStored ? stored : initialWatermark;
    const more = page.more && ctx.canaries.dropLastPage !== true;
    next = withExcluded(
      {
        invocation: page.sourceInvocation,
        objectUsn: Math.max(base.objectUsn, page.highUsn) as Usn,
        propertyUsn: more ? base.propertyUsn : (Math.max(base.propertyUsn, page.highUsn) as Usn),
      },
      page.from.excluded,
    );
    contiguous = true;
  } else if (!sameInstance && stored.invocation !== null) {
    // The source is a new database instance (restored or rebuilt): its USNs start a new space.
    next = withExcluded({ ...initialWatermark, invocation: page.sourceInvocation }, stored.excluded);
    restart = true;
  } else {
    next = stored;
  }
  if (ctx.canaries.skipWatermarkPersist !== true) ctx.store.writeWatermark(page.source, next);
  const cycleComplete = contiguous && (!page.more || ctx.canaries.dropLastPage === true);
  if (cycleComplete) completeCycle(ctx, page);
  return { watermark: next, contiguous, restart, cycleComplete };
}

function withExcluded(watermark: Watermark, excluded: readonly InvocationId[] | undefined): Watermark {
  return excluded === undefined || excluded.length === 0 ? watermark : { ...watermark, excluded };
}

/**
 * The watermark to pull from `partner` with origin filter `exclude`, stored if it changed.
 * The stored filter is every invocation left out since the watermark last started from zero
 * (a filter only ever grows in place): asking for one of them again starts from zero, since
 * the source's older changes by it were skipped; the UTD keeps that restart cheap.
 */
export function filteredWatermark(
  ctx: ReplicaContext,
  partner: NodeId,
  exclude: readonly InvocationId[],
): Watermark {
  const stored = ctx.store.readWatermark(partner) ?? initialWatermark;
  const wanted = sortedInvocations(exclude);
  if (sameExcluded(stored, { ...initialWatermark, excluded: wanted })) return stored;
  const keeps = excludesAll(wanted, stored.excluded ?? []) || ctx.canaries.keepWatermarkOnRefilter === true;
  const base = keeps ? stored : { ...stored, objectUsn: 0 as Usn, propertyUsn: 0 as Usn };
  const next = withExcluded(
    { invocation: base.invocation, objectUsn: base.objectUsn, propertyUsn: base.propertyUsn },
    wanted,
  );
  ctx.store.writeWatermark(partner, next);
  return next;
}

/** After the last page of a cycle this replica has everything the source had: take its UTD. */
function completeCycle(ctx: ReplicaContext, page: ChangePage): void {
  // A quarantined replica merges no UTD: the source's UTD may cover purged deletions this
  // replica never received, and would then keep it from ever receiving their tombstones.
  const quarantined = isQuarantined(ctx);
  if (ctx.canaries.skipUtdMerge !== true && !quarantined) {
    // Never record our own current invocation: our USN is the truth for it. Nor what the origin
    // filter left out: this replica did not get those changes from this source.
    const skipped = new Set<string>(ctx.canaries.mergeFilteredUtd === true ? [] : (page.from.excluded ?? []));
    skipped.add(ctx.meta.invocation);
    const others = Object.fromEntries(
      Object.entries(page.utd).filter(([invocation]) => !skipped.has(invocation)),
    );
    // One entry is this replica's own invocation, added when the UTD is sent.
    const merged = utdMerge(ctx.utd(), others);
    if (withinBound(merged, utdEntriesMax - 1)) ctx.setUtd(merged);
  }
  ctx.recordPeerReport({
    node: page.source,
    invocation: page.sourceInvocation,
    utd: page.utd,
    usn: utdGet(page.utd, page.sourceInvocation),
    receivedAt: ctx.now(),
  });
  // Purges travel with the UTD, so that whoever merges this UTD learns what it can no longer get.
  if (!quarantined) {
    const merged = utdMerge(ctx.horizon("purged"), page.purgeHorizon);
    if (withinBound(merged, utdEntriesMax)) ctx.setHorizon("purged", merged);
  }
  ctx.updateMeta({ lastInboundSuccess: ctx.now() });
}

/**
 * Whether a merged vector still fits the bound every node checks vectors against (validateUtd):
 * each page's UTD and horizon are within it, but their merges with this replica's are not. A
 * replica whose UTD grew past it would send requests and pages that every partner refuses, so
 * it would never replicate again; a page that would take it there (only a broken or hostile
 * source claims that many invocations) merges nothing, and the replica keeps what it had.
 */
function withinBound(vector: UtdVector, entriesMax: number): boolean {
  return Object.keys(vector).length <= entriesMax;
}

/**
 * Merges one entry's items; returns how many items won. A change of the entry's name or
 * existence is added to `naming`: the caller refreshes naming once it has applied its changes.
 * The partition of a squatter the change evicts (squatters.ts) is added to `partitionsChanged`.
 */
export function applyEntryChange(
  ctx: ReplicaContext,
  change: EntryChange,
  naming: NamingChange[],
  partitionsChanged?: Set<string>,
): number {
  const existing = ctx.store.getEntry(change.guid);
  if (existing === undefined) return createFromChange(ctx, change, naming);
  if (existing.partition !== change.partition) {
    // A GUID names one entry forever; a change that moves it to another partition is not real,
    // unless the GUID is derived for the change's partition: then the stored entry squats it.
    if (!squats(existing, change.guid, change.partition)) return 0;
    naming.push(evictSquatter(ctx, existing));
    partitionsChanged?.add(existing.partition);
    return createFromChange(ctx, change, naming);
  }
  let row: EntryRow = existing;
  let usn: Usn | undefined;
  let applied = 0;
  let nameChanged = false;
  let died = false;
  for (const item of orderedItems(change.items)) {
    if (row.deleted && item.attribute !== nameItem && item.attribute !== deletedItem) continue;
    if (died && item.attribute !== nameItem) continue;
    const verdict = merge(ctx, row.guid, item);
    if (verdict === "keep") continue;
    usn ??= ctx.nextUsn();
    const stamp = verdict === "recount" ? { ...item.stamp, version: item.stamp.version + 1 } : item.stamp;
    const stored = {
      guid: row.guid,
      attribute: item.attribute,
      key: item.key,
      value: item.value,
      stamp,
      localUsn: usn,
    };
    if (verdict === "insert") ctx.store.putItem(stored);
    else ctx.store.replaceItem(stored);
    applied++;
    if (item.value.kind === "name") {
      row = {
        ...row,
        rdn: item.value.rdn,
        rdnNorm: rdnNormOf(item.value.rdn, item.value.parent),
        parent: item.value.parent,
      };
      nameChanged = true;
    }
    if (item.value.kind === "deleted" && !row.deleted) died = true;
  }
  if (usn === undefined) return 0;
  if (died) {
    ctx.store.removeItemsExcept(row.guid, [nameItem, deletedItem]);
    row = { ...row, ...tombstoneFields(ctx) };
  }
  if (nameChanged || died) ctx.store.putEntry({ ...row, usnChanged: usn });
  else ctx.store.setUsnChanged(row.guid, usn);
  if (nameChanged || died) {
    const previousGroup =
      existing.deleted || existing.parentEff === null
        ? null
        : { parent: existing.parentEff, rdnNorm: existing.rdnNorm };
    naming.push({ guid: row.guid, previousGroup, existenceChanged: died });
  }
  return applied;
}

/** Deletion first, so that attribute items arriving with it are not written and then removed. */
function orderedItems(items: readonly Item[]): readonly Item[] {
  const deletion = items.find((item) => item.attribute === deletedItem);
  return deletion === undefined ? items : [deletion, ...items.filter((item) => item !== deletion)];
}

/** "insert" a new item, "replace" a losing one, "keep" the stored one; "recount" only under the planted bug. */
function merge(ctx: ReplicaContext, guid: Guid, item: Item): "insert" | "replace" | "keep" | "recount" {
  const stored = ctx.store.getItem(guid, item.attribute, item.key);
  if (stored === undefined) return "insert";
  const order = compareStamps(item.stamp, stored.stamp, ctx.canaries);
  if (order === 0 && ctx.canaries.nonIdempotentApply === true) return "recount";
  return order > 0 ? "replace" : "keep";
}

/**
 * An entry this replica has never seen. Without its name item it cannot be placed: that only
 * happens for an entry this replica held as a tombstone and purged, so the change is dropped.
 */
function createFromChange(ctx: ReplicaContext, change: EntryChange, naming: NamingChange[]): number {
  const name = change.items.find((item) => item.attribute === nameItem);
  if (name === undefined || name.value.kind !== "name") return 0;
  const deleted = change.items.some((item) => item.attribute === deletedItem);
  const usn = ctx.nextUsn();
  const parent = name.value.parent;
  ctx.store.putEntry({
    guid: change.guid,
    partition: change.partition,
    origin: change.origin,
    rdn: name.value.rdn,
    rdnNorm: rdnNormOf(name.value.rdn, parent),
    parent,
    deleted: false,
    tombstoneSince: null,
    parentEff: parent,
    placement: "normal",
    conflict: false,
    usnCreated: usn,
    usnChanged: usn,
    ...(deleted ? tombstoneFields(ctx) : {}),
  });
  let applied = 0;
  for (const item of change.items) {
    if (deleted && item.attribute !== nameItem && item.attribute !== deletedItem) continue;
    ctx.store.putItem({
      guid: change.guid,
      attribute: item.attribute,
      key: item.key,
      value: item.value,
      stamp: item.stamp,
      localUsn: usn,
    });
    applied++;
  }
  naming.push({ guid: change.guid, previousGroup: null, existenceChanged: true });
  return applied;
}

function rdnNormOf(rdn: string, parent: Guid | null): string {
  if (parent === null) {
    const dn = parseDn(rdn);
    return dn.ok ? normalizeDn(dn.value) : rdn;
  }
  const parsed = parseRdn(rdn);
  return parsed.ok ? normalizeRdn(parsed.value) : rdn;
}
