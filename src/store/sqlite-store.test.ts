import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import fc from "fast-check";
import { unreachable } from "../core/assert.ts";
import type { Millis, Usn } from "../core/ids.ts";
import {
  SqliteStore,
  type SqliteStoreOptions,
  sqliteSchemaVersion,
  sqliteStoreQueries,
} from "./sqlite-store.ts";
import { dumpStore, entryOf, guidOf, itemOf, populateStore, runStoreContract } from "./store-contract.ts";

function makeTempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "plexus-store-"));
}

function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Runs `body` with a path for a database file in a fresh directory, removed afterwards. */
function withTempFile(body: (file: string) => void): void {
  const dir = makeTempDir();
  try {
    body(path.join(dir, "replica.db"));
  } finally {
    removeDir(dir);
  }
}

function withStore(options: SqliteStoreOptions, body: (store: SqliteStore) => void): void {
  const store = SqliteStore.open(options);
  try {
    body(store);
  } finally {
    store.close();
  }
}

runStoreContract("SqliteStore on a file", () => {
  const dir = makeTempDir();
  const file = path.join(dir, "replica.db");
  return {
    store: SqliteStore.open({ path: file }),
    reopen: () => SqliteStore.open({ path: file }),
    cleanup: () => removeDir(dir),
  };
});

runStoreContract("SqliteStore in memory", () => ({
  store: SqliteStore.open({ path: ":memory:" }),
  cleanup: () => undefined,
}));

runStoreContract("SqliteStore restored from a snapshot of a file store", () => {
  let image: Uint8Array = new Uint8Array();
  withTempFile((file) => withStore({ path: file }, (source) => (image = source.serialize())));
  return { store: SqliteStore.open({ path: ":memory:", snapshot: image }), cleanup: () => undefined };
});

/** Tables whose full scan would make a query O(n) in the directory size. */
const largeTables = /\b(objects|guids)\b/;
/** Scans that are bounded anyway: a partial index holds only the rows the query wants. */
const boundedScan = /^SCAN objects USING (COVERING )?INDEX objects_(cycle_breakers|tombstones|roots)\b/;

const expectedIndexes: Partial<Record<keyof typeof sqliteStoreQueries, string>> = {
  findByName: "objects_children",
  listChildren: "objects_children",
  hasChildren: "objects_children",
  listClaimants: "objects_claimants",
  listCycleBreakers: "objects_cycle_breakers",
  listConflicts: "objects_conflicts",
  entriesChangedAfter: "objects_usn_changed",
  listTombstonesFirst: "objects_tombstones",
  listTombstonesAfter: "objects_tombstones",
  listRoots: "objects_roots",
};

function queryPlan(db: Database.Database, sql: string): string[] {
  const parameters = sql.split("?").length - 1;
  const plan = db.prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`);
  return plan.all(...new Array<null>(parameters).fill(null)).map((row) => row.detail);
}

describe("SqliteStore on SQLite", () => {
  it("serves every query on entries and items from an index", () => {
    withTempFile((file) => {
      withStore({ path: file }, populateStore);
      const db = new Database(file, { readonly: true });
      try {
        for (const [name, sql] of Object.entries(sqliteStoreQueries)) {
          if (!largeTables.test(sql)) continue;
          const plan = queryPlan(db, sql);
          for (const step of plan) {
            const scansLargeTable = /^SCAN (objects|guids|[og])\b/.test(step) && !boundedScan.test(step);
            assert.ok(!scansLargeTable, `${name} scans a table: ${plan.join(" | ")}`);
            assert.ok(
              !step.includes("TEMP B-TREE"),
              `${name} sorts in a temporary b-tree: ${plan.join(" | ")}`,
            );
          }
          const index = expectedIndexes[name as keyof typeof sqliteStoreQueries];
          if (index !== undefined) assert.match(plan.join(" | "), new RegExp(`INDEX ${index}\\b`), name);
        }
      } finally {
        db.close();
      }
    });
  });

  it("uses WAL and synchronous FULL on files by default, NORMAL when asked", () => {
    withTempFile((file) => {
      withStore({ path: file }, (store) => {
        const settings = store.connectionSettings();
        assert.equal(settings.journalMode, "wal");
        assert.equal(settings.synchronous, "full");
        assert.equal(settings.cacheSize, -16_000);
        assert.equal(settings.schemaVersion, sqliteSchemaVersion);
      });
      withStore({ path: file, synchronous: "normal" }, (store) => {
        assert.equal(store.connectionSettings().synchronous, "normal");
      });
    });
    withStore({ path: ":memory:" }, (store) => {
      assert.equal(store.connectionSettings().journalMode, "memory");
      assert.equal(store.connectionSettings().synchronous, "full");
    });
  });

  it("refuses a database with a newer schema version and leaves it untouched", () => {
    withTempFile((file) => {
      SqliteStore.open({ path: file }).close();
      const db = new Database(file);
      db.pragma(`user_version = ${sqliteSchemaVersion + 1}`);
      db.pragma("journal_mode = DELETE");
      db.close();
      assert.throws(
        () => SqliteStore.open({ path: file }),
        (error: unknown) =>
          error instanceof Error &&
          (error as { code?: unknown }).code === "store-version" &&
          error.message.includes(`version ${sqliteSchemaVersion + 1}`),
      );
      const after = new Database(file, { readonly: true });
      assert.equal(after.pragma("journal_mode", { simple: true }), "delete");
      after.close();
    });
  });

  it("a reader sees what the writer committed, one snapshot per transaction, and cannot write", () => {
    withTempFile((file) => {
      const writer = SqliteStore.open({ path: file });
      writer.putEntry(entryOf(1));
      writer.putItem(itemOf(guidOf(1), "cn", "a", { kind: "values", type: "cn", values: ["a"] }, 3));
      const reader = SqliteStore.openReader(file);
      try {
        assert.deepEqual(reader.getEntry(guidOf(1)), writer.getEntry(guidOf(1)));
        assert.deepEqual(reader.heldStamps(), writer.heldStamps());
        // Inside one reader transaction, commits made meanwhile stay out of sight.
        reader.transaction(() => {
          assert.equal(reader.getEntry(guidOf(2)), undefined);
          writer.putEntry(entryOf(2));
          writer.putItem(itemOf(guidOf(2), "cn", "b", { kind: "values", type: "cn", values: ["b"] }, 9));
          assert.equal(reader.getEntry(guidOf(2)), undefined, "the snapshot is kept");
          assert.deepEqual(reader.getItems(guidOf(2)), []);
        });
        // The next one sees them, held stamps included (a reader re-reads them per snapshot).
        reader.transaction(() => {
          assert.deepEqual(reader.getEntry(guidOf(2)), writer.getEntry(guidOf(2)));
          assert.deepEqual(reader.getItems(guidOf(2)), writer.getItems(guidOf(2)));
          assert.deepEqual(reader.heldStamps(), writer.heldStamps());
        });
        // An entry removed and stored again has a new local id: the reader finds the new rows.
        writer.removeEntry(guidOf(1));
        assert.deepEqual(reader.getItems(guidOf(1)), []);
        writer.putEntry(entryOf(1, { rdn: "cn=again", rdnNorm: "cn=again" }));
        writer.putItem(
          itemOf(guidOf(1), "cn", "again", { kind: "values", type: "cn", values: ["again"] }, 12),
        );
        assert.equal(reader.getEntry(guidOf(1))?.rdn, "cn=again");
        assert.deepEqual(reader.getItems(guidOf(1)), writer.getItems(guidOf(1)));
        assert.throws(() => reader.putEntry(entryOf(3)), /readonly/);
        assert.equal(writer.getEntry(guidOf(3)), undefined);
      } finally {
        reader.close();
        writer.close();
      }
    });
  });

  it("a reader opens only an existing store of this build's schema version", () => {
    withTempFile((file) => {
      assert.throws(() => SqliteStore.openReader(file), /unable to open|no such file/i);
      assert.equal(fs.existsSync(file), false, "nothing was created");
      SqliteStore.open({ path: file }).close();
      const db = new Database(file);
      db.pragma(`user_version = ${sqliteSchemaVersion - 1}`);
      db.close();
      assert.throws(
        () => SqliteStore.openReader(file),
        (error: unknown) => (error as { code?: unknown }).code === "store-version",
      );
    });
  });

  it("keeps the held stamps across a reopen, and upgrades a version-3 file by computing them", () => {
    withTempFile((file) => {
      const store = SqliteStore.open({ path: file });
      populateStore(store);
      const held = store.heldStamps();
      assert.ok(Object.keys(held).length > 0);
      for (const item of dumpStore(store).items) {
        assert.ok((held[item.stamp.invocation] ?? 0) >= item.stamp.usn, "held bounds every stored item");
      }
      store.close();
      withStore({ path: file }, (reopened) => assert.deepEqual(reopened.heldStamps(), held));
      // What a version-3 file looks like: no held table.
      const db = new Database(file);
      db.exec("DROP TABLE held");
      db.pragma("user_version = 3");
      db.close();
      withStore({ path: file }, (upgraded) => {
        assert.equal(upgraded.connectionSettings().schemaVersion, sqliteSchemaVersion);
        const computed = upgraded.heldStamps();
        for (const item of dumpStore(upgraded).items) {
          assert.ok((computed[item.stamp.invocation] ?? 0) >= item.stamp.usn);
        }
        // Computed from the items alone: the highest stamp of each invocation that has one.
        const highest: Record<string, number> = {};
        for (const item of dumpStore(upgraded).items) {
          highest[item.stamp.invocation] = Math.max(highest[item.stamp.invocation] ?? 0, item.stamp.usn);
        }
        assert.deepEqual(computed, highest);
      });
    });
  });

  it("refuses a database that has tables but no schema version", () => {
    withTempFile((file) => {
      const db = new Database(file);
      db.exec("CREATE TABLE something_else (x INTEGER)");
      db.close();
      assert.throws(() => SqliteStore.open({ path: file }), { code: "store-version" });
    });
  });

  it("names a file that is not a database, and what to do, instead of SQLite's bare message", () => {
    withTempFile((file) => {
      fs.writeFileSync(file, `not a database${"\u0000".repeat(200)}`);
      assert.throws(
        () => SqliteStore.open({ path: file }),
        (error: Error & { code?: unknown }) =>
          error.code === "store-unreadable" &&
          error.message.startsWith(`${file} cannot be read as a Plexus store`) &&
          error.message.includes("plexus restore"),
      );
    });
  });

  it("throws on a duplicate usnChanged and rolls the transaction back", () => {
    withStore({ path: ":memory:" }, (store) => {
      store.putEntry(entryOf(1, { usnChanged: 10 as Usn }));
      assert.throws(() => store.putEntry(entryOf(2, { usnChanged: 10 as Usn })), /UNIQUE/);
      assert.throws(
        () =>
          store.transaction(() => {
            store.putEntry(entryOf(3, { usnChanged: 11 as Usn }));
            store.putEntry(entryOf(4, { usnChanged: 10 as Usn }));
          }),
        /UNIQUE/,
      );
      assert.deepEqual(
        store.listEntries(null, 10).map((row) => row.guid),
        [guidOf(1)],
      );
      assert.deepEqual(store.counts(), { entries: 1, tombstones: 0, items: 0 });
    });
  });

  it("restores a snapshot to the same state, independent of the original", () => {
    withTempFile((file) => {
      withStore({ path: file }, (original) => {
        populateStore(original);
        const before = dumpStore(original);
        withStore({ path: ":memory:", snapshot: original.serialize() }, (copy) => {
          assert.deepEqual(dumpStore(copy), before);
          copy.putEntry(entryOf(70, { usnChanged: 70 as Usn }));
          copy.removeEntry(guidOf(2));
          assert.deepEqual(dumpStore(original), before);
          const again = copy.serialize();
          withStore({ path: ":memory:", snapshot: again }, (second) => {
            assert.deepEqual(dumpStore(second), dumpStore(copy));
          });
        });
      });
    });
  });

  it("opens a snapshot only in memory", () => {
    const image = new Uint8Array();
    assert.throws(() => SqliteStore.open({ path: "/tmp/never-created.db", snapshot: image }), {
      code: "store-options",
    });
  });

  it("throws store-closed after close, and closing twice is harmless", () => {
    const store = SqliteStore.open({ path: ":memory:" });
    store.close();
    store.close();
    assert.throws(() => store.getEntry(guidOf(1)), { code: "store-closed" });
    assert.throws(() => store.transaction(() => 1), { code: "store-closed" });
    assert.throws(() => store.counts(), { code: "store-closed" });
  });

  it("rejects a negative or fractional list limit instead of listing everything", () => {
    withStore({ path: ":memory:" }, (store) => {
      assert.throws(() => store.listEntries(null, -1), { code: "assertion-failed" });
      assert.throws(() => store.listEvents(1.5), { code: "assertion-failed" });
    });
  });

  it("keeps counts consistent with the rows after a rollback inside a caught nested failure", () => {
    withStore({ path: ":memory:" }, (store) => {
      store.transaction(() => {
        store.putEntry(entryOf(1, { deleted: true, tombstoneSince: 1 as Millis }));
        assert.throws(() => store.putEntry(entryOf(2, { usnChanged: 1 as Usn })), /UNIQUE/);
      });
      assert.deepEqual(store.counts(), { entries: 0, tombstones: 1, items: 0 });
    });
  });

  it("keeps the maintained counts equal to a recount through any mix of writes and rollbacks", () => {
    fc.assert(
      fc.property(fc.array(countGroupArbitrary, { maxLength: 12 }), (groups) => {
        withStore({ path: ":memory:" }, (store) => {
          let usnChanged = 0;
          for (const group of groups) {
            const failure = new Error("planted rollback");
            try {
              store.transaction(() => {
                for (const op of group.ops) applyCountOp(store, op, ++usnChanged);
                if (group.rollBack) throw failure;
              });
            } catch (error) {
              if (error !== failure) throw error;
            }
            assert.deepEqual(store.counts(), store.recount());
          }
        });
      }),
      { numRuns: 100 },
    );
  });
});

type CountOp =
  | { kind: "entry"; n: number; deleted: boolean }
  | { kind: "remove"; n: number }
  | { kind: "item"; n: number; attribute: string; key: string }
  | { kind: "keep"; n: number; keep: string[] };

const countAttributes = ["cn", "sn", "member"];
const countGuid = fc.integer({ min: 1, max: 6 });
const countOpArbitrary: fc.Arbitrary<CountOp> = fc.oneof(
  fc.record({ kind: fc.constant("entry" as const), n: countGuid, deleted: fc.boolean() }),
  fc.record({ kind: fc.constant("remove" as const), n: countGuid }),
  fc.record({
    kind: fc.constant("item" as const),
    n: countGuid,
    attribute: fc.constantFrom(...countAttributes),
    key: fc.constantFrom("", "k1", "k2"),
  }),
  fc.record({
    kind: fc.constant("keep" as const),
    n: countGuid,
    keep: fc.subarray(countAttributes),
  }),
);
const countGroupArbitrary = fc.record({
  ops: fc.array(countOpArbitrary, { maxLength: 10 }),
  rollBack: fc.boolean(),
});

function applyCountOp(store: SqliteStore, op: CountOp, usnChanged: number): void {
  switch (op.kind) {
    case "entry":
      store.putEntry(
        entryOf(op.n, {
          deleted: op.deleted,
          tombstoneSince: op.deleted ? (1 as Millis) : null,
          usnChanged: usnChanged as Usn,
        }),
      );
      return;
    case "remove":
      store.removeEntry(guidOf(op.n));
      return;
    case "item":
      store.putItem(itemOf(guidOf(op.n), op.attribute, op.key, { kind: "deleted" }, usnChanged));
      return;
    case "keep":
      store.removeItemsExcept(guidOf(op.n), op.keep);
      return;
    default:
      unreachable(op, "count op");
  }
}
