import { type Filter, matchesFilter, parseFilter } from "../directory/filter.ts";
import { canonicalType, operationalAttributeTypes } from "../directory/schema.ts";
import type { Guid, Usn } from "../ids.ts";
import { fail, ok, type Result } from "../result.ts";
import type { ChildCursor, EntryRow, Store } from "../store.ts";
import { cachedEntryDn, effectiveRdn, entryDn, resolveDn } from "./lookup.ts";

/** An entry as clients see it. Attribute names are as their last writer spelled them. */
export interface EntryView {
  readonly dn: string;
  readonly guid: Guid;
  readonly attributes: Readonly<Record<string, readonly string[]>>;
}

export type SearchScope = "base" | "one" | "sub";

export interface SearchRequest {
  readonly base: string;
  readonly scope?: SearchScope;
  /** RFC 4515 filter; default `(objectClass=*)`. */
  readonly filter?: string;
  /** Attribute types to return; empty or `*` = all user attributes, `+` = operational, `1.1` = none. */
  readonly attributes?: readonly string[];
  readonly sizeLimit?: number;
  /** Continue after this entry (a page's `next`): the search as asked, from there on. */
  readonly after?: SearchPosition;
}

/**
 * Where a search stopped, as a key path: the (rdnNorm, guid) key of the last entry it returned
 * (or, when the scan limit stopped it, the last one it examined) and of each of that entry's
 * ancestors below the base, outermost first (empty: the base itself). The walk is depth first, children in key order, so the path alone says what comes
 * next, and a page costs what it returns, however deep into the result it starts. Not a
 * snapshot: entries changed between two pages may be missed or seen twice.
 */
export type SearchPosition = readonly ChildCursor[];

export interface SearchResult {
  readonly entries: readonly EntryView[];
  /**
   * The result was cut short: by the size limit, or by the scan limit (searchScanMax entries
   * examined, matched or not), in which case it may hold fewer entries than the size limit,
   * even none, and more may match after `next`.
   */
  readonly truncated: boolean;
  /** When truncated: where to continue, after the last entry returned or examined. */
  readonly next: SearchPosition | null;
}

export const searchSizeLimitDefault = 1000;
export const searchSizeLimitMax = 100_000;
/**
 * Entries a paged search (the client API's sizeLimit) may return over all its pages: each page
 * is a search of its own from where the last one ended (`after`), at most searchSizeLimitMax
 * entries, so this bounds the client's loop, not what a node holds at once.
 */
export const pagedSearchEntriesMax = 10_000_000;
/**
 * Entries one search may examine, matched or not: a page of a selective filter over a large
 * subtree ends here (truncated, with where to go on), rather than holding the node's thread.
 */
export const searchScanMax = 2_000_000;
const childrenPageSize = 500;

/** Operational attributes (computed, never stored), returned when asked for by name or with `+`. */
const operationalAttributes = operationalAttributeTypes;

export function getEntry(store: Store, dn: string, attributes?: readonly string[]): Result<EntryView> {
  const row = resolveDn(store, dn);
  if (!row.ok) return row;
  return ok(viewOf(store, row.value, cachedEntryDn(store, row.value), selection(attributes)));
}

export function search(
  store: Store,
  request: SearchRequest,
  scanMax: number = searchScanMax,
): Result<SearchResult> {
  const sizeLimit = request.sizeLimit ?? searchSizeLimitDefault;
  if (!Number.isSafeInteger(sizeLimit) || sizeLimit < 1 || sizeLimit > searchSizeLimitMax) {
    return fail("invalid-request", `sizeLimit must be 1..${searchSizeLimitMax}`);
  }
  const filter = parseFilter(request.filter ?? "(objectClass=*)");
  if (!filter.ok) return filter;
  const scope = request.scope ?? "sub";
  if (!["base", "one", "sub"].includes(scope)) return fail("invalid-request", `unknown scope '${scope}'`);
  const base = resolveDn(store, request.base);
  if (!base.ok) return base;
  const wanted = selection(request.attributes);
  const entries: EntryView[] = [];
  let truncated = false;
  let next: SearchPosition | null = null;
  let lastPosition: SearchPosition = [];
  const visit = (row: EntryRow, dn: string, position: () => SearchPosition): boolean => {
    const view = matching(store, row, dn, filter.value, wanted);
    if (view === undefined) return true;
    if (entries.length === sizeLimit) {
      truncated = true;
      next = lastPosition;
      return false;
    }
    entries.push(view);
    lastPosition = position();
    return true;
  };
  const scanStop = walk(store, base.value, entryDn(store, base.value), scope, request.after, visit, scanMax);
  // The scan limit stopped the walk: say so, and where, or the result would look complete.
  if (scanStop !== null) return ok({ entries, truncated: true, next: scanStop });
  return ok({ entries, truncated, next });
}

/** A parent whose children the walk is going through, in key order. */
interface Frame {
  readonly guid: Guid;
  readonly dn: string;
  /** The last child visited (null before the first): where its next page of children starts. */
  after: ChildCursor | null;
  buffered: EntryRow[];
  /** The store had no children after the buffered ones. */
  exhausted: boolean;
}

function frameOf(guid: Guid, dn: string, after: ChildCursor | null): Frame {
  return { guid, dn, after, buffered: [], exhausted: false };
}

/**
 * Visits the base and, by scope, its children or its whole subtree, depth first (an entry
 * before its children, children in key order), from the start or after `after`; stops when
 * visit says so. `position` gives the visited entry's key path (SearchPosition). Returns null,
 * or where it stopped once it had examined `scanMax` entries with more to go.
 */
function walk(
  store: Store,
  base: EntryRow,
  baseDn: string,
  scope: SearchScope,
  after: SearchPosition | undefined,
  visit: (row: EntryRow, dn: string, position: () => SearchPosition) => boolean,
  scanMax: number,
): SearchPosition | null {
  const resuming = after !== undefined;
  if (!resuming && scope !== "one" && !visit(base, baseDn, () => [])) return null;
  if (scope === "base") return null;
  const stack = resuming
    ? resumedStack(store, base, baseDn, scope, after)
    : [frameOf(base.guid, baseDn, null)];
  const position = (): SearchPosition => stack.map((frame) => frame.after as ChildCursor);
  let scanned = 0;
  while (stack.length > 0) {
    const frame = stack[stack.length - 1] as Frame;
    const child = nextChild(store, frame);
    if (child === undefined) {
      stack.pop();
      continue;
    }
    frame.after = { rdnNorm: child.rdnNorm, guid: child.guid };
    const dn = `${effectiveRdn(child)},${frame.dn}`;
    if (!visit(child, dn, position)) return null;
    // Taken before the child's own frame goes on: resuming after it starts with its children.
    if (++scanned >= scanMax) return position();
    if (scope === "sub") stack.push(frameOf(child.guid, dn, null));
  }
  return null;
}

/** The frame's next child, reading the store a page of children at a time. */
function nextChild(store: Store, frame: Frame): EntryRow | undefined {
  if (frame.buffered.length === 0 && !frame.exhausted) {
    frame.buffered = store.listChildren(frame.guid, frame.after, childrenPageSize).reverse();
    frame.exhausted = frame.buffered.length < childrenPageSize;
  }
  return frame.buffered.pop();
}

/**
 * The walk's stack where `after` left it: down the key path from the base, as far as each
 * entry on it is still a live child of the one above. The last entry's own children come next
 * (scope sub); an entry on the path that moved or went away is passed over, and its siblings
 * after it follow.
 */
function resumedStack(
  store: Store,
  base: EntryRow,
  baseDn: string,
  scope: SearchScope,
  after: SearchPosition,
): Frame[] {
  const stack = [frameOf(base.guid, baseDn, after[0] ?? null)];
  if (scope !== "sub") return stack;
  for (let depth = 0; depth < after.length; depth++) {
    const parent = stack[stack.length - 1] as Frame;
    const key = after[depth] as ChildCursor;
    const row = store.getEntry(key.guid);
    if (row === undefined || row.deleted || row.parentEff !== parent.guid || row.rdnNorm !== key.rdnNorm)
      break;
    stack.push(frameOf(row.guid, `${effectiveRdn(row)},${parent.dn}`, after[depth + 1] ?? null));
  }
  return stack;
}

interface Selection {
  readonly all: boolean;
  readonly operational: boolean;
  readonly names: ReadonlySet<string>;
}

function selection(attributes: readonly string[] | undefined): Selection {
  const list = attributes ?? [];
  const names = new Set(list.map((name) => name.toLowerCase()));
  const all = list.length === 0 || names.has("*");
  return { all: all && !(list.length === 1 && names.has("1.1")), operational: names.has("+"), names };
}

function matching(
  store: Store,
  row: EntryRow,
  dn: string,
  filter: Filter,
  wanted: Selection,
): EntryView | undefined {
  const values = attributeValues(store, row);
  const lookup = (type: string): readonly string[] => values.get(type)?.values ?? operational(row, type);
  // Link values are keyed by DN when written, so a filter must compare them as DNs too.
  const dnValued = (type: string): boolean => values.get(type)?.link === true;
  if (!matchesFilter(filter, lookup, dnValued)) return undefined;
  return present(row, dn, values, wanted);
}

function viewOf(store: Store, row: EntryRow, dn: string, wanted: Selection): EntryView {
  return present(row, dn, attributeValues(store, row), wanted);
}

function present(row: EntryRow, dn: string, values: Map<string, Shown>, wanted: Selection): EntryView {
  const attributes: Record<string, string[]> = {};
  for (const [typeNorm, shown] of values) {
    if (wanted.all || wanted.names.has(typeNorm)) attributes[shown.type] = shown.values;
  }
  for (const name of operationalAttributes) {
    if (!wanted.operational && !wanted.names.has(name.toLowerCase())) continue;
    const value = operational(row, name.toLowerCase());
    if (value.length > 0) attributes[name] = [...value];
  }
  return { dn, guid: row.guid, attributes };
}

interface Shown {
  readonly type: string;
  readonly values: string[];
  /** Link values: DNs, compared with distinguishedNameMatch. */
  readonly link: boolean;
}

function attributeValues(store: Store, row: EntryRow): Map<string, Shown> {
  const out = new Map<string, Shown>();
  for (const item of store.getItems(row.guid)) {
    const value = item.value;
    if (value.kind === "values" && value.values.length > 0) {
      out.set(item.attribute, {
        type: canonicalType(item.attribute, value.type),
        values: [...value.values],
        link: false,
      });
    } else if (value.kind === "link" && value.present) {
      const shown = out.get(item.attribute) ?? {
        type: canonicalType(item.attribute, value.type),
        values: [],
        link: true,
      };
      shown.values.push(value.value);
      out.set(item.attribute, shown);
    }
  }
  return out;
}

function operational(row: EntryRow, typeNorm: string): readonly string[] {
  switch (typeNorm) {
    case "entryguid":
      return [row.guid];
    case "entryuuid":
      return [uuidOf(row.guid)];
    case "usncreated":
      return [String(row.usnCreated)];
    case "usnchanged":
      return [String(row.usnChanged)];
    case "plexusconflict":
      return row.conflict ? ["TRUE"] : [];
    case "plexusplacement":
      return row.placement === "normal" ? [] : [row.placement];
    default:
      return [];
  }
}

function uuidOf(guid: Guid): string {
  return `${guid.slice(0, 8)}-${guid.slice(8, 12)}-${guid.slice(12, 16)}-${guid.slice(16, 20)}-${guid.slice(20)}`;
}

/** An entry that needs an operator's eye: a conflict loser, an orphan, or a cycle breaker. */
export interface ConflictView {
  readonly dn: string;
  readonly guid: Guid;
  readonly kind: "name" | "orphan" | "cycle";
  /** The RDN the entry's writers gave it. */
  readonly claimedRdn: string;
  readonly claimedParent: Guid | null;
  /** That parent's DN here; null when this replica holds no live entry of that GUID. */
  readonly claimedParentDn: string | null;
  readonly usnChanged: Usn;
}

export function listConflicts(store: Store, after: Guid | null, limit: number): ConflictView[] {
  return store.listConflicts(after, limit).map((row) => ({
    dn: entryDn(store, row),
    guid: row.guid,
    kind: row.placement === "normal" ? "name" : row.placement,
    claimedRdn: row.rdn,
    claimedParent: row.parent,
    claimedParentDn: liveDnOf(store, row.parent),
    usnChanged: row.usnChanged,
  }));
}

function liveDnOf(store: Store, guid: Guid | null): string | null {
  const row = guid === null ? undefined : store.getEntry(guid);
  return row === undefined || row.deleted ? null : entryDn(store, row);
}
