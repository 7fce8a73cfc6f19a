import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
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
  ReplicaEvent,
  ReplicaMeta,
  Store,
  StoreCounts,
  TombstoneCursor,
} from "../core/store.ts";
import { eventsKeptMax } from "../core/store.ts";

/**
 * The one contract suite every Store implementation runs (see core/store.ts for the port).
 * `open` makes a fresh, empty store for each test. `reopen`, when given, opens the same
 * database again; the suite calls it only after closing the store it replaces. `cleanup`
 * removes whatever `open` created; the suite closes its stores before calling it.
 *
 * Strings are ordered by Unicode code point (the order of their UTF-8 bytes, SQLite's BINARY
 * collation), which differs from JavaScript's `<` for characters outside the BMP.
 */
export interface StoreContractHandle {
  readonly store: Store;
  readonly reopen?: () => Store;
  readonly cleanup: () => void;
}

export type OpenStore = () => StoreContractHandle;

export function runStoreContract(name: string, open: OpenStore): void {
  describe(`Store contract: ${name}`, () => {
    describe("meta", () => metaTests(open));
    describe("entries", () => entryTests(open));
    describe("entry lookups by name and parent", () => namingTests(open));
    describe("children and claimants", () => childListTests(open));
    describe("cycle breakers and conflicts", () => placementListTests(open));
    describe("change and tombstone lists", () => changeListTests(open));
    describe("all entries", () => allEntriesTests(open));
    describe("items", () => itemTests(open));
    describe("item lists", () => itemListTests(open));
    describe("replication state", () => replicationStateTests(open));
    describe("events and counts", () => eventAndCountTests(open));
    describe("transactions", () => transactionTests(open));
    describe("durability", () => durabilityTests(open));
    describe("properties", () => propertyTests(open));
  });
}

// ---------------------------------------------------------------------------------------------
// Fixtures

export function guidOf(n: number): Guid {
  return n.toString(16).padStart(32, "0") as Guid;
}

export function invocationOf(n: number): InvocationId {
  return `e${n.toString(16).padStart(31, "0")}` as InvocationId;
}

const rootGuid = guidOf(0xf00);
const otherParent = guidOf(0xf01);

/** An entry numbered `n`, live under the root, with usnChanged = n unless overridden. */
export function entryOf(n: number, fields: Partial<EntryRow> = {}): EntryRow {
  return {
    guid: guidOf(n),
    partition: "dc=example,dc=com",
    origin: { invocation: invocationOf(1), usn: n as Usn },
    rdn: `cn=Entry ${n}`,
    rdnNorm: `cn=entry ${n}`,
    parent: rootGuid,
    deleted: false,
    tombstoneSince: null,
    parentEff: rootGuid,
    placement: "normal",
    conflict: false,
    usnCreated: n as Usn,
    usnChanged: n as Usn,
    ...fields,
  };
}

export function itemOf(guid: Guid, attribute: string, key: string, value: ItemValue, usn = 1): ItemRow {
  return {
    guid,
    attribute,
    key,
    value,
    stamp: { version: 1, time: 1_700_000_000_000 as Millis, invocation: invocationOf(1), usn: usn as Usn },
    localUsn: usn as Usn,
  };
}

function valuesOf(type: string, ...values: string[]): ItemValue {
  return { kind: "values", type, values };
}

const metaA: ReplicaMeta = {
  nodeId: "node-a" as NodeId,
  invocation: invocationOf(1),
  usn: 42 as Usn,
  createdAt: 1_700_000_000_000 as Millis,
  lastInboundSuccess: 1_700_000_001_000 as Millis,
};

function watermarkOf(invocation: InvocationId | null, objectUsn: number, propertyUsn: number): Watermark {
  return { invocation, objectUsn: objectUsn as Usn, propertyUsn: propertyUsn as Usn };
}

function eventOf(time: number, kind: ReplicaEvent["kind"], detail: string): ReplicaEvent {
  return { time: time as Millis, kind, detail };
}

function reportOf(node: string, usn: number, utd: UtdVector): PeerReport {
  return { node: node as NodeId, invocation: invocationOf(9), utd, usn: usn as Usn, receivedAt: 5 as Millis };
}

/** Fills a store with at least one row of every kind and every field variant. */
export function populateStore(store: Store): void {
  store.transaction(() => {
    store.writeMeta(metaA);
    store.putEntry(entryOf(1, { parent: null, parentEff: null, rdn: "", rdnNorm: "" }));
    store.putEntry(entryOf(2, { placement: "orphan", conflict: true, rdn: "cn=Ünïcödé 😀" }));
    store.putEntry(entryOf(3, { placement: "cycle" }));
    store.putEntry(entryOf(4, { deleted: true, tombstoneSince: 1_700_000_002_000 as Millis }));
    store.putEntry(entryOf(5, { usnChanged: Number.MAX_SAFE_INTEGER as Usn }));
    for (const [index, value] of allItemValues.entries()) {
      store.putItem(itemOf(guidOf(2), `attr${index}`, "", value, index + 1));
    }
    store.putItem(itemOf(guidOf(4), "member", "cn=x", linkOf("cn=x", false)));
    store.writeUtd({ [invocationOf(1)]: 42 as Usn, [invocationOf(2)]: 7 as Usn });
    store.writeWatermark("node-b" as NodeId, watermarkOf(invocationOf(2), 7, 6));
    store.writeWatermark("node-c" as NodeId, watermarkOf(null, 0, 0));
    store.writePeerReport(reportOf("node-b", 7, { [invocationOf(2)]: 7 as Usn }));
    store.appendEvent(eventOf(1, "created", "created node-a"));
    store.appendEvent(eventOf(2, "opened", ""));
  });
}

function linkOf(value: string, present: boolean): ItemValue {
  return { kind: "link", type: "member", value, present };
}

const largeText = "x".repeat(1024 * 1024);
/** Every ItemValue kind, with empty and unicode strings and a large value. */
const allItemValues: readonly ItemValue[] = [
  { kind: "name", rdn: "cn=Ünïcödé 😀", parent: rootGuid },
  { kind: "name", rdn: "", parent: null },
  { kind: "deleted" },
  valuesOf("cn"),
  valuesOf("cn", ""),
  valuesOf("description", "日本語", "emoji 😀", 'quote " backslash \\ nul \u0000 newline \n'),
  valuesOf("jpegphoto", largeText),
  valuesOf("mail", ...Array.from({ length: 2000 }, (_, i) => `user${i}@example.com`)),
  linkOf("cn=Member,dc=example,dc=com", true),
  linkOf("", false),
];

// ---------------------------------------------------------------------------------------------
// Harness

interface Session {
  /** Closes the current store and opens the same database again (only when `reopen` is given). */
  reopen(): Store;
  readonly canReopen: boolean;
}

function withStore(open: OpenStore, body: (store: Store, session: Session) => void): void {
  const handle = open();
  let current: Store | undefined = handle.store;
  const session: Session = {
    canReopen: handle.reopen !== undefined,
    reopen(): Store {
      assert.ok(handle.reopen !== undefined, "this store cannot be reopened");
      current?.close();
      // Cleared first so that a failing reopen does not make the cleanup close a store twice.
      current = undefined;
      current = handle.reopen();
      return current;
    },
  };
  try {
    body(handle.store, session);
  } finally {
    current?.close();
    handle.cleanup();
  }
}

/** Bounds every paging loop in this suite, so that a broken cursor fails instead of hanging. */
const pagesMax = 10_000;

function pageAll<Row, Cursor>(
  fetch: (cursor: Cursor | null, limit: number) => Row[],
  cursorOf: (row: Row) => Cursor,
  pageSize: number,
): Row[] {
  const rows: Row[] = [];
  let cursor: Cursor | null = null;
  for (let page = 0; page < pagesMax; page++) {
    const batch = fetch(cursor, pageSize);
    assert.ok(batch.length <= pageSize, `a page holds at most its limit (${batch.length} > ${pageSize})`);
    rows.push(...batch);
    const last = batch.at(-1);
    if (last === undefined) return rows;
    cursor = cursorOf(last);
  }
  assert.fail(`paging did not end after ${pagesMax} pages`);
}

export interface StoreDump {
  readonly meta: ReplicaMeta | undefined;
  readonly entries: EntryRow[];
  readonly items: ItemRow[];
  readonly utd: UtdVector;
  readonly watermarks: Array<{ partner: NodeId; watermark: Watermark }>;
  readonly peerReports: PeerReport[];
  readonly horizons: Array<{ kind: HorizonKind; vector: UtdVector }>;
  readonly events: ReplicaEvent[];
  readonly counts: StoreCounts;
}

const dumpEventsMax = 10_000;

/** Everything a store holds that the port can read back, in a stable order. */
export function dumpStore(store: Store): StoreDump {
  const entries = pageAll(
    (after: Guid | null, limit) => store.listEntries(after, limit),
    (row) => row.guid,
    3,
  );
  return {
    meta: store.readMeta(),
    entries,
    items: entries.flatMap((entry) => store.getItems(entry.guid)),
    utd: store.readUtd(),
    watermarks: store.listWatermarks(),
    peerReports: sortedBy(store.readPeerReports(), (report) => report.node),
    horizons: store.listHorizons(),
    events: store.listEvents(dumpEventsMax),
    counts: store.counts(),
  };
}

function sortedBy<T>(rows: readonly T[], key: (row: T) => string): T[] {
  return [...rows].sort((a, b) => compareText(key(a), key(b)));
}

/** Code point order: what SQLite's BINARY collation gives (UTF-8 byte order). */
export function compareText(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function compareChildren(a: EntryRow, b: EntryRow): number {
  return compareText(a.rdnNorm, b.rdnNorm) || compareText(a.guid, b.guid);
}

function guids(rows: readonly EntryRow[]): Guid[] {
  return rows.map((row) => row.guid);
}

function putAll(store: Store, rows: readonly EntryRow[]): void {
  store.transaction(() => {
    for (const row of rows) store.putEntry(row);
  });
}

// ---------------------------------------------------------------------------------------------
// Tests

function metaTests(open: OpenStore): void {
  it("has no meta until it is written", () => {
    withStore(open, (store) => assert.equal(store.readMeta(), undefined));
  });

  it("round-trips meta and replaces it on write", () => {
    withStore(open, (store) => {
      store.writeMeta(metaA);
      assert.deepEqual(store.readMeta(), metaA);
      const next = {
        ...metaA,
        invocation: invocationOf(2),
        usn: 43 as Usn,
        lastInboundSuccess: 9 as Millis,
      };
      store.writeMeta(next);
      assert.deepEqual(store.readMeta(), next);
    });
  });
}

function entryTests(open: OpenStore): void {
  it("returns undefined for an unknown guid", () => {
    withStore(open, (store) => assert.equal(store.getEntry(guidOf(1)), undefined));
  });

  it("round-trips every field variant", () => {
    const rows = [
      entryOf(1, { parent: null, parentEff: null, rdn: "", rdnNorm: "", partition: "" }),
      entryOf(2, { placement: "orphan", parentEff: null }),
      entryOf(3, { placement: "cycle", conflict: true, rdn: "cn=日本語 😀", rdnNorm: "cn=日本語 😀" }),
      entryOf(4, { deleted: true, tombstoneSince: 0 as Millis }),
      entryOf(5, { deleted: true, tombstoneSince: 1_700_000_000_000 as Millis, placement: "orphan" }),
      entryOf(6, { usnChanged: Number.MAX_SAFE_INTEGER as Usn, usnCreated: 0 as Usn }),
      entryOf(7, { origin: { invocation: invocationOf(7), usn: Number.MAX_SAFE_INTEGER as Usn } }),
    ];
    withStore(open, (store) => {
      putAll(store, rows);
      for (const row of rows) assert.deepEqual(store.getEntry(row.guid), row);
    });
  });

  it("replaces the whole row on put", () => {
    withStore(open, (store) => {
      store.putEntry(entryOf(1));
      const replaced = entryOf(1, {
        partition: "dc=other",
        rdn: "cn=Renamed",
        rdnNorm: "cn=renamed",
        parent: otherParent,
        parentEff: null,
        placement: "orphan",
        conflict: true,
        usnChanged: 99 as Usn,
      });
      store.putEntry(replaced);
      assert.deepEqual(store.getEntry(guidOf(1)), replaced);
      assert.deepEqual(guids(store.listEntries(null, 10)), [guidOf(1)]);
    });
  });

  it("copies rows in and out", () => {
    withStore(open, (store) => {
      const row = { ...entryOf(1), origin: { ...entryOf(1).origin } };
      store.putEntry(row);
      (row as { rdn: string }).rdn = "changed after put";
      (row.origin as { usn: Usn }).usn = 77 as Usn;
      const read = store.getEntry(guidOf(1));
      assert.ok(read !== undefined);
      (read as { rdn: string }).rdn = "changed after get";
      assert.deepEqual(store.getEntry(guidOf(1)), entryOf(1));
    });
  });

  it("removes an entry with all its items and leaves other entries alone", () => {
    withStore(open, (store) => {
      putAll(store, [entryOf(1), entryOf(2)]);
      store.putItem(itemOf(guidOf(1), "cn", "", valuesOf("cn", "a")));
      store.putItem(itemOf(guidOf(1), "member", "cn=x", linkOf("cn=x", true)));
      store.putItem(itemOf(guidOf(2), "cn", "", valuesOf("cn", "b")));
      store.removeEntry(guidOf(1));
      assert.equal(store.getEntry(guidOf(1)), undefined);
      assert.deepEqual(store.getItems(guidOf(1)), []);
      assert.deepEqual(store.getEntry(guidOf(2)), entryOf(2));
      assert.equal(store.getItems(guidOf(2)).length, 1);
      store.removeEntry(guidOf(3));
      assert.deepEqual(store.counts(), { entries: 1, tombstones: 0, items: 1 });
    });
  });
}

function namingTests(open: OpenStore): void {
  it("findByName matches live entries by effective parent and exact rdnNorm", () => {
    withStore(open, (store) => {
      putAll(store, [
        entryOf(1, { rdnNorm: "cn=a" }),
        entryOf(2, { rdnNorm: "cn=a", conflict: true }),
        entryOf(3, { rdnNorm: "cn=a", deleted: true, tombstoneSince: 1 as Millis }),
        entryOf(4, { rdnNorm: "cn=a", parent: rootGuid, parentEff: otherParent }),
        entryOf(5, { rdnNorm: "cn=a", parent: otherParent, parentEff: rootGuid }),
        entryOf(6, { rdnNorm: "cn=ab" }),
        entryOf(7, { rdnNorm: "CN=A" }),
      ]);
      const found = guids(store.findByName(rootGuid, "cn=a")).sort();
      assert.deepEqual(found, [guidOf(1), guidOf(2), guidOf(5)]);
      assert.deepEqual(guids(store.findByName(otherParent, "cn=a")), [guidOf(4)]);
      assert.deepEqual(store.findByName(rootGuid, "cn=missing"), []);
    });
  });

  it("hasChildren sees only live entries by effective parent", () => {
    withStore(open, (store) => {
      assert.equal(store.hasChildren(rootGuid), false);
      store.putEntry(entryOf(1, { parent: otherParent, parentEff: rootGuid }));
      assert.equal(store.hasChildren(rootGuid), true);
      assert.equal(store.hasChildren(otherParent), false);
      store.putEntry(entryOf(1, { deleted: true, tombstoneSince: 1 as Millis, usnChanged: 2 as Usn }));
      assert.equal(store.hasChildren(rootGuid), false);
      store.putEntry(entryOf(3));
      store.removeEntry(guidOf(3));
      assert.equal(store.hasChildren(rootGuid), false);
    });
  });
}

function childListTests(open: OpenStore): void {
  it("listChildren orders live children by (rdnNorm, guid) and pages with a cursor", () => {
    const rows = [
      entryOf(9, { rdnNorm: "cn=b" }),
      entryOf(3, { rdnNorm: "cn=b" }),
      entryOf(5, { rdnNorm: "cn=a" }),
      entryOf(1, { rdnNorm: "cn=c" }),
      entryOf(7, { rdnNorm: "" }),
      entryOf(2, { rdnNorm: "cn=a", deleted: true, tombstoneSince: 1 as Millis }),
      entryOf(4, { rdnNorm: "cn=a", parentEff: otherParent }),
      entryOf(6, { rdnNorm: "cn=a", parent: otherParent, parentEff: rootGuid }),
    ];
    withStore(open, (store) => {
      putAll(store, rows);
      const expected = [guidOf(7), guidOf(5), guidOf(6), guidOf(3), guidOf(9), guidOf(1)];
      assert.deepEqual(guids(store.listChildren(rootGuid, null, 100)), expected);
      for (const pageSize of [1, 2, 4, 6]) {
        const paged = pageAll(
          (after: ChildCursor | null, limit) => store.listChildren(rootGuid, after, limit),
          (row) => ({ rdnNorm: row.rdnNorm, guid: row.guid }),
          pageSize,
        );
        assert.deepEqual(guids(paged), expected);
      }
      assert.deepEqual(store.listChildren(rootGuid, null, 0), []);
      const afterLast = { rdnNorm: "cn=c", guid: guidOf(1) };
      assert.deepEqual(store.listChildren(rootGuid, afterLast, 10), []);
      const between = { rdnNorm: "cn=b", guid: guidOf(4) };
      assert.deepEqual(guids(store.listChildren(rootGuid, between, 10)), [guidOf(9), guidOf(1)]);
    });
  });

  it("orders rdnNorm by code point, not by UTF-16 code unit", () => {
    withStore(open, (store) => {
      // U+FF5E sorts before U+1F600 by code point, after it by UTF-16 code unit.
      putAll(store, [entryOf(1, { rdnNorm: "cn=😀" }), entryOf(2, { rdnNorm: "cn=～" })]);
      assert.deepEqual(guids(store.listChildren(rootGuid, null, 10)), [guidOf(2), guidOf(1)]);
    });
  });

  it("listClaimants lists live entries by claimed parent, ordered by guid, after the cursor", () => {
    withStore(open, (store) => {
      putAll(store, [
        entryOf(5, { parentEff: null, placement: "orphan" }),
        entryOf(2),
        entryOf(8, { parentEff: otherParent }),
        entryOf(3, { deleted: true, tombstoneSince: 1 as Millis }),
        entryOf(4, { parent: otherParent }),
      ]);
      const expected = [guidOf(2), guidOf(5), guidOf(8)];
      assert.deepEqual(guids(store.listClaimants(rootGuid, null, 10)), expected);
      assert.deepEqual(guids(store.listClaimants(rootGuid, null, 2)), expected.slice(0, 2));
      assert.deepEqual(guids(store.listClaimants(rootGuid, guidOf(2), 10)), expected.slice(1));
      assert.deepEqual(guids(store.listClaimants(rootGuid, guidOf(3), 1)), [guidOf(5)]);
      assert.deepEqual(store.listClaimants(rootGuid, guidOf(8), 10), []);
      assert.deepEqual(guids(store.listClaimants(otherParent, null, 10)), [guidOf(4)]);
    });
  });
}

function placementListTests(open: OpenStore): void {
  it("listCycleBreakers lists live cycle placements ordered by guid", () => {
    withStore(open, (store) => {
      putAll(store, [
        entryOf(6, { placement: "cycle" }),
        entryOf(2, { placement: "cycle", conflict: true }),
        entryOf(3, { placement: "orphan" }),
        entryOf(4, { placement: "cycle", deleted: true, tombstoneSince: 1 as Millis }),
        entryOf(5, { conflict: true }),
      ]);
      assert.deepEqual(guids(store.listCycleBreakers(10)), [guidOf(2), guidOf(6)]);
      assert.deepEqual(guids(store.listCycleBreakers(1)), [guidOf(2)]);
      assert.deepEqual(store.listCycleBreakers(0), []);
    });
  });

  it("listConflicts lists live conflicts and non-normal placements ordered by guid", () => {
    withStore(open, (store) => {
      putAll(store, [
        entryOf(7, { conflict: true }),
        entryOf(2, { placement: "orphan" }),
        entryOf(5, { placement: "cycle" }),
        entryOf(1),
        entryOf(3, { conflict: true, deleted: true, tombstoneSince: 1 as Millis }),
        entryOf(4, { placement: "orphan", deleted: true, tombstoneSince: 1 as Millis }),
      ]);
      const expected = [guidOf(2), guidOf(5), guidOf(7)];
      assert.deepEqual(guids(store.listConflicts(null, 10)), expected);
      assert.deepEqual(guids(store.listConflicts(null, 2)), expected.slice(0, 2));
      assert.deepEqual(guids(store.listConflicts(guidOf(2), 10)), expected.slice(1));
      assert.deepEqual(guids(store.listConflicts(guidOf(6), 10)), [guidOf(7)]);
      assert.deepEqual(store.listConflicts(guidOf(7), 10), []);
    });
  });
}

function changeListTests(open: OpenStore): void {
  it("entriesChangedAfter lists live entries and tombstones by usnChanged, strictly after", () => {
    withStore(open, (store) => {
      putAll(store, [
        entryOf(1, { usnChanged: 30 as Usn }),
        entryOf(2, { usnChanged: 20 as Usn, deleted: true, tombstoneSince: 1 as Millis }),
        entryOf(3, { usnChanged: 10 as Usn }),
      ]);
      assert.deepEqual(guids(store.entriesChangedAfter(0 as Usn, 10)), [guidOf(3), guidOf(2), guidOf(1)]);
      assert.deepEqual(guids(store.entriesChangedAfter(10 as Usn, 10)), [guidOf(2), guidOf(1)]);
      assert.deepEqual(guids(store.entriesChangedAfter(0 as Usn, 2)), [guidOf(3), guidOf(2)]);
      assert.deepEqual(store.entriesChangedAfter(30 as Usn, 10), []);
      store.putEntry(entryOf(3, { usnChanged: 40 as Usn }));
      assert.deepEqual(guids(store.entriesChangedAfter(0 as Usn, 10)), [guidOf(2), guidOf(1), guidOf(3)]);
      assert.equal(store.entriesChangedAfter(30 as Usn, 10)[0]?.usnChanged, 40);
    });
  });

  it("listTombstones orders tombstones by (tombstoneSince, guid) and pages with a cursor", () => {
    const dead = (n: number, since: number) => entryOf(n, { deleted: true, tombstoneSince: since as Millis });
    withStore(open, (store) => {
      putAll(store, [dead(5, 200), dead(2, 300), dead(9, 100), dead(3, 200), entryOf(1), entryOf(4)]);
      const expected = [guidOf(9), guidOf(3), guidOf(5), guidOf(2)];
      assert.deepEqual(guids(store.listTombstones(null, 10)), expected);
      for (const pageSize of [1, 3]) {
        const paged = pageAll(
          (after: TombstoneCursor | null, limit) => store.listTombstones(after, limit),
          (row) => ({ tombstoneSince: row.tombstoneSince ?? (0 as Millis), guid: row.guid }),
          pageSize,
        );
        assert.deepEqual(guids(paged), expected);
      }
      const cursor = { tombstoneSince: 200 as Millis, guid: guidOf(4) };
      assert.deepEqual(guids(store.listTombstones(cursor, 10)), [guidOf(5), guidOf(2)]);
      assert.deepEqual(store.listTombstones(null, 0), []);
    });
  });
}

function allEntriesTests(open: OpenStore): void {
  it("keeps horizon vectors by kind, replaces them whole, and lists the non-empty ones", () => {
    withStore(open, (store) => {
      store.transaction(() => {
        store.writeHorizon("purged", { [invocationOf(1)]: 5 as Usn });
        store.writeHorizon("required:node-b", { [invocationOf(2)]: 7 as Usn, [invocationOf(1)]: 3 as Usn });
        store.writeHorizon("checked", {});
      });
      assert.deepEqual(store.readHorizon("purged"), { [invocationOf(1)]: 5 });
      assert.deepEqual(store.listHorizons(), [
        { kind: "purged", vector: { [invocationOf(1)]: 5 } },
        { kind: "required:node-b", vector: { [invocationOf(1)]: 3, [invocationOf(2)]: 7 } },
      ]);
      store.transaction(() => store.writeHorizon("required:node-b", {}));
      assert.deepEqual(
        store.listHorizons().map((horizon) => horizon.kind),
        ["purged"],
      );
    });
  });

  it("setUsnChanged changes only usnChanged, and entriesChangedAfter follows it", () => {
    withStore(open, (store) => {
      putAll(store, [entryOf(1), entryOf(2)]);
      store.transaction(() => store.setUsnChanged(guidOf(1), 50 as Usn));
      assert.deepEqual(store.getEntry(guidOf(1)), { ...entryOf(1), usnChanged: 50 });
      assert.deepEqual(guids(store.entriesChangedAfter(2 as Usn, 10)), [guidOf(1)]);
      assert.throws(() => store.transaction(() => store.setUsnChanged(guidOf(9), 60 as Usn)));
    });
  });

  it("listRoots lists live entries without a claimed parent, ordered by guid", () => {
    withStore(open, (store) => {
      putAll(store, [
        entryOf(3, { parent: null, parentEff: null }),
        entryOf(1, { parent: null, parentEff: null, deleted: true, tombstoneSince: 1 as Millis }),
        entryOf(2, { parent: null, parentEff: null }),
        entryOf(4),
      ]);
      assert.deepEqual(guids(store.listRoots()), [guidOf(2), guidOf(3)]);
    });
  });

  it("listEntries lists live entries and tombstones ordered by guid, after the cursor", () => {
    withStore(open, (store) => {
      putAll(store, [entryOf(3), entryOf(1, { deleted: true, tombstoneSince: 1 as Millis }), entryOf(2)]);
      assert.deepEqual(guids(store.listEntries(null, 10)), [guidOf(1), guidOf(2), guidOf(3)]);
      assert.deepEqual(guids(store.listEntries(null, 2)), [guidOf(1), guidOf(2)]);
      assert.deepEqual(guids(store.listEntries(guidOf(1), 10)), [guidOf(2), guidOf(3)]);
      assert.deepEqual(store.listEntries(guidOf(3), 10), []);
      assert.deepEqual(store.listEntries(null, 0), []);
    });
  });
}

function itemTests(open: OpenStore): void {
  it("round-trips every item value kind, unicode, empty and large values", () => {
    withStore(open, (store) => {
      const rows = allItemValues.map((value, index) =>
        itemOf(guidOf(1), `attr${index}`, index % 2 === 0 ? "" : `κλειδί ${index} 😀`, value, index + 1),
      );
      store.transaction(() => {
        for (const row of rows) store.putItem(row);
      });
      for (const row of rows) assert.deepEqual(store.getItem(row.guid, row.attribute, row.key), row);
      assert.equal(store.getItem(guidOf(1), "attr0", "other key"), undefined);
      assert.equal(store.getItem(guidOf(2), "attr0", ""), undefined);
    });
  });

  it("storedSizes bounds each attribute's value bytes from above", () => {
    withStore(open, (store) => {
      const guid = guidOf(1);
      const cn = itemOf(guid, "cn", "", { kind: "values", type: "cn", values: ["é", "ab"] });
      const members = ["cn=a", "cn=b"].map((key) =>
        itemOf(guid, "member", key, { kind: "link", type: "member", value: key, present: true }),
      );
      store.transaction(() => {
        store.putItem(itemOf(guid, "@name", "", { kind: "name", rdn: "cn=x", parent: null }));
        for (const row of [cn, ...members]) store.putItem(row);
      });
      const sizes = store.storedSizes(guid);
      assert.deepEqual(
        sizes.map((size) => size.attribute),
        ["cn", "member"],
      );
      assert.ok((sizes[0]?.bytes ?? 0) >= 4, "at least the values' bytes");
      assert.ok((sizes[1]?.bytes ?? 0) >= 8);
      assert.deepEqual(store.storedSizes(guidOf(2)), []);
    });
  });

  it("replaceItem replaces an existing item and refuses a missing one", () => {
    withStore(open, (store) => {
      const row = itemOf(guidOf(1), "cn", "", { kind: "values", type: "cn", values: ["a"] });
      store.transaction(() => store.putItem(row));
      const next = {
        ...row,
        value: { kind: "values" as const, type: "cn", values: ["b"] },
        localUsn: 9 as Usn,
      };
      store.transaction(() => store.replaceItem(next));
      assert.deepEqual(store.getItem(guidOf(1), "cn", ""), next);
      assert.equal(store.counts().items, 1);
      assert.throws(() => store.transaction(() => store.replaceItem({ ...row, attribute: "sn" })));
    });
  });

  it("heldStamps bounds every item's stamp, whichever way it was written, and a rollback drops its raises", () => {
    withStore(open, (store) => {
      assert.deepEqual(store.heldStamps(), {});
      const stamped = (row: ItemRow, invocation: number, usn: number): ItemRow => ({
        ...row,
        stamp: { ...row.stamp, invocation: invocationOf(invocation), usn: usn as Usn },
      });
      // A new entry's items (buffered), an item of an existing entry, a replaced item.
      store.transaction(() => {
        store.putEntry(entryOf(1));
        store.putItem(stamped(itemOf(guidOf(1), "cn", "", valuesOf("cn", "a")), 1, 7));
        store.putItem(stamped(itemOf(guidOf(1), "sn", "", valuesOf("sn", "a")), 2, 3));
      });
      store.transaction(() => store.putItem(stamped(itemOf(guidOf(2), "cn", "", valuesOf("cn", "b")), 2, 9)));
      assert.deepEqual(store.heldStamps(), { [invocationOf(1)]: 7, [invocationOf(2)]: 9 });
      store.replaceItem(stamped(itemOf(guidOf(1), "cn", "", valuesOf("cn", "c")), 3, 4));
      assert.deepEqual(store.heldStamps(), {
        [invocationOf(1)]: 7,
        [invocationOf(2)]: 9,
        [invocationOf(3)]: 4,
      });
      // Never lowered: a lower stamp, or the items going away, leave it as it was.
      store.transaction(() => store.putItem(stamped(itemOf(guidOf(2), "cn", "", valuesOf("cn", "d")), 2, 1)));
      store.transaction(() => store.removeEntry(guidOf(1)));
      assert.deepEqual(store.heldStamps(), {
        [invocationOf(1)]: 7,
        [invocationOf(2)]: 9,
        [invocationOf(3)]: 4,
      });
      // Inside a transaction the raise is seen at once; a rollback takes it back.
      assert.throws(() =>
        store.transaction(() => {
          store.putItem(stamped(itemOf(guidOf(3), "cn", "", valuesOf("cn", "e")), 1, 70));
          assert.equal(store.heldStamps()[invocationOf(1)], 70);
          throw new Error("planted failure");
        }),
      );
      assert.deepEqual(store.heldStamps(), {
        [invocationOf(1)]: 7,
        [invocationOf(2)]: 9,
        [invocationOf(3)]: 4,
      });
    });
  });

  it("round-trips stamps with extreme numbers", () => {
    withStore(open, (store) => {
      const stamp = {
        version: Number.MAX_SAFE_INTEGER,
        time: -1 as Millis,
        invocation: invocationOf(0xabc),
        usn: Number.MAX_SAFE_INTEGER as Usn,
      };
      const row: ItemRow = { ...itemOf(guidOf(1), "cn", "", valuesOf("cn", "a")), stamp, localUsn: 0 as Usn };
      store.putItem(row);
      assert.deepEqual(store.getItem(guidOf(1), "cn", ""), row);
    });
  });

  it("replaces an item with the same (guid, attribute, key) and copies values in and out", () => {
    withStore(open, (store) => {
      const first = itemOf(guidOf(1), "cn", "", valuesOf("cn", "a"), 1);
      store.putItem(first);
      const second = { ...itemOf(guidOf(1), "cn", "", valuesOf("cn", "b", "c"), 2) };
      store.putItem(second);
      assert.deepEqual(store.getItems(guidOf(1)), [second]);
      const read = store.getItem(guidOf(1), "cn", "");
      assert.ok(read?.value.kind === "values");
      (read.value.values as string[]).push("mutated");
      assert.deepEqual(store.getItem(guidOf(1), "cn", ""), second);
      assert.equal(store.counts().items, 1);
    });
  });
}

function itemListTests(open: OpenStore): void {
  it("orders getItems by (attribute, key) and getAttributeItems by key", () => {
    withStore(open, (store) => {
      const member = (key: string) => itemOf(guidOf(1), "member", key, linkOf(key, true));
      const rows = [
        member("cn=b"),
        itemOf(guidOf(1), "cn", "", valuesOf("cn", "x")),
        member("cn=a"),
        itemOf(guidOf(1), "@name", "", { kind: "name", rdn: "cn=x", parent: null }),
        member(""),
        itemOf(guidOf(2), "cn", "", valuesOf("cn", "other entry")),
        itemOf(guidOf(1), "memberof", "", valuesOf("memberof")),
      ];
      store.transaction(() => {
        for (const row of rows) store.putItem(row);
      });
      const keys = (items: ItemRow[]) => items.map((item) => `${item.attribute}|${item.key}`);
      assert.deepEqual(keys(store.getItems(guidOf(1))), [
        "@name|",
        "cn|",
        "member|",
        "member|cn=a",
        "member|cn=b",
        "memberof|",
      ]);
      assert.deepEqual(keys(store.getAttributeItems(guidOf(1), "member")), [
        "member|",
        "member|cn=a",
        "member|cn=b",
      ]);
      assert.deepEqual(store.getAttributeItems(guidOf(1), "mail"), []);
      assert.deepEqual(store.getItems(guidOf(3)), []);
    });
  });

  it("getItemsLacking is getItems filtered by local USN and by the UTD's coverage", () => {
    withStore(open, (store) => {
      const stamped = (attribute: string, invocation: number, usn: number, localUsn: number): ItemRow => ({
        ...itemOf(guidOf(1), attribute, "", valuesOf(attribute, attribute)),
        stamp: {
          version: 1,
          time: 1_700_000_000_000 as Millis,
          invocation: invocationOf(invocation),
          usn: usn as Usn,
        },
        localUsn: localUsn as Usn,
      });
      const rows = [
        stamped("a", 1, 5, 10),
        stamped("b", 1, 9, 11),
        stamped("c", 2, 3, 12),
        stamped("d", 3, 1, 13),
        stamped("e", 2, 7, 4),
      ];
      store.transaction(() => {
        for (const row of rows) store.putItem(row);
      });
      const utd = { [invocationOf(1)]: 6 as Usn, [invocationOf(2)]: 3 as Usn };
      for (const after of [0, 10, 11, 13]) {
        const expected = store
          .getItems(guidOf(1))
          .filter((item) => item.localUsn > after && (utd[item.stamp.invocation] ?? 0) < item.stamp.usn);
        assert.deepEqual(store.getItemsLacking(guidOf(1), after as Usn, utd), expected, `after ${after}`);
      }
      assert.deepEqual(
        store.getItemsLacking(guidOf(1), 0 as Usn, utd).map((item) => item.attribute),
        ["b", "d", "e"],
      );
      assert.equal(store.getItemsLacking(guidOf(1), 0 as Usn, {}).length, rows.length);
      assert.deepEqual(store.getItemsLacking(guidOf(9), 0 as Usn, {}), []);
    });
  });

  it("removeItemsExcept keeps only the listed attributes of one entry", () => {
    withStore(open, (store) => {
      store.transaction(() => {
        store.putItem(itemOf(guidOf(1), "@name", "", { kind: "name", rdn: "cn=x", parent: null }));
        store.putItem(itemOf(guidOf(1), "cn", "", valuesOf("cn", "x")));
        store.putItem(itemOf(guidOf(1), "member", "cn=a", linkOf("cn=a", true)));
        store.putItem(itemOf(guidOf(1), "member", "cn=b", linkOf("cn=b", false)));
        store.putItem(itemOf(guidOf(2), "cn", "", valuesOf("cn", "y")));
      });
      store.removeItemsExcept(guidOf(1), ["@name", "member", "not-there"]);
      const left = store.getItems(guidOf(1)).map((item) => `${item.attribute}|${item.key}`);
      assert.deepEqual(left, ["@name|", "member|cn=a", "member|cn=b"]);
      store.removeItemsExcept(guidOf(1), []);
      assert.deepEqual(store.getItems(guidOf(1)), []);
      assert.equal(store.getItems(guidOf(2)).length, 1);
      assert.equal(store.counts().items, 1);
    });
  });
}

function replicationStateTests(open: OpenStore): void {
  it("writeUtd replaces the whole vector", () => {
    withStore(open, (store) => {
      assert.deepEqual(store.readUtd(), {});
      const first = { [invocationOf(2)]: 5 as Usn, [invocationOf(1)]: Number.MAX_SAFE_INTEGER as Usn };
      store.writeUtd(first);
      assert.deepEqual(store.readUtd(), first);
      const second = { [invocationOf(3)]: 1 as Usn };
      store.writeUtd(second);
      assert.deepEqual(store.readUtd(), second);
      store.writeUtd({});
      assert.deepEqual(store.readUtd(), {});
    });
  });

  it("writeUtd given the stored vector writes the same result as a full replace", () => {
    withStore(open, (store) => {
      const first = { [invocationOf(1)]: 5 as Usn, [invocationOf(2)]: 9 as Usn, [invocationOf(3)]: 2 as Usn };
      store.writeUtd(first);
      const second = {
        [invocationOf(1)]: 7 as Usn,
        [invocationOf(2)]: 9 as Usn,
        [invocationOf(4)]: 1 as Usn,
      };
      store.writeUtd(second, first);
      assert.deepEqual(store.readUtd(), second);
      store.writeUtd({}, second);
      assert.deepEqual(store.readUtd(), {});
    });
  });

  it("round-trips and replaces watermarks and lists them by node id", () => {
    withStore(open, (store) => {
      assert.equal(store.readWatermark("node-b" as NodeId), undefined);
      assert.deepEqual(store.listWatermarks(), []);
      store.writeWatermark("node-c" as NodeId, watermarkOf(null, 0, 0));
      store.writeWatermark("node-b" as NodeId, watermarkOf(invocationOf(1), 5, 4));
      store.writeWatermark("node-a1" as NodeId, watermarkOf(invocationOf(2), 1, 1));
      store.writeWatermark("node-b" as NodeId, watermarkOf(invocationOf(3), 9, 8));
      assert.deepEqual(store.readWatermark("node-b" as NodeId), watermarkOf(invocationOf(3), 9, 8));
      assert.deepEqual(store.readWatermark("node-c" as NodeId), watermarkOf(null, 0, 0));
      assert.deepEqual(store.listWatermarks(), [
        { partner: "node-a1", watermark: watermarkOf(invocationOf(2), 1, 1) },
        { partner: "node-b", watermark: watermarkOf(invocationOf(3), 9, 8) },
        { partner: "node-c", watermark: watermarkOf(null, 0, 0) },
      ]);
    });
  });

  it("keeps the invocations a watermark does not vouch for", () => {
    withStore(open, (store) => {
      const filtered: Watermark = {
        ...watermarkOf(invocationOf(1), 5, 4),
        excluded: [invocationOf(7), invocationOf(8)],
      };
      store.writeWatermark("node-b" as NodeId, filtered);
      assert.deepEqual(store.readWatermark("node-b" as NodeId), filtered);
      assert.deepEqual(store.listWatermarks(), [{ partner: "node-b", watermark: filtered }]);
      store.writeWatermark("node-b" as NodeId, watermarkOf(invocationOf(1), 6, 6));
      assert.deepEqual(store.readWatermark("node-b" as NodeId), watermarkOf(invocationOf(1), 6, 6));
    });
  });

  it("keeps one peer report per node, the last one written", () => {
    withStore(open, (store) => {
      assert.deepEqual(store.readPeerReports(), []);
      const b1 = reportOf("node-b", 10, { [invocationOf(1)]: 10 as Usn });
      const c1 = reportOf("node-c", 3, {});
      const b2 = reportOf("node-b", 12, { [invocationOf(1)]: 12 as Usn, [invocationOf(2)]: 1 as Usn });
      store.writePeerReport(b1);
      store.writePeerReport(c1);
      store.writePeerReport(b2);
      assert.deepEqual(
        sortedBy(store.readPeerReports(), (report) => report.node),
        [b2, c1],
      );
    });
  });
}

function eventAndCountTests(open: OpenStore): void {
  it("lists events newest first, bounded by the limit", () => {
    withStore(open, (store) => {
      assert.deepEqual(store.listEvents(10), []);
      const events = [
        eventOf(5, "created", "first"),
        eventOf(5, "opened", ""),
        eventOf(3, "rollback-detected", "clock went back: the order is by append, not by time"),
        eventOf(9, "tombstones-purged", "purged 3 😀"),
      ];
      for (const event of events) store.appendEvent(event);
      assert.deepEqual(store.listEvents(10), [...events].reverse());
      assert.deepEqual(store.listEvents(2), [events[3], events[2]]);
      assert.deepEqual(store.listEvents(0), []);
    });
  });

  it(`keeps only the newest ${eventsKeptMax} events`, () => {
    withStore(open, (store) => {
      store.transaction(() => {
        for (let index = 0; index < eventsKeptMax + 25; index++)
          store.appendEvent(eventOf(index, "opened", `e${index}`));
      });
      const kept = store.listEvents(eventsKeptMax + 100);
      assert.equal(kept.length, eventsKeptMax);
      assert.equal(kept[0]?.detail, `e${eventsKeptMax + 24}`);
      assert.equal(kept.at(-1)?.detail, "e25");
    });
  });

  it("counts live entries, tombstones and items through every kind of write", () => {
    withStore(open, (store) => {
      assert.deepEqual(store.counts(), { entries: 0, tombstones: 0, items: 0 });
      putAll(store, [entryOf(1), entryOf(2), entryOf(3, { deleted: true, tombstoneSince: 1 as Millis })]);
      store.putItem(itemOf(guidOf(1), "cn", "", valuesOf("cn", "a")));
      store.putItem(itemOf(guidOf(1), "cn", "", valuesOf("cn", "b")));
      store.putItem(itemOf(guidOf(2), "cn", "", valuesOf("cn", "c")));
      store.putItem(itemOf(guidOf(2), "sn", "", valuesOf("sn", "d")));
      assert.deepEqual(store.counts(), { entries: 2, tombstones: 1, items: 3 });
      store.putEntry(entryOf(2, { deleted: true, tombstoneSince: 2 as Millis, usnChanged: 10 as Usn }));
      store.putEntry(entryOf(1, { rdn: "cn=renamed", usnChanged: 11 as Usn }));
      assert.deepEqual(store.counts(), { entries: 1, tombstones: 2, items: 3 });
      store.removeItemsExcept(guidOf(2), ["sn"]);
      assert.deepEqual(store.counts(), { entries: 1, tombstones: 2, items: 2 });
      store.removeEntry(guidOf(2));
      store.removeEntry(guidOf(1));
      assert.deepEqual(store.counts(), { entries: 0, tombstones: 1, items: 0 });
    });
  });
}

function transactionTests(open: OpenStore): void {
  it("commits every write and returns the function's value", () => {
    withStore(open, (store) => {
      const result = store.transaction(() => {
        store.putEntry(entryOf(1));
        store.putItem(itemOf(guidOf(1), "cn", "", valuesOf("cn", "a")));
        assert.deepEqual(store.getEntry(guidOf(1)), entryOf(1), "a transaction reads its own writes");
        return "done";
      });
      assert.equal(result, "done");
      assert.deepEqual(store.getEntry(guidOf(1)), entryOf(1));
      assert.deepEqual(store.counts(), { entries: 1, tombstones: 0, items: 1 });
    });
  });

  it("rolls back every kind of write when the function throws, and rethrows the same error", () => {
    withStore(open, (store) => {
      populateStore(store);
      const before = dumpStore(store);
      const failure = new Error("planted failure");
      assert.throws(
        () => store.transaction(() => writeEverything(store, failure)),
        (error) => error === failure,
      );
      assert.deepEqual(dumpStore(store), before);
      store.transaction(() => store.putEntry(entryOf(50, { usnChanged: 50 as Usn })));
      assert.deepEqual(store.getEntry(guidOf(50)), entryOf(50));
    });
  });

  it("a new entry's many items written in one transaction read back in it, the last write of an item winning", () => {
    withStore(open, (store) => {
      const guid = guidOf(1);
      // More items than one multi-row insert holds, rewrites of earlier ones, a read between.
      const attribute = (index: number): string => `attr${String(index).padStart(3, "0")}`;
      const first = (index: number): ItemRow =>
        itemOf(guid, attribute(index), "", valuesOf("x", `v${index}`));
      const second = (index: number): ItemRow =>
        itemOf(guid, attribute(index), "", valuesOf("x", `w${index}`), index + 2);
      const expected = (): ItemRow[] =>
        Array.from({ length: 70 }, (_, index) =>
          [5, 40, 69].includes(index) ? second(index) : first(index),
        );
      store.transaction(() => {
        store.putEntry(entryOf(1));
        for (let index = 0; index < 45; index++) store.putItem(first(index));
        store.putItem(second(5));
        assert.deepEqual(
          store.getItem(guid, attribute(40), ""),
          first(40),
          "a read sees the items written so far",
        );
        store.putItem(second(40));
        for (let index = 45; index < 70; index++) store.putItem(first(index));
        store.putItem(second(69));
        assert.deepEqual(store.getItems(guid), expected());
        assert.deepEqual(store.counts(), { entries: 1, tombstones: 0, items: 70 });
      });
      assert.deepEqual(store.getItems(guid), expected());
      assert.deepEqual(store.counts(), { entries: 1, tombstones: 0, items: 70 });
      const before = dumpStore(store);
      const failure = new Error("fails after writing a new entry's items");
      assert.throws(
        () =>
          store.transaction(() => {
            store.putEntry(entryOf(2));
            for (let index = 0; index < 10; index++) {
              store.putItem(itemOf(guidOf(2), attribute(index), "", valuesOf("x", "y")));
            }
            throw failure;
          }),
        (error) => error === failure,
      );
      assert.deepEqual(dumpStore(store), before);
      assert.deepEqual(store.counts(), { entries: 1, tombstones: 0, items: 70 });
    });
  });

  it("joins a nested transaction to the outer one", () => {
    withStore(open, (store) => {
      const inner = store.transaction(() => {
        store.putEntry(entryOf(1));
        return store.transaction(() => {
          store.putEntry(entryOf(2));
          return 7;
        });
      });
      assert.equal(inner, 7);
      assert.deepEqual(guids(store.listEntries(null, 10)), [guidOf(1), guidOf(2)]);
      const before = dumpStore(store);
      const failure = new Error("outer fails after the inner call returned");
      assert.throws(
        () =>
          store.transaction(() => {
            store.transaction(() => {
              store.putEntry(entryOf(3));
              store.putItem(itemOf(guidOf(3), "cn", "", valuesOf("cn", "x")));
              store.writeMeta(metaA);
            });
            throw failure;
          }),
        (error) => error === failure,
      );
      assert.deepEqual(dumpStore(store), before);
    });
  });
}

/** Writes to every table (over rows `populateStore` made), then throws `failure`. */
function writeEverything(store: Store, failure: Error): never {
  store.writeMeta({ ...metaA, usn: 1000 as Usn });
  store.putEntry(entryOf(10, { usnChanged: 1000 as Usn }));
  store.putEntry(entryOf(2, { deleted: true, tombstoneSince: 9 as Millis, usnChanged: 1001 as Usn }));
  store.removeEntry(guidOf(3));
  store.putItem(itemOf(guidOf(10), "cn", "", valuesOf("cn", "new")));
  store.putItem(itemOf(guidOf(2), "attr3", "", valuesOf("cn", "replaced")));
  store.removeItemsExcept(guidOf(2), ["attr0"]);
  store.writeUtd({ [invocationOf(5)]: 1 as Usn });
  store.writeWatermark("node-b" as NodeId, watermarkOf(invocationOf(5), 100, 100));
  store.writeWatermark("node-z" as NodeId, watermarkOf(invocationOf(5), 1, 1));
  store.writePeerReport(reportOf("node-b", 99, {}));
  store.appendEvent(eventOf(99, "quarantined", "never committed"));
  throw failure;
}

function durabilityTests(open: OpenStore): void {
  it("restores exactly the same state when reopened", (context) => {
    withStore(open, (store, session) => {
      if (!session.canReopen) {
        context.skip("this store cannot be reopened");
        return;
      }
      populateStore(store);
      store.removeEntry(guidOf(5));
      const before = dumpStore(store);
      const reopened = session.reopen();
      assert.deepEqual(dumpStore(reopened), before);
      reopened.putEntry(entryOf(60, { usnChanged: 60 as Usn }));
      assert.deepEqual(dumpStore(session.reopen()).counts, {
        ...before.counts,
        entries: before.counts.entries + 1,
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Properties

type ModelOp =
  | { kind: "put"; n: number; parent: number; rdnNorm: string; deleted: boolean }
  | { kind: "remove"; n: number };

/** A few names, among them an empty one and two that JavaScript's `<` orders differently. */
const modelNames = ["", "cn=a", "cn=b", "cn=é", "cn=～", "cn=😀"] as const;
const modelParents = [rootGuid, otherParent, null] as const;
const modelGuidsMax = 12;

const modelOpArbitrary: fc.Arbitrary<ModelOp> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("put" as const),
      n: fc.integer({ min: 1, max: modelGuidsMax }),
      parent: fc.integer({ min: 0, max: modelParents.length - 1 }),
      rdnNorm: fc.constantFrom(...modelNames),
      deleted: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("remove" as const),
      n: fc.integer({ min: 1, max: modelGuidsMax }),
    }),
  },
);

function applyModelOps(store: Store, ops: readonly ModelOp[]): Map<Guid, EntryRow> {
  const model = new Map<Guid, EntryRow>();
  store.transaction(() => {
    for (const [index, op] of ops.entries()) {
      if (op.kind === "remove") {
        store.removeEntry(guidOf(op.n));
        model.delete(guidOf(op.n));
        continue;
      }
      const row = entryOf(op.n, {
        parentEff: modelParents[op.parent] ?? null,
        rdnNorm: op.rdnNorm,
        deleted: op.deleted,
        tombstoneSince: op.deleted ? (index as Millis) : null,
        usnChanged: (index + 1) as Usn,
      });
      store.putEntry(row);
      model.set(row.guid, row);
    }
  });
  return model;
}

function propertyTests(open: OpenStore): void {
  it("listChildren paging returns exactly the live children of a model, in order", () => {
    fc.assert(
      fc.property(
        fc.array(modelOpArbitrary, { maxLength: 40 }),
        fc.integer({ min: 1, max: 5 }),
        (ops, pageSize) => {
          withStore(open, (store) => {
            const model = applyModelOps(store, ops);
            for (const parent of [rootGuid, otherParent]) {
              const expected = [...model.values()]
                .filter((row) => !row.deleted && row.parentEff === parent)
                .sort(compareChildren);
              const paged = pageAll(
                (after: ChildCursor | null, limit) => store.listChildren(parent, after, limit),
                (row) => ({ rdnNorm: row.rdnNorm, guid: row.guid }),
                pageSize,
              );
              assert.deepEqual(paged, expected);
              assert.equal(store.hasChildren(parent), expected.length > 0);
            }
            const live = [...model.values()].filter((row) => !row.deleted).length;
            assert.deepEqual(store.counts(), { entries: live, tombstones: model.size - live, items: 0 });
          });
        },
      ),
      { numRuns: 60 },
    );
  });
}
