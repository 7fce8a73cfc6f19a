import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { pathsOf, replacedAt } from "../../test/support/json-paths.ts";
import { makeDirectory, type TestReplica } from "../../test/support/replicas.ts";
import type { Guid, InvocationId, Millis, NodeId, Usn } from "../core/ids.ts";
import type { Item, ItemValue } from "../core/replication/items.ts";
import type { ChangePage, EntryChange } from "../core/replication/page.ts";
import { unwrap } from "../core/result.ts";
import { dumpStore } from "../store/store-contract.ts";
import { compactAnswer, decodePage, encodePage, isCompactPage, plainAnswer } from "./page-wire.ts";

/**
 * The compact page encoding: it must stand for exactly the plain page it was made from (through
 * JSON, as on the wire), and a damaged compact page must never throw, only fail to decode or
 * decode into a page the replica refuses whole.
 */
const base = "dc=example,dc=com";

/** Through JSON, as between two nodes. */
function wire<T>(value: T): unknown {
  return JSON.parse(JSON.stringify(value));
}

/** A real page with every kind of item: names, values, links (present and removed), a deletion. */
function realPage(): { page: ChangePage; destination: TestReplica } {
  const [source, destination] = makeDirectory(["node-a", "node-b"]);
  assert.ok(source !== undefined && destination !== undefined);
  const writes = source.replica.write([
    { op: "add", dn: `ou=people,${base}`, attributes: { objectClass: ["organizationalUnit"] } },
    {
      op: "add",
      dn: `cn=alice,ou=people,${base}`,
      attributes: { objectClass: ["person"], sn: ["A", "Alice"] },
    },
    { op: "add", dn: `cn=bob,ou=people,${base}`, attributes: { objectClass: ["person"] } },
    {
      op: "add",
      dn: `cn=staff,${base}`,
      attributes: {
        objectClass: ["group"],
        member: [`cn=alice,ou=people,${base}`, `cn=bob,ou=people,${base}`],
      },
    },
    {
      op: "modify",
      dn: `cn=staff,${base}`,
      changes: [{ operation: "delete", attribute: "member", values: [`cn=bob,ou=people,${base}`] }],
    },
    {
      op: "modify",
      dn: `cn=alice,ou=people,${base}`,
      changes: [{ operation: "replace", attribute: "sn", values: ["Smith"] }],
    },
    { op: "add", dn: `cn=gone,${base}`, attributes: { objectClass: ["person"] } },
    { op: "delete", dn: `cn=gone,${base}` },
  ]);
  assert.ok(
    writes.every((result) => result.ok),
    JSON.stringify(writes.filter((result) => !result.ok)),
  );
  const page = unwrap(source.replica.getChanges(destination.replica.changeRequest(source.name)));
  return { page, destination };
}

describe("compact page encoding", () => {
  it("a real page with every kind of item comes back exactly, ≈ 3 × smaller", () => {
    const { page } = realPage();
    const kinds = new Set(page.entries.flatMap((entry) => entry.items.map((item) => item.value.kind)));
    assert.deepEqual([...kinds].sort(), ["deleted", "link", "name", "values"]);
    const compact = wire(encodePage(page));
    assert.ok(isCompactPage(compact));
    assert.deepEqual(unwrap(decodePage(compact)), wire(page));
    const plainBytes = JSON.stringify(page).length;
    const compactBytes = JSON.stringify(compact).length;
    assert.ok(compactBytes * 2.5 < plainBytes, `compact ${compactBytes} bytes against ${plainBytes}`);
  });

  it("the decoded page applies as the plain one does", () => {
    const plain = realPage();
    const compact = realPage();
    unwrap(plain.destination.replica.applyChanges(wire(plain.page)));
    unwrap(compact.destination.replica.applyChanges(unwrap(decodePage(wire(encodePage(compact.page))))));
    assert.deepEqual(dumpStore(compact.destination.store), dumpStore(plain.destination.store));
  });

  it("any page comes back exactly (property)", () => {
    fc.assert(
      fc.property(pageArbitrary, (page) => {
        assert.deepEqual(unwrap(decodePage(wire(encodePage(page)))), wire(page));
      }),
      { numRuns: 200 },
    );
  });

  it("answers: only a page message is encoded, and decoded back; others pass untouched", () => {
    const { page } = realPage();
    const message = { kind: "page", id: 7, page };
    const sent = wire(compactAnswer(message)) as { page: unknown };
    assert.ok(isCompactPage(sent.page));
    assert.deepEqual(unwrap(plainAnswer(sent)), wire(message));
    for (const other of [
      { kind: "refused", id: 1, code: "quarantined", message: "x" },
      { kind: "notify" },
      null,
      5,
    ]) {
      assert.deepEqual(compactAnswer(other), other);
      assert.deepEqual(unwrap(plainAnswer(other)), other);
    }
    // A plain page (from a node that does not encode) passes as it is.
    assert.deepEqual(unwrap(plainAnswer(wire(message))), wire(message));
  });

  it("random JSON as a compact page never throws", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const decoded = decodePage(value);
        if (!decoded.ok) assert.equal(decoded.error.code, "invalid-page");
        const asPage = plainAnswer({ kind: "page", id: 1, page: { encoding: "compact-1", value } });
        assert.ok(!asPage.ok);
        assert.match(asPage.error.message, /^compact page: /);
      }),
      { numRuns: 300 },
    );
  });

  it("a real compact page with one field replaced or removed never throws; the replica refuses it whole or applies it", () => {
    const { page } = realPage();
    const compact = wire(encodePage(page));
    const paths = pathsOf(compact);
    fc.assert(
      fc.property(
        fc.constantFrom(...paths),
        fc.jsonValue({ maxDepth: 2 }),
        fc.boolean(),
        (path, replacement, remove) => {
          const damaged = replacedAt(compact, path, replacement, remove);
          const decoded = decodePage(damaged);
          if (!decoded.ok) {
            assert.equal(decoded.error.code, "invalid-page");
            return;
          }
          const [source, destination] = makeDirectory(["node-a", "node-b"]);
          assert.ok(source !== undefined && destination !== undefined);
          const before = dumpStore(destination.store);
          const applied = destination.replica.applyChanges(decoded.value);
          if (!applied.ok) {
            assert.equal(applied.error.code, "invalid-page");
            assert.deepEqual(dumpStore(destination.store), before);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

// ---------------------------------------------------------------------------------------------

const hex32 = fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 32, maxLength: 32 });
const invocationArbitrary = fc.constantFrom(
  ..."abc".split("").map((letter) => letter.repeat(32) as InvocationId),
);
const usnArbitrary = fc.integer({ min: 1, max: 2 ** 40 }).map((usn) => usn as Usn);
const stampArbitrary = fc.record({
  version: fc.integer({ min: 1, max: 2 ** 40 }),
  time: fc.integer({ min: 0, max: 2 ** 45 }).map((time) => time as Millis),
  invocation: invocationArbitrary,
  usn: usnArbitrary,
});
const valueArbitrary: fc.Arbitrary<ItemValue> = fc.oneof(
  fc.record({
    kind: fc.constant("name" as const),
    rdn: fc.string(),
    parent: fc.option(hex32, { nil: null }),
  }),
  fc.constant({ kind: "deleted" as const }),
  fc.record({
    kind: fc.constant("values" as const),
    type: fc.string(),
    values: fc.array(fc.string(), { maxLength: 4 }),
  }),
  fc.record({
    kind: fc.constant("link" as const),
    type: fc.string(),
    value: fc.string(),
    present: fc.boolean(),
  }),
) as fc.Arbitrary<ItemValue>;
const itemArbitrary: fc.Arbitrary<Item> = fc.record({
  attribute: fc.string(),
  key: fc.string({ maxLength: 3 }),
  value: valueArbitrary,
  // Shared stamps (one write of several items) and distinct ones both occur.
  stamp: fc.oneof(
    stampArbitrary,
    fc.constant({ version: 1, time: 5 as Millis, invocation: "a".repeat(32) as InvocationId, usn: 9 as Usn }),
  ),
});
const entryArbitrary: fc.Arbitrary<EntryChange> = fc.record({
  guid: hex32.map((guid) => guid as Guid),
  partition: fc.constantFrom(base, "dc=other", "cn=config"),
  origin: fc.record({ invocation: invocationArbitrary, usn: usnArbitrary }),
  items: fc.array(itemArbitrary, { minLength: 1, maxLength: 6 }),
});
const pageArbitrary: fc.Arbitrary<ChangePage> = fc.record({
  source: fc.constant("node-a" as NodeId),
  sourceInvocation: invocationArbitrary,
  destinationInvocation: invocationArbitrary,
  from: fc.record({
    invocation: fc.option(invocationArbitrary, { nil: null }),
    objectUsn: usnArbitrary,
    propertyUsn: usnArbitrary,
  }),
  highUsn: usnArbitrary,
  more: fc.boolean(),
  utd: fc.dictionary(invocationArbitrary, usnArbitrary),
  purgeHorizon: fc.dictionary(invocationArbitrary, usnArbitrary),
  entries: fc.array(entryArbitrary, { maxLength: 5 }),
});
