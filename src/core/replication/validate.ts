import { isAttributeType, normalizeDn, parseDn, parseRdn } from "../directory/dn.ts";
import { lostAndFoundGuid, lostAndFoundRdn, partitionRootGuid } from "../directory/partition.ts";
import {
  entryBytesMax,
  isLinkAttribute,
  type Schema,
  utf8Length,
  valueBytesMax,
  valuesPerAttributeMax,
} from "../directory/schema.ts";
import { normalizeValue } from "../directory/values.ts";
import {
  type Guid,
  type InvocationId,
  isGuid,
  isInvocationId,
  isMillis,
  isNodeId,
  isUsn,
  type Usn,
} from "../ids.ts";
import { fail, ok, type Result } from "../result.ts";
import { deletedItem, type Item, type ItemValue, nameItem } from "./items.ts";
import {
  type ChangePage,
  type ChangeRequest,
  type EntryChange,
  type PageLimits,
  pageBytesMaxLimit,
  pageEntriesMaxLimit,
  sortedInvocations,
  type Watermark,
} from "./page.ts";
import { type Stamp, stampVersionMax } from "./stamp.ts";
import type { UtdVector } from "./utd.ts";

/**
 * Replication messages arrive from the network: every field is checked before anything is
 * applied, so a malformed or hostile page is refused whole with `invalid-page` and changes
 * nothing. Validation returns a fresh, fully typed copy; the input is not trusted afterwards.
 */
export const pageItemsMax = 1_000_000;
export const utdEntriesMax = 100_000;

type Check<T> = Result<T>;

/**
 * Where in a message a problem is. An item's place (`entries[3].items[7]`) is only spelled out
 * when something is wrong with it: a page carries thousands of items, and building every
 * path up front cost more than checking the item.
 */
type Where = string | (() => string);

function bad(where: Where, problem: string): Check<never> {
  return fail("invalid-page", `${typeof where === "string" ? where : where()}: ${problem}`);
}

/**
 * Partition DNs already found normalised and non-empty: a page names the same few partitions
 * on every entry, and parsing the DN each time was a tenth of checking an entry. A pure
 * function's memo, bounded and emptied when full.
 */
const normalisedPartitions = new Set<string>();
const normalisedPartitionsMax = 1024;

function isNormalisedPartition(partition: string): boolean {
  if (normalisedPartitions.has(partition)) return true;
  const dn = parseDn(partition);
  if (!dn.ok || dn.value.rdns.length === 0 || normalizeDn(dn.value) !== partition) return false;
  if (normalisedPartitions.size >= normalisedPartitionsMax) normalisedPartitions.clear();
  normalisedPartitions.add(partition);
  return true;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function validateUtd(value: unknown, where: string): Check<UtdVector> {
  if (!isRecord(value)) return bad(where, "UTD must be an object");
  const keys = Object.keys(value);
  if (keys.length > utdEntriesMax) return bad(where, `UTD has more than ${utdEntriesMax} entries`);
  const out: Record<string, Usn> = {};
  for (const key of keys.sort()) {
    const usn = value[key];
    if (!isInvocationId(key) || !isUsn(usn)) return bad(where, `bad UTD entry ${key}`);
    out[key] = usn;
  }
  return ok(out);
}

export function validateWatermark(value: unknown, where: string): Check<Watermark> {
  if (!isRecord(value)) return bad(where, "watermark must be an object");
  const { invocation, objectUsn, propertyUsn } = value;
  if (invocation !== null && !isInvocationId(invocation)) return bad(where, "bad watermark invocation");
  if (!isUsn(objectUsn) || !isUsn(propertyUsn)) return bad(where, "bad watermark USNs");
  if (propertyUsn > objectUsn) return bad(where, "propertyUsn is above objectUsn");
  const base = { invocation, objectUsn, propertyUsn };
  if (value.excluded === undefined) return ok(base);
  const excluded = validateExcluded(value.excluded, where);
  if (!excluded.ok) return excluded;
  return ok(excluded.value.length === 0 ? base : { ...base, excluded: excluded.value });
}

/** An origin filter: a sorted list of distinct invocation ids, bounded like a UTD. */
function validateExcluded(value: unknown, where: string): Check<readonly InvocationId[]> {
  if (!Array.isArray(value)) return bad(where, "excluded must be a list of invocation ids");
  if (value.length > utdEntriesMax) return bad(where, `excluded has more than ${utdEntriesMax} entries`);
  if (!value.every(isInvocationId))
    return bad(where, "excluded holds something that is not an invocation id");
  return ok(sortedInvocations(value));
}

function validateLimits(value: unknown): Check<PageLimits> {
  if (!isRecord(value)) return bad("limits", "must be an object");
  const { entriesMax, bytesMax } = value;
  if (
    !Number.isSafeInteger(entriesMax) ||
    (entriesMax as number) < 1 ||
    (entriesMax as number) > pageEntriesMaxLimit
  ) {
    return bad("limits", `entriesMax must be 1..${pageEntriesMaxLimit}`);
  }
  if (
    !Number.isSafeInteger(bytesMax) ||
    (bytesMax as number) < 1 ||
    (bytesMax as number) > pageBytesMaxLimit
  ) {
    return bad("limits", `bytesMax must be 1..${pageBytesMaxLimit}`);
  }
  return ok({ entriesMax: entriesMax as number, bytesMax: bytesMax as number });
}

export function validateChangeRequest(value: unknown): Check<ChangeRequest> {
  if (!isRecord(value)) return bad("request", "must be an object");
  if (!isNodeId(value.destination)) return bad("request", "bad destination node id");
  if (!isInvocationId(value.destinationInvocation)) return bad("request", "bad destination invocation id");
  const from = validateWatermark(value.from, "request.from");
  if (!from.ok) return from;
  const utd = validateUtd(value.utd, "request.utd");
  if (!utd.ok) return utd;
  const purgeHorizon = validateUtd(value.purgeHorizon, "request.purgeHorizon");
  if (!purgeHorizon.ok) return purgeHorizon;
  const limits = validateLimits(value.limits);
  if (!limits.ok) return limits;
  return ok({
    destination: value.destination,
    destinationInvocation: value.destinationInvocation,
    from: from.value,
    utd: utd.value,
    purgeHorizon: purgeHorizon.value,
    limits: limits.value,
  });
}

export function validatePage(value: unknown, schema: Schema): Check<ChangePage> {
  if (!isRecord(value)) return bad("page", "must be an object");
  const { source, sourceInvocation, destinationInvocation, highUsn, more, entries } = value;
  if (!isNodeId(source)) return bad("page", "bad source node id");
  if (!isInvocationId(sourceInvocation)) return bad("page", "bad source invocation id");
  if (!isInvocationId(destinationInvocation)) return bad("page", "bad destination invocation id");
  if (!isUsn(highUsn)) return bad("page", "bad highUsn");
  if (typeof more !== "boolean") return bad("page", "more must be a boolean");
  const from = validateWatermark(value.from, "page.from");
  if (!from.ok) return from;
  if (highUsn < from.value.objectUsn) return bad("page", "highUsn is below from.objectUsn");
  // A source with more holds at least one entry past from.objectUsn and says how far it got: a
  // page that claims more without moving would have the destination ask the same again at once.
  if (more && highUsn === from.value.objectUsn)
    return bad("page", "more without highUsn above from.objectUsn");
  const utd = validateUtd(value.utd, "page.utd");
  if (!utd.ok) return utd;
  const purgeHorizon = validateUtd(value.purgeHorizon, "page.purgeHorizon");
  if (!purgeHorizon.ok) return purgeHorizon;
  if (!Array.isArray(entries) || entries.length > pageEntriesMaxLimit) {
    return bad("page", `entries must be a list of at most ${pageEntriesMaxLimit}`);
  }
  const checked: EntryChange[] = [];
  const seen = new Set<Guid>();
  let items = 0;
  for (const [index, entry] of entries.entries()) {
    const change = validateEntryChange(entry, schema, `entries[${index}]`);
    if (!change.ok) return change;
    if (seen.has(change.value.guid)) return bad(`entries[${index}]`, "guid appears twice in one page");
    seen.add(change.value.guid);
    items += change.value.items.length;
    if (items > pageItemsMax) return bad("page", `more than ${pageItemsMax} items`);
    checked.push(change.value);
  }
  return ok({
    source,
    sourceInvocation,
    destinationInvocation,
    from: from.value,
    highUsn,
    more,
    utd: utd.value,
    purgeHorizon: purgeHorizon.value,
    entries: checked,
  });
}

export function validateEntryChange(value: unknown, schema: Schema, where: string): Check<EntryChange> {
  if (!isRecord(value)) return bad(where, "must be an object");
  const { guid, partition, origin, items } = value;
  if (!isGuid(guid)) return bad(where, "bad guid");
  if (typeof partition !== "string") return bad(where, "bad partition");
  if (!isNormalisedPartition(partition)) return bad(where, "partition must be a normalised, non-empty DN");
  if (!isRecord(origin) || !isInvocationId(origin.invocation) || !isUsn(origin.usn))
    return bad(where, "bad origin");
  if (!Array.isArray(items) || items.length === 0) return bad(where, "items must be a non-empty list");
  const checked: Item[] = [];
  const seen = new Set<string>();
  for (const [index, item] of items.entries()) {
    const one = validateItem(item, schema, () => `${where}.items[${index}]`);
    if (!one.ok) return one;
    const identity = `${one.value.attribute}\u0000${one.value.key}`;
    if (seen.has(identity)) return bad(where, `item ${one.value.attribute} appears twice`);
    seen.add(identity);
    checked.push(one.value);
  }
  const rooted = checkRoot(guid, partition, checked, where);
  if (!rooted.ok) return rooted;
  return ok({ guid, partition, origin: { invocation: origin.invocation, usn: origin.usn }, items: checked });
}

/** A reference's answer to a lingering-object check (see core/replica/tombstones.ts). */
export function validateLingeringAnswer(
  value: unknown,
  schema: Schema,
): Check<{ absent: Guid[]; tombstones: EntryChange[]; utd: UtdVector; settles: UtdVector }> {
  if (!isRecord(value)) return bad("lingering answer", "must be an object");
  const { absent, tombstones } = value;
  if (!Array.isArray(absent) || absent.length > pageEntriesMaxLimit || !absent.every(isGuid)) {
    return bad("lingering answer", "absent must be a list of GUIDs");
  }
  if (!Array.isArray(tombstones) || tombstones.length > pageEntriesMaxLimit) {
    return bad("lingering answer", "tombstones must be a list");
  }
  const checked: EntryChange[] = [];
  for (const [index, tombstone] of tombstones.entries()) {
    const change = validateEntryChange(tombstone, schema, `tombstones[${index}]`);
    if (!change.ok) return change;
    if (!change.value.items.some((item) => item.value.kind === "deleted")) {
      return bad(`tombstones[${index}]`, "a tombstone carries its deletion item");
    }
    checked.push(change.value);
  }
  const utd = validateUtd(value.utd, "lingering answer");
  if (!utd.ok) return utd;
  const settles = validateUtd(value.settles, "lingering answer");
  if (!settles.ok) return settles;
  return ok({ absent, tombstones: checked, utd: utd.value, settles: settles.value });
}

/**
 * Only a partition's derived root GUID may have no parent, and it must carry the partition's DN.
 * A partition's root and its LostAndFound are never deleted, renamed or moved (no write can do
 * it: originating.ts refuses with system-entry), so a page that does is refused: one deletion
 * of a root took the whole partition away on every replica, for good.
 */
function checkRoot(guid: Guid, partition: string, items: readonly Item[], where: string): Check<void> {
  const root = partitionRootGuid(partition);
  const isRoot = guid === root;
  const isLostAndFound = guid === lostAndFoundGuid(partition);
  for (const item of items) {
    if (item.value.kind === "deleted" && (isRoot || isLostAndFound))
      return bad(where, "a partition root or its LostAndFound is never deleted");
    if (item.value.kind !== "name") continue;
    if ((item.value.parent === null) !== isRoot) return bad(where, "only a partition root has no parent");
    if (isRoot) {
      const dn = parseDn(item.value.rdn);
      if (!dn.ok || normalizeDn(dn.value) !== partition)
        return bad(where, "a root must be named by its partition DN");
    }
    if (isLostAndFound && (item.value.rdn !== lostAndFoundRdn || item.value.parent !== root))
      return bad(where, `a LostAndFound is always ${lostAndFoundRdn} under its partition root`);
  }
  return ok(undefined);
}

function validateStamp(value: unknown, where: Where): Check<Stamp> {
  if (!isRecord(value)) return bad(where, "stamp must be an object");
  const { version, time, invocation, usn } = value;
  if (!Number.isSafeInteger(version) || (version as number) < 1 || (version as number) > stampVersionMax) {
    return bad(where, `stamp version must be 1..${stampVersionMax}`);
  }
  if (!isMillis(time)) return bad(where, "bad stamp time");
  if (!isInvocationId(invocation)) return bad(where, "bad stamp invocation");
  if (!isUsn(usn) || usn === 0) return bad(where, "bad stamp usn");
  return ok({ version: version as number, time, invocation, usn });
}

function validateItem(value: unknown, schema: Schema, where: Where): Check<Item> {
  if (!isRecord(value)) return bad(where, "must be an object");
  const { attribute, key } = value;
  if (typeof attribute !== "string" || typeof key !== "string") return bad(where, "bad attribute or key");
  const stamp = validateStamp(value.stamp, where);
  if (!stamp.ok) return stamp;
  const itemValue = validateItemValue(value.value, attribute, key, schema, where);
  if (!itemValue.ok) return itemValue;
  return ok({ attribute, key, value: itemValue.value, stamp: stamp.value });
}

function validateItemValue(
  value: unknown,
  attribute: string,
  key: string,
  schema: Schema,
  where: Where,
): Check<ItemValue> {
  if (!isRecord(value)) return bad(where, "value must be an object");
  if (attribute === nameItem) return validateName(value, key, where);
  if (attribute === deletedItem) {
    return value.kind === "deleted" && key === "" ? ok({ kind: "deleted" }) : bad(where, "bad deletion item");
  }
  if (!isAttributeType(attribute) || attribute !== attribute.toLowerCase())
    return bad(where, "bad attribute type");
  const { type } = value;
  if (typeof type !== "string" || type.toLowerCase() !== attribute)
    return bad(where, "type does not match attribute");
  if (isLinkAttribute(schema, attribute)) return validateLink(value, type, key, where);
  if (value.kind !== "values" || key !== "") return bad(where, `${attribute} must be a values item`);
  const { values } = value;
  if (!Array.isArray(values) || values.length > valuesPerAttributeMax) return bad(where, "bad values list");
  let bytes = 0;
  for (const text of values) {
    if (typeof text !== "string") return bad(where, "a value is not a string");
    const size = utf8Length(text);
    if (size > valueBytesMax) return bad(where, "a value exceeds valueBytesMax");
    bytes += size;
  }
  // What no client write could have made: the same value twice, or an oversized attribute.
  // (One value cannot repeat; most attributes hold one, and normalising it is not free.)
  if (values.length > 1 && new Set(values.map(normalizeValue)).size !== values.length)
    return bad(where, "a values item lists one value twice");
  if (bytes > entryBytesMax) return bad(where, "a values item exceeds entryBytesMax");
  return ok({ kind: "values", type, values: [...values] });
}

function validateName(value: Record<string, unknown>, key: string, where: Where): Check<ItemValue> {
  const { kind, rdn, parent } = value;
  if (kind !== "name" || key !== "" || typeof rdn !== "string") return bad(where, "bad name item");
  if (parent !== null && !isGuid(parent)) return bad(where, "bad name parent");
  // A partition root's "RDN" is its whole DN.
  const parsed = parent === null ? parseDn(rdn) : parseRdn(rdn);
  if (!parsed.ok) return bad(where, `bad RDN: ${parsed.error.message}`);
  return ok({ kind: "name", rdn, parent });
}

function validateLink(
  value: Record<string, unknown>,
  type: string,
  key: string,
  where: Where,
): Check<ItemValue> {
  const { kind, present } = value;
  const text = value.value;
  if (kind !== "link" || typeof present !== "boolean" || typeof text !== "string")
    return bad(where, "bad link item");
  if (utf8Length(text) > valueBytesMax) return bad(where, "link value too large");
  const dn = parseDn(text);
  const expected = dn.ok ? normalizeDn(dn.value) : normalizeValue(text);
  if (!dn.ok || key !== expected) return bad(where, "link key is not the value's normalised DN");
  return ok({ kind: "link", type, value: text, present });
}
