import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  makeDirectory,
  makeReplica,
  pull,
  syncAll,
  type TestReplica,
} from "../../../test/support/replicas.ts";
import { ManualClock, SeededRandom } from "../../sim/ports.ts";
import { SqliteStore } from "../../store/sqlite-store.ts";
import { dumpStore } from "../../store/store-contract.ts";
import { lostAndFoundGuid, partitionRootGuid } from "../directory/partition.ts";
import { operationalAttributeTypes } from "../directory/schema.ts";
import { type Guid, nodeId, type Usn } from "../ids.ts";
import type { Result } from "../result.ts";
import { unwrap } from "../result.ts";
import type { Modification } from "./attributes.ts";
import type { WriteOutcome, WriteRequest } from "./originating.ts";
import { type SearchPosition, searchSizeLimitMax } from "./read.ts";
import { Replica, writeBatchMax } from "./replica.ts";

/**
 * The semantics of every client operation on one replica (add, modify, delete, modifyDn,
 * partitions, search, batches), and on a second replica where replication matters. Failures
 * are checked by their stable code and, where the contract says nothing changes, by comparing
 * a complete dump of the store before and after.
 */
const base = "dc=example,dc=com";
const lostAndFound = `cn=LostAndFound,${base}`;

function single(): TestReplica {
  const [replica] = makeDirectory(["node-a"]);
  assert.ok(replica !== undefined);
  return replica;
}

function pair(): [TestReplica, TestReplica] {
  const [a, b] = makeDirectory(["node-a", "node-b"]);
  assert.ok(a !== undefined && b !== undefined);
  syncAll([a, b]);
  return [a, b];
}

/** "ok", or the error code of a failed result. */
function codeOf(result: Result<unknown>): string {
  return result.ok ? "ok" : result.error.code;
}

function errorOf(result: Result<unknown>): { code: string; message: string; matchedDn?: string } {
  if (result.ok) assert.fail(`expected a failure, got ${JSON.stringify(result.value)}`);
  return result.error;
}

/** Runs a request that must fail with `code` and proves it left the store exactly as it was. */
function failsUnchanged(replica: TestReplica, code: string, run: () => Result<unknown>): void {
  const before = dumpStore(replica.store);
  const usn = replica.replica.usn;
  const result = run();
  assert.equal(codeOf(result), code, JSON.stringify(result));
  assert.deepEqual(dumpStore(replica.store), before);
  assert.equal(replica.replica.usn, usn);
}

function add(replica: TestReplica, dn: string, attributes: Record<string, string[]> = {}): WriteOutcome {
  return unwrap(
    replica.replica.writeOne({ op: "add", dn, attributes: { objectClass: ["person"], ...attributes } }),
  );
}

function modify(replica: TestReplica, dn: string, ...changes: Modification[]): Result<WriteOutcome> {
  return replica.replica.writeOne({ op: "modify", dn, changes });
}

function attributes(replica: TestReplica, dn: string): Readonly<Record<string, readonly string[]>> {
  return unwrap(replica.replica.get(dn)).attributes;
}

function values(replica: TestReplica, dn: string, attribute: string): readonly string[] | undefined {
  return attributes(replica, dn)[attribute];
}

function sorted(list: readonly string[]): string[] {
  return [...list].sort();
}

function dns(
  replica: TestReplica,
  searchBase: string,
  scope: "base" | "one" | "sub",
  filter?: string,
): string[] {
  const result = unwrap(
    replica.replica.search({ base: searchBase, scope, ...(filter === undefined ? {} : { filter }) }),
  );
  return sorted(result.entries.map((entry) => entry.dn));
}

function usnChangedOf(replica: TestReplica, guid: Guid): Usn {
  const row = replica.store.getEntry(guid);
  assert.ok(row !== undefined, `no row for ${guid}`);
  return row.usnChanged;
}

// ---------------------------------------------------------------------------------------------

describe("add", () => {
  it("returns the new entry's guid, DN and USN, one USN per write", () => {
    const a = single();
    const start = a.replica.usn;
    const first = add(a, `cn=Alice,${base}`);
    assert.match(first.guid, /^[0-9a-f]{32}$/);
    assert.equal(first.dn, `cn=Alice,${base}`);
    assert.equal(first.usn, start + 1);
    assert.equal(first.entries, 1);
    assert.equal(a.replica.usn, start + 1);
    const second = add(a, `cn=Bob,${base}`);
    assert.equal(second.usn, start + 2);
    assert.notEqual(second.guid, first.guid);
    assert.equal(unwrap(a.replica.get(`cn=alice,${base}`)).guid, first.guid);
    assert.equal(
      unwrap(a.replica.get(`cn=alice,${base}`, ["usnCreated"])).attributes.usnCreated?.[0],
      `${start + 1}`,
    );
  });

  it("gives a new entry a GUID that starts with the clock's milliseconds, so later GUIDs sort after", () => {
    const a = single();
    a.clock.set(0x0193_1234_5678);
    const first = add(a, `cn=Alice,${base}`);
    const second = add(a, `cn=Bob,${base}`);
    assert.equal(first.guid.slice(0, 12), "019312345678");
    assert.notEqual(first.guid, second.guid, "the same millisecond still gives two GUIDs");
    a.clock.advance(1);
    const third = add(a, `cn=Carol,${base}`);
    assert.equal(third.guid.slice(0, 12), "019312345679");
    assert.ok(third.guid > first.guid && third.guid > second.guid);
    // A clock before 1970 or past 48 bits is clamped: still 32 hex digits.
    a.clock.set(-5);
    assert.match(add(a, `cn=Dave,${base}`).guid, /^000000000000[0-9a-f]{20}$/);
    a.clock.set(2 ** 52);
    assert.match(add(a, `cn=Eve,${base}`).guid, /^ffffffffffff[0-9a-f]{20}$/);
  });

  it("draws another GUID when the one drawn names an existing entry, and never writes over it", () => {
    // A random source that repeats its GUID bytes: the second add draws the first one's GUID.
    const seeded = new SeededRandom(7);
    const repeats: Uint8Array[] = [];
    const random = {
      bytes(count: number): Uint8Array {
        if (count !== 10) return seeded.bytes(count);
        return repeats.shift() ?? seeded.bytes(count);
      },
    };
    const replica = Replica.create(
      SqliteStore.open({ path: ":memory:" }),
      { clock: new ManualClock(1_000), random },
      nodeId("node-a"),
    );
    unwrap(replica.createPartition(base));
    const same = seeded.bytes(10);
    repeats.push(same, same);
    const first = unwrap(
      replica.writeOne({ op: "add", dn: `cn=Alice,${base}`, attributes: { objectClass: ["person"] } }),
    );
    const second = unwrap(
      replica.writeOne({ op: "add", dn: `cn=Bob,${base}`, attributes: { objectClass: ["person"] } }),
    );
    assert.notEqual(second.guid, first.guid);
    assert.equal(unwrap(replica.get(`cn=Alice,${base}`)).guid, first.guid);
    assert.equal(unwrap(replica.get(`cn=Bob,${base}`)).guid, second.guid);
    // A source that only ever repeats is broken: the add fails rather than overwrite Alice.
    repeats.push(same, same, same, same, same);
    assert.throws(
      () => replica.writeOne({ op: "add", dn: `cn=Carol,${base}`, attributes: { objectClass: ["person"] } }),
      /all named existing entries/,
    );
    assert.equal(unwrap(replica.get(`cn=Alice,${base}`)).guid, first.guid);
    assert.equal(codeOf(replica.get(`cn=Carol,${base}`)), "no-such-entry");
  });

  it("adds the RDN's value to the attributes when it is missing", () => {
    const a = single();
    add(a, `cn=Alice,${base}`, { sn: ["Smith"] });
    assert.deepEqual(values(a, `cn=Alice,${base}`, "cn"), ["Alice"]);
    add(a, `cn=Bob+uid=bob,${base}`);
    const bob = attributes(a, `uid=bob+cn=Bob,${base}`);
    assert.deepEqual(bob.cn, ["Bob"]);
    assert.deepEqual(bob.uid, ["bob"]);
  });

  it("does not duplicate an RDN value already present, case-insensitively", () => {
    const a = single();
    add(a, `cn=Alice,${base}`, { CN: ["ALICE", "Al"] });
    assert.deepEqual(attributes(a, `cn=alice,${base}`), { CN: ["ALICE", "Al"], objectClass: ["person"] });
    add(a, `cn=  Bob   Jones ,${base}`, { cn: ["bob jones"] });
    assert.deepEqual(values(a, `cn=bob jones,${base}`, "cn"), ["bob jones"]);
  });

  it("fails entry-exists for an existing DN, matched case- and space-insensitively", () => {
    const a = single();
    add(a, `cn=Alice Smith,${base}`);
    for (const dn of [
      `cn=Alice Smith,${base}`,
      `CN=ALICE SMITH,DC=Example,DC=COM`,
      `cn = alice  smith , dc=example , dc=com`,
      lostAndFound,
    ]) {
      failsUnchanged(a, "entry-exists", () =>
        a.replica.writeOne({ op: "add", dn, attributes: { objectClass: ["person"] } }),
      );
    }
  });

  it("fails entry-exists for the partition root's own DN", () => {
    // originating.ts addEntry resolves the parent (dc=com) before it looks for the entry, so
    // adding an existing partition root reports no-such-parent with matchedDn "" instead of
    // LDAP's entryAlreadyExists.
    const a = single();
    failsUnchanged(a, "entry-exists", () =>
      a.replica.writeOne({ op: "add", dn: base, attributes: { objectClass: ["domain"] } }),
    );
  });

  it("fails no-such-parent with the longest existing ancestor as matchedDn", () => {
    const a = single();
    add(a, `ou=people,${base}`);
    failsUnchanged(a, "no-such-parent", () =>
      a.replica.writeOne({
        op: "add",
        dn: `cn=x,ou=missing,ou=people,${base}`,
        attributes: { objectClass: ["x"] },
      }),
    );
    const deep = errorOf(
      a.replica.writeOne({
        op: "add",
        dn: `cn=x,ou=missing,ou=people,${base}`,
        attributes: { objectClass: ["x"] },
      }),
    );
    assert.equal(deep.matchedDn, `ou=people,${base}`);
    const outside = errorOf(
      a.replica.writeOne({ op: "add", dn: "cn=x,o=nowhere", attributes: { objectClass: ["x"] } }),
    );
    assert.equal(outside.code, "no-such-parent");
    assert.equal(outside.matchedDn, "");
  });

  it("fails object-class-violation without objectClass", () => {
    const a = single();
    failsUnchanged(a, "object-class-violation", () =>
      a.replica.writeOne({ op: "add", dn: `cn=x,${base}`, attributes: { cn: ["x"] } }),
    );
    failsUnchanged(a, "object-class-violation", () =>
      a.replica.writeOne({ op: "add", dn: `cn=x,${base}`, attributes: {} }),
    );
  });

  it("fails invalid-attribute for a bad type or one type given twice in different case", () => {
    const a = single();
    for (const type of ["c n", "cn;lang-en", "@name", "", "1cn", "x".repeat(200)]) {
      failsUnchanged(a, "invalid-attribute", () =>
        a.replica.writeOne({
          op: "add",
          dn: `cn=x,${base}`,
          attributes: { objectClass: ["x"], [type]: ["v"] },
        }),
      );
    }
    failsUnchanged(a, "invalid-attribute", () =>
      a.replica.writeOne({
        op: "add",
        dn: `cn=x,${base}`,
        attributes: { objectClass: ["x"], description: ["a"], Description: ["b"] },
      }),
    );
    failsUnchanged(a, "invalid-attribute", () =>
      a.replica.writeOne({
        op: "add",
        dn: `cn=x,${base}`,
        attributes: { objectClass: ["x"], objectclass: ["y"] },
      }),
    );
  });

  it("fails attribute-or-value-exists for a value given twice", () => {
    const a = single();
    for (const list of [
      ["a", "a"],
      ["Same", "sAME"],
      ["two  words", " Two Words "],
    ]) {
      failsUnchanged(a, "attribute-or-value-exists", () =>
        a.replica.writeOne({
          op: "add",
          dn: `cn=x,${base}`,
          attributes: { objectClass: ["x"], description: list },
        }),
      );
    }
    failsUnchanged(a, "attribute-or-value-exists", () =>
      a.replica.writeOne({
        op: "add",
        dn: `cn=g,${base}`,
        attributes: { objectClass: ["group"], member: ["cn=bob,dc=x", "CN=Bob, DC=X"] },
      }),
    );
  });

  it("fails invalid-value for an empty value list or a member value that is not a DN", () => {
    const a = single();
    failsUnchanged(a, "invalid-value", () =>
      a.replica.writeOne({
        op: "add",
        dn: `cn=x,${base}`,
        attributes: { objectClass: ["x"], description: [] },
      }),
    );
    failsUnchanged(a, "invalid-value", () =>
      a.replica.writeOne({ op: "add", dn: `cn=x,${base}`, attributes: { objectClass: [] } }),
    );
    for (const member of ["not a dn", "cn=a,,dc=x", "=x"]) {
      failsUnchanged(a, "invalid-value", () =>
        a.replica.writeOne({
          op: "add",
          dn: `cn=g,${base}`,
          attributes: { objectClass: ["group"], member: [member] },
        }),
      );
    }
  });

  it("refuses a link-valued attribute as the RDN", () => {
    const a = single();
    failsUnchanged(a, "invalid-dn", () =>
      a.replica.writeOne({ op: "add", dn: `member=cn\\=x,${base}`, attributes: { objectClass: ["x"] } }),
    );
  });

  it("replicates the entry with the same guid and attributes", () => {
    const [a, b] = pair();
    const alice = add(a, `cn=Alice,${base}`, { mail: ["alice@example.com"] });
    pull(b.replica, a.replica);
    assert.equal(unwrap(b.replica.get(`cn=alice,${base}`)).guid, alice.guid);
    assert.deepEqual(attributes(b, `cn=Alice,${base}`), attributes(a, `cn=Alice,${base}`));
  });

  it("tells its newest own change apart from USNs taken to apply others' changes", () => {
    const [a, b] = pair();
    const own = add(b, `cn=Bob,${base}`);
    assert.equal(b.replica.originatedUsn, own.usn);
    add(a, `cn=Alice,${base}`);
    add(a, `cn=Carol,${base}`);
    pull(b.replica, a.replica);
    // b took USNs for a's two adds; its own newest change is still Bob's add.
    assert.ok(b.replica.usn > own.usn);
    assert.equal(b.replica.originatedUsn, own.usn);
    assert.ok((a.replica.utd()[b.replica.invocationId] ?? 0) < own.usn);
    pull(a.replica, b.replica);
    assert.ok((a.replica.utd()[b.replica.invocationId] ?? 0) >= b.replica.originatedUsn);
  });
});

// ---------------------------------------------------------------------------------------------

describe("modify", () => {
  const dn = `cn=Alice,${base}`;

  function alice(): TestReplica {
    const a = single();
    add(a, dn, { description: ["one", "two"], sn: ["Smith"] });
    return a;
  }

  it("add appends values and fails attribute-or-value-exists for a present one", () => {
    const a = alice();
    const before = a.replica.usn;
    const outcome = unwrap(modify(a, dn, { operation: "add", attribute: "description", values: ["three"] }));
    assert.equal(outcome.entries, 1);
    assert.equal(outcome.usn, before + 1);
    assert.deepEqual(values(a, dn, "description"), ["one", "two", "three"]);
    unwrap(modify(a, dn, { operation: "add", attribute: "title", values: ["Boss"] }));
    assert.deepEqual(values(a, dn, "title"), ["Boss"]);
    failsUnchanged(a, "attribute-or-value-exists", () =>
      modify(a, dn, { operation: "add", attribute: "Description", values: ["ONE"] }),
    );
    failsUnchanged(a, "invalid-request", () =>
      modify(a, dn, { operation: "add", attribute: "title", values: [] }),
    );
  });

  it("delete removes given values, or the whole attribute without values", () => {
    const a = alice();
    unwrap(modify(a, dn, { operation: "delete", attribute: "description", values: ["ONE"] }));
    assert.deepEqual(values(a, dn, "description"), ["two"]);
    failsUnchanged(a, "no-such-attribute", () =>
      modify(a, dn, { operation: "delete", attribute: "description", values: ["one"] }),
    );
    unwrap(modify(a, dn, { operation: "delete", attribute: "sn", values: [] }));
    assert.equal(values(a, dn, "sn"), undefined);
    failsUnchanged(a, "no-such-attribute", () =>
      modify(a, dn, { operation: "delete", attribute: "sn", values: [] }),
    );
    failsUnchanged(a, "no-such-attribute", () =>
      modify(a, dn, { operation: "delete", attribute: "title", values: ["x"] }),
    );
  });

  it("replace sets the values, removes the attribute with [], and creates an absent one", () => {
    const a = alice();
    unwrap(modify(a, dn, { operation: "replace", attribute: "description", values: ["new"] }));
    assert.deepEqual(values(a, dn, "description"), ["new"]);
    unwrap(modify(a, dn, { operation: "replace", attribute: "description", values: [] }));
    assert.equal(values(a, dn, "description"), undefined);
    unwrap(modify(a, dn, { operation: "replace", attribute: "title", values: ["Boss", "Chief"] }));
    assert.deepEqual(values(a, dn, "title"), ["Boss", "Chief"]);
    const usn = a.replica.usn;
    const nothing = unwrap(modify(a, dn, { operation: "replace", attribute: "absent", values: [] }));
    assert.equal(nothing.entries, 0);
    assert.equal(a.replica.usn, usn);
    failsUnchanged(a, "attribute-or-value-exists", () =>
      modify(a, dn, { operation: "replace", attribute: "title", values: ["x", "X"] }),
    );
  });

  it("applies several changes in order", () => {
    const a = alice();
    unwrap(
      modify(
        a,
        dn,
        { operation: "add", attribute: "title", values: ["temp"] },
        { operation: "delete", attribute: "title", values: ["temp"] },
        { operation: "replace", attribute: "sn", values: ["Jones"] },
        { operation: "add", attribute: "sn", values: ["Smith"] },
      ),
    );
    assert.equal(values(a, dn, "title"), undefined);
    assert.deepEqual(values(a, dn, "sn"), ["Jones", "Smith"]);
    // The same two changes in the other order: the delete finds nothing to delete.
    failsUnchanged(a, "no-such-attribute", () =>
      modify(
        a,
        dn,
        { operation: "delete", attribute: "title", values: ["temp"] },
        { operation: "add", attribute: "title", values: ["temp"] },
      ),
    );
  });

  it("is atomic: a failing third change leaves the first two unapplied", () => {
    const a = alice();
    failsUnchanged(a, "no-such-attribute", () =>
      modify(
        a,
        dn,
        { operation: "replace", attribute: "sn", values: ["Jones"] },
        { operation: "add", attribute: "title", values: ["Boss"] },
        { operation: "delete", attribute: "mail", values: ["nobody@example.com"] },
      ),
    );
    assert.deepEqual(values(a, dn, "sn"), ["Smith"]);
    assert.equal(values(a, dn, "title"), undefined);
  });

  it("fails not-allowed-on-rdn when the naming value would go", () => {
    const a = alice();
    for (const change of [
      { operation: "delete", attribute: "cn", values: ["alice"] },
      { operation: "delete", attribute: "CN", values: [] },
      { operation: "replace", attribute: "cn", values: ["Alicia"] },
      { operation: "replace", attribute: "cn", values: [] },
    ] as const) {
      failsUnchanged(a, "not-allowed-on-rdn", () => modify(a, dn, change));
    }
    unwrap(modify(a, dn, { operation: "replace", attribute: "cn", values: ["ALICE", "Alicia"] }));
    assert.deepEqual(values(a, dn, "cn"), ["ALICE", "Alicia"]);
  });

  it("fails not-allowed-on-rdn when a partition root's naming value would go", () => {
    // originating.ts checkEntryAfter skips the RDN check when row.parent is null, so the
    // root dc=example,dc=com accepts replace dc: ["other"] and no longer holds dc=example.
    const a = single();
    failsUnchanged(a, "not-allowed-on-rdn", () =>
      modify(a, base, { operation: "replace", attribute: "dc", values: ["other"] }),
    );
  });

  it("fails object-class-violation when every objectClass value would go", () => {
    const a = alice();
    for (const change of [
      { operation: "delete", attribute: "objectClass", values: [] },
      { operation: "delete", attribute: "objectclass", values: ["PERSON"] },
      { operation: "replace", attribute: "objectClass", values: [] },
    ] as const) {
      failsUnchanged(a, "object-class-violation", () => modify(a, dn, change));
    }
    unwrap(modify(a, dn, { operation: "replace", attribute: "objectClass", values: ["top", "person"] }));
    assert.deepEqual(values(a, dn, "objectClass"), ["top", "person"]);
  });

  it("a modify that changes nothing returns entries 0 and takes no USN", () => {
    const a = alice();
    const before = dumpStore(a.store);
    const row = a.store.getEntry(unwrap(a.replica.get(dn)).guid);
    const outcome = unwrap(
      modify(
        a,
        dn,
        { operation: "replace", attribute: "description", values: ["one", "two"] },
        { operation: "add", attribute: "title", values: ["x"] },
        { operation: "delete", attribute: "title", values: [] },
      ),
    );
    assert.equal(outcome.entries, 0);
    assert.equal(outcome.usn, row?.usnChanged);
    assert.deepEqual(dumpStore(a.store), before);
  });

  it("fails no-such-entry for a missing DN and invalid-request without changes", () => {
    const a = alice();
    failsUnchanged(a, "no-such-entry", () =>
      modify(a, `cn=nobody,${base}`, { operation: "add", attribute: "title", values: ["x"] }),
    );
    assert.equal(
      errorOf(modify(a, `cn=nobody,${base}`, { operation: "add", attribute: "title", values: ["x"] }))
        .matchedDn,
      base,
    );
    failsUnchanged(a, "invalid-request", () => modify(a, dn));
  });

  describe("link-valued member", () => {
    const group = `cn=staff,${base}`;

    function withGroup(): TestReplica {
      const a = single();
      add(a, group, { objectClass: ["group"], member: ["cn=bob,dc=x"] });
      return a;
    }

    it("compares values as DNs on add and delete", () => {
      const a = withGroup();
      failsUnchanged(a, "attribute-or-value-exists", () =>
        modify(a, group, { operation: "add", attribute: "member", values: ["CN=Bob, DC=x"] }),
      );
      unwrap(modify(a, group, { operation: "add", attribute: "member", values: ["cn=carol,dc=x"] }));
      unwrap(modify(a, group, { operation: "delete", attribute: "Member", values: ["CN=Bob, DC=X"] }));
      assert.deepEqual(values(a, group, "member"), ["cn=carol,dc=x"]);
      failsUnchanged(a, "no-such-attribute", () =>
        modify(a, group, { operation: "delete", attribute: "member", values: ["cn=bob,dc=x"] }),
      );
      failsUnchanged(a, "invalid-value", () =>
        modify(a, group, { operation: "add", attribute: "member", values: ["bob"] }),
      );
    });

    it("keeps both of two members added concurrently on two replicas", () => {
      const [a, b] = pair();
      add(a, group, { objectClass: ["group"], member: ["cn=bob,dc=x"] });
      syncAll([a, b]);
      unwrap(modify(a, group, { operation: "add", attribute: "member", values: ["cn=carol,dc=x"] }));
      unwrap(modify(b, group, { operation: "add", attribute: "member", values: ["cn=dave,dc=x"] }));
      syncAll([a, b]);
      const expected = ["cn=bob,dc=x", "cn=carol,dc=x", "cn=dave,dc=x"];
      assert.deepEqual(sorted(values(a, group, "member") ?? []), expected);
      assert.deepEqual(sorted(values(b, group, "member") ?? []), expected);
    });

    it("a replace with the same DNs spelled differently changes nothing", () => {
      // originating.ts modifyEntry decides with attributeChanged (attributes.ts), which compares
      // value spellings in order; writeAttribute for a link attribute compares keys and so
      // writes nothing. The entry gets a new usnChanged and the client is told it changed.
      const a = withGroup();
      const before = dumpStore(a.store);
      const outcome = unwrap(
        modify(a, group, { operation: "replace", attribute: "member", values: ["CN=Bob, DC=x"] }),
      );
      assert.equal(outcome.entries, 0);
      assert.deepEqual(dumpStore(a.store), before);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe("what a client cannot write", () => {
  const dn = `cn=Alice,${base}`;

  function alice(): TestReplica {
    const a = single();
    add(a, dn, { description: ["one"] });
    return a;
  }

  /** Stores values the way a node did before these checks: straight into the store. */
  function storeLegacy(a: TestReplica, attribute: string, stored: string[]): void {
    const guid = unwrap(a.replica.get(dn)).guid;
    const model = a.store.getItem(guid, "description", "");
    assert.ok(model !== undefined);
    a.store.putItem({
      ...model,
      attribute: attribute.toLowerCase(),
      value: { kind: "values", type: attribute, values: stored },
    });
  }

  it("refuses operational attributes in add, modify add, delete and replace, and in a new RDN", () => {
    const a = alice();
    for (const type of [
      "entryGUID",
      "ENTRYUUID",
      "usnCreated",
      "usnChanged",
      "plexusConflict",
      "plexusPlacement",
    ]) {
      failsUnchanged(a, "invalid-attribute", () =>
        a.replica.writeOne({
          op: "add",
          dn: `cn=x,${base}`,
          attributes: { objectClass: ["x"], [type]: ["abc"] },
        }),
      );
      for (const operation of ["add", "delete", "replace"] as const) {
        failsUnchanged(a, "invalid-attribute", () =>
          modify(a, dn, { operation, attribute: type, values: ["abc"] }),
        );
        failsUnchanged(a, "invalid-attribute", () =>
          modify(a, dn, { operation, attribute: type, values: [] }),
        );
      }
    }
    failsUnchanged(a, "invalid-attribute", () =>
      a.replica.writeOne({ op: "add", dn: `usnChanged=7,${base}`, attributes: { objectClass: ["x"] } }),
    );
    failsUnchanged(a, "invalid-attribute", () =>
      a.replica.writeOne({ op: "modifyDn", dn, newRdn: "entryGUID=abc" }),
    );
    const refused = errorOf(modify(a, dn, { operation: "replace", attribute: "entryGUID", values: ["abc"] }));
    assert.equal(refused.code, "invalid-attribute");
    assert.match(refused.message, /^entryGUID is an operational attribute: the node computes it/);
  });

  it("the computed entryGUID stays what reads and filters see", () => {
    const a = alice();
    const guid = unwrap(a.replica.get(dn)).guid;
    modify(a, dn, { operation: "add", attribute: "entryGUID", values: ["abc"] });
    assert.equal(values(a, dn, "entryGUID"), undefined);
    assert.deepEqual(unwrap(a.replica.get(dn, ["+"])).attributes.entryGUID, [guid]);
    assert.deepEqual(dns(a, base, "sub", `(entryGUID=${guid})`), [dn]);
    // Every attribute a read computes is one a client is refused (read.ts keeps its own list).
    for (const type of Object.keys(unwrap(a.replica.get(dn, ["+"])).attributes))
      assert.ok(operationalAttributeTypes.includes(type), type);
  });

  it("refuses an empty value in add, modify add and replace, and in an RDN, naming the attribute", () => {
    const a = alice();
    failsUnchanged(a, "invalid-value", () =>
      a.replica.writeOne({ op: "add", dn: `cn=x,${base}`, attributes: { objectClass: ["x"], sn: [""] } }),
    );
    failsUnchanged(a, "invalid-value", () =>
      a.replica.writeOne({
        op: "add",
        dn: `cn=x,${base}`,
        attributes: { objectClass: ["x"], sn: ["a", ""] },
      }),
    );
    failsUnchanged(a, "invalid-value", () =>
      a.replica.writeOne({ op: "add", dn: `cn=,${base}`, attributes: { objectClass: ["x"] } }),
    );
    failsUnchanged(a, "invalid-value", () =>
      a.replica.writeOne({ op: "add", dn: `cn=g,${base}`, attributes: { objectClass: ["x"], member: [""] } }),
    );
    for (const operation of ["add", "replace"] as const) {
      const refused = errorOf(modify(a, dn, { operation, attribute: "sn", values: [""] }));
      assert.equal(refused.message, "sn cannot have an empty value");
      failsUnchanged(a, "invalid-value", () => modify(a, dn, { operation, attribute: "sn", values: [""] }));
    }
    failsUnchanged(a, "invalid-value", () => a.replica.writeOne({ op: "modifyDn", dn, newRdn: "sn=" }));
  });

  it("can still remove empty values and operational attributes stored before these checks", () => {
    const a = alice();
    storeLegacy(a, "sn", ["", "Smith"]);
    storeLegacy(a, "entryGUID", ["abc"]);
    unwrap(modify(a, dn, { operation: "delete", attribute: "sn", values: [""] }));
    assert.deepEqual(values(a, dn, "sn"), ["Smith"]);
    unwrap(modify(a, dn, { operation: "delete", attribute: "entryGUID", values: [] }));
    assert.equal(values(a, dn, "entryGUID"), undefined);
    failsUnchanged(a, "invalid-attribute", () =>
      modify(a, dn, { operation: "delete", attribute: "entryGUID", values: [] }),
    );
    storeLegacy(a, "usnChanged", ["1"]);
    unwrap(modify(a, dn, { operation: "replace", attribute: "usnChanged", values: [] }));
    assert.equal(values(a, dn, "usnChanged"), undefined);
  });

  it("replicated changes are applied as they come, empty values and operational attributes too", () => {
    const [a, b] = pair();
    add(a, dn, { description: ["one"] });
    storeLegacy(a, "sn", [""]);
    storeLegacy(a, "entryGUID", ["abc"]);
    pull(b.replica, a.replica);
    assert.deepEqual(values(b, dn, "sn"), [""]);
    assert.deepEqual(values(b, dn, "entryGUID"), ["abc"]);
  });
});

// ---------------------------------------------------------------------------------------------

describe("delete", () => {
  function tree(): TestReplica {
    const a = single();
    add(a, `ou=sub,${base}`);
    add(a, `cn=one,ou=sub,${base}`);
    add(a, `cn=two,ou=sub,${base}`);
    add(a, `cn=grandchild,cn=one,ou=sub,${base}`);
    add(a, `cn=outside,${base}`);
    return a;
  }

  it("deletes a leaf: it no longer resolves and search no longer finds it", () => {
    const a = tree();
    const counts = a.replica.counts();
    const usn = a.replica.usn;
    const guid = unwrap(a.replica.get(`cn=outside,${base}`)).guid;
    const outcome = unwrap(a.replica.writeOne({ op: "delete", dn: `CN=Outside,${base}` }));
    assert.deepEqual(outcome, { guid, dn: `cn=outside,${base}`, usn: usn + 1, entries: 1, partition: base });
    assert.equal(codeOf(a.replica.get(`cn=outside,${base}`)), "no-such-entry");
    assert.deepEqual(dns(a, base, "sub", "(cn=outside)"), []);
    assert.equal(a.replica.counts().tombstones, counts.tombstones + 1);
    failsUnchanged(a, "no-such-entry", () => a.replica.writeOne({ op: "delete", dn: `cn=outside,${base}` }));
    // The name is free again.
    add(a, `cn=outside,${base}`);
    assert.notEqual(unwrap(a.replica.get(`cn=outside,${base}`)).guid, guid);
  });

  it("fails not-leaf for an entry with children", () => {
    const a = tree();
    failsUnchanged(a, "not-leaf", () => a.replica.writeOne({ op: "delete", dn: `ou=sub,${base}` }));
    failsUnchanged(a, "not-leaf", () =>
      a.replica.writeOne({ op: "delete", dn: `cn=one,ou=sub,${base}`, subtree: false }),
    );
  });

  it("a subtree delete removes the whole subtree, children before parents", () => {
    const a = tree();
    const guids = [
      `ou=sub,${base}`,
      `cn=one,ou=sub,${base}`,
      `cn=two,ou=sub,${base}`,
      `cn=grandchild,cn=one,ou=sub,${base}`,
    ].map((dn) => unwrap(a.replica.get(dn)).guid);
    const [sub, one, two, grandchild] = guids as [Guid, Guid, Guid, Guid];
    const tombstones = a.replica.counts().tombstones;
    const usn = a.replica.usn;
    const outcome = unwrap(a.replica.writeOne({ op: "delete", dn: `ou=sub,${base}`, subtree: true }));
    assert.equal(outcome.entries, 4);
    assert.equal(outcome.guid, sub);
    assert.equal(outcome.usn, usn + 4);
    assert.equal(a.replica.counts().tombstones, tombstones + 4);
    assert.ok(usnChangedOf(a, grandchild) < usnChangedOf(a, one));
    assert.ok(usnChangedOf(a, one) < usnChangedOf(a, sub));
    assert.ok(usnChangedOf(a, two) < usnChangedOf(a, sub));
    assert.deepEqual(dns(a, base, "sub"), sorted([base, lostAndFound, `cn=outside,${base}`]));
    // Nothing was orphaned on the way out.
    assert.deepEqual(dns(a, lostAndFound, "one"), []);
    assert.deepEqual(a.replica.conflicts(), []);
  });

  it("a subtree delete of a leaf deletes just the leaf", () => {
    const a = tree();
    assert.equal(
      unwrap(a.replica.writeOne({ op: "delete", dn: `cn=two,ou=sub,${base}`, subtree: true })).entries,
      1,
    );
  });

  it("fails system-entry for the partition root and its LostAndFound", () => {
    const a = tree();
    for (const dn of [base, lostAndFound, "CN=lostandfound, DC=EXAMPLE, DC=COM"]) {
      failsUnchanged(a, "system-entry", () => a.replica.writeOne({ op: "delete", dn }));
      failsUnchanged(a, "system-entry", () => a.replica.writeOne({ op: "delete", dn, subtree: true }));
    }
  });

  it("the tombstone replicates: the entry is gone on the other replica too", () => {
    const [a, b] = pair();
    add(a, `cn=x,${base}`);
    syncAll([a, b]);
    const tombstones = b.replica.counts().tombstones;
    unwrap(a.replica.writeOne({ op: "delete", dn: `cn=x,${base}` }));
    pull(b.replica, a.replica);
    assert.equal(codeOf(b.replica.get(`cn=x,${base}`)), "no-such-entry");
    assert.equal(b.replica.counts().tombstones, tombstones + 1);
  });
});

// ---------------------------------------------------------------------------------------------

describe("modifyDn", () => {
  function people(): TestReplica {
    const a = single();
    add(a, `ou=people,${base}`);
    add(a, `ou=staff,${base}`);
    add(a, `cn=alice,ou=people,${base}`, { sn: ["Smith"] });
    add(a, `cn=child,cn=alice,ou=people,${base}`);
    return a;
  }

  it("renames within the parent, removing the old RDN value by default", () => {
    const a = people();
    const guid = unwrap(a.replica.get(`cn=alice,ou=people,${base}`)).guid;
    const usn = a.replica.usn;
    const outcome = unwrap(
      a.replica.writeOne({ op: "modifyDn", dn: `cn=alice,ou=people,${base}`, newRdn: "cn=Alicia" }),
    );
    assert.deepEqual(outcome, {
      guid,
      dn: `cn=Alicia,ou=people,${base}`,
      usn: usn + 1,
      entries: 1,
      partition: base,
    });
    assert.deepEqual(values(a, `cn=alicia,ou=people,${base}`, "cn"), ["Alicia"]);
    assert.equal(codeOf(a.replica.get(`cn=alice,ou=people,${base}`)), "no-such-entry");
    assert.equal(
      unwrap(a.replica.get(`cn=child,cn=alicia,ou=people,${base}`)).dn,
      `cn=child,cn=Alicia,ou=people,${base}`,
    );
  });

  it("keeps the old RDN value with deleteOldRdn false", () => {
    const a = people();
    unwrap(
      a.replica.writeOne({
        op: "modifyDn",
        dn: `cn=alice,ou=people,${base}`,
        newRdn: "cn=Alicia",
        deleteOldRdn: false,
      }),
    );
    assert.deepEqual(values(a, `cn=Alicia,ou=people,${base}`, "cn"), ["alice", "Alicia"]);
  });

  it("renames to another attribute type, keeping or dropping the old one", () => {
    const a = people();
    unwrap(a.replica.writeOne({ op: "modifyDn", dn: `cn=alice,ou=people,${base}`, newRdn: "uid=asmith" }));
    const renamed = attributes(a, `uid=asmith,ou=people,${base}`);
    assert.deepEqual(renamed.uid, ["asmith"]);
    assert.equal(renamed.cn, undefined);
  });

  it("renames by case only", () => {
    const a = people();
    const outcome = unwrap(
      a.replica.writeOne({ op: "modifyDn", dn: `cn=alice,ou=people,${base}`, newRdn: "cn=ALICE" }),
    );
    assert.equal(outcome.dn, `cn=ALICE,ou=people,${base}`);
    assert.equal(unwrap(a.replica.get(`cn=alice,ou=people,${base}`)).dn, `cn=ALICE,ou=people,${base}`);
    assert.equal(
      unwrap(a.replica.get(`cn=child,cn=Alice,ou=people,${base}`)).dn,
      `cn=child,cn=ALICE,ou=people,${base}`,
    );
    // The naming value is still there (equal under caseIgnoreMatch).
    assert.equal(values(a, `cn=alice,ou=people,${base}`, "cn")?.length, 1);
  });

  it("moves to a new parent, and the children move with it", () => {
    const a = people();
    const child = unwrap(a.replica.get(`cn=child,cn=alice,ou=people,${base}`)).guid;
    const outcome = unwrap(
      a.replica.writeOne({
        op: "modifyDn",
        dn: `cn=alice,ou=people,${base}`,
        newRdn: "cn=alice",
        newParent: `OU=Staff,${base}`,
      }),
    );
    assert.equal(outcome.dn, `cn=alice,ou=staff,${base}`);
    assert.equal(unwrap(a.replica.get(`cn=child,cn=alice,ou=staff,${base}`)).guid, child);
    assert.equal(codeOf(a.replica.get(`cn=child,cn=alice,ou=people,${base}`)), "no-such-entry");
    assert.deepEqual(dns(a, `ou=people,${base}`, "one"), []);
    assert.deepEqual(dns(a, `ou=staff,${base}`, "sub"), [
      `cn=alice,ou=staff,${base}`,
      `cn=child,cn=alice,ou=staff,${base}`,
      `ou=staff,${base}`,
    ]);
  });

  it("moves and renames in one request, and the move replicates", () => {
    const [a, b] = pair();
    add(a, `ou=people,${base}`);
    add(a, `ou=staff,${base}`);
    const alice = add(a, `cn=alice,ou=people,${base}`);
    syncAll([a, b]);
    unwrap(
      a.replica.writeOne({
        op: "modifyDn",
        dn: `cn=alice,ou=people,${base}`,
        newRdn: "cn=Alicia",
        newParent: `ou=staff,${base}`,
      }),
    );
    pull(b.replica, a.replica);
    assert.equal(unwrap(b.replica.get(`cn=alicia,ou=staff,${base}`)).guid, alice.guid);
    assert.deepEqual(values(b, `cn=alicia,ou=staff,${base}`, "cn"), ["Alicia"]);
  });

  it("fails entry-exists when the target name is taken", () => {
    const a = people();
    add(a, `cn=bob,ou=people,${base}`);
    add(a, `cn=alice,ou=staff,${base}`);
    failsUnchanged(a, "entry-exists", () =>
      a.replica.writeOne({ op: "modifyDn", dn: `cn=alice,ou=people,${base}`, newRdn: "CN=Bob" }),
    );
    failsUnchanged(a, "entry-exists", () =>
      a.replica.writeOne({
        op: "modifyDn",
        dn: `cn=alice,ou=people,${base}`,
        newRdn: "cn=alice",
        newParent: `ou=staff,${base}`,
      }),
    );
    failsUnchanged(a, "entry-exists", () =>
      a.replica.writeOne({ op: "modifyDn", dn: `ou=people,${base}`, newRdn: "cn=LostAndFound" }),
    );
  });

  it("fails move-into-own-subtree", () => {
    const a = people();
    for (const newParent of [`cn=alice,ou=people,${base}`, `cn=child,cn=alice,ou=people,${base}`]) {
      failsUnchanged(a, "move-into-own-subtree", () =>
        a.replica.writeOne({
          op: "modifyDn",
          dn: `cn=alice,ou=people,${base}`,
          newRdn: "cn=alice",
          newParent,
        }),
      );
    }
    failsUnchanged(a, "move-into-own-subtree", () =>
      a.replica.writeOne({
        op: "modifyDn",
        dn: `ou=people,${base}`,
        newRdn: "ou=people",
        newParent: `cn=child,cn=alice,ou=people,${base}`,
      }),
    );
  });

  it("fails cross-partition-move", () => {
    const a = people();
    unwrap(a.replica.createPartition("o=other"));
    add(a, "ou=there,o=other");
    for (const newParent of ["o=other", "ou=there,o=other", "cn=LostAndFound,o=other"]) {
      failsUnchanged(a, "cross-partition-move", () =>
        a.replica.writeOne({
          op: "modifyDn",
          dn: `cn=alice,ou=people,${base}`,
          newRdn: "cn=alice",
          newParent,
        }),
      );
    }
  });

  it("fails system-entry for the partition root and LostAndFound", () => {
    const a = people();
    failsUnchanged(a, "system-entry", () =>
      a.replica.writeOne({ op: "modifyDn", dn: base, newRdn: "dc=other" }),
    );
    failsUnchanged(a, "system-entry", () =>
      a.replica.writeOne({
        op: "modifyDn",
        dn: lostAndFound,
        newRdn: "cn=Lost",
        newParent: `ou=people,${base}`,
      }),
    );
  });

  it("fails no-such-parent for a missing new parent and no-such-entry for a missing entry", () => {
    const a = people();
    failsUnchanged(a, "no-such-parent", () =>
      a.replica.writeOne({
        op: "modifyDn",
        dn: `cn=alice,ou=people,${base}`,
        newRdn: "cn=alice",
        newParent: `ou=gone,${base}`,
      }),
    );
    failsUnchanged(a, "no-such-entry", () =>
      a.replica.writeOne({ op: "modifyDn", dn: `cn=nobody,ou=people,${base}`, newRdn: "cn=somebody" }),
    );
  });

  it("fails for a link-valued new RDN or an RDN that does not parse", () => {
    const a = people();
    failsUnchanged(a, "invalid-dn", () =>
      a.replica.writeOne({ op: "modifyDn", dn: `cn=alice,ou=people,${base}`, newRdn: "member=cn\\=x" }),
    );
    for (const newRdn of ["cn=a,cn=b", "cn", "", "=x"]) {
      failsUnchanged(a, "invalid-dn", () =>
        a.replica.writeOne({ op: "modifyDn", dn: `cn=alice,ou=people,${base}`, newRdn }),
      );
    }
  });

  it("refuses a move that would give an entry a DN longer than dnLengthMax", () => {
    // originating.ts modifyDn never checks the DN the entry (and its subtree) will have against
    // dnLengthMax or dnDepthMax (dn.ts dnChild says callers must). An add cannot build such a
    // DN, but a move can, and every name below it then fails to parse: get fails with
    // limit-exceeded. The same holds for depth (a 62-level chain plus a move gives 66 RDNs).
    const a = single();
    let parent = base;
    const chain: WriteRequest[] = [];
    for (let level = 0; level < 8; level++) {
      parent = `ou=${"x".repeat(1000)},${parent}`;
      chain.push({ op: "add", dn: parent, attributes: { objectClass: ["organizationalUnit"] } });
    }
    assert.ok(a.replica.write(chain).every((result) => result.ok));
    add(a, `ou=sub,${base}`);
    add(a, `cn=${"k".repeat(200)},ou=sub,${base}`);
    failsUnchanged(a, "limit-exceeded", () =>
      a.replica.writeOne({ op: "modifyDn", dn: `ou=sub,${base}`, newRdn: "ou=sub", newParent: parent }),
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe("partitions", () => {
  it("creates a root and a LostAndFound with objectClass", () => {
    const a = makeReplica("node-a", 7);
    const created = unwrap(a.replica.createPartition("DC=Example,DC=Com"));
    assert.equal(created.partition, base);
    assert.equal(created.usn, a.replica.usn);
    const root = unwrap(a.replica.get(base));
    assert.equal(root.guid, partitionRootGuid(base));
    assert.deepEqual(root.attributes.objectClass, ["top", "domain"]);
    assert.deepEqual(root.attributes.DC, ["Example"]);
    const lost = unwrap(a.replica.get(lostAndFound));
    assert.equal(lost.guid, lostAndFoundGuid(base));
    assert.equal(lost.dn, "cn=LostAndFound,DC=Example,DC=Com");
    assert.deepEqual(lost.attributes.objectClass, ["top", "lostAndFound"]);
    assert.deepEqual(a.replica.counts(), { entries: 2, tombstones: 0, items: a.replica.counts().items });
    unwrap(a.replica.createPartition("o=other"));
    assert.deepEqual(values(a, "o=other", "objectClass"), ["top", "organization"]);
    unwrap(a.replica.createPartition("cn=config"));
    assert.deepEqual(values(a, "cn=config", "objectClass"), ["top", "container"]);
  });

  it("fails partition-exists for a second create", () => {
    const a = single();
    for (const dn of [base, "DC=EXAMPLE, DC=COM"]) {
      failsUnchanged(a, "partition-exists", () => a.replica.createPartition(dn));
    }
  });

  it("refuses a partition nested inside or around an existing one", () => {
    const a = single();
    add(a, `ou=x,${base}`);
    for (const dn of [`ou=x,${base}`, `ou=y,${base}`, `ou=y,ou=x,${base}`, "dc=com", "DC=COM"]) {
      failsUnchanged(a, "invalid-request", () => a.replica.createPartition(dn));
    }
    failsUnchanged(a, "invalid-dn", () => a.replica.createPartition(""));
    failsUnchanged(a, "invalid-dn", () => a.replica.createPartition("dc=,,"));
  });

  it("replicates to a replica that has none, which then cannot create it again", () => {
    const [a, b] = pair();
    assert.equal(unwrap(b.replica.get(base)).guid, partitionRootGuid(base));
    assert.deepEqual(attributes(b, lostAndFound), attributes(a, lostAndFound));
    failsUnchanged(b, "partition-exists", () => b.replica.createPartition(base));
  });
});

// ---------------------------------------------------------------------------------------------

describe("search", () => {
  const people = `ou=people,${base}`;

  function directory(): TestReplica {
    const a = single();
    add(a, people, { objectClass: ["organizationalUnit"] });
    add(a, `cn=Alice Smith,${people}`, { uidNumber: ["1000"], mail: ["alice@example.com"], sn: ["Smith"] });
    add(a, `cn=Bob Jones,${people}`, { uidNumber: ["2000"], sn: ["Jones"] });
    add(a, `cn=Carol Smith,${people}`, { uidNumber: ["10000"], mail: ["carol@example.com"], sn: ["Smith"] });
    add(a, `cn=desk,cn=Carol Smith,${people}`, { objectClass: ["device"] });
    return a;
  }

  const alice = `cn=Alice Smith,${people}`;
  const bob = `cn=Bob Jones,${people}`;
  const carol = `cn=Carol Smith,${people}`;
  const desk = `cn=desk,${carol}`;

  it("base, one and sub scopes", () => {
    const a = directory();
    assert.deepEqual(dns(a, people, "base"), [people]);
    assert.deepEqual(dns(a, people, "one"), sorted([alice, bob, carol]));
    assert.deepEqual(dns(a, people, "sub"), sorted([people, alice, bob, carol, desk]));
    assert.deepEqual(dns(a, base, "one"), sorted([lostAndFound, people]));
    assert.deepEqual(dns(a, desk, "one"), []);
    assert.deepEqual(dns(a, "OU=People, DC=Example, DC=Com", "base"), [people]);
  });

  it("equality (case-insensitive), presence and substring filters", () => {
    const a = directory();
    assert.deepEqual(dns(a, base, "sub", "(cn=ALICE  smith)"), [alice]);
    assert.deepEqual(dns(a, base, "sub", "(SN=smith)"), sorted([alice, carol]));
    assert.deepEqual(dns(a, base, "sub", "(mail=*)"), sorted([alice, carol]));
    assert.deepEqual(dns(a, base, "sub", "(cn=*smith)"), sorted([alice, carol]));
    assert.deepEqual(dns(a, base, "sub", "(cn=b*)"), [bob]);
    assert.deepEqual(dns(a, people, "sub", "(cn=*O*)"), sorted([bob, carol]));
    assert.deepEqual(dns(a, base, "sub", "(mail=*@example.com)"), sorted([alice, carol]));
    assert.deepEqual(dns(a, base, "sub", "(cn=nobody)"), []);
  });

  it(">= and <= compare numbers numerically", () => {
    const a = directory();
    assert.deepEqual(dns(a, base, "sub", "(uidNumber>=2000)"), sorted([bob, carol]));
    assert.deepEqual(dns(a, base, "sub", "(uidNumber<=2000)"), sorted([alice, bob]));
  });

  it("and, or and not", () => {
    const a = directory();
    assert.deepEqual(dns(a, base, "sub", "(&(sn=smith)(uidNumber>=5000))"), [carol]);
    assert.deepEqual(dns(a, base, "sub", "(|(cn=bob jones)(objectClass=device))"), sorted([bob, desk]));
    assert.deepEqual(dns(a, people, "one", "(!(sn=smith))"), [bob]);
    assert.deepEqual(dns(a, people, "sub", "(&(objectClass=person)(!(|(mail=*)(uidNumber<=1500))))"), [bob]);
    assert.deepEqual(dns(a, people, "one", "(&)"), sorted([alice, bob, carol]));
    assert.deepEqual(dns(a, people, "one", "(|)"), []);
  });

  it("selects attributes: names, *, +, 1.1", () => {
    const a = directory();
    const pick = (selection: string[]) =>
      unwrap(a.replica.search({ base: alice, scope: "base", attributes: selection })).entries[0]
        ?.attributes ?? {};
    assert.deepEqual(pick(["CN"]), { cn: ["Alice Smith"] });
    assert.deepEqual(pick(["cn", "mail"]), { cn: ["Alice Smith"], mail: ["alice@example.com"] });
    const all = pick(["*"]);
    assert.deepEqual(sorted(Object.keys(all)), ["cn", "mail", "objectClass", "sn", "uidNumber"]);
    assert.deepEqual(pick([]), all);
    const operational = pick(["+"]);
    const guid = unwrap(a.replica.get(alice)).guid;
    assert.deepEqual(operational.entryGUID, [guid]);
    assert.match(
      operational.entryUUID?.[0] ?? "",
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    assert.equal(operational.entryUUID?.[0]?.replaceAll("-", ""), guid);
    assert.deepEqual(operational.usnChanged, [String(usnChangedOf(a, guid))]);
    assert.equal(operational.cn, undefined);
    assert.deepEqual(
      sorted(Object.keys(pick(["*", "+"]))),
      sorted([...Object.keys(all), ...Object.keys(operational)]),
    );
    assert.deepEqual(pick(["1.1"]), {});
    assert.deepEqual(pick(["entryGUID"]), { entryGUID: [guid] });
  });

  it("filters on operational attributes", () => {
    const a = directory();
    const guid = unwrap(a.replica.get(bob)).guid;
    assert.deepEqual(dns(a, base, "sub", `(entryGUID=${guid})`), [bob]);
    const usn = usnChangedOf(a, guid);
    assert.deepEqual(dns(a, people, "one", `(usnChanged>=${usn})`), sorted([bob, carol]));
  });

  it("a size limit cuts the result short and says so", () => {
    const a = directory();
    const limited = unwrap(a.replica.search({ base: people, scope: "one", sizeLimit: 2 }));
    assert.equal(limited.entries.length, 2);
    assert.equal(limited.truncated, true);
    const exact = unwrap(a.replica.search({ base: people, scope: "one", sizeLimit: 3 }));
    assert.equal(exact.entries.length, 3);
    assert.equal(exact.truncated, false);
    const max = unwrap(a.replica.search({ base: people, sizeLimit: searchSizeLimitMax }));
    assert.equal(max.truncated, false);
  });

  it("pages through a search after its last position: the same entries once each, parents first", () => {
    const a = single();
    // More children under one parent than the walk reads from the store at a time (500).
    add(a, `ou=wide,${base}`, { objectClass: ["organizationalUnit"], ou: ["wide"] });
    for (let index = 0; index < 1_100; index++) add(a, `cn=w${index},ou=wide,${base}`, { cn: [`w${index}`] });
    add(a, `ou=deep,${base}`, { objectClass: ["organizationalUnit"], ou: ["deep"] });
    let parent = `ou=deep,${base}`;
    for (let level = 0; level < 6; level++) {
      for (let index = 0; index < 3; index++)
        add(a, `cn=d${level}-${index},${parent}`, { cn: [`d${level}-${index}`] });
      parent = `cn=d${level}-1,${parent}`;
    }
    for (const scope of ["sub", "one"] as const) {
      const whole = unwrap(a.replica.search({ base, scope, sizeLimit: searchSizeLimitMax })).entries.map(
        (entry) => entry.dn,
      );
      for (const pageSize of [1, 7, 500]) {
        const paged: string[] = [];
        let after: SearchPosition | undefined;
        for (let pages = 0; pages < 2_000; pages++) {
          const page = unwrap(
            a.replica.search({ base, scope, sizeLimit: pageSize, ...(after === undefined ? {} : { after }) }),
          );
          paged.push(...page.entries.map((entry) => entry.dn));
          assert.equal(page.truncated, page.next !== null);
          if (page.next === null) break;
          after = page.next;
        }
        assert.deepEqual(paged, whole, `${scope}, pages of ${pageSize}`);
      }
      const seen = new Set<string>();
      for (const dn of whole) {
        const parentDn = dn.slice(dn.indexOf(",") + 1);
        if (dn !== base && scope === "sub") assert.ok(seen.has(parentDn), `${dn} after its parent`);
        seen.add(dn);
      }
    }
  });

  it("goes on past an entry of its position that went away or moved between two pages", () => {
    const a = single();
    add(a, `ou=x,${base}`, { objectClass: ["organizationalUnit"], ou: ["x"] });
    for (const name of ["a", "b", "c"]) add(a, `cn=${name},ou=x,${base}`, { cn: [name] });
    add(a, `ou=y,${base}`, { objectClass: ["organizationalUnit"], ou: ["y"] });
    const first = unwrap(a.replica.search({ base: `ou=x,${base}`, sizeLimit: 2 }));
    assert.deepEqual(
      first.entries.map((entry) => entry.dn),
      [`ou=x,${base}`, `cn=a,ou=x,${base}`],
    );
    unwrap(a.replica.writeOne({ op: "delete", dn: `cn=a,ou=x,${base}` }));
    const rest = unwrap(a.replica.search({ base: `ou=x,${base}`, after: first.next ?? [] }));
    assert.deepEqual(
      rest.entries.map((entry) => entry.dn),
      [`cn=b,ou=x,${base}`, `cn=c,ou=x,${base}`],
    );
    // A position the search could not have made is refused, and nothing else is read.
    for (const after of [
      [{ rdnNorm: "cn=a" }],
      [{ rdnNorm: "cn=a", guid: "nope" }],
      "x",
      [{ rdnNorm: 1, guid: "0".repeat(32) }],
    ])
      failsUnchanged(a, "invalid-request", () =>
        a.replica.search({ base, after } as unknown as Parameters<typeof a.replica.search>[0]),
      );
  });

  it("fails invalid-request for a size limit of 0, above the maximum, or not an integer, or a bad scope", () => {
    const a = directory();
    for (const sizeLimit of [0, -1, 1.5, searchSizeLimitMax + 1, Number.NaN, Number.POSITIVE_INFINITY]) {
      failsUnchanged(a, "invalid-request", () => a.replica.search({ base, sizeLimit }));
    }
    failsUnchanged(a, "invalid-request", () => a.replica.search({ base, scope: "subtree" as "sub" }));
  });

  it("fails no-such-entry for a missing base, with matchedDn", () => {
    const a = directory();
    const error = errorOf(a.replica.search({ base: `cn=nobody,${people}` }));
    assert.equal(error.code, "no-such-entry");
    assert.equal(error.matchedDn, people);
    assert.equal(codeOf(a.replica.search({ base: "" })), "no-such-entry");
  });

  it("get returns the attributes as written; objectClass is spelled as given", () => {
    const a = single();
    add(a, `cn=x,${base}`, {
      objectClass: ["top", "Person"],
      Description: ["Mixed Case  value"],
      "2.5.4.4": ["Oid"],
    });
    assert.deepEqual(attributes(a, `cn=x,${base}`), {
      objectClass: ["top", "Person"],
      Description: ["Mixed Case  value"],
      "2.5.4.4": ["Oid"],
      cn: ["x"],
    });
    assert.deepEqual(unwrap(a.replica.get(`cn=x,${base}`, ["description"])).attributes, {
      Description: ["Mixed Case  value"],
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe("batch", () => {
  const requests: WriteRequest[] = [
    { op: "add", dn: `ou=a,${base}`, attributes: { objectClass: ["organizationalUnit"] } },
    { op: "add", dn: `cn=child,ou=a,${base}`, attributes: { objectClass: ["person"] } },
    {
      op: "modify",
      dn: `cn=child,ou=a,${base}`,
      changes: [{ operation: "add", attribute: "sn", values: ["S"] }],
    },
  ];
  const failing: WriteRequest = {
    op: "add",
    dn: `cn=child,ou=A,${base}`,
    attributes: { objectClass: ["person"] },
  };

  it("one failing request in the middle: the others succeed, the failing one changes nothing", () => {
    // Two replicas with the same seed and clock: one runs the batch with the failing request,
    // the other without it. Their stores must end up identical.
    const withFailure = makeReplica("node-a", 42);
    const without = makeReplica("node-a", 42);
    for (const replica of [withFailure, without]) unwrap(replica.replica.createPartition(base));
    // Count outermost transactions only: store methods may open nested ones, which join.
    let transactions = 0;
    let depth = 0;
    const transaction = withFailure.store.transaction.bind(withFailure.store);
    withFailure.store.transaction = <T>(fn: () => T): T => {
      if (depth === 0) transactions++;
      depth++;
      try {
        return transaction(fn);
      } finally {
        depth--;
      }
    };
    const start = withFailure.replica.usn;
    const results = withFailure.replica.write([
      requests[0],
      requests[1],
      failing,
      requests[2],
    ] as WriteRequest[]);
    assert.equal(transactions, 1);
    assert.deepEqual(results.map(codeOf), ["ok", "ok", "entry-exists", "ok"]);
    assert.deepEqual(
      results.map((result) => (result.ok ? result.value.usn : null)),
      [start + 1, start + 2, null, start + 3],
    );
    without.replica.write(requests);
    assert.deepEqual(dumpStore(withFailure.store), dumpStore(without.store));
  });

  it("more than writeBatchMax requests: every result is limit-exceeded", () => {
    const a = single();
    const batch: WriteRequest[] = Array.from({ length: writeBatchMax + 1 }, (_, index) => ({
      op: "add",
      dn: `cn=n${index},${base}`,
      attributes: { objectClass: ["person"] },
    }));
    const before = dumpStore(a.store);
    const results = a.replica.write(batch);
    assert.equal(results.length, writeBatchMax + 1);
    assert.ok(results.every((result) => codeOf(result) === "limit-exceeded"));
    assert.deepEqual(dumpStore(a.store), before);
  });

  it("an empty batch gives no results and changes nothing", () => {
    const a = single();
    const before = dumpStore(a.store);
    assert.deepEqual(a.replica.write([]), []);
    assert.deepEqual(dumpStore(a.store), before);
  });
});

describe("changes counted per partition", () => {
  it("moves a partition's count with its own writes and applied pages only", () => {
    const [a, b] = pair();
    const dns = "cn=dns";
    unwrap(a.replica.createPartition(dns));
    pull(b.replica, a.replica);
    const dnsOnA = a.replica.changesIn(dns);
    const dnsOnB = b.replica.changesIn(dns);
    const dataOnB = b.replica.changesIn(base);
    assert.ok(dnsOnB > 0, "the partition's creation, applied from a page, counts");

    const add = (replica: Replica, dn: string) =>
      unwrap(replica.writeOne({ op: "add", dn, attributes: { objectClass: ["top", "organizationalUnit"] } }));
    for (let index = 0; index < 5; index++) add(a.replica, `ou=data${index},${base}`);
    pull(b.replica, a.replica);
    assert.equal(a.replica.changesIn(dns), dnsOnA, "data writes leave the dns partition's count");
    assert.equal(b.replica.changesIn(dns), dnsOnB, "and so do their pages");
    assert.ok(b.replica.changesIn(base) > dataOnB);

    add(a.replica, `ou=zone,${dns}`);
    assert.equal(a.replica.changesIn(dns), dnsOnA + 1);
    pull(b.replica, a.replica);
    assert.equal(b.replica.changesIn(dns), dnsOnB + 1);

    // A page of what the destination already has changes nothing there, and counts nothing.
    const again = a.replica.getChanges({ ...b.replica.changeRequest(a.replica.nodeId), utd: {} });
    unwrap(b.replica.applyChanges(unwrap(again)));
    assert.equal(b.replica.changesIn(dns), dnsOnB + 1);

    // A write that fails, or changes nothing, counts nothing.
    assert.equal(codeOf(a.replica.writeOne({ op: "delete", dn: `ou=absent,${dns}` })), "no-such-entry");
    assert.equal(a.replica.changesIn(dns), dnsOnA + 1);
  });
});
