import type { Usn } from "../ids.ts";
import type { Item } from "../replication/items.ts";
import type { ChangePage, ChangeRequest, EntryChange, Watermark } from "../replication/page.ts";
import { type UtdVector, utdCovers, utdCoversVector } from "../replication/utd.ts";
import type { EntryRow, ItemRow } from "../store.ts";
import type { ReplicaContext } from "./context.ts";

/** Rough per-item overhead of the JSON encoding (keys, stamp), for page byte accounting. */
const itemOverheadBytes = 120;
const entryOverheadBytes = 160;

/** This replica's UTD as it tells others: the stored vector plus its own invocation at its USN. */
export function currentUtd(ctx: ReplicaContext): UtdVector {
  return ctx.currentUtd();
}

/**
 * Builds the next page for a destination. Entries come in usnChanged order after
 * `from.objectUsn`; of each entry only the items stored after `from.propertyUsn` that the
 * destination's UTD does not cover travel (propagation dampening). A tombstone always carries
 * its deletion item, so that a destination that never saw (or already purged) the entry
 * records a tombstone rather than bringing a deleted entry to life.
 */
export function buildPage(ctx: ReplicaContext, request: ChangeRequest): ChangePage {
  const from = answerableFrom(ctx, request.from);
  const rows = ctx.store.entriesChangedAfter(from.objectUsn, request.limits.entriesMax + 1);
  // Every stored item's stamp is at most the held stamp of its invocation: a destination whose
  // UTD covers those lacks nothing here, and each entry's items would be read only to be skipped
  // (a partner's relay pull for changes it already got from their origin). The page is the one
  // the loop below would build: no entries, and the same watermark and `more` (a cycle cut
  // short here would merge this replica's UTD at another moment than the full scan does).
  if (utdCoversVector(request.utd, heldStamps(ctx))) {
    const last = rows[request.limits.entriesMax - 1];
    if (rows.length > request.limits.entriesMax && last !== undefined) {
      return pageOf(ctx, request, from, [], last.usnChanged, true);
    }
    return pageOf(ctx, request, from, [], Math.max(ctx.meta.usn, from.objectUsn) as Usn, false);
  }
  const entries: EntryChange[] = [];
  let bytes = 0;
  let scanned = 0;
  let highUsn: Usn = ctx.meta.usn;
  let more = false;
  const excluded = new Set<string>(ctx.canaries.ignoreOriginFilter === true ? [] : (from.excluded ?? []));
  for (const row of rows) {
    if (scanned === request.limits.entriesMax || (scanned > 0 && bytes >= request.limits.bytesMax)) {
      more = true;
      break;
    }
    scanned++;
    highUsn = row.usnChanged;
    const change = entryChange(ctx, row, from.propertyUsn, request.utd, excluded);
    if (change === undefined) continue;
    entries.push(change);
    bytes += estimateBytes(change);
  }
  if (!more) highUsn = Math.max(ctx.meta.usn, from.objectUsn) as Usn;
  return pageOf(ctx, request, from, entries, highUsn, more);
}

function pageOf(
  ctx: ReplicaContext,
  request: ChangeRequest,
  from: Watermark,
  entries: EntryChange[],
  highUsn: Usn,
  more: boolean,
): ChangePage {
  return {
    source: ctx.meta.nodeId,
    sourceInvocation: ctx.meta.invocation,
    destinationInvocation: request.destinationInvocation,
    from,
    highUsn,
    more,
    utd: currentUtd(ctx),
    purgeHorizon: ctx.horizon("purged"),
    entries,
  };
}

function heldStamps(ctx: ReplicaContext): UtdVector {
  const held = ctx.store.heldStamps();
  if (ctx.canaries.forgetOwnHeldStamps !== true) return held;
  const { [ctx.meta.invocation]: _own, ...others } = held;
  return others;
}

/** A watermark in another instance's USN space means nothing here: start that partner over
 * (under the same origin filter). */
function answerableFrom(ctx: ReplicaContext, from: Watermark): Watermark {
  if (from.invocation === ctx.meta.invocation) return from;
  if (from.invocation === null && from.objectUsn === 0) return from;
  const restart = { invocation: null, objectUsn: 0 as Usn, propertyUsn: 0 as Usn };
  return from.excluded === undefined ? restart : { ...restart, excluded: from.excluded };
}

function entryChange(
  ctx: ReplicaContext,
  row: EntryRow,
  propertyUsn: Usn,
  utd: UtdVector,
  excluded: ReadonlySet<string>,
): EntryChange | undefined {
  if (excluded.size === 0 && !row.deleted) {
    // The common case reads only what the destination lacks (a relay pull, whose destination
    // got nearly everything from elsewhere, passes over most items).
    const lacking = ctx.store.getItemsLacking(row.guid, propertyUsn, utd);
    return entryChangeOf(row, lacking, lacking);
  }
  const stored = ctx.store.getItems(row.guid);
  const uncovered = stored.filter((item) => item.localUsn > propertyUsn && !utdCovers(utd, item.stamp));
  if (excluded.size === 0) return entryChangeOf(row, stored, uncovered);
  // The origin filter leaves out what the destination gets along another path.
  const passing = uncovered.filter((item) => !excluded.has(item.stamp.invocation));
  if (passing.length === 0) return undefined;
  // A change that passes it, for an entry whose creation the destination may not have heard
  // of, brings everything the destination lacks — the name above all, whoever wrote it last,
  // even if an earlier filtered cycle skipped it — so that the change is never applied to (or
  // dropped for) an entry the destination cannot place.
  if (!utdCovers(utd, row.origin)) {
    return entryChangeOf(
      row,
      stored,
      stored.filter((item) => !utdCovers(utd, item.stamp)),
    );
  }
  return entryChangeOf(row, stored, passing);
}

function entryChangeOf(
  row: EntryRow,
  stored: readonly ItemRow[],
  changed: readonly ItemRow[],
): EntryChange | undefined {
  if (changed.length === 0) return undefined;
  // A tombstone (name and deletion only) travels whole: a destination that purged it must be
  // able to record it again, rather than drop a change it cannot place — and then claim,
  // through the source's UTD, a deletion stamp it never stored.
  const items = (row.deleted ? stored : changed).map(toItem);
  return { guid: row.guid, partition: row.partition, origin: row.origin, items };
}

function toItem(row: ItemRow): Item {
  return { attribute: row.attribute, key: row.key, value: row.value, stamp: row.stamp };
}

function estimateBytes(change: EntryChange): number {
  let bytes = entryOverheadBytes;
  for (const item of change.items) {
    bytes += itemOverheadBytes + item.attribute.length + item.key.length;
    const value = item.value;
    if (value.kind === "values") for (const text of value.values) bytes += text.length + 3;
    else if (value.kind === "link") bytes += value.value.length;
    else if (value.kind === "name") bytes += value.rdn.length + 40;
  }
  return bytes;
}
