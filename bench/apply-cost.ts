/**
 * What one replicated entry costs each replica, measured in this process on one thread, beside
 * the floor under it (part (b) of `npm run bench`):
 *   - serve: the source builds the page a partner pulls (core readPageFrom on a read-only
 *     connection, as the page worker does) and turns it into the bytes of the wire;
 *   - apply: the partner parses that page, decodes it and applies it (core applyChanges) in one
 *     transaction with synchronous=FULL, as a node does with a pulled page;
 *   - floor: the very rows the apply stored (each entry's row, its items, its GUID mapping),
 *     inserted again into a fresh store file by bare INSERT statements, a page per transaction
 *     with synchronous=FULL: no parsing, checks, merging or bookkeeping — what any code on
 *     this schema pays to store the entry;
 *   - the wire's floor: the source's rows of each page read by bare SELECT statements (what
 *     any code pays to serve them) and turned into JSON text, and the pages the partner
 *     receives parsed by JSON.parse, with nothing else done to them.
 * With partners, every write is served and applied once per partner on the same cores as the
 * writer, so these figures say how much of the replication tax is the schema's and how much
 * is Plexus's code.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { assert } from "../src/core/assert.ts";
import { type InvocationId, type Millis, nodeId, type Usn } from "../src/core/ids.ts";
import { Replica, readPageFrom } from "../src/core/replica/replica.ts";
import type { ChangeRequest, Watermark } from "../src/core/replication/page.ts";
import { unwrap } from "../src/core/result.ts";
import { pageMessageBytes } from "../src/runtime/page-builder.ts";
import { decodePage } from "../src/runtime/page-wire.ts";
import { SeededRandom } from "../src/sim/ports.ts";
import { SqliteStore, sqliteCacheSizeKib } from "../src/store/sqlite-store.ts";
import { benchPartition, userEntry } from "./server-load.ts";

/** Entries per page: the shipped page limit (core/node/machine.ts pageLimits.entriesMax). */
const pageEntries = 500;
const pageBytesMax = 1024 * 1024;
/** Writes per transaction while the source is filled (not measured). */
const fillBatch = 100;
/** Rows per INSERT of the floor: the store's own bound on one multi-row insert of items. */
const floorRowsPerInsert = 32;

export interface ApplyCost {
  readonly entries: number;
  readonly pages: number;
  /** CPU microseconds per entry (process.cpuUsage, this process's threads). */
  readonly serveUsPerEntry: number;
  readonly applyUsPerEntry: number;
  readonly floorUsPerEntry: number;
  /** Bare SELECT of each page's rows at the source, JSON.stringify of them, JSON.parse of the wire pages. */
  readonly readFloorUsPerEntry: number;
  readonly encodeFloorUsPerEntry: number;
  readonly parseFloorUsPerEntry: number;
}

function cpuUs(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/** Measures serve, apply and floor for `entries` bench users; the files live in a scratch directory. */
export function measureApplyCost(entries: number): ApplyCost {
  const directory = mkdtempSync(join(tmpdir(), "plexus-bench-apply-"));
  try {
    const sourcePath = join(directory, "source.db");
    fillSource(sourcePath, entries);
    // Each part runs twice and the second run counts: the first one warms the code up (the
    // optimising compiler), as a node's first pages do.
    servePages(sourcePath);
    const { bodies, serveUs } = servePages(sourcePath);
    applyPages(join(directory, "warm-up.db"), bodies);
    const destinationPath = join(directory, "destination.db");
    const applyUs = applyPages(destinationPath, bodies);
    storeRowsAgain(destinationPath, join(directory, "floor-warm-up.db"));
    const floorUs = storeRowsAgain(destinationPath, join(directory, "floor.db"));
    readAndEncodeRows(sourcePath);
    const wire = readAndEncodeRows(sourcePath);
    parseBodies(bodies);
    const parseUs = parseBodies(bodies);
    return {
      entries,
      pages: bodies.length,
      serveUsPerEntry: serveUs / entries,
      applyUsPerEntry: applyUs / entries,
      floorUsPerEntry: floorUs / entries,
      readFloorUsPerEntry: wire.readUs / entries,
      encodeFloorUsPerEntry: wire.encodeUs / entries,
      parseFloorUsPerEntry: parseUs / entries,
    };
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

const clock = { now: () => Date.now() as Millis };

function fillSource(path: string, entries: number): void {
  const store = SqliteStore.open({ path, synchronous: "normal" });
  try {
    const source = Replica.create(store, { clock, random: new SeededRandom(1) }, nodeId("source"));
    unwrap(source.createPartition(benchPartition));
    for (let first = 0; first < entries; first += fillBatch) {
      const count = Math.min(fillBatch, entries - first);
      const requests = Array.from({ length: count }, (_, offset) => {
        const user = userEntry(`apply-${first + offset}`);
        return { op: "add" as const, dn: user.dn, attributes: user.attributes };
      });
      for (const outcome of source.write(requests)) unwrap(outcome);
    }
  } finally {
    store.close();
  }
}

/** The pages a fresh partner pulls, as the bytes the source sends (compact encoding, no gzip). */
function servePages(path: string): { bodies: string[]; serveUs: number } {
  const reader = SqliteStore.openReader(path);
  try {
    const bodies: string[] = [];
    const decoder = new TextDecoder();
    let from: Watermark = { invocation: null, objectUsn: 0 as Usn, propertyUsn: 0 as Usn };
    let serveUs = 0;
    for (;;) {
      const request: ChangeRequest = {
        destination: nodeId("partner"),
        destinationInvocation: "0".repeat(32) as InvocationId,
        from,
        utd: {},
        purgeHorizon: {},
        limits: { entriesMax: pageEntries, bytesMax: pageBytesMax },
      };
      const started = cpuUs();
      const page = unwrap(readPageFrom(reader, request));
      const bytes = pageMessageBytes(bodies.length + 1, page, true);
      serveUs += cpuUs() - started;
      bodies.push(decoder.decode(bytes));
      if (!page.more) break;
      from = { invocation: page.sourceInvocation, objectUsn: page.highUsn, propertyUsn: from.propertyUsn };
    }
    return { bodies, serveUs };
  } finally {
    reader.close();
  }
}

function applyPages(path: string, bodies: readonly string[]): number {
  const store = SqliteStore.open({ path, synchronous: "full" });
  try {
    const partner = Replica.create(store, { clock, random: new SeededRandom(2) }, nodeId("partner"));
    const started = cpuUs();
    for (const body of bodies) {
      const message = JSON.parse(body) as { page: unknown };
      unwrap(partner.applyChanges(unwrap(decodePage(message.page))));
    }
    return cpuUs() - started;
  } finally {
    store.close();
  }
}

/**
 * Reads the source's entries a page at a time in usnChanged order — each entry's row, then its
 * items — by bare prepared SELECT statements, and stringifies each page's rows: the least any
 * code pays to serve a page of these entries from this schema as JSON.
 */
function readAndEncodeRows(path: string): { readUs: number; encodeUs: number } {
  const database = new Database(path, { readonly: true });
  try {
    const readPage = bareRowReader(database);
    const usnChangedAt = entryRowColumns.indexOf("usn_changed");
    let readUs = 0;
    let encodeUs = 0;
    let after = 0;
    for (;;) {
      let started = cpuUs();
      const page = readPage(after, pageEntries);
      readUs += cpuUs() - started;
      if (page.length === 0) break;
      started = cpuUs();
      JSON.stringify(page);
      encodeUs += cpuUs() - started;
      after = page[page.length - 1]?.[0][usnChangedAt] as number;
    }
    return { readUs, encodeUs };
  } finally {
    database.close();
  }
}

/** One entry's own row and its item rows, as bare SELECTs read them (raw arrays). */
export type EntryRows = [Row, Row[]];

/**
 * Reads up to `limit` entries changed after USN `after`, in usnChanged order — each entry's row,
 * then its items — by bare prepared SELECT statements.
 */
export function bareRowReader(database: Database.Database): (after: number, limit: number) => EntryRows[] {
  const entryRows = database
    .prepare(
      `SELECT ${entryRowColumns.join(", ")} FROM objects INDEXED BY objects_usn_changed ` +
        "WHERE attribute = '' AND usn_changed > ? ORDER BY usn_changed LIMIT ?",
    )
    .raw();
  const itemRows = database
    .prepare(`SELECT ${itemRowColumns.join(", ")} FROM objects WHERE id = ? AND attribute > ''`)
    .raw();
  return (after, limit) =>
    (entryRows.all(after, limit) as Row[]).map((row) => [row, itemRows.all(row[0]) as Row[]]);
}

/** JSON.parse of every page as the partner receives it, and nothing else. */
function parseBodies(bodies: readonly string[]): number {
  const started = cpuUs();
  for (const body of bodies) JSON.parse(body);
  return cpuUs() - started;
}

export type Row = unknown[];

/** The columns an entry's own row holds (its item columns are NULL), as the store inserts it. */
export const entryRowColumns = [
  "id",
  "attribute",
  "key",
  "guid",
  "partition",
  "origin_invocation",
  "origin_usn",
  "rdn",
  "rdn_norm",
  "parent",
  "deleted",
  "tombstone_since",
  "parent_eff",
  "placement",
  "conflict",
  "usn_created",
  "usn_changed",
];
const guidColumn = entryRowColumns.indexOf("guid");

/** The columns an item row holds (its entry columns are NULL). */
export const itemRowColumns = [
  "id",
  "attribute",
  "key",
  "value",
  "version",
  "time",
  "invocation",
  "usn",
  "local_usn",
];

interface FloorEntry {
  readonly id: number;
  readonly guid: string;
  /** The entry's own row, in entryRowColumns order. */
  readonly entryRow: Row;
  /** Its item rows, each in itemRowColumns order. */
  readonly itemRows: Row[];
}

/**
 * Inserts `from`'s user entries (their objects and guids rows) into a fresh store file, a page
 * per transaction, binding each row's own columns only, as the store's statements do.
 */
function storeRowsAgain(from: string, to: string): number {
  SqliteStore.open({ path: to, synchronous: "full" }).close();
  const source = new Database(from, { readonly: true });
  const floor = new Database(to);
  try {
    floor.pragma("journal_mode = WAL");
    floor.pragma("synchronous = FULL");
    floor.pragma(`cache_size = ${-sqliteCacheSizeKib}`);
    const entries = entriesOf(source);
    const storeEntry = bareRowInserter(floor, "INSERT");
    const storePage = floor.transaction((page: readonly FloorEntry[]) => {
      for (const entry of page) storeEntry(entry.entryRow, entry.itemRows);
    });
    const started = cpuUs();
    for (let first = 0; first < entries.length; first += pageEntries)
      storePage(entries.slice(first, first + pageEntries));
    return cpuUs() - started;
  } finally {
    source.close();
    floor.close();
  }
}

/** `INSERT INTO objects (columns) VALUES (…), …` with `rows` rows. */
function insertQuery(verb: InsertVerb, columns: readonly string[], rows: number): string {
  const row = `(${columns.map(() => "?").join(", ")})`;
  return `${verb} INTO objects (${columns.join(", ")}) VALUES ${Array.from({ length: rows }, () => row).join(", ")}`;
}

type InsertVerb = "INSERT" | "INSERT OR REPLACE";

/**
 * Stores one entry's rows by bare statements (call it inside a transaction): its own row
 * (entryRowColumns), its item rows (itemRowColumns) in multi-row INSERTs of up to
 * floorRowsPerInsert rows, and its GUID row. Binds each row's own columns only, as the store does.
 */
export function bareRowInserter(
  database: Database.Database,
  verb: InsertVerb,
): (entryRow: Row, itemRows: readonly Row[]) => void {
  const insertEntryRow = database.prepare(insertQuery(verb, entryRowColumns, 1));
  const itemInserts = new Map<number, Database.Statement<unknown[]>>();
  const insertItemRows = (count: number): Database.Statement<unknown[]> => {
    let statement = itemInserts.get(count);
    if (statement === undefined) {
      statement = database.prepare(insertQuery(verb, itemRowColumns, count));
      itemInserts.set(count, statement);
    }
    return statement;
  };
  const insertGuid = database.prepare(`${verb} INTO guids (guid, id) VALUES (?, ?)`);
  return (entryRow, itemRows) => {
    insertEntryRow.run(entryRow);
    for (let first = 0; first < itemRows.length; first += floorRowsPerInsert) {
      const rows = itemRows.slice(first, first + floorRowsPerInsert);
      insertItemRows(rows.length).run(rows.flat());
    }
    insertGuid.run(entryRow[guidColumn], entryRow[0]);
  };
}

/** The user entries `database` holds (not the partition's own), in id order. */
function entriesOf(database: Database.Database): FloorEntry[] {
  const guids = new Map<number, string>();
  for (const [guid, id] of database.prepare("SELECT guid, id FROM guids").raw().all() as [string, number][])
    guids.set(id, guid);
  const entryRows = database
    .prepare(
      `SELECT ${entryRowColumns.join(", ")} FROM objects WHERE attribute = '' AND rdn LIKE 'uid=%' ORDER BY id`,
    )
    .raw()
    .all() as Row[];
  const items = new Map<number, Row[]>();
  const itemSelect = database.prepare(
    `SELECT ${itemRowColumns.join(", ")} FROM objects WHERE attribute > '' ORDER BY id, attribute, key`,
  );
  for (const row of itemSelect.raw().all() as Row[]) {
    const id = row[0] as number;
    const rows = items.get(id) ?? [];
    rows.push(row);
    items.set(id, rows);
  }
  return entryRows.map((entryRow) => {
    const id = entryRow[0] as number;
    const guid = guids.get(id);
    assert(guid !== undefined, `entry ${id} has a guids row`);
    return { id, guid, entryRow, itemRows: items.get(id) ?? [] };
  });
}
