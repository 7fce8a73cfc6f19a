import Database from "better-sqlite3";
import { assert } from "../core/assert.ts";
import type { Guid, InvocationId, Millis, NodeId, Usn } from "../core/ids.ts";
import type { ItemValue } from "../core/replication/items.ts";
import type { Watermark } from "../core/replication/page.ts";
import { type UtdVector, utdMerge } from "../core/replication/utd.ts";
import type {
  ChildCursor,
  EntryRow,
  HorizonKind,
  ItemRow,
  PeerReport,
  Placement,
  ReplicaEvent,
  ReplicaEventKind,
  ReplicaMeta,
  Store,
  StoreCounts,
  StoredSize,
  TombstoneCursor,
} from "../core/store.ts";
import { eventsKeptMax } from "../core/store.ts";

/**
 * The Store port on SQLite (better-sqlite3). The data lives in the database file, not in the
 * process: the page cache is bounded so that a replica with a million entries stays small.
 * Every statement is prepared once; every list query is served by an index (see
 * `sqliteStoreQueries` and the EXPLAIN QUERY PLAN test beside this file).
 */

export interface SqliteStoreOptions {
  /** A file path, or ":memory:" for a database that lives only as long as this object. */
  readonly path: string;
  /**
   * "full" (the default) makes every commit durable before it returns. "normal" may lose the
   * last commits on power loss but never corrupts the database (WAL mode).
   */
  readonly synchronous?: "full" | "normal";
  /** `serialize()` output: opens an in-memory copy of it (path must be ":memory:"). */
  readonly snapshot?: Uint8Array;
}

export type SqliteStoreErrorCode = "store-version" | "store-closed" | "store-options" | "store-unreadable";

export class SqliteStoreError extends Error {
  readonly code: SqliteStoreErrorCode;

  constructor(code: SqliteStoreErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SqliteStoreError";
    this.code = code;
  }
}

/**
 * Whether `error` is SQLite refusing a transaction for want of space (SQLITE_FULL: the disk, or
 * the file at its size limit). SQLite rolled the transaction back; nothing of it was stored, and
 * the same write may succeed once space is freed.
 */
export function isStorageFull(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === "SQLITE_FULL";
}

export interface SqliteConnectionSettings {
  /** "wal" for files, "memory" for in-memory databases. */
  readonly journalMode: string;
  /** "full" or "normal" as asked; anything else means someone changed the connection. */
  readonly synchronous: string;
  /** SQLite's cache_size: negative values are KiB, positive ones pages. */
  readonly cacheSize: number;
  readonly schemaVersion: number;
}

/** PRAGMA synchronous reports a number; these are its names, by value. */
const synchronousNames: readonly string[] = ["off", "normal", "full", "extra"];

/**
 * Kept in `PRAGMA user_version`. A file of an older version this build knows how to upgrade
 * (see upgrades) is upgraded in place when opened; any other version is refused, never guessed at.
 */
export const sqliteSchemaVersion = 4;
/** Page cache per connection, in KiB (SQLite reads a negative cache_size as KiB). */
export const sqliteCacheSizeKib = 16_000;
/** The WAL file is truncated back to this size after a checkpoint, so it cannot stay huge. */
const journalSizeLimitBytes = 64 * 1024 * 1024;
/**
 * Pages the WAL may hold before a commit checkpoints it. SQLite's default (1000) is smaller
 * than one large transaction, so every big commit would also checkpoint (and fsync): at
 * 10,000 pages (about 40 MiB) checkpoints come once per many transactions.
 */
const walAutocheckpointPages = 10_000;
/** GUID-to-id mappings kept in memory (about 100 bytes each); the map is emptied when full. */
const idsCachedMax = 65_536;
/**
 * A new entry's items are inserted by one multi-row INSERT of up to this many rows rather than
 * one statement each (fewer statement runs: a replicated entry of 9 items costs 2 instead of 10).
 */
const bufferedItemsMax = 32;
/** Statements prepared with a literal LIMIT (a bound LIMIT re-prepares on every run). */
const limitedStatementsMax = 64;
/** Offset of the two header bytes that say whether a database file uses WAL (2) or not (1). */
const headerFormatOffset = 18;

/**
 * Per invocation id, the highest stamp USN of any item ever stored (Store.heldStamps): raised in
 * the transaction that writes the item, never lowered.
 */
const heldTable =
  "CREATE TABLE held (invocation TEXT PRIMARY KEY, usn INTEGER NOT NULL) STRICT, WITHOUT ROWID;";

/**
 * In-place upgrades, by the version they start from. Each runs in one transaction with the
 * version change, so a crash leaves the file at the old version, untouched.
 */
const upgrades: ReadonlyMap<number, string> = new Map([
  // Version 4 adds the held-stamps table, filled from the items already stored (one scan).
  [
    3,
    `${heldTable}
INSERT INTO held (invocation, usn)
  SELECT invocation, max(usn) FROM objects WHERE attribute > '' GROUP BY invocation;`,
  ],
]);

/** Whether this build opens a store file of `version` (its own, or one it upgrades). */
export function isReadableSchemaVersion(version: number): boolean {
  return version === sqliteSchemaVersion || upgrades.has(version);
}

const schema = `
CREATE TABLE meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  node_id TEXT NOT NULL,
  invocation TEXT NOT NULL,
  usn INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  last_inbound_success INTEGER NOT NULL
) STRICT;

-- An entry and its items are rows of one table, clustered by a local integer id: the entry's own
-- row (its "header", attribute '') and its items sit on the same b-tree page, so a write that
-- changes an item and the entry's usn_changed dirties one page, and the rows of a new entry are
-- appended together. Header columns are NULL in item rows and item columns NULL in headers.
-- Ids are local (never replicated); the guids table maps a GUID to its id.
-- No CHECK constraints: SQLite evaluates them on every row, items too, and they doubled the cost
-- of an insert (measured); the typed statements below only ever write 0/1 and the Placement
-- names into deleted, conflict and placement.
CREATE TABLE objects (
  id INTEGER NOT NULL,
  attribute TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT,
  version INTEGER,
  time INTEGER,
  invocation TEXT,
  usn INTEGER,
  local_usn INTEGER,
  guid TEXT,
  partition TEXT,
  origin_invocation TEXT,
  origin_usn INTEGER,
  rdn TEXT,
  rdn_norm TEXT,
  parent TEXT,
  deleted INTEGER,
  tombstone_since INTEGER,
  parent_eff TEXT,
  placement TEXT,
  conflict INTEGER,
  usn_created INTEGER,
  usn_changed INTEGER,
  PRIMARY KEY (id, attribute, key)
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX objects_usn_changed ON objects (usn_changed) WHERE attribute = '';
CREATE INDEX objects_children ON objects (parent_eff, rdn_norm, guid) WHERE attribute = '' AND deleted = 0;
CREATE INDEX objects_claimants ON objects (parent, guid) WHERE attribute = '' AND deleted = 0;
CREATE INDEX objects_cycle_breakers ON objects (guid)
  WHERE attribute = '' AND deleted = 0 AND placement = 'cycle';
CREATE INDEX objects_conflicts ON objects (guid)
  WHERE attribute = '' AND deleted = 0 AND (conflict = 1 OR placement <> 'normal');
CREATE INDEX objects_tombstones ON objects (tombstone_since, guid) WHERE attribute = '' AND deleted = 1;
CREATE INDEX objects_roots ON objects (guid) WHERE attribute = '' AND parent IS NULL AND deleted = 0;

CREATE TABLE guids (guid TEXT PRIMARY KEY, id INTEGER NOT NULL) STRICT, WITHOUT ROWID;

CREATE TABLE utd (invocation TEXT PRIMARY KEY, usn INTEGER NOT NULL) STRICT, WITHOUT ROWID;

${heldTable}

-- Purge horizons (see core/replica/tombstones.ts): per kind, one USN per invocation id.
CREATE TABLE horizons (
  kind TEXT NOT NULL,
  invocation TEXT NOT NULL,
  usn INTEGER NOT NULL,
  PRIMARY KEY (kind, invocation)
) STRICT, WITHOUT ROWID;

CREATE TABLE watermarks (
  partner TEXT PRIMARY KEY,
  invocation TEXT,
  object_usn INTEGER NOT NULL,
  property_usn INTEGER NOT NULL,
  -- JSON list of invocation ids this watermark does not vouch for (origin-filtered pulls).
  excluded TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE peer_reports (
  node TEXT PRIMARY KEY,
  invocation TEXT NOT NULL,
  utd TEXT NOT NULL,
  usn INTEGER NOT NULL,
  received_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL
) STRICT;

-- The data directory's instance marker (see data-directory.ts): a database file copied in from
-- elsewhere carries a token that does not match the directory's marker file.
CREATE TABLE instance (id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL) STRICT;

-- counts() must not scan a million rows, so the store keeps the totals here, updated in the
-- same transaction as the rows they count.
-- next_id is the next local entry id to hand out (ids are never reused).
CREATE TABLE counters (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  entries INTEGER NOT NULL,
  tombstones INTEGER NOT NULL,
  items INTEGER NOT NULL,
  next_id INTEGER NOT NULL
) STRICT;
INSERT INTO counters (id, entries, tombstones, items, next_id) VALUES (1, 0, 0, 0, 1);
`;

/** An entry's columns, read with its id first (see EntryTuple). */
const entryColumns =
  "id, guid, partition, origin_invocation, origin_usn, rdn, rdn_norm, parent, deleted, tombstone_since, " +
  "parent_eff, placement, conflict, usn_created, usn_changed";
const entryValues =
  "guid = ?, partition = ?, origin_invocation = ?, origin_usn = ?, rdn = ?, rdn_norm = ?, parent = ?, " +
  "deleted = ?, tombstone_since = ?, parent_eff = ?, placement = ?, conflict = ?, usn_created = ?, usn_changed = ?";
const itemColumns = "attribute, key, value, version, time, invocation, usn, local_usn";
/** The entry's own row; item rows have a non-empty attribute (so they sort after it). */
const header = "attribute = '' AND key = ''";
const fromLiveChildren =
  "FROM objects INDEXED BY objects_children WHERE parent_eff = ? AND attribute = '' AND deleted = 0";

/**
 * Every SQL statement the store runs, by name. Exported so that a test can EXPLAIN each one.
 * `INDEXED BY` pins the partial indexes: the planner then cannot fall back to a scan, and
 * preparing fails loudly if an index ever stops matching its query.
 * Cursor queries take "" as the cursor for the first page: every guid sorts after "".
 * Entries and items are addressed by their local id (see the objects table); `idOf` maps a GUID.
 */
export const sqliteStoreQueries = {
  readMeta: "SELECT node_id, invocation, usn, created_at, last_inbound_success FROM meta WHERE id = 1",
  writeMeta:
    "INSERT OR REPLACE INTO meta (id, node_id, invocation, usn, created_at, last_inbound_success) " +
    "VALUES (1, ?, ?, ?, ?, ?)",
  idOf: "SELECT id FROM guids WHERE guid = ?",
  insertGuid: "INSERT INTO guids (guid, id) VALUES (?, ?)",
  removeGuid: "DELETE FROM guids WHERE guid = ?",
  getEntry: `SELECT ${entryColumns} FROM objects WHERE id = ? AND ${header}`,
  insertEntry:
    "INSERT INTO objects (id, attribute, key, guid, partition, origin_invocation, origin_usn, rdn, rdn_norm, " +
    "parent, deleted, tombstone_since, parent_eff, placement, conflict, usn_created, usn_changed) " +
    "VALUES (?, '', '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
  updateEntry: `UPDATE objects SET ${entryValues} WHERE id = ? AND ${header}`,
  entryDeleted: `SELECT deleted FROM objects WHERE id = ? AND ${header}`,
  removeEntry: `DELETE FROM objects WHERE id = ? AND ${header} RETURNING deleted`,
  setUsnChanged: `UPDATE objects SET usn_changed = ? WHERE id = ? AND ${header}`,
  removeEntryItems: "DELETE FROM objects WHERE id = ? AND attribute > ''",
  findByName: `SELECT ${entryColumns} ${fromLiveChildren} AND rdn_norm = ? ORDER BY guid`,
  listChildren:
    `SELECT ${entryColumns} ${fromLiveChildren} AND (rdn_norm, guid) > (?, ?) ` +
    "ORDER BY rdn_norm, guid LIMIT ?",
  hasChildren: `SELECT 1 ${fromLiveChildren} LIMIT 1`,
  listClaimants:
    `SELECT ${entryColumns} FROM objects INDEXED BY objects_claimants ` +
    "WHERE parent = ? AND attribute = '' AND deleted = 0 AND guid > ? ORDER BY guid LIMIT ?",
  listCycleBreakers:
    `SELECT ${entryColumns} FROM objects INDEXED BY objects_cycle_breakers ` +
    "WHERE attribute = '' AND deleted = 0 AND placement = 'cycle' ORDER BY guid LIMIT ?",
  listConflicts:
    `SELECT ${entryColumns} FROM objects INDEXED BY objects_conflicts ` +
    "WHERE attribute = '' AND deleted = 0 AND (conflict = 1 OR placement <> 'normal') AND guid > ? " +
    "ORDER BY guid LIMIT ?",
  entriesChangedAfter:
    `SELECT ${entryColumns} FROM objects INDEXED BY objects_usn_changed ` +
    "WHERE attribute = '' AND usn_changed > ? ORDER BY usn_changed LIMIT ?",
  listTombstonesFirst:
    `SELECT ${entryColumns} FROM objects INDEXED BY objects_tombstones ` +
    "WHERE attribute = '' AND deleted = 1 ORDER BY tombstone_since, guid LIMIT ?",
  listTombstonesAfter:
    `SELECT ${entryColumns} FROM objects INDEXED BY objects_tombstones ` +
    "WHERE attribute = '' AND deleted = 1 AND (tombstone_since, guid) > (?, ?) ORDER BY tombstone_since, guid LIMIT ?",
  // Every entry has a guids row; a guid whose entry row is gone (items only) drops out in the join.
  listEntries:
    "SELECT o.id, o.guid, o.partition, o.origin_invocation, o.origin_usn, o.rdn, o.rdn_norm, o.parent, " +
    "o.deleted, o.tombstone_since, o.parent_eff, o.placement, o.conflict, o.usn_created, o.usn_changed " +
    "FROM guids AS g CROSS JOIN objects AS o ON o.id = g.id AND o.attribute = '' AND o.key = '' " +
    "WHERE g.guid > ? ORDER BY g.guid LIMIT ?",
  listRoots:
    `SELECT ${entryColumns} FROM objects INDEXED BY objects_roots ` +
    "WHERE attribute = '' AND parent IS NULL AND deleted = 0 ORDER BY guid",
  getItems: `SELECT ${itemColumns} FROM objects WHERE id = ? AND attribute > '' ORDER BY attribute, key`,
  // The UTD comes as JSON ({invocation: usn}); an invocation it does not name covers nothing.
  getItemsLacking:
    `SELECT ${itemColumns} FROM objects WHERE id = ? AND attribute > '' AND local_usn > ? ` +
    `AND usn > coalesce(json_extract(?, '$."' || invocation || '"'), 0) ORDER BY attribute, key`,
  getAttributeItems: `SELECT ${itemColumns} FROM objects WHERE id = ? AND attribute = ? ORDER BY key`,
  getItem: `SELECT ${itemColumns} FROM objects WHERE id = ? AND attribute = ? AND key = ?`,
  storedSizes:
    "SELECT attribute, sum(length(CAST(value AS BLOB))) FROM objects " +
    "WHERE id = ? AND attribute > '' AND attribute NOT IN ('@name', '@deleted') GROUP BY attribute ORDER BY attribute",
  // An item is inserted when new and updated in place otherwise; two statements rather than
  // an UPSERT because the item count must know which of the two happened.
  updateItem:
    "UPDATE objects SET value = ?, version = ?, time = ?, invocation = ?, usn = ?, local_usn = ? " +
    "WHERE id = ? AND attribute = ? AND key = ?",
  insertItem: `INSERT INTO objects (id, ${itemColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  // The items of an entry created in this transaction, several rows per statement (see
  // insertItemsQuery). No ON CONFLICT: the entry's id is new, so a clash is a bug.
  insertItems: `INSERT INTO objects (id, ${itemColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  // The kept attributes arrive as one JSON array so that a single prepared statement serves
  // any number of them.
  removeItemsExcept:
    "DELETE FROM objects WHERE id = ? AND attribute > '' AND attribute NOT IN (SELECT value FROM json_each(?))",
  readUtd: "SELECT invocation, usn FROM utd ORDER BY invocation",
  clearUtd: "DELETE FROM utd",
  upsertUtd: "INSERT OR REPLACE INTO utd (invocation, usn) VALUES (?, ?)",
  deleteUtd: "DELETE FROM utd WHERE invocation = ?",
  readHorizon: "SELECT invocation, usn FROM horizons WHERE kind = ? ORDER BY invocation",
  listHorizons: "SELECT kind, invocation, usn FROM horizons ORDER BY kind, invocation",
  clearHorizon: "DELETE FROM horizons WHERE kind = ?",
  insertHorizon: "INSERT INTO horizons (kind, invocation, usn) VALUES (?, ?, ?)",
  readWatermark: "SELECT invocation, object_usn, property_usn, excluded FROM watermarks WHERE partner = ?",
  writeWatermark:
    "INSERT OR REPLACE INTO watermarks (partner, invocation, object_usn, property_usn, excluded) VALUES (?, ?, ?, ?, ?)",
  listWatermarks:
    "SELECT partner, invocation, object_usn, property_usn, excluded FROM watermarks ORDER BY partner",
  readPeerReports: "SELECT node, invocation, utd, usn, received_at FROM peer_reports ORDER BY node",
  writePeerReport:
    "INSERT OR REPLACE INTO peer_reports (node, invocation, utd, usn, received_at) VALUES (?, ?, ?, ?, ?)",
  appendEvent: "INSERT INTO events (time, kind, detail) VALUES (?, ?, ?)",
  trimEvents: "DELETE FROM events WHERE id <= ?",
  listEvents: "SELECT time, kind, detail FROM events ORDER BY id DESC LIMIT ?",
  counts: "SELECT entries, tombstones, items FROM counters WHERE id = 1",
  addCounts:
    "UPDATE counters SET entries = entries + ?, tombstones = tombstones + ?, items = items + ?, next_id = ? " +
    "WHERE id = 1",
  nextId: "SELECT next_id FROM counters WHERE id = 1",
  readHeld: "SELECT invocation, usn FROM held",
  raiseHeld:
    "INSERT INTO held (invocation, usn) VALUES (?, ?) " +
    "ON CONFLICT (invocation) DO UPDATE SET usn = max(usn, excluded.usn)",
} as const;

type LimitedQuery =
  | "listChildren"
  | "listClaimants"
  | "listCycleBreakers"
  | "listConflicts"
  | "entriesChangedAfter"
  | "listTombstonesFirst"
  | "listTombstonesAfter"
  | "listEntries";

/** Scans everything on purpose (see `recount`), so it is not among the indexed queries. */
const recountQuery =
  "SELECT (SELECT count(*) FROM objects WHERE attribute = '' AND deleted = 0), " +
  "(SELECT count(*) FROM objects WHERE attribute = '' AND deleted = 1), " +
  "(SELECT count(*) FROM objects WHERE attribute > '')";

// Result rows are read in raw (array) mode: cheaper than objects keyed by column name. The
// tuple types restate the column lists above; the database only ever holds what the typed
// write statements put there, so the branded types are asserted here, at the boundary.
/** A local entry id (see the objects table): never leaves the store. */
type EntryId = number;
type EntryFields = [
  guid: Guid,
  partition: string,
  originInvocation: InvocationId,
  originUsn: Usn,
  rdn: string,
  rdnNorm: string,
  parent: Guid | null,
  deleted: 0 | 1,
  tombstoneSince: Millis | null,
  parentEff: Guid | null,
  placement: Placement,
  conflict: 0 | 1,
  usnCreated: Usn,
  usnChanged: Usn,
];
type EntryTuple = [id: EntryId, ...EntryFields];
type ItemTuple = [
  attribute: string,
  key: string,
  value: string,
  version: number,
  time: Millis,
  invocation: InvocationId,
  usn: Usn,
  localUsn: Usn,
];
type ItemParams = [id: EntryId, ...ItemTuple];
type ItemUpdateParams = [
  value: string,
  version: number,
  time: Millis,
  invocation: InvocationId,
  usn: Usn,
  localUsn: Usn,
  id: EntryId,
  attribute: string,
  key: string,
];
type MetaTuple = [nodeId: NodeId, invocation: InvocationId, usn: Usn, createdAt: Millis, lastInbound: Millis];
type WatermarkTuple = [invocation: InvocationId | null, objectUsn: Usn, propertyUsn: Usn, excluded: string];
type PeerReportTuple = [node: NodeId, invocation: InvocationId, utd: string, usn: Usn, receivedAt: Millis];
type EventTuple = [time: Millis, kind: ReplicaEventKind, detail: string];
type CountsTuple = [entries: number, tombstones: number, items: number];

function prepareStatements(db: Database.Database) {
  const q = sqliteStoreQueries;
  return {
    readMeta: db.prepare<[], MetaTuple>(q.readMeta).raw(),
    writeMeta: db.prepare<MetaTuple>(q.writeMeta),
    idOf: db.prepare<[Guid], EntryId>(q.idOf).pluck(),
    insertGuid: db.prepare<[Guid, EntryId]>(q.insertGuid),
    removeGuid: db.prepare<[Guid]>(q.removeGuid),
    getEntry: db.prepare<[EntryId], EntryTuple>(q.getEntry).raw(),
    insertEntry: db.prepare<EntryTuple>(q.insertEntry),
    updateEntry: db.prepare<[...EntryFields, EntryId]>(q.updateEntry),
    entryDeleted: db.prepare<[EntryId], 0 | 1>(q.entryDeleted).pluck(),
    removeEntry: db.prepare<[EntryId], 0 | 1>(q.removeEntry).pluck(),
    setUsnChanged: db.prepare<[Usn, EntryId]>(q.setUsnChanged),
    removeEntryItems: db.prepare<[EntryId]>(q.removeEntryItems),
    findByName: db.prepare<[Guid, string], EntryTuple>(q.findByName).raw(),
    hasChildren: db.prepare<[Guid], number>(q.hasChildren).pluck(),
    listRoots: db.prepare<[], EntryTuple>(q.listRoots).raw(),
    getItems: db.prepare<[EntryId], ItemTuple>(q.getItems).raw(),
    getItemsLacking: db.prepare<[EntryId, Usn, string], ItemTuple>(q.getItemsLacking).raw(),
    getAttributeItems: db.prepare<[EntryId, string], ItemTuple>(q.getAttributeItems).raw(),
    getItem: db.prepare<[EntryId, string, string], ItemTuple>(q.getItem).raw(),
    storedSizes: db.prepare<[EntryId], [string, number]>(q.storedSizes).raw(),
    updateItem: db.prepare<ItemUpdateParams>(q.updateItem),
    insertItem: db.prepare<ItemParams>(q.insertItem),
    removeItemsExcept: db.prepare<[EntryId, string]>(q.removeItemsExcept),
    readUtd: db.prepare<[], [InvocationId, Usn]>(q.readUtd).raw(),
    clearUtd: db.prepare<[]>(q.clearUtd),
    upsertUtd: db.prepare<[InvocationId, Usn]>(q.upsertUtd),
    deleteUtd: db.prepare<[InvocationId]>(q.deleteUtd),
    listHorizons: db.prepare<[], [HorizonKind, InvocationId, Usn]>(q.listHorizons).raw(),
    readHorizon: db.prepare<[HorizonKind], [InvocationId, Usn]>(q.readHorizon).raw(),
    clearHorizon: db.prepare<[HorizonKind]>(q.clearHorizon),
    insertHorizon: db.prepare<[HorizonKind, InvocationId, Usn]>(q.insertHorizon),
    readWatermark: db.prepare<[NodeId], WatermarkTuple>(q.readWatermark).raw(),
    writeWatermark: db.prepare<[NodeId, ...WatermarkTuple]>(q.writeWatermark),
    listWatermarks: db.prepare<[], [NodeId, ...WatermarkTuple]>(q.listWatermarks).raw(),
    readPeerReports: db.prepare<[], PeerReportTuple>(q.readPeerReports).raw(),
    writePeerReport: db.prepare<PeerReportTuple>(q.writePeerReport),
    appendEvent: db.prepare<EventTuple>(q.appendEvent),
    trimEvents: db.prepare<[number]>(q.trimEvents),
    listEvents: db.prepare<[number], EventTuple>(q.listEvents).raw(),
    counts: db.prepare<[], CountsTuple>(q.counts).raw(),
    addCounts: db.prepare<[...CountsTuple, EntryId]>(q.addCounts),
    nextId: db.prepare<[], EntryId>(q.nextId).pluck(),
    readHeld: db.prepare<[], [InvocationId, Usn]>(q.readHeld).raw(),
    raiseHeld: db.prepare<[InvocationId, Usn]>(q.raiseHeld),
    recount: db.prepare<[], CountsTuple>(recountQuery).raw(),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

function entryFromTuple(t: EntryTuple): EntryRow {
  return {
    guid: t[1],
    partition: t[2],
    origin: { invocation: t[3], usn: t[4] },
    rdn: t[5],
    rdnNorm: t[6],
    parent: t[7],
    deleted: t[8] === 1,
    tombstoneSince: t[9],
    parentEff: t[10],
    placement: t[11],
    conflict: t[12] === 1,
    usnCreated: t[13],
    usnChanged: t[14],
  };
}

function entryFields(row: EntryRow): EntryFields {
  return [
    row.guid,
    row.partition,
    row.origin.invocation,
    row.origin.usn,
    row.rdn,
    row.rdnNorm,
    row.parent,
    row.deleted ? 1 : 0,
    row.tombstoneSince,
    row.parentEff,
    row.placement,
    row.conflict ? 1 : 0,
    row.usnCreated,
    row.usnChanged,
  ];
}

function itemFromTuple(guid: Guid, t: ItemTuple): ItemRow {
  return {
    guid,
    attribute: t[0],
    key: t[1],
    value: JSON.parse(t[2]) as ItemValue,
    stamp: { version: t[3], time: t[4], invocation: t[5], usn: t[6] },
    localUsn: t[7],
  };
}

function watermarkFromTuple(t: WatermarkTuple): Watermark {
  const excluded = JSON.parse(t[3]) as InvocationId[];
  const base = { invocation: t[0], objectUsn: t[1], propertyUsn: t[2] };
  return excluded.length === 0 ? base : { ...base, excluded };
}

/** `insertItems` with `rows` rows of values. */
function insertItemsQuery(rows: number): string {
  const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";
  return sqliteStoreQueries.insertItems.replace(row, Array.from({ length: rows }, () => row).join(", "));
}

/**
 * Items of the entry created last in the open transaction, not yet inserted: they go in with
 * one multi-row INSERT when the buffer is full, and before any other statement runs (every
 * read sees them). `keys` holds each buffered (attribute, key), so that a second write of one
 * of them takes the ordinary path, which updates the row once the buffer is inserted.
 */
interface BufferedItems {
  readonly guid: Guid;
  readonly id: EntryId;
  readonly keys: Set<string>;
  params: unknown[];
  rows: number;
}

/** LIMIT with a negative number means "no limit" in SQLite; a list must never be unbounded. */
function checkLimit(limit: number): void {
  assert(Number.isSafeInteger(limit) && limit >= 0, `list limit must be a non-negative integer: ${limit}`);
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly statements: Statements;
  /** The outermost transaction; nested `transaction` calls run inside it without a savepoint. */
  private readonly outermost: Database.Transaction<(fn: () => unknown) => unknown>;
  private closed = false;
  /**
   * Changes to the counters made by the open transaction, written to the counters row just
   * before it commits (one UPDATE per transaction instead of one per row) and dropped when it
   * rolls back.
   */
  private pendingEntries = 0;
  private pendingTombstones = 0;
  private pendingItems = 0;
  /** The next local entry id; written to the counters row with the counts when it moved. */
  private nextId: EntryId;
  private nextIdMoved = false;
  /**
   * Local ids of GUIDs this store has just read or written: the core reads an entry and then
   * writes its items, and each GUID would otherwise cost a lookup in the guids table. An id
   * never changes while its entry exists; removeEntry forgets it and a rollback forgets all.
   */
  private readonly ids = new Map<Guid, EntryId>();
  /** The last GUID found to have no id: the core looks an entry up before it creates it. */
  private absent: Guid | undefined;
  /** The UTD getItemsLacking was last asked with, and its JSON. */
  private lackingUtd: { readonly utd: UtdVector; readonly json: string } | undefined;
  private buffered: BufferedItems | undefined;
  /** Multi-row item inserts, by row count (1 to bufferedItemsMax). */
  private readonly insertItemsStatements = new Map<number, Database.Statement<unknown[]>>();
  /** The held table as committed, and the stamps the open transaction raises it to. */
  private held: Map<InvocationId, Usn>;
  private readonly pendingHeld = new Map<InvocationId, Usn>();

  /** Opened by openReader: read-only, and every transaction is a snapshot of another's commits. */
  private readonly reader: boolean;

  private constructor(db: Database.Database, reader = false) {
    this.db = db;
    this.reader = reader;
    this.statements = prepareStatements(db);
    this.nextId = this.readNextId();
    this.held = this.readHeld();
    this.outermost = db.transaction((fn: () => unknown) => {
      // Left over only if SQLite rolled an earlier transaction back on its own (disk full, I/O
      // error) while its function went on: those counts belong to rows that are gone.
      this.clearPendingCounts();
      this.pendingHeld.clear();
      this.buffered = undefined;
      if (this.reader) this.startSnapshot();
      const result = fn();
      this.flushBufferedItems();
      this.flushCounts();
      this.flushHeld();
      return result;
    });
  }

  /**
   * A second, read-only connection to the store file of a running node (which keeps the file
   * in WAL mode, so that readers never wait for its writes): each transaction reads one
   * snapshot of what the node has committed. Writes fail (SQLITE_READONLY). The file must be
   * of this build's schema version: a reader never upgrades one.
   */
  static openReader(path: string): SqliteStore {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      const version = Number(db.pragma("user_version", { simple: true }));
      if (version !== sqliteSchemaVersion) {
        throw new SqliteStoreError(
          "store-version",
          `${path}: store schema version ${String(version)}; a reader opens only version ${sqliteSchemaVersion}`,
        );
      }
      db.pragma(`cache_size = ${-sqliteCacheSizeKib}`);
      return new SqliteStore(db, true);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /**
   * A reader's caches describe one snapshot: at the start of the next (a transaction, or a
   * statement outside one) the held stamps are read again and the GUID-to-id mappings dropped
   * (an entry purged and received again since has another id).
   */
  private startSnapshot(): void {
    this.held = this.readHeld();
    this.ids.clear();
    this.absent = undefined;
  }

  static open(options: SqliteStoreOptions): SqliteStore {
    const db = openDatabase(options);
    try {
      prepareDatabase(db, options);
      return new SqliteStore(db);
    } catch (error) {
      db.close();
      throw unreadableStore(options.path, error);
    }
  }

  /**
   * The whole database as one image, for the simulator to snapshot a replica. The image is
   * marked as a rollback-journal database so that it can be opened in memory (an in-memory
   * database cannot use WAL); the rows are the same.
   */
  serialize(): Uint8Array {
    const db = this.database();
    assert(!db.inTransaction, "serialize() inside a transaction would copy uncommitted rows");
    const image = db.serialize();
    markRollbackJournal(image);
    return image;
  }

  /** The connection's settings as SQLite reports them, for tests and status pages. */
  /** The instance token stored in this database file, if any (see data-directory.ts). */
  instanceToken(): string | undefined {
    const row = this.database()
      .prepare<[], { token: string }>("SELECT token FROM instance WHERE id = 1")
      .get();
    return row?.token;
  }

  setInstanceToken(token: string): void {
    this.database().prepare("INSERT OR REPLACE INTO instance (id, token) VALUES (1, ?)").run(token);
  }

  /**
   * Writes a consistent copy of the whole database to `path` (a new file), safe while this
   * store stays open: the backup an operator restores from. The copy never carries the live
   * instance token, so restoring it is always recognised as a restore.
   */
  backupTo(path: string, backupToken: string): void {
    const db = this.database();
    assert(!db.inTransaction, "backupTo() inside a transaction would copy uncommitted rows");
    db.prepare("VACUUM INTO ?").run(path);
    const copy = new Database(path);
    try {
      copy.prepare("UPDATE instance SET token = ? WHERE id = 1").run(backupToken);
    } finally {
      copy.close();
    }
  }

  connectionSettings(): SqliteConnectionSettings {
    const db = this.database();
    const synchronous = db.pragma("synchronous", { simple: true });
    return {
      journalMode: String(db.pragma("journal_mode", { simple: true })),
      synchronous: synchronousNames[Number(synchronous)] ?? `unknown (${String(synchronous)})`,
      cacheSize: Number(db.pragma("cache_size", { simple: true })),
      schemaVersion: Number(db.pragma("user_version", { simple: true })),
    };
  }

  transaction<T>(fn: () => T): T {
    if (this.database().inTransaction) return fn();
    try {
      // better-sqlite3 commits when fn returns, and rolls back and rethrows when it throws. A
      // reader's transaction is deferred: it takes no write lock, its first read fixes the snapshot.
      return (this.reader ? this.outermost.deferred(fn) : this.outermost.immediate(fn)) as T;
    } catch (error) {
      // Ids handed out by the rolled-back transaction are free again, and unknown once more.
      this.buffered = undefined;
      this.ids.clear();
      this.absent = undefined;
      this.nextId = this.readNextId();
      this.nextIdMoved = false;
      this.pendingHeld.clear();
      this.held = this.readHeld();
      throw error;
    } finally {
      this.clearPendingCounts();
    }
  }

  private readHeld(): Map<InvocationId, Usn> {
    return new Map(this.statements.readHeld.all());
  }

  /** Raises the held stamp of `invocation` to `usn` when the open transaction commits. */
  private noteHeld(invocation: InvocationId, usn: Usn): void {
    if (usn > (this.pendingHeld.get(invocation) ?? this.held.get(invocation) ?? 0)) {
      this.pendingHeld.set(invocation, usn);
    }
  }

  /** Written in the transaction that stored the items, so the table never lags them. */
  private flushHeld(): void {
    for (const [invocation, usn] of this.pendingHeld) {
      this.statements.raiseHeld.run(invocation, usn);
      if (usn > (this.held.get(invocation) ?? 0)) this.held.set(invocation, usn);
    }
    this.pendingHeld.clear();
  }

  heldStamps(): UtdVector {
    this.sql();
    return utdMerge(Object.fromEntries(this.held), Object.fromEntries(this.pendingHeld));
  }

  private readNextId(): EntryId {
    const next = this.statements.nextId.get();
    assert(next !== undefined, "the counters row is created with the schema and never deleted");
    return next;
  }

  /** The local id of an entry or of a GUID that has items, if any. */
  private idOf(guid: Guid): EntryId | undefined {
    const s = this.sql();
    const cached = this.ids.get(guid);
    if (cached !== undefined) return cached;
    if (guid === this.absent) return undefined;
    const id = s.idOf.get(guid);
    if (id === undefined) this.absent = guid;
    else this.remember(guid, id);
    return id;
  }

  /** The local id of `guid`, given a new one if it has none (inside a transaction). */
  private idFor(guid: Guid): { id: EntryId; fresh: boolean } {
    const id = this.idOf(guid);
    if (id !== undefined) return { id, fresh: false };
    const fresh = this.nextId;
    this.absent = undefined;
    this.nextId += 1;
    this.nextIdMoved = true;
    this.statements.insertGuid.run(guid, fresh);
    this.remember(guid, fresh);
    return { id: fresh, fresh: true };
  }

  private remember(guid: Guid, id: EntryId): void {
    if (this.ids.size >= idsCachedMax) this.ids.clear();
    this.ids.set(guid, id);
  }

  /** An entry row from its tuple; its id is remembered, since a write to it usually follows. */
  private readonly toEntry = (t: EntryTuple): EntryRow => {
    this.remember(t[1], t[0]);
    return entryFromTuple(t);
  };

  readMeta(): ReplicaMeta | undefined {
    const t = this.sql().readMeta.get();
    if (t === undefined) return undefined;
    return {
      nodeId: t[0],
      invocation: t[1],
      usn: t[2],
      createdAt: t[3],
      lastInboundSuccess: t[4],
    };
  }

  writeMeta(meta: ReplicaMeta): void {
    this.sql().writeMeta.run(meta.nodeId, meta.invocation, meta.usn, meta.createdAt, meta.lastInboundSuccess);
  }

  getEntry(guid: Guid): EntryRow | undefined {
    const id = this.idOf(guid);
    if (id === undefined) return undefined;
    const t = this.statements.getEntry.get(id);
    return t === undefined ? undefined : entryFromTuple(t);
  }

  putEntry(row: EntryRow): void {
    this.transaction(() => this.writeEntry(row));
  }

  setUsnChanged(guid: Guid, usnChanged: Usn): void {
    const id = this.idOf(guid);
    const changed = id === undefined ? 0 : this.statements.setUsnChanged.run(usnChanged, id).changes;
    assert(changed === 1, `setUsnChanged on an entry that does not exist: ${guid}`);
  }

  /** A new id means a new entry: one statement. Otherwise read what the row was, then update it. */
  private writeEntry(row: EntryRow): void {
    const s = this.statements;
    const { id, fresh } = this.idFor(row.guid);
    const fields = entryFields(row);
    const before = fresh ? undefined : s.entryDeleted.get(id);
    if (before === undefined) {
      s.insertEntry.run(id, ...fields);
      // Its items usually follow at once; a new id has none yet, so they can be inserted together.
      if (fresh) this.buffered = { guid: row.guid, id, keys: new Set(), params: [], rows: 0 };
    } else {
      s.updateEntry.run(...fields, id);
      this.countEntry(before, -1);
    }
    this.countEntry(row.deleted ? 1 : 0, 1);
  }

  private countEntry(deleted: 0 | 1, delta: number): void {
    if (deleted === 1) this.pendingTombstones += delta;
    else this.pendingEntries += delta;
  }

  removeEntry(guid: Guid): void {
    const s = this.sql();
    const id = this.idOf(guid);
    if (id === undefined) return;
    this.transaction(() => {
      this.pendingItems -= s.removeEntryItems.run(id).changes;
      const deleted = s.removeEntry.get(id);
      if (deleted !== undefined) this.countEntry(deleted, -1);
      s.removeGuid.run(guid);
      this.ids.delete(guid);
    });
  }

  findByName(parent: Guid, rdnNorm: string): EntryRow[] {
    return this.sql().findByName.all(parent, rdnNorm).map(this.toEntry);
  }

  /**
   * Runs a list query with its limit written into the SQL. A bound `LIMIT ?` costs a
   * re-prepare on every run (several microseconds, measured), so each distinct limit gets its
   * own prepared statement; limits are few in practice, and the cache is bounded anyway.
   */
  private listed(query: LimitedQuery, limit: number, ...parameters: unknown[]): EntryRow[] {
    checkLimit(limit);
    this.sql();
    const key = `${query}:${limit}`;
    let statement = this.limitedStatements.get(key);
    if (statement === undefined) {
      if (this.limitedStatements.size >= limitedStatementsMax) this.limitedStatements.clear();
      const sql = sqliteStoreQueries[query].replace(/LIMIT \?$/, `LIMIT ${limit}`);
      statement = this.database().prepare<unknown[], EntryTuple>(sql).raw();
      this.limitedStatements.set(key, statement);
    }
    return statement.all(...parameters).map(this.toEntry);
  }

  private readonly limitedStatements = new Map<string, Database.Statement<unknown[], EntryTuple>>();

  listChildren(parent: Guid, after: ChildCursor | null, limit: number): EntryRow[] {
    // ("", "") sorts before every real (rdnNorm, guid) pair, so it stands for "from the start".
    return this.listed("listChildren", limit, parent, after?.rdnNorm ?? "", after?.guid ?? "");
  }

  hasChildren(parent: Guid): boolean {
    return this.sql().hasChildren.get(parent) !== undefined;
  }

  listClaimants(parent: Guid, afterGuid: Guid | null, limit: number): EntryRow[] {
    return this.listed("listClaimants", limit, parent, afterGuid ?? "");
  }

  listCycleBreakers(limit: number): EntryRow[] {
    return this.listed("listCycleBreakers", limit);
  }

  listConflicts(afterGuid: Guid | null, limit: number): EntryRow[] {
    return this.listed("listConflicts", limit, afterGuid ?? "");
  }

  entriesChangedAfter(usn: Usn, limit: number): EntryRow[] {
    return this.listed("entriesChangedAfter", limit, usn);
  }

  listTombstones(after: TombstoneCursor | null, limit: number): EntryRow[] {
    if (after === null) return this.listed("listTombstonesFirst", limit);
    return this.listed("listTombstonesAfter", limit, after.tombstoneSince, after.guid);
  }

  listEntries(afterGuid: Guid | null, limit: number): EntryRow[] {
    return this.listed("listEntries", limit, afterGuid ?? "");
  }

  listRoots(): EntryRow[] {
    return this.sql().listRoots.all().map(this.toEntry);
  }

  getItems(guid: Guid): ItemRow[] {
    const id = this.idOf(guid);
    if (id === undefined) return [];
    return this.statements.getItems.all(id).map((t) => itemFromTuple(guid, t));
  }

  getItemsLacking(guid: Guid, afterLocalUsn: Usn, utd: UtdVector): ItemRow[] {
    const id = this.idOf(guid);
    if (id === undefined) return [];
    // Filtered in SQLite: an item passed over costs no row copy, no JSON parse and no objects.
    // A page asks with one UTD object for all its entries, so its JSON is made once.
    if (this.lackingUtd?.utd !== utd) this.lackingUtd = { utd, json: JSON.stringify(utd) };
    return this.statements.getItemsLacking
      .all(id, afterLocalUsn, this.lackingUtd.json)
      .map((t) => itemFromTuple(guid, t));
  }

  getAttributeItems(guid: Guid, attribute: string): ItemRow[] {
    const id = this.idOf(guid);
    if (id === undefined) return [];
    return this.statements.getAttributeItems.all(id, attribute).map((t) => itemFromTuple(guid, t));
  }

  getItem(guid: Guid, attribute: string, key: string): ItemRow | undefined {
    const id = this.idOf(guid);
    const t = id === undefined ? undefined : this.statements.getItem.get(id, attribute, key);
    return t === undefined ? undefined : itemFromTuple(guid, t);
  }

  storedSizes(guid: Guid): StoredSize[] {
    const id = this.idOf(guid);
    if (id === undefined) return [];
    return this.statements.storedSizes.all(id).map(([attribute, bytes]) => ({ attribute, bytes }));
  }

  putItem(row: ItemRow): void {
    this.transaction(() => this.writeItem(row));
  }

  replaceItem(row: ItemRow): void {
    // In a transaction (joined when one is open), so that the held stamp commits with the item.
    this.transaction(() => this.rewriteItem(row));
  }

  private rewriteItem(row: ItemRow): void {
    const id = this.idOf(row.guid);
    const { version, time, invocation, usn } = row.stamp;
    this.noteHeld(invocation, usn);
    const value = JSON.stringify(row.value);
    const updated =
      id === undefined
        ? 0
        : this.statements.updateItem.run(
            value,
            version,
            time,
            invocation,
            usn,
            row.localUsn,
            id,
            row.attribute,
            row.key,
          ).changes;
    assert(updated === 1, `replaceItem on an item that does not exist: ${row.guid} ${row.attribute}`);
  }

  /** Insert first: most written items are new (adds, replicated entries), and then one statement does. */
  private writeItem(row: ItemRow): void {
    // The empty attribute names the entry's own row in the objects table.
    assert(row.attribute !== "", "an item's attribute is never empty");
    if (this.buffered?.guid === row.guid && this.bufferItem(this.buffered, row)) return;
    const s = this.statements;
    const { id } = this.idFor(row.guid);
    const value = JSON.stringify(row.value);
    const { version, time, invocation, usn } = row.stamp;
    this.noteHeld(invocation, usn);
    const inserted = s.insertItem.run(
      id,
      row.attribute,
      row.key,
      value,
      version,
      time,
      invocation,
      usn,
      row.localUsn,
    );
    if (inserted.changes > 0) {
      this.pendingItems += 1;
      return;
    }
    s.updateItem.run(value, version, time, invocation, usn, row.localUsn, id, row.attribute, row.key);
  }

  /** Adds a new entry's item to the buffer; false if the buffer already holds its (attribute, key). */
  private bufferItem(buffer: BufferedItems, row: ItemRow): boolean {
    const itemKey = `${row.attribute}\u0000${row.key}`;
    if (buffer.keys.has(itemKey)) return false;
    buffer.keys.add(itemKey);
    const { version, time, invocation, usn } = row.stamp;
    this.noteHeld(invocation, usn);
    buffer.params.push(
      buffer.id,
      row.attribute,
      row.key,
      JSON.stringify(row.value),
      version,
      time,
      invocation,
      usn,
      row.localUsn,
    );
    buffer.rows += 1;
    this.pendingItems += 1;
    if (buffer.rows >= bufferedItemsMax) this.insertBuffered(buffer);
    return true;
  }

  /** Inserts the buffered items and ends the buffer: called before any other statement runs. */
  private flushBufferedItems(): void {
    const buffer = this.buffered;
    if (buffer === undefined) return;
    this.buffered = undefined;
    this.insertBuffered(buffer);
  }

  private insertBuffered(buffer: BufferedItems): void {
    if (buffer.rows === 0) return;
    let statement = this.insertItemsStatements.get(buffer.rows);
    if (statement === undefined) {
      statement = this.db.prepare<unknown[]>(insertItemsQuery(buffer.rows));
      this.insertItemsStatements.set(buffer.rows, statement);
    }
    const { params } = buffer;
    buffer.params = [];
    buffer.rows = 0;
    statement.run(params);
  }

  removeItemsExcept(guid: Guid, keep: readonly string[]): void {
    const s = this.sql();
    const id = this.idOf(guid);
    if (id === undefined) return;
    this.transaction(() => {
      this.pendingItems -= s.removeItemsExcept.run(id, JSON.stringify(keep)).changes;
    });
  }

  readHorizon(kind: HorizonKind): UtdVector {
    const vector: Record<InvocationId, Usn> = {};
    for (const [invocation, usn] of this.sql().readHorizon.all(kind)) vector[invocation] = usn;
    return vector;
  }

  listHorizons(): Array<{ kind: HorizonKind; vector: UtdVector }> {
    const out: Array<{ kind: HorizonKind; vector: Record<InvocationId, Usn> }> = [];
    for (const [kind, invocation, usn] of this.sql().listHorizons.all()) {
      let last = out.at(-1);
      if (last?.kind !== kind) {
        last = { kind, vector: {} };
        out.push(last);
      }
      last.vector[invocation] = usn;
    }
    return out;
  }

  writeHorizon(kind: HorizonKind, vector: UtdVector): void {
    const s = this.sql();
    this.transaction(() => {
      s.clearHorizon.run(kind);
      for (const [invocation, usn] of Object.entries(vector) as Array<[InvocationId, Usn]>) {
        s.insertHorizon.run(kind, invocation, usn);
      }
    });
  }

  readUtd(): UtdVector {
    const utd: Record<InvocationId, Usn> = {};
    for (const [invocation, usn] of this.sql().readUtd.all()) utd[invocation] = usn;
    return utd;
  }

  writeUtd(utd: UtdVector, stored?: UtdVector): void {
    const s = this.sql();
    this.transaction(() => {
      if (stored === undefined) s.clearUtd.run();
      else {
        for (const invocation of Object.keys(stored) as InvocationId[]) {
          if (utd[invocation] === undefined) s.deleteUtd.run(invocation);
        }
      }
      for (const [invocation, usn] of Object.entries(utd) as Array<[InvocationId, Usn]>) {
        if (stored === undefined || stored[invocation] !== usn) s.upsertUtd.run(invocation, usn);
      }
    });
  }

  readWatermark(partner: NodeId): Watermark | undefined {
    const t = this.sql().readWatermark.get(partner);
    return t === undefined ? undefined : watermarkFromTuple(t);
  }

  writeWatermark(partner: NodeId, watermark: Watermark): void {
    const w = watermark;
    this.sql().writeWatermark.run(
      partner,
      w.invocation,
      w.objectUsn,
      w.propertyUsn,
      JSON.stringify(w.excluded ?? []),
    );
  }

  listWatermarks(): Array<{ partner: NodeId; watermark: Watermark }> {
    return this.sql()
      .listWatermarks.all()
      .map(([partner, ...t]) => ({ partner, watermark: watermarkFromTuple(t) }));
  }

  /** Ordered by node id. */
  readPeerReports(): PeerReport[] {
    return this.sql()
      .readPeerReports.all()
      .map((t) => ({
        node: t[0],
        invocation: t[1],
        utd: JSON.parse(t[2]) as UtdVector,
        usn: t[3],
        receivedAt: t[4],
      }));
  }

  writePeerReport(report: PeerReport): void {
    const r = report;
    this.sql().writePeerReport.run(r.node, r.invocation, JSON.stringify(r.utd), r.usn, r.receivedAt);
  }

  appendEvent(event: ReplicaEvent): void {
    const info = this.sql().appendEvent.run(event.time, event.kind, event.detail);
    // An indexed range delete of (usually) the one oldest event.
    this.sql().trimEvents.run(Number(info.lastInsertRowid) - eventsKeptMax);
  }

  listEvents(limit: number): ReplicaEvent[] {
    checkLimit(limit);
    return this.sql()
      .listEvents.all(limit)
      .map((t) => ({ time: t[0], kind: t[1], detail: t[2] }));
  }

  /** Inside a transaction the counts include its own uncommitted writes, like every read. */
  counts(): StoreCounts {
    const t = this.sql().counts.get();
    assert(t !== undefined, "the counters row is created with the schema and never deleted");
    return {
      entries: t[0] + this.pendingEntries,
      tombstones: t[1] + this.pendingTombstones,
      items: t[2] + this.pendingItems,
    };
  }

  /**
   * Counts the rows themselves, in time linear in the size of the store: a check for tests
   * and repair tools that `counts()`, which reads maintained totals, has not drifted.
   */
  recount(): StoreCounts {
    const t = this.sql().recount.get();
    assert(t !== undefined, "an aggregate query always returns a row");
    return { entries: t[0], tombstones: t[1], items: t[2] };
  }

  /** Closes the database. Closing twice is harmless; any other method afterwards throws. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private flushCounts(): void {
    const counted = this.pendingEntries !== 0 || this.pendingTombstones !== 0 || this.pendingItems !== 0;
    if (!counted && !this.nextIdMoved) return;
    this.statements.addCounts.run(
      this.pendingEntries,
      this.pendingTombstones,
      this.pendingItems,
      this.nextId,
    );
    this.clearPendingCounts();
    this.nextIdMoved = false;
  }

  private clearPendingCounts(): void {
    this.pendingEntries = 0;
    this.pendingTombstones = 0;
    this.pendingItems = 0;
  }

  /** The statements, once the buffered items are in (see BufferedItems). */
  private sql(): Statements {
    if (this.closed) throw closedError();
    if (this.buffered !== undefined) this.flushBufferedItems();
    // A reader's statement outside a transaction is a snapshot of its own.
    if (this.reader && !this.db.inTransaction) this.startSnapshot();
    return this.statements;
  }

  private database(): Database.Database {
    if (this.closed) throw closedError();
    return this.db;
  }
}

function closedError(): SqliteStoreError {
  return new SqliteStoreError("store-closed", "the store is closed");
}

function openDatabase(options: SqliteStoreOptions): Database.Database {
  if (options.snapshot === undefined) return new Database(options.path);
  if (options.path !== ":memory:") {
    throw new SqliteStoreError(
      "store-options",
      `a snapshot opens an in-memory database; path must be ":memory:", not ${JSON.stringify(options.path)}`,
    );
  }
  // better-sqlite3 copies the image into SQLite's own memory, so this copy is only patched.
  const image = Buffer.from(options.snapshot);
  markRollbackJournal(image);
  return new Database(image);
}

/** SQLite's codes for a file that is not a database, or one whose pages are damaged. */
const unreadableCodes: ReadonlySet<string> = new Set(["SQLITE_NOTADB", "SQLITE_CORRUPT"]);

/**
 * A file SQLite cannot read as a database (SQLite finds out at the first statement, not at
 * open) named, with what to do about it; any other error as it is.
 */
function unreadableStore(path: string, error: unknown): unknown {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string" || !unreadableCodes.has(code)) return error;
  return new SqliteStoreError(
    "store-unreadable",
    `${path} cannot be read as a Plexus store (SQLite: ${(error as Error).message}): restore the data directory from a backup (plexus restore), or move the file away to start with no data (the node then syncs from the others, or founds a new directory)`,
    { cause: error },
  );
}

/** A WAL-mode image cannot be opened in memory; bytes 18 and 19 of the header say which it is. */
function markRollbackJournal(image: Uint8Array): void {
  if (image.length <= headerFormatOffset + 1) return;
  image[headerFormatOffset] = 1;
  image[headerFormatOffset + 1] = 1;
}

function prepareDatabase(db: Database.Database, options: SqliteStoreOptions): void {
  // The version is checked before anything is written, so an unknown file is left untouched.
  const version = Number(db.pragma("user_version", { simple: true }));
  if (version !== 0 && !isReadableSchemaVersion(version)) {
    throw new SqliteStoreError(
      "store-version",
      `${options.path}: store schema version ${String(version)} is not supported by this build ` +
        `(it reads version ${sqliteSchemaVersion} and upgrades ${[...upgrades.keys()].join(", ")}); ` +
        "was the file written by a newer Plexus?",
    );
  }
  if (!db.memory) {
    db.pragma("journal_mode = WAL");
    db.pragma(`journal_size_limit = ${journalSizeLimitBytes}`);
    db.pragma(`wal_autocheckpoint = ${walAutocheckpointPages}`);
  }
  db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
  db.pragma("foreign_keys = OFF");
  db.pragma(`cache_size = ${-sqliteCacheSizeKib}`);
  if (version === 0) createSchema(db, options.path);
  else upgradeSchema(db, version);
}

/** Runs the upgrades from `version` up to this build's, each with its version change. */
function upgradeSchema(db: Database.Database, version: number): void {
  for (let from = version; from < sqliteSchemaVersion; from++) {
    const upgrade = upgrades.get(from);
    assert(upgrade !== undefined, `no upgrade from store schema version ${from}`);
    db.transaction(() => {
      db.exec(upgrade);
      db.pragma(`user_version = ${from + 1}`);
    }).immediate();
  }
}

function createSchema(db: Database.Database, path: string): void {
  const objects = db.prepare<[], number>("SELECT count(*) FROM sqlite_schema").pluck().get();
  if (objects !== 0) {
    throw new SqliteStoreError(
      "store-version",
      `${path}: the database has tables but no Plexus schema version; it is not a Plexus store`,
    );
  }
  db.transaction(() => {
    db.exec(schema);
    db.pragma(`user_version = ${sqliteSchemaVersion}`);
  }).immediate();
}
