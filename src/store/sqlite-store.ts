import Database from "better-sqlite3";
import { assert } from "../core/assert.ts";
import type { Guid, InvocationId, Millis, NodeId, Usn } from "../core/ids.ts";
import type { ItemValue } from "../core/replication/items.ts";
import type { Watermark } from "../core/replication/page.ts";
import type { UtdVector } from "../core/replication/utd.ts";
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

export type SqliteStoreErrorCode = "store-version" | "store-closed" | "store-options";

export class SqliteStoreError extends Error {
  readonly code: SqliteStoreErrorCode;

  constructor(code: SqliteStoreErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SqliteStoreError";
    this.code = code;
  }
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

/** Kept in `PRAGMA user_version`; a file with another version is refused, never guessed at. */
export const sqliteSchemaVersion = 2;
/** Page cache per connection, in KiB (SQLite reads a negative cache_size as KiB). */
const cacheSizeKib = 16_000;
/** The WAL file is truncated back to this size after a checkpoint, so it cannot stay huge. */
const journalSizeLimitBytes = 64 * 1024 * 1024;
/**
 * Pages the WAL may hold before a commit checkpoints it. SQLite's default (1000) is smaller
 * than one large transaction, so every big commit would also checkpoint (and fsync): at
 * 10,000 pages (about 40 MiB) checkpoints come once per many transactions.
 */
const walAutocheckpointPages = 10_000;
/** Statements prepared with a literal LIMIT (a bound LIMIT re-prepares on every run). */
const limitedStatementsMax = 64;
/** Offset of the two header bytes that say whether a database file uses WAL (2) or not (1). */
const headerFormatOffset = 18;

const schema = `
CREATE TABLE meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  node_id TEXT NOT NULL,
  invocation TEXT NOT NULL,
  usn INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  last_inbound_success INTEGER NOT NULL
) STRICT;

CREATE TABLE entries (
  guid TEXT PRIMARY KEY,
  partition TEXT NOT NULL,
  origin_invocation TEXT NOT NULL,
  origin_usn INTEGER NOT NULL,
  rdn TEXT NOT NULL,
  rdn_norm TEXT NOT NULL,
  parent TEXT,
  deleted INTEGER NOT NULL CHECK (deleted IN (0, 1)),
  tombstone_since INTEGER,
  parent_eff TEXT,
  placement TEXT NOT NULL CHECK (placement IN ('normal', 'orphan', 'cycle')),
  conflict INTEGER NOT NULL CHECK (conflict IN (0, 1)),
  usn_created INTEGER NOT NULL,
  usn_changed INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX entries_usn_changed ON entries (usn_changed);
CREATE INDEX entries_children ON entries (parent_eff, rdn_norm, guid) WHERE deleted = 0;
CREATE INDEX entries_claimants ON entries (parent, guid) WHERE deleted = 0;
CREATE INDEX entries_cycle_breakers ON entries (guid) WHERE deleted = 0 AND placement = 'cycle';
CREATE INDEX entries_conflicts ON entries (guid)
  WHERE deleted = 0 AND (conflict = 1 OR placement <> 'normal');
CREATE INDEX entries_tombstones ON entries (tombstone_since, guid) WHERE deleted = 1;
CREATE INDEX entries_roots ON entries (guid) WHERE parent IS NULL AND deleted = 0;

CREATE TABLE items (
  guid TEXT NOT NULL,
  attribute TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  version INTEGER NOT NULL,
  time INTEGER NOT NULL,
  invocation TEXT NOT NULL,
  usn INTEGER NOT NULL,
  local_usn INTEGER NOT NULL,
  PRIMARY KEY (guid, attribute, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE utd (invocation TEXT PRIMARY KEY, usn INTEGER NOT NULL) STRICT, WITHOUT ROWID;

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
CREATE TABLE counters (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  entries INTEGER NOT NULL,
  tombstones INTEGER NOT NULL,
  items INTEGER NOT NULL
) STRICT;
INSERT INTO counters (id, entries, tombstones, items) VALUES (1, 0, 0, 0);
`;

const entryColumns =
  "guid, partition, origin_invocation, origin_usn, rdn, rdn_norm, parent, deleted, tombstone_since, " +
  "parent_eff, placement, conflict, usn_created, usn_changed";
const entryUpdates =
  "partition = excluded.partition, origin_invocation = excluded.origin_invocation, " +
  "origin_usn = excluded.origin_usn, rdn = excluded.rdn, rdn_norm = excluded.rdn_norm, " +
  "parent = excluded.parent, deleted = excluded.deleted, tombstone_since = excluded.tombstone_since, " +
  "parent_eff = excluded.parent_eff, placement = excluded.placement, conflict = excluded.conflict, " +
  "usn_created = excluded.usn_created, usn_changed = excluded.usn_changed";
const itemColumns = "attribute, key, value, version, time, invocation, usn, local_usn";
const fromLiveChildren = "FROM entries INDEXED BY entries_children WHERE parent_eff = ? AND deleted = 0";

/**
 * Every SQL statement the store runs, by name. Exported so that a test can EXPLAIN each one.
 * `INDEXED BY` pins the partial indexes: the planner then cannot fall back to a scan, and
 * preparing fails loudly if an index ever stops matching its query.
 * Cursor queries take "" as the cursor for the first page: every guid sorts after "".
 */
export const sqliteStoreQueries = {
  readMeta: "SELECT node_id, invocation, usn, created_at, last_inbound_success FROM meta WHERE id = 1",
  writeMeta:
    "INSERT OR REPLACE INTO meta (id, node_id, invocation, usn, created_at, last_inbound_success) " +
    "VALUES (1, ?, ?, ?, ?, ?)",
  getEntry: `SELECT ${entryColumns} FROM entries WHERE guid = ?`,
  putEntry:
    `INSERT INTO entries (${entryColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ` +
    `ON CONFLICT (guid) DO UPDATE SET ${entryUpdates}`,
  insertEntry: `INSERT INTO entries (${entryColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  entryDeleted: "SELECT deleted FROM entries WHERE guid = ?",
  removeEntry: "DELETE FROM entries WHERE guid = ? RETURNING deleted",
  setUsnChanged: "UPDATE entries SET usn_changed = ? WHERE guid = ?",
  removeEntryItems: "DELETE FROM items WHERE guid = ?",
  findByName: `SELECT ${entryColumns} ${fromLiveChildren} AND rdn_norm = ? ORDER BY guid`,
  listChildren:
    `SELECT ${entryColumns} ${fromLiveChildren} AND (rdn_norm, guid) > (?, ?) ` +
    "ORDER BY rdn_norm, guid LIMIT ?",
  hasChildren: `SELECT 1 ${fromLiveChildren} LIMIT 1`,
  listClaimants:
    `SELECT ${entryColumns} FROM entries INDEXED BY entries_claimants ` +
    "WHERE parent = ? AND deleted = 0 AND guid > ? ORDER BY guid LIMIT ?",
  listCycleBreakers:
    `SELECT ${entryColumns} FROM entries INDEXED BY entries_cycle_breakers ` +
    "WHERE deleted = 0 AND placement = 'cycle' ORDER BY guid LIMIT ?",
  listConflicts:
    `SELECT ${entryColumns} FROM entries INDEXED BY entries_conflicts ` +
    "WHERE deleted = 0 AND (conflict = 1 OR placement <> 'normal') AND guid > ? ORDER BY guid LIMIT ?",
  entriesChangedAfter:
    `SELECT ${entryColumns} FROM entries INDEXED BY entries_usn_changed ` +
    "WHERE usn_changed > ? ORDER BY usn_changed LIMIT ?",
  listTombstonesFirst:
    `SELECT ${entryColumns} FROM entries INDEXED BY entries_tombstones ` +
    "WHERE deleted = 1 ORDER BY tombstone_since, guid LIMIT ?",
  listTombstonesAfter:
    `SELECT ${entryColumns} FROM entries INDEXED BY entries_tombstones ` +
    "WHERE deleted = 1 AND (tombstone_since, guid) > (?, ?) ORDER BY tombstone_since, guid LIMIT ?",
  listEntries: `SELECT ${entryColumns} FROM entries WHERE guid > ? ORDER BY guid LIMIT ?`,
  listRoots:
    `SELECT ${entryColumns} FROM entries INDEXED BY entries_roots ` +
    "WHERE parent IS NULL AND deleted = 0 ORDER BY guid",
  getItems: `SELECT ${itemColumns} FROM items WHERE guid = ? ORDER BY attribute, key`,
  getAttributeItems: `SELECT ${itemColumns} FROM items WHERE guid = ? AND attribute = ? ORDER BY key`,
  getItem: `SELECT ${itemColumns} FROM items WHERE guid = ? AND attribute = ? AND key = ?`,
  storedSizes:
    "SELECT attribute, sum(length(CAST(value AS BLOB))) FROM items " +
    "WHERE guid = ? AND attribute NOT IN ('@name', '@deleted') GROUP BY attribute ORDER BY attribute",
  // An item is inserted when new and updated in place otherwise; two statements rather than
  // an UPSERT because the item count must know which of the two happened.
  updateItem:
    "UPDATE items SET value = ?, version = ?, time = ?, invocation = ?, usn = ?, local_usn = ? " +
    "WHERE guid = ? AND attribute = ? AND key = ?",
  insertItem: `INSERT INTO items (guid, ${itemColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  // The kept attributes arrive as one JSON array so that a single prepared statement serves
  // any number of them.
  removeItemsExcept: "DELETE FROM items WHERE guid = ? AND attribute NOT IN (SELECT value FROM json_each(?))",
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
    "UPDATE counters SET entries = entries + ?, tombstones = tombstones + ?, items = items + ? WHERE id = 1",
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
  "SELECT (SELECT count(*) FROM entries WHERE deleted = 0), (SELECT count(*) FROM entries WHERE deleted = 1), " +
  "(SELECT count(*) FROM items)";

// Result rows are read in raw (array) mode: cheaper than objects keyed by column name. The
// tuple types restate the column lists above; the database only ever holds what the typed
// write statements put there, so the branded types are asserted here, at the boundary.
type EntryTuple = [
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
type ItemParams = [guid: Guid, ...ItemTuple];
type ItemUpdateParams = [
  value: string,
  version: number,
  time: Millis,
  invocation: InvocationId,
  usn: Usn,
  localUsn: Usn,
  guid: Guid,
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
    getEntry: db.prepare<[Guid], EntryTuple>(q.getEntry).raw(),
    insertEntry: db.prepare<EntryTuple>(q.insertEntry),
    putEntry: db.prepare<EntryTuple>(q.putEntry),
    entryDeleted: db.prepare<[Guid], 0 | 1>(q.entryDeleted).pluck(),
    removeEntry: db.prepare<[Guid], 0 | 1>(q.removeEntry).pluck(),
    setUsnChanged: db.prepare<[Usn, Guid]>(q.setUsnChanged),
    removeEntryItems: db.prepare<[Guid]>(q.removeEntryItems),
    findByName: db.prepare<[Guid, string], EntryTuple>(q.findByName).raw(),
    hasChildren: db.prepare<[Guid], number>(q.hasChildren).pluck(),
    listRoots: db.prepare<[], EntryTuple>(q.listRoots).raw(),
    getItems: db.prepare<[Guid], ItemTuple>(q.getItems).raw(),
    getAttributeItems: db.prepare<[Guid, string], ItemTuple>(q.getAttributeItems).raw(),
    getItem: db.prepare<[Guid, string, string], ItemTuple>(q.getItem).raw(),
    storedSizes: db.prepare<[Guid], [string, number]>(q.storedSizes).raw(),
    updateItem: db.prepare<ItemUpdateParams>(q.updateItem),
    insertItem: db.prepare<ItemParams>(q.insertItem),
    removeItemsExcept: db.prepare<[Guid, string]>(q.removeItemsExcept),
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
    addCounts: db.prepare<CountsTuple>(q.addCounts),
    recount: db.prepare<[], CountsTuple>(recountQuery).raw(),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

function entryFromTuple(t: EntryTuple): EntryRow {
  return {
    guid: t[0],
    partition: t[1],
    origin: { invocation: t[2], usn: t[3] },
    rdn: t[4],
    rdnNorm: t[5],
    parent: t[6],
    deleted: t[7] === 1,
    tombstoneSince: t[8],
    parentEff: t[9],
    placement: t[10],
    conflict: t[11] === 1,
    usnCreated: t[12],
    usnChanged: t[13],
  };
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

  private constructor(db: Database.Database) {
    this.db = db;
    this.statements = prepareStatements(db);
    this.outermost = db.transaction((fn: () => unknown) => {
      // Left over only if SQLite rolled an earlier transaction back on its own (disk full, I/O
      // error) while its function went on: those counts belong to rows that are gone.
      this.clearPendingCounts();
      const result = fn();
      this.flushCounts();
      return result;
    });
  }

  static open(options: SqliteStoreOptions): SqliteStore {
    const db = openDatabase(options);
    try {
      prepareDatabase(db, options);
      return new SqliteStore(db);
    } catch (error) {
      db.close();
      throw error;
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
      // better-sqlite3 commits when fn returns, and rolls back and rethrows when it throws.
      return this.outermost.immediate(fn) as T;
    } finally {
      this.clearPendingCounts();
    }
  }

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
    const t = this.sql().getEntry.get(guid);
    return t === undefined ? undefined : entryFromTuple(t);
  }

  putEntry(row: EntryRow): void {
    this.transaction(() => this.writeEntry(row));
  }

  setUsnChanged(guid: Guid, usnChanged: Usn): void {
    const changed = this.sql().setUsnChanged.run(usnChanged, guid).changes;
    assert(changed === 1, `setUsnChanged on an entry that does not exist: ${guid}`);
  }

  /** Insert first (a new entry costs one statement); replace when the guid is taken. */
  private writeEntry(row: EntryRow): void {
    const s = this.statements;
    const tuple: EntryTuple = [
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
    if (s.insertEntry.run(...tuple).changes === 0) {
      const before = s.entryDeleted.get(row.guid);
      s.putEntry.run(...tuple);
      if (before !== undefined) this.countEntry(before, -1);
    }
    this.countEntry(row.deleted ? 1 : 0, 1);
  }

  private countEntry(deleted: 0 | 1, delta: number): void {
    if (deleted === 1) this.pendingTombstones += delta;
    else this.pendingEntries += delta;
  }

  removeEntry(guid: Guid): void {
    const s = this.sql();
    this.transaction(() => {
      this.pendingItems -= s.removeEntryItems.run(guid).changes;
      const deleted = s.removeEntry.get(guid);
      if (deleted !== undefined) this.countEntry(deleted, -1);
    });
  }

  findByName(parent: Guid, rdnNorm: string): EntryRow[] {
    return this.sql().findByName.all(parent, rdnNorm).map(entryFromTuple);
  }

  /**
   * Runs a list query with its limit written into the SQL. A bound `LIMIT ?` costs a
   * re-prepare on every run (several microseconds, measured), so each distinct limit gets its
   * own prepared statement; limits are few in practice, and the cache is bounded anyway.
   */
  private listed(query: LimitedQuery, limit: number, ...parameters: unknown[]): EntryRow[] {
    checkLimit(limit);
    const key = `${query}:${limit}`;
    let statement = this.limitedStatements.get(key);
    if (statement === undefined) {
      if (this.limitedStatements.size >= limitedStatementsMax) this.limitedStatements.clear();
      const sql = sqliteStoreQueries[query].replace(/LIMIT \?$/, `LIMIT ${limit}`);
      statement = this.database().prepare<unknown[], EntryTuple>(sql).raw();
      this.limitedStatements.set(key, statement);
    }
    return statement.all(...parameters).map(entryFromTuple);
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
    return this.sql().listRoots.all().map(entryFromTuple);
  }

  getItems(guid: Guid): ItemRow[] {
    return this.sql()
      .getItems.all(guid)
      .map((t) => itemFromTuple(guid, t));
  }

  getAttributeItems(guid: Guid, attribute: string): ItemRow[] {
    return this.sql()
      .getAttributeItems.all(guid, attribute)
      .map((t) => itemFromTuple(guid, t));
  }

  getItem(guid: Guid, attribute: string, key: string): ItemRow | undefined {
    const t = this.sql().getItem.get(guid, attribute, key);
    return t === undefined ? undefined : itemFromTuple(guid, t);
  }

  storedSizes(guid: Guid): StoredSize[] {
    return this.sql()
      .storedSizes.all(guid)
      .map(([attribute, bytes]) => ({ attribute, bytes }));
  }

  putItem(row: ItemRow): void {
    this.transaction(() => this.writeItem(row));
  }

  replaceItem(row: ItemRow): void {
    const s = this.sql();
    const { version, time, invocation, usn } = row.stamp;
    const value = JSON.stringify(row.value);
    const updated = s.updateItem.run(
      value,
      version,
      time,
      invocation,
      usn,
      row.localUsn,
      row.guid,
      row.attribute,
      row.key,
    );
    assert(updated.changes === 1, `replaceItem on an item that does not exist: ${row.guid} ${row.attribute}`);
  }

  /** Insert first: most written items are new (adds, replicated entries), and then one statement does. */
  private writeItem(row: ItemRow): void {
    const s = this.statements;
    const value = JSON.stringify(row.value);
    const { version, time, invocation, usn } = row.stamp;
    const inserted = s.insertItem.run(
      row.guid,
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
    s.updateItem.run(value, version, time, invocation, usn, row.localUsn, row.guid, row.attribute, row.key);
  }

  removeItemsExcept(guid: Guid, keep: readonly string[]): void {
    const s = this.sql();
    this.transaction(() => {
      this.pendingItems -= s.removeItemsExcept.run(guid, JSON.stringify(keep)).changes;
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
    if (this.pendingEntries === 0 && this.pendingTombstones === 0 && this.pendingItems === 0) return;
    this.statements.addCounts.run(this.pendingEntries, this.pendingTombstones, this.pendingItems);
    this.clearPendingCounts();
  }

  private clearPendingCounts(): void {
    this.pendingEntries = 0;
    this.pendingTombstones = 0;
    this.pendingItems = 0;
  }

  private sql(): Statements {
    if (this.closed) throw closedError();
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

/** A WAL-mode image cannot be opened in memory; bytes 18 and 19 of the header say which it is. */
function markRollbackJournal(image: Uint8Array): void {
  if (image.length <= headerFormatOffset + 1) return;
  image[headerFormatOffset] = 1;
  image[headerFormatOffset + 1] = 1;
}

function prepareDatabase(db: Database.Database, options: SqliteStoreOptions): void {
  // The version is checked before anything is written, so an unknown file is left untouched.
  const version = db.pragma("user_version", { simple: true });
  if (version !== 0 && version !== sqliteSchemaVersion) {
    throw new SqliteStoreError(
      "store-version",
      `${options.path}: store schema version ${String(version)} is not supported by this build ` +
        `(it reads version ${sqliteSchemaVersion}); was the file written by a newer Plexus?`,
    );
  }
  if (!db.memory) {
    db.pragma("journal_mode = WAL");
    db.pragma(`journal_size_limit = ${journalSizeLimitBytes}`);
    db.pragma(`wal_autocheckpoint = ${walAutocheckpointPages}`);
  }
  db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
  db.pragma("foreign_keys = OFF");
  db.pragma(`cache_size = ${-cacheSizeKib}`);
  if (version === 0) createSchema(db, options.path);
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
