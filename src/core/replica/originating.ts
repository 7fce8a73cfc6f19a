import { assert, unreachable } from "../assert.ts";
import {
  type Ava,
  type Dn,
  dnDepthMax,
  dnLengthMax,
  dnParent,
  formatDn,
  formatRdn,
  normalizeDn,
  normalizeRdn,
  parseDn,
  parseRdn,
  type Rdn,
} from "../directory/dn.ts";
import {
  isSystemGuid,
  lostAndFoundGuid,
  lostAndFoundRdn,
  partitionRootGuid,
} from "../directory/partition.ts";
import {
  attributesPerEntryMax,
  entryBytesMax,
  isLinkAttribute,
  modificationsPerRequestMax,
  subtreeDeleteEntriesMax,
  utf8Length,
} from "../directory/schema.ts";
import type { Guid, Usn } from "../ids.ts";
import { deletedItem, nameItem } from "../replication/items.ts";
import { fail, ok, type Result } from "../result.ts";
import type { EntryRow } from "../store.ts";
import {
  applyModification,
  attributeBytes,
  attributeChanged,
  attributeTypeOf,
  checkClientChange,
  keyedValues,
  loadAttribute,
  type Modification,
  refuseEmptyValue,
  refuseOperational,
  valueKey,
  type WorkingAttribute,
} from "./attributes.ts";
import type { ReplicaContext } from "./context.ts";
import { effectiveRdn, entryDn, findPartition, resolveDn, resolveParsedDn } from "./lookup.ts";
import { type NamingChange, refreshNaming } from "./naming.ts";
import { evictSquatter, squats } from "./squatters.ts";

/** A client's write. Each one is one originating write: new stamps, one USN per entry touched. */
export type WriteRequest =
  | {
      readonly op: "add";
      readonly dn: string;
      readonly attributes: Readonly<Record<string, readonly string[]>>;
    }
  | { readonly op: "modify"; readonly dn: string; readonly changes: readonly Modification[] }
  | { readonly op: "delete"; readonly dn: string; readonly subtree?: boolean }
  | {
      readonly op: "modifyDn";
      readonly dn: string;
      readonly newRdn: string;
      /** Remove the old RDN's values from the entry (default true). */
      readonly deleteOldRdn?: boolean;
      /** Move under this entry; default: stay under the current parent. */
      readonly newParent?: string;
    };

export interface WriteOutcome {
  readonly guid: Guid;
  /** The entry's DN after the write (its last DN for a delete). */
  readonly dn: string;
  /** The USN of the write; for a subtree delete, the last one; unchanged when nothing changed. */
  readonly usn: Usn;
  /** Entries written: 0 when the write changed nothing, more than 1 for a subtree delete. */
  readonly entries: number;
  /** The partition (normalised DN) the entry is in. */
  readonly partition: string;
}

/**
 * Every function below checks everything first and writes afterwards: once it has taken a USN
 * it cannot fail, so a failed request leaves the store untouched even inside a batch.
 */
export function originate(ctx: ReplicaContext, request: WriteRequest): Result<WriteOutcome> {
  switch (request.op) {
    case "add":
      return addEntry(ctx, request.dn, request.attributes);
    case "modify":
      return modifyEntry(ctx, request.dn, request.changes);
    case "delete":
      return deleteEntry(ctx, request.dn, request.subtree === true);
    case "modifyDn":
      return modifyDn(ctx, request);
    default:
      return unreachable(request, "write request");
  }
}

// ---------------------------------------------------------------------------------------------
// add

interface NewEntry {
  readonly guid: Guid;
  /** Drawn from the random source just now (not derived from a partition name). */
  readonly fresh: boolean;
  readonly partition: string;
  readonly rdn: string;
  readonly parent: Guid | null;
  readonly attributes: readonly WorkingAttribute[];
}

function addEntry(ctx: ReplicaContext, dnText: string, attributes: unknown): Result<WriteOutcome> {
  const dn = parseDn(dnText);
  if (!dn.ok) return dn;
  const rdn = dn.value.rdns[0];
  if (rdn === undefined) return fail("invalid-dn", "the empty DN names no entry");
  const parentDn = dnParent(dn.value);
  const parent = resolveParsedDn(ctx.store, parentDn);
  if (!parent.ok) {
    // A partition root has no parent entry, yet it exists.
    if (resolveParsedDn(ctx.store, dn.value).ok)
      return fail("entry-exists", `${formatDn(dn.value)} already exists`);
    // A one-RDN DN that is no partition: its "parent" is the root, which holds no entries.
    const why =
      parentDn.rdns.length === 0
        ? `${formatDn(dn.value)} has no parent entry: a DN must be under a partition such as dc=example,dc=com`
        : `the parent ${formatDn(parentDn)} does not exist`;
    return fail("no-such-parent", why, parentMatched(parent.error.matchedDn));
  }
  if (ctx.store.findByName(parent.value.guid, normalizeRdn(rdn)).length > 0) {
    return fail("entry-exists", `${formatDn(dn.value)} already exists`);
  }
  const working = attributesForAdd(ctx, attributes, rdn);
  if (!working.ok) return working;
  const guid = unusedGuid(ctx);
  const usn = createEntry(ctx, {
    guid,
    fresh: true,
    partition: parent.value.partition,
    rdn: formatRdn(rdn),
    parent: parent.value.guid,
    attributes: working.value,
  });
  return ok({ guid, dn: formatDn(dn.value), usn, entries: 1, partition: parent.value.partition });
}

/**
 * A new GUID that names no entry or tombstone here. A clash of 80 random bits within one
 * millisecond is out of reach, but writing over another entry is not a price to risk: the check
 * costs no extra read (the store remembers the GUID it just found absent when the entry is
 * written), and a clash draws again.
 */
function unusedGuid(ctx: ReplicaContext): Guid {
  let guid = ctx.newGuid();
  for (let draws = 1; ctx.store.getEntry(guid) !== undefined; draws++) {
    assert(draws < guidDrawsMax, `${guidDrawsMax} new GUIDs all named existing entries`);
    guid = ctx.newGuid();
  }
  return guid;
}

/** Draws of a new GUID before giving up: more than one clash means a broken random source. */
const guidDrawsMax = 4;

function parentMatched(matchedDn: string | undefined): { matchedDn?: string } {
  return matchedDn === undefined ? {} : { matchedDn };
}

/** Validates an add request's attributes and adds the RDN's values where they are missing. */
function attributesForAdd(ctx: ReplicaContext, input: unknown, rdn: Rdn): Result<WorkingAttribute[]> {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return fail("invalid-request", "attributes must be an object of attribute type to list of values");
  }
  const entries = Object.entries(input);
  if (entries.length > attributesPerEntryMax) {
    return fail("limit-exceeded", `an entry has at most ${attributesPerEntryMax} attributes`);
  }
  const byType = new Map<string, WorkingAttribute>();
  for (const [rawType, rawValues] of entries) {
    const type = attributeTypeOf(rawType);
    if (!type.ok) return type;
    if (byType.has(type.value.typeNorm)) return fail("invalid-attribute", `${rawType} is given twice`);
    const operational = refuseOperational(rawType);
    if (!operational.ok) return operational;
    const values = keyedValues(ctx.schema, rawType, rawValues);
    if (!values.ok) return values;
    if (values.value.length === 0) return fail("invalid-value", `${rawType} needs at least one value`);
    const empty = refuseEmptyValue(rawType, values.value);
    if (!empty.ok) return empty;
    byType.set(type.value.typeNorm, newAttribute(ctx, rawType, values.value));
  }
  const objectClass = byType.get("objectclass");
  if (objectClass === undefined) return fail("object-class-violation", "an entry needs an objectClass");
  const naming = addNamingValues(ctx, byType, rdn);
  if (!naming.ok) return naming;
  if (byType.size > attributesPerEntryMax) {
    return fail("limit-exceeded", `an entry has at most ${attributesPerEntryMax} attributes`);
  }
  const attributes = [...byType.values()];
  if (attributes.reduce((sum, attribute) => sum + attributeBytes(attribute.current), 0) > entryBytesMax) {
    return fail("limit-exceeded", `an entry holds at most ${entryBytesMax} bytes of values`);
  }
  return ok(attributes);
}

function newAttribute(
  ctx: ReplicaContext,
  type: string,
  values: WorkingAttribute["current"],
): WorkingAttribute {
  const typeNorm = type.toLowerCase();
  return {
    type,
    typeNorm,
    link: isLinkAttribute(ctx.schema, typeNorm),
    items: [],
    original: [],
    current: [...values],
  };
}

/** Whether an RDN's AVA may name an entry that a client writes (its value goes into the entry). */
function checkNamingAva(ctx: ReplicaContext, ava: Ava): Result<void> {
  if (isLinkAttribute(ctx.schema, ava.typeNorm)) {
    return fail("invalid-dn", `the link-valued attribute ${ava.type} cannot name an entry`);
  }
  const operational = refuseOperational(ava.type);
  if (!operational.ok) return operational;
  return refuseEmptyValue(ava.type, [ava]);
}

/** LDAP keeps the RDN's values in the entry: add each one that is missing. */
function addNamingValues(ctx: ReplicaContext, byType: Map<string, WorkingAttribute>, rdn: Rdn): Result<void> {
  for (const ava of rdn.avas) {
    const naming = checkNamingAva(ctx, ava);
    if (!naming.ok) return naming;
    const key = valueKey(ctx.schema, ava.typeNorm, ava.value);
    if (!key.ok) return key;
    const attribute = byType.get(ava.typeNorm) ?? newAttribute(ctx, ava.type, []);
    if (!attribute.current.some((value) => value.key === key.value)) {
      attribute.current.push({ value: ava.value, key: key.value });
    }
    byType.set(ava.typeNorm, attribute);
  }
  return ok(undefined);
}

/** Writes a new live entry with version-1 stamps. Cannot fail: callers have checked everything. */
function createEntry(ctx: ReplicaContext, entry: NewEntry): Usn {
  const usn = ctx.nextUsn();
  const stamp = ctx.originatingStamp(undefined, usn);
  const parsedRdn = parseRdn(entry.rdn);
  assert(parsedRdn.ok || entry.parent === null, "createEntry with an invalid RDN");
  const rdnNorm =
    entry.parent === null ? rdnNormOfRoot(entry.rdn) : parsedRdn.ok ? normalizeRdn(parsedRdn.value) : "";
  ctx.store.putEntry({
    guid: entry.guid,
    partition: entry.partition,
    origin: { invocation: ctx.meta.invocation, usn },
    rdn: entry.rdn,
    rdnNorm,
    parent: entry.parent,
    deleted: false,
    tombstoneSince: null,
    parentEff: entry.parent,
    placement: "normal",
    conflict: false,
    usnCreated: usn,
    usnChanged: usn,
  });
  ctx.store.putItem({
    guid: entry.guid,
    attribute: nameItem,
    key: "",
    value: { kind: "name", rdn: entry.rdn, parent: entry.parent },
    stamp,
    localUsn: usn,
  });
  for (const attribute of entry.attributes) writeAttribute(ctx, entry.guid, attribute, usn);
  // A fresh GUID names a new leaf that addEntry placed itself: under a live parent, where no
  // live entry holds its name, with no claimants waiting for it and in no cycle. So the derived
  // columns written above are already what a refresh would derive, and no name that resolved
  // before resolves differently now: the DN caches stay valid. A derived GUID (a partition's
  // root or LostAndFound) may have claimants already, and gets the full refresh.
  if (!entry.fresh) {
    refreshNaming(ctx.store, [{ guid: entry.guid, previousGroup: null, existenceChanged: true }]);
  }
  return usn;
}

function rdnNormOfRoot(dnText: string): string {
  const dn = parseDn(dnText);
  assert(dn.ok, "partition DN does not parse");
  return normalizeDn(dn.value);
}

/** Writes the difference between an attribute's original and current values, stamped `usn`. */
function writeAttribute(ctx: ReplicaContext, guid: Guid, attribute: WorkingAttribute, usn: Usn): void {
  if (!attribute.link) {
    if (!attributeChanged(attribute)) return;
    const previous = attribute.items[0];
    const row = {
      guid,
      attribute: attribute.typeNorm,
      key: "",
      value: {
        kind: "values" as const,
        type: attribute.type,
        values: attribute.current.map((value) => value.value),
      },
      stamp: ctx.originatingStamp(previous?.stamp, usn),
      localUsn: usn,
    };
    if (previous === undefined) ctx.store.putItem(row);
    else ctx.store.replaceItem(row);
    return;
  }
  const wanted = new Map(attribute.current.map((value) => [value.key, value.value]));
  const stored = new Map(attribute.items.map((item) => [item.key, item]));
  for (const key of new Set([...wanted.keys(), ...stored.keys()])) {
    const item = stored.get(key);
    const wasPresent = item?.value.kind === "link" && item.value.present;
    const value = wanted.get(key);
    if ((value !== undefined) === wasPresent) continue;
    const shown = value ?? (item?.value.kind === "link" ? item.value.value : key);
    const row = {
      guid,
      attribute: attribute.typeNorm,
      key,
      value: { kind: "link" as const, type: attribute.type, value: shown, present: value !== undefined },
      stamp: ctx.originatingStamp(item?.stamp, usn),
      localUsn: usn,
    };
    if (item === undefined) ctx.store.putItem(row);
    else ctx.store.replaceItem(row);
  }
}

// ---------------------------------------------------------------------------------------------
// modify

function modifyEntry(
  ctx: ReplicaContext,
  dnText: string,
  changes: readonly Modification[],
): Result<WriteOutcome> {
  const parsed = parseDn(dnText);
  if (!parsed.ok) return parsed;
  const row = resolveParsedDn(ctx.store, parsed.value);
  if (!row.ok) return row;
  if (!Array.isArray(changes) || changes.length === 0)
    return fail("invalid-request", "a modify needs changes");
  if (changes.length > modificationsPerRequestMax) {
    return fail("limit-exceeded", `a modify holds at most ${modificationsPerRequestMax} changes`);
  }
  const plan = planModifications(ctx, row.value, changes, row.value.rdn);
  if (!plan.ok) return plan;
  // The DN the client named the entry by (it resolved to this entry, so it is its DN).
  const dn = formatDn(parsed.value);
  if (!plan.value.some(attributeChanged)) {
    return ok({
      guid: row.value.guid,
      dn,
      usn: row.value.usnChanged,
      entries: 0,
      partition: row.value.partition,
    });
  }
  const usn = ctx.nextUsn();
  for (const attribute of plan.value) writeAttribute(ctx, row.value.guid, attribute, usn);
  ctx.store.setUsnChanged(row.value.guid, usn);
  return ok({ guid: row.value.guid, dn, usn, entries: 1, partition: row.value.partition });
}

/** Applies modifications to working copies and checks the entry they would leave. */
function planModifications(
  ctx: ReplicaContext,
  row: EntryRow,
  changes: readonly Modification[],
  rdnAfter: string,
): Result<WorkingAttribute[]> {
  const working = new Map<string, WorkingAttribute>();
  for (const change of changes) {
    const planned = planOne(ctx, row, working, change);
    if (!planned.ok) return planned;
  }
  const checked = checkEntryAfter(ctx, row, working, rdnAfter);
  if (!checked.ok) return checked;
  return ok([...working.values()]);
}

function planOne(
  ctx: ReplicaContext,
  row: EntryRow,
  working: Map<string, WorkingAttribute>,
  change: Modification,
): Result<void> {
  if (typeof change !== "object" || change === null)
    return fail("invalid-request", "a change must be an object");
  if (!["add", "delete", "replace"].includes(change.operation)) {
    return fail("invalid-request", `unknown modify operation '${String(change.operation)}'`);
  }
  const type = attributeTypeOf(change.attribute);
  if (!type.ok) return type;
  const values = keyedValues(ctx.schema, type.value.type, change.values ?? []);
  if (!values.ok) return values;
  const attribute =
    working.get(type.value.typeNorm) ?? loadAttribute(ctx.store, ctx.schema, row.guid, type.value.type);
  const allowed = checkClientChange(type.value.type, attribute, change.operation, values.value);
  if (!allowed.ok) return allowed;
  working.set(type.value.typeNorm, attribute);
  return applyModification(attribute, change.operation, values.value);
}

function checkEntryAfter(
  ctx: ReplicaContext,
  row: EntryRow,
  working: Map<string, WorkingAttribute>,
  rdnAfter: string,
): Result<void> {
  const objectClass = working.get("objectclass");
  if (objectClass !== undefined && objectClass.current.length === 0) {
    return fail("object-class-violation", "an entry cannot lose all its objectClass values");
  }
  // The naming values can only be touched by a working attribute of a type the RDN names.
  const touchesRdn =
    rdnAfter !== row.rdn || [...working.keys()].some((type) => row.rdnNorm.includes(`${type}=`));
  for (const ava of touchesRdn ? namingAvas(rdnAfter, row.parent === null) : []) {
    const attribute = working.get(ava.typeNorm);
    const key = valueKey(ctx.schema, ava.typeNorm, ava.value);
    if (attribute !== undefined && key.ok && !attribute.current.some((value) => value.key === key.value)) {
      return fail("not-allowed-on-rdn", `${ava.type}=${ava.value} names the entry and cannot be removed`);
    }
  }
  const attributes = [...working.values()];
  const added = attributes.some((a) => a.original.length === 0 && a.current.length > 0);
  const grew = attributes.some((a) => attributeBytes(a.current) > attributeBytes(a.original));
  if (!added && !grew) return ok(undefined);
  // Only a write that adds an attribute or grows one can break an entry-wide limit.
  const totals = entryTotals(ctx, row.guid, working);
  if (totals.attributes > attributesPerEntryMax) {
    return fail("limit-exceeded", `an entry has at most ${attributesPerEntryMax} attributes`);
  }
  if (totals.bytes > entryBytesMax)
    return fail("limit-exceeded", `an entry holds at most ${entryBytesMax} bytes of values`);
  return ok(undefined);
}

/** The AVAs that name an entry: its RDN's, or for a partition root the first RDN of its DN. */
function namingAvas(rdn: string, isRoot: boolean): readonly Ava[] {
  const parsed = isRoot ? parseDn(rdn) : parseRdn(rdn);
  assert(parsed.ok, "stored RDN does not parse");
  const first = "rdns" in parsed.value ? parsed.value.rdns[0] : parsed.value;
  return first?.avas ?? [];
}

function entrySizes(
  working: Map<string, WorkingAttribute>,
  stored: readonly { attribute: string; bytes: number }[],
): { attributes: number; bytes: number } {
  let attributes = 0;
  let bytes = 0;
  for (const size of stored) {
    if (working.has(size.attribute)) continue;
    attributes++;
    bytes += size.bytes;
  }
  for (const attribute of working.values()) {
    if (attribute.current.length === 0) continue;
    attributes++;
    bytes += attributeBytes(attribute.current);
  }
  return { attributes, bytes };
}

/** Attribute count and value bytes of an entry once the working attributes are written. */
function entryTotals(
  ctx: ReplicaContext,
  guid: Guid,
  working: Map<string, WorkingAttribute>,
): { attributes: number; bytes: number } {
  // The stored sizes bound the values from above: when the bound fits, so does the entry.
  const bounded = entrySizes(working, ctx.store.storedSizes(guid));
  if (bounded.attributes <= attributesPerEntryMax && bounded.bytes <= entryBytesMax) return bounded;
  const bytes = new Map<string, number>();
  for (const item of ctx.store.getItems(guid)) {
    if (working.has(item.attribute)) continue;
    const value = item.value;
    if (value.kind === "values" && value.values.length > 0) {
      bytes.set(
        item.attribute,
        value.values.reduce((sum, text) => sum + utf8Length(text), 0),
      );
    } else if (value.kind === "link" && value.present) {
      bytes.set(item.attribute, (bytes.get(item.attribute) ?? 0) + utf8Length(value.value));
    }
  }
  for (const attribute of working.values()) {
    if (attribute.current.length > 0) bytes.set(attribute.typeNorm, attributeBytes(attribute.current));
  }
  let total = 0;
  for (const size of bytes.values()) total += size;
  return { attributes: bytes.size, bytes: total };
}

// ---------------------------------------------------------------------------------------------
// delete

function deleteEntry(ctx: ReplicaContext, dnText: string, subtree: boolean): Result<WriteOutcome> {
  const row = resolveDn(ctx.store, dnText);
  if (!row.ok) return row;
  if (isSystemGuid(row.value.guid, row.value.partition)) {
    return fail("system-entry", "a partition root or its LostAndFound cannot be deleted");
  }
  const dn = entryDn(ctx.store, row.value);
  if (!subtree) {
    if (ctx.store.hasChildren(row.value.guid)) return fail("not-leaf", `${dn} has children`);
    const usn = tombstone(ctx, row.value);
    return ok({ guid: row.value.guid, dn, usn, entries: 1, partition: row.value.partition });
  }
  const doomed = collectSubtree(ctx, row.value);
  if (!doomed.ok) return doomed;
  let usn = row.value.usnChanged;
  // Children first, so that no entry is orphaned on its way out.
  for (const entry of doomed.value.reverse()) usn = tombstone(ctx, entry);
  return ok({ guid: row.value.guid, dn, usn, entries: doomed.value.length, partition: row.value.partition });
}

/** The subtree in breadth-first order, root first; bounded by subtreeDeleteEntriesMax. */
function collectSubtree(ctx: ReplicaContext, root: EntryRow): Result<EntryRow[]> {
  const out: EntryRow[] = [root];
  for (let index = 0; index < out.length; index++) {
    const parent = out[index] as EntryRow;
    for (const child of allChildren(ctx, parent.guid)) {
      if (out.length >= subtreeDeleteEntriesMax) {
        return fail("limit-exceeded", `a subtree delete removes at most ${subtreeDeleteEntriesMax} entries`);
      }
      out.push(child);
    }
  }
  return ok(out);
}

const childrenPageSize = 1000;

export function allChildren(ctx: ReplicaContext, parent: Guid): EntryRow[] {
  const out: EntryRow[] = [];
  let after: { rdnNorm: string; guid: Guid } | null = null;
  for (;;) {
    const page = ctx.store.listChildren(parent, after, childrenPageSize);
    out.push(...page);
    const last = page.at(-1);
    if (last === undefined || page.length < childrenPageSize) return out;
    after = { rdnNorm: last.rdnNorm, guid: last.guid };
  }
}

/** Makes a live entry a tombstone: keeps its GUID, name and parent, drops every attribute. */
function tombstone(ctx: ReplicaContext, row: EntryRow): Usn {
  const usn = ctx.nextUsn();
  const previous = ctx.store.getItem(row.guid, deletedItem, "");
  ctx.store.putItem({
    guid: row.guid,
    attribute: deletedItem,
    key: "",
    value: { kind: "deleted" },
    stamp: ctx.originatingStamp(previous?.stamp, usn),
    localUsn: usn,
  });
  ctx.store.removeItemsExcept(row.guid, [nameItem, deletedItem]);
  ctx.store.putEntry({ ...row, ...tombstoneFields(ctx), usnChanged: usn });
  refreshNaming(ctx.store, [{ guid: row.guid, previousGroup: groupOf(row), existenceChanged: true }]);
  return usn;
}

/** A tombstone is placed nowhere: its derived fields are reset so that replicas agree on them. */
export function tombstoneFields(
  ctx: ReplicaContext,
): Pick<EntryRow, "deleted" | "tombstoneSince" | "parentEff" | "placement" | "conflict"> {
  return { deleted: true, tombstoneSince: ctx.now(), parentEff: null, placement: "normal", conflict: false };
}

function groupOf(row: EntryRow): { parent: Guid; rdnNorm: string } | null {
  return row.parentEff === null || row.deleted ? null : { parent: row.parentEff, rdnNorm: row.rdnNorm };
}

// ---------------------------------------------------------------------------------------------
// modifyDn (rename and move)

function modifyDn(
  ctx: ReplicaContext,
  request: Extract<WriteRequest, { op: "modifyDn" }>,
): Result<WriteOutcome> {
  const row = resolveDn(ctx.store, request.dn);
  if (!row.ok) return row;
  if (isSystemGuid(row.value.guid, row.value.partition)) {
    return fail("system-entry", "a partition root or its LostAndFound cannot be renamed or moved");
  }
  const newRdn = parseRdn(request.newRdn);
  if (!newRdn.ok) return newRdn;
  const parent = targetParent(ctx, row.value, request.newParent);
  if (!parent.ok) return parent;
  const rdnNorm = normalizeRdn(newRdn.value);
  const taken = ctx.store
    .findByName(parent.value.guid, rdnNorm)
    .filter((other) => other.guid !== row.value.guid);
  if (taken.length > 0) return fail("entry-exists", `an entry named ${formatRdn(newRdn.value)} exists there`);
  const changes = namingChanges(ctx, row.value, newRdn.value, request.deleteOldRdn !== false);
  if (!changes.ok) return changes;
  const rdn = formatRdn(newRdn.value);
  const plan = planModifications(ctx, row.value, changes.value, rdn);
  if (!plan.ok) return plan;
  if (rdn === row.value.rdn && parent.value.guid === row.value.parent && !plan.value.some(attributeChanged)) {
    return ok({
      guid: row.value.guid,
      dn: entryDn(ctx.store, row.value),
      usn: row.value.usnChanged,
      entries: 0,
      partition: row.value.partition,
    });
  }
  const fits = subtreeFitsUnder(ctx, row.value, `${rdn},${entryDn(ctx.store, parent.value)}`);
  if (!fits.ok) return fits;

  const usn = ctx.nextUsn();
  const previousName = ctx.store.getItem(row.value.guid, nameItem, "");
  ctx.store.putItem({
    guid: row.value.guid,
    attribute: nameItem,
    key: "",
    value: { kind: "name", rdn, parent: parent.value.guid },
    stamp: ctx.originatingStamp(previousName?.stamp, usn),
    localUsn: usn,
  });
  for (const attribute of plan.value) writeAttribute(ctx, row.value.guid, attribute, usn);
  ctx.store.putEntry({ ...row.value, rdn, rdnNorm, parent: parent.value.guid, usnChanged: usn });
  refreshNaming(ctx.store, [
    { guid: row.value.guid, previousGroup: groupOf(row.value), existenceChanged: false },
  ]);
  const moved = ctx.store.getEntry(row.value.guid);
  assert(moved !== undefined, "renamed entry vanished");
  return ok({
    guid: row.value.guid,
    dn: entryDn(ctx.store, moved),
    usn,
    entries: 1,
    partition: moved.partition,
  });
}

function targetParent(ctx: ReplicaContext, row: EntryRow, newParent: string | undefined): Result<EntryRow> {
  if (newParent === undefined) {
    const current = row.parentEff === null ? undefined : ctx.store.getEntry(row.parentEff);
    if (current === undefined)
      return fail("no-such-parent", "the entry's parent has not replicated here yet");
    return ok(current);
  }
  const parentDn = parseDn(newParent);
  if (!parentDn.ok) return parentDn;
  const parent = resolveParsedDn(ctx.store, parentDn.value);
  if (!parent.ok) {
    return fail(
      "no-such-parent",
      `the new parent ${newParent} does not exist`,
      parentMatched(parent.error.matchedDn),
    );
  }
  if (parent.value.partition !== row.partition) {
    return fail("cross-partition-move", "an entry cannot move to another partition");
  }
  for (let current: EntryRow | undefined = parent.value; current !== undefined; ) {
    if (current.guid === row.guid) return fail("move-into-own-subtree", "an entry cannot move under itself");
    current = current.parentEff === null ? undefined : ctx.store.getEntry(current.parentEff);
  }
  return ok(parent.value);
}

/** Entries a move or rename examines to prove that every DN in the moved subtree stays valid. */
export const moveSubtreeCheckMax = 100_000;

/**
 * A rename or move must leave every DN in the subtree within dnDepthMax and dnLengthMax, or the
 * entries below would exist but could no longer be named. Only a DN that grows needs the walk.
 */
function subtreeFitsUnder(ctx: ReplicaContext, row: EntryRow, newDnText: string): Result<void> {
  const newDn = parseDn(newDnText);
  if (!newDn.ok) return newDn;
  const oldDnText = entryDn(ctx.store, row);
  const oldDn = parseDn(oldDnText);
  const oldDepth = oldDn.ok ? oldDn.value.rdns.length : 0;
  const newDepth = newDn.value.rdns.length;
  if (newDnText.length <= oldDnText.length && newDepth <= oldDepth) return ok(undefined);
  let frontier: Array<{ guid: Guid; length: number; depth: number }> = [
    { guid: row.guid, length: 0, depth: 0 },
  ];
  let examined = 0;
  while (frontier.length > 0) {
    const next: typeof frontier = [];
    for (const parent of frontier) {
      for (const child of allChildren(ctx, parent.guid)) {
        if (++examined > moveSubtreeCheckMax) {
          return fail(
            "limit-exceeded",
            `a rename or move that lengthens DNs examines at most ${moveSubtreeCheckMax} entries`,
          );
        }
        const length = parent.length + 1 + effectiveRdn(child).length;
        const depth = parent.depth + 1;
        if (newDnText.length + length > dnLengthMax || newDepth + depth > dnDepthMax) {
          return fail(
            "limit-exceeded",
            `the move would give ${entryDn(ctx.store, child)} a DN beyond the DN limits`,
          );
        }
        next.push({ guid: child.guid, length, depth });
      }
    }
    frontier = next;
  }
  return ok(undefined);
}

/** The value changes a rename implies: add the new RDN's values, drop the old ones if asked. */
function namingChanges(
  ctx: ReplicaContext,
  row: EntryRow,
  newRdn: Rdn,
  deleteOld: boolean,
): Result<Modification[]> {
  const changes: Modification[] = [];
  const newKeys = new Set<string>();
  for (const ava of newRdn.avas) {
    const naming = checkNamingAva(ctx, ava);
    if (!naming.ok) return naming;
    newKeys.add(`${ava.typeNorm}=${ava.valueNorm}`);
    const present = loadAttribute(ctx.store, ctx.schema, row.guid, ava.type).current;
    const same = present.find((value) => value.key === ava.valueNorm);
    if (same === undefined) {
      changes.push({ operation: "add", attribute: ava.type, values: [ava.value] });
    } else if (same.value !== ava.value) {
      // A rename that only changes case or spacing respells the naming value too.
      changes.push({ operation: "delete", attribute: ava.type, values: [same.value] });
      changes.push({ operation: "add", attribute: ava.type, values: [ava.value] });
    }
  }
  if (!deleteOld) return ok(changes);
  const oldRdn = parseRdn(row.rdn);
  assert(oldRdn.ok, "stored RDN does not parse");
  for (const ava of oldRdn.value.avas) {
    if (newKeys.has(`${ava.typeNorm}=${ava.valueNorm}`)) continue;
    const present = loadAttribute(ctx.store, ctx.schema, row.guid, ava.type).current;
    if (present.some((value) => value.key === ava.valueNorm)) {
      changes.push({ operation: "delete", attribute: ava.type, values: [ava.value] });
    }
  }
  return ok(changes);
}

// ---------------------------------------------------------------------------------------------
// partitions

/** Object classes given to a partition root, by the type of its first RDN. */
const rootObjectClasses: Readonly<Record<string, readonly string[]>> = {
  dc: ["top", "domain"],
  o: ["top", "organization"],
  ou: ["top", "organizationalUnit"],
};

/** Creates a partition: its root entry and its LostAndFound container. */
export function createPartition(
  ctx: ReplicaContext,
  dnText: string,
): Result<{ partition: string; usn: Usn }> {
  const dn = parseDn(dnText);
  if (!dn.ok) return dn;
  const first = dn.value.rdns[0]?.avas[0];
  if (first === undefined) return fail("invalid-dn", "a partition needs a non-empty DN");
  const partition = normalizeDn(dn.value);
  const enclosing = findPartition(ctx.store, dn.value);
  if (enclosing !== undefined) {
    const exists = enclosing.depth === dn.value.rdns.length;
    return exists
      ? fail("partition-exists", `the partition ${formatDn(dn.value)} exists`)
      : fail("invalid-request", `${formatDn(dn.value)} lies inside the partition ${enclosing.root.rdn}`);
  }
  const nested = ctx.store.listRoots().find((root) => partitionInside(root.partition, dn.value));
  if (nested !== undefined)
    return fail("invalid-request", `the partition ${nested.rdn} lies inside ${formatDn(dn.value)}`);
  const classes = rootObjectClasses[first.typeNorm] ?? ["top", "container"];
  const rootAttributes: WorkingAttribute[] = [
    newAttribute(
      ctx,
      "objectClass",
      classes.map((value) => ({ value, key: value.toLowerCase() })),
    ),
    newAttribute(ctx, first.type, [{ value: first.value, key: first.valueNorm }]),
  ];
  const root = partitionRootGuid(partition);
  evictSquatters(ctx, partition, [root, lostAndFoundGuid(partition)]);
  createEntry(ctx, {
    guid: root,
    fresh: false,
    partition,
    rdn: formatDn(dn.value),
    parent: null,
    attributes: rootAttributes,
  });
  const lostAndFound: WorkingAttribute[] = [
    newAttribute(
      ctx,
      "objectClass",
      ["top", "lostAndFound"].map((value) => ({ value, key: value.toLowerCase() })),
    ),
    newAttribute(ctx, "cn", [{ value: "LostAndFound", key: "lostandfound" }]),
  ];
  const usn = createEntry(ctx, {
    guid: lostAndFoundGuid(partition),
    fresh: false,
    partition,
    rdn: lostAndFoundRdn,
    parent: root,
    attributes: lostAndFound,
  });
  return ok({ partition, usn });
}

/**
 * Entries of other partitions that a page stored under this partition's derived GUIDs
 * (squatters.ts): creating the entries over them would keep their other items, which replicas
 * that hold the squatter already cover in their UTD and so would never receive.
 */
function evictSquatters(ctx: ReplicaContext, partition: string, guids: readonly Guid[]): void {
  const evicted: NamingChange[] = [];
  for (const guid of guids) {
    const row = ctx.store.getEntry(guid);
    if (row !== undefined && squats(row, guid, partition)) evicted.push(evictSquatter(ctx, row));
  }
  if (evicted.length > 0) refreshNaming(ctx.store, evicted);
}

function partitionInside(partition: string, dn: Dn): boolean {
  const parsed = parseDn(partition);
  if (!parsed.ok) return false;
  const depth = dn.rdns.length;
  if (parsed.value.rdns.length <= depth) return false;
  return normalizeDn({ rdns: parsed.value.rdns.slice(parsed.value.rdns.length - depth) }) === normalizeDn(dn);
}
