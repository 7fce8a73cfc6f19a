import { assert } from "../assert.ts";
import {
  type Dn,
  formatDn,
  formatRdn,
  makeRdn,
  normalizeDn,
  normalizeRdn,
  parseDn,
  parseRdn,
  type Rdn,
} from "../directory/dn.ts";
import { partitionRootGuid } from "../directory/partition.ts";
import { normalizeValue } from "../directory/values.ts";
import { type Guid, isGuid } from "../ids.ts";
import { fail, ok, type Result } from "../result.ts";
import type { EntryRow, Store } from "../store.ts";
import { namingGeneration, namingWalkMax } from "./naming.ts";

/** The marker Active Directory puts between a conflict loser's RDN value and its GUID. */
export const conflictMarker = "\nCNF:";

/** The RDN under which a conflict loser is shown: `<first value>\nCNF:<guid>`, other AVAs kept. */
export function conflictRdn(rdn: string, guid: Guid): string {
  const parsed = parseRdn(rdn);
  assert(parsed.ok, `stored RDN does not parse: ${rdn}`);
  const [first, ...rest] = parsed.value.avas;
  assert(first !== undefined, "RDN without AVA");
  const value = `${first.value}${conflictMarker}${guid}`;
  const mangled = { ...first, value, valueNorm: normalizeValue(value) };
  return formatRdn(makeRdn([mangled, ...rest]));
}

export function effectiveRdn(row: EntryRow): string {
  return row.conflict ? conflictRdn(row.rdn, row.guid) : row.rdn;
}

/** The effective DN of a live entry, walking effective parents up to the partition root. */
export function entryDn(store: Store, row: EntryRow): string {
  const rdn = effectiveRdn(row);
  return row.parentEff === null ? rdn : `${rdn},${walkDn(store, row.parentEff, row.partition)}`;
}

/**
 * entryDn for a store whose every naming change goes through refreshNaming (the core's own
 * store): the parent's DN is remembered for the naming generation (see dnCaches), so siblings
 * share it. A view of the same database through another Store object would see stale DNs.
 */
export function cachedEntryDn(store: Store, row: EntryRow): string {
  const rdn = effectiveRdn(row);
  if (row.parentEff === null) return rdn;
  const dns = dnCaches(store).dns;
  let parentDn = dns.get(row.parentEff);
  if (parentDn === undefined) {
    parentDn = walkDn(store, row.parentEff, row.partition);
    dns.set(row.parentEff, parentDn);
  }
  return `${rdn},${parentDn}`;
}

/** The effective DN of the entry `guid`, read ancestor by ancestor. */
function walkDn(store: Store, guid: Guid, partition: string): string {
  const parts: string[] = [];
  let parent: Guid | null = guid;
  for (let steps = 0; parent !== null; steps++) {
    assert(steps < namingWalkMax, "effective-parent chain exceeds namingWalkMax");
    const parentRow = store.getEntry(parent);
    if (parentRow === undefined) {
      // The root or LostAndFound of a partition has not arrived yet: name it by its role.
      parts.push(parent === partitionRootGuid(partition) ? partition : `cn=LostAndFound,${partition}`);
      break;
    }
    parts.push(effectiveRdn(parentRow));
    parent = parentRow.parentEff;
  }
  return parts.join(",");
}

/**
 * Partition roots this process has seen, per store: every DN lookup starts by finding its
 * partition, and probing each suffix costs a query. Roots are never deleted, renamed or moved,
 * so a root once found stays valid for the life of the store.
 */
const knownRoots = new WeakMap<Store, Map<string, { guid: Guid; depth: number }>>();

/** A partition root holds the whole partition DN as its "RDN"; find the partition of a DN. */
export function findPartition(store: Store, dn: Dn): { root: EntryRow; depth: number } | undefined {
  const known = knownRoots.get(store) ?? new Map<string, { guid: Guid; depth: number }>();
  knownRoots.set(store, known);
  const suffixes = new Map<number, string>();
  for (const [partition, root] of known) {
    if (root.depth > dn.rdns.length) continue;
    // Compared RDN by RDN: a string suffix test would be fooled by an escaped comma.
    let suffix = suffixes.get(root.depth);
    if (suffix === undefined) {
      suffix = normalizeDn({ rdns: dn.rdns.slice(dn.rdns.length - root.depth) });
      suffixes.set(root.depth, suffix);
    }
    if (suffix !== partition) continue;
    const row = store.getEntry(root.guid);
    if (row !== undefined) return { root: row, depth: root.depth };
  }
  for (let depth = 1; depth <= dn.rdns.length; depth++) {
    const suffix: Dn = { rdns: dn.rdns.slice(dn.rdns.length - depth) };
    const partition = normalizeDn(suffix);
    const root = store.getEntry(partitionRootGuid(partition));
    if (root === undefined || root.deleted || root.parent !== null) continue;
    // Partitions never nest, so the first root on the way down is the only one.
    known.set(partition, { guid: root.guid, depth });
    return { root, depth };
  }
  return undefined;
}

/** Resolves a DN to its live entry, or fails with no-such-entry and the matched DN. */
export function resolveDn(store: Store, dnText: string): Result<EntryRow> {
  const parsed = parseDn(dnText);
  if (!parsed.ok) return parsed;
  return resolveParsedDn(store, parsed.value);
}

/**
 * Per store, valid for one naming generation (any rename, move, add, delete or rolled-back
 * transaction starts a new one): resolved DNs (normalised DN to GUID) and effective DNs of
 * parents (GUID to DN); each bounded, cleared when full. A lookup starts from the deepest
 * cached ancestor, so the containers above an entry cost nothing after the first.
 */
const dnCacheMax = 10_000;
const dnCachesByStore = new WeakMap<
  Store,
  { generation: number; guids: Map<string, Guid>; dns: Map<Guid, string> }
>();

function dnCaches(store: Store): { guids: Map<string, Guid>; dns: Map<Guid, string> } {
  const generation = namingGeneration(store);
  let cache = dnCachesByStore.get(store);
  if (cache === undefined || cache.generation !== generation) {
    cache = { generation, guids: new Map(), dns: new Map() };
    dnCachesByStore.set(store, cache);
  }
  if (cache.guids.size >= dnCacheMax) cache.guids.clear();
  if (cache.dns.size >= dnCacheMax) cache.dns.clear();
  return cache;
}

export function resolveParsedDn(store: Store, dn: Dn): Result<EntryRow> {
  const cache = dnCaches(store).guids;
  // Keys are read inline, not through a local helper: this runs once per DN lookup and write.
  const { keys, first } = suffixKeys(dn);
  const exact = cache.get(keys[0] ?? "");
  if (exact !== undefined) {
    const row = store.getEntry(exact);
    if (row !== undefined && !row.deleted && !row.conflict && row.rdnNorm === first) return ok(row);
  }
  // The deepest cached proper ancestor, else the partition root.
  let level = dn.rdns.length;
  let current: Guid | undefined;
  for (let ancestor = 1; ancestor < dn.rdns.length && current === undefined; ancestor++) {
    current = cache.get(keys[ancestor] ?? "");
    if (current !== undefined) level = ancestor;
  }
  let row: EntryRow | undefined;
  if (current === undefined) {
    const partition = findPartition(store, dn);
    if (partition === undefined)
      return fail(
        "no-such-entry",
        dn.rdns.length === 0 ? "the empty DN names no entry" : `no partition holds ${formatDn(dn)}`,
        { matchedDn: "" },
      );
    row = partition.root;
    current = row.guid;
    level = dn.rdns.length - partition.depth;
    // Roots are never renamed, moved or deleted; cached, a root costs one read like any entry.
    cache.set(keys[level] ?? "", current);
  }
  for (let index = level - 1; index >= 0; index--) {
    row = findChild(store, current, dn.rdns[index] as Rdn);
    if (row === undefined) {
      return fail("no-such-entry", `no entry ${formatDn(dn)}`, {
        matchedDn: formatDn({ rdns: dn.rdns.slice(index + 1) }),
      });
    }
    if (!row.conflict) cache.set(keys[index] ?? "", row.guid);
    current = row.guid;
  }
  row ??= store.getEntry(current);
  if (row === undefined || row.deleted)
    return fail("no-such-entry", `no entry ${formatDn(dn)}`, { matchedDn: "" });
  return ok(row);
}

/**
 * For each level of a DN, the normalised DN from that RDN up (the keys of the resolved-DN
 * cache), and the normalised first RDN.
 */
function suffixKeys(dn: Dn): { keys: string[]; first: string } {
  const keys = new Array<string>(dn.rdns.length);
  let suffix = "";
  let norm = "";
  for (let level = dn.rdns.length - 1; level >= 0; level--) {
    norm = normalizeRdn(dn.rdns[level] as Rdn);
    suffix = level === dn.rdns.length - 1 ? norm : `${norm},${suffix}`;
    keys[level] = suffix;
  }
  return { keys, first: norm };
}

/** The live child of `parent` shown under `rdn`: the winner of its name, or a named conflict loser. */
export function findChild(store: Store, parent: Guid, rdn: Rdn): EntryRow | undefined {
  const candidates = store.findByName(parent, normalizeRdn(rdn));
  const winner = candidates.find((row) => !row.conflict);
  if (winner !== undefined) return winner;
  return findConflictLoser(store, parent, rdn);
}

function findConflictLoser(store: Store, parent: Guid, rdn: Rdn): EntryRow | undefined {
  const first = rdn.avas[0];
  if (first === undefined) return undefined;
  const at = first.value.lastIndexOf(conflictMarker);
  if (at < 0) return undefined;
  const guid = first.value.slice(at + conflictMarker.length);
  if (!isGuid(guid)) return undefined;
  const row = store.getEntry(guid);
  if (row === undefined || row.deleted || !row.conflict || row.parentEff !== parent) return undefined;
  const claimed = parseRdn(row.rdn);
  if (!claimed.ok) return undefined;
  const shown = parseRdn(conflictRdn(row.rdn, guid));
  return shown.ok && normalizeRdn(shown.value) === normalizeRdn(rdn) ? row : undefined;
}
