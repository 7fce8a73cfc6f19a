import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { epoch, makeDirectory, pull, syncAll, type TestReplica } from "../../../test/support/replicas.ts";
import { convergedState, liveDns } from "../../sim/state.ts";
import { unwrap } from "../result.ts";

/**
 * One test per conflict rule of the replication contract (DESIGN.md): attribute and value
 * merge, names, orphans, delete versus modify, concurrent moves. Each test makes concurrent
 * writes on separate replicas, replicates in both directions, and checks both the outcome and
 * that every replica holds exactly the same state.
 */
const base = "dc=example,dc=com";
const minute = 60_000;

function directory(names = ["node-a", "node-b"]): TestReplica[] {
  const replicas = makeDirectory(names);
  syncAll(replicas);
  return replicas;
}

function pair(): [TestReplica, TestReplica] {
  const [a, b] = directory();
  assert.ok(a !== undefined && b !== undefined);
  return [a, b];
}

function add(replica: TestReplica, dn: string, attributes: Record<string, string[]> = {}): void {
  unwrap(replica.replica.writeOne({ op: "add", dn, attributes: { objectClass: ["person"], ...attributes } }));
}

function replace(replica: TestReplica, dn: string, attribute: string, values: string[]): void {
  unwrap(
    replica.replica.writeOne({ op: "modify", dn, changes: [{ operation: "replace", attribute, values }] }),
  );
}

function values(replica: TestReplica, dn: string, attribute: string): readonly string[] {
  return unwrap(replica.replica.get(dn)).attributes[attribute] ?? [];
}

function assertConverged(replicas: readonly TestReplica[]): void {
  const [first, ...rest] = replicas;
  assert.ok(first !== undefined);
  const expected = convergedState(first.store);
  for (const other of rest)
    assert.deepEqual(convergedState(other.store), expected, `${other.name} differs from ${first.name}`);
}

describe("attribute merge", () => {
  it("higher version wins over a later clock", () => {
    const [a, b] = pair();
    add(a, `cn=x,${base}`);
    syncAll([a, b]);
    replace(a, `cn=x,${base}`, "description", ["a1"]);
    replace(a, `cn=x,${base}`, "description", ["a2"]); // version 3 on a
    b.clock.set(epoch + 60 * minute); // b's clock is an hour ahead
    replace(b, `cn=x,${base}`, "description", ["b"]); // version 2 on b
    syncAll([a, b]);
    assert.deepEqual(values(a, `cn=x,${base}`, "description"), ["a2"]);
    assertConverged([a, b]);
  });

  it("same version: the later originating time wins", () => {
    const [a, b] = pair();
    add(a, `cn=x,${base}`);
    syncAll([a, b]);
    a.clock.set(epoch + 1000);
    b.clock.set(epoch + 2000);
    replace(a, `cn=x,${base}`, "description", ["from a"]);
    replace(b, `cn=x,${base}`, "description", ["from b"]);
    syncAll([a, b]);
    assert.deepEqual(values(a, `cn=x,${base}`, "description"), ["from b"]);
    assertConverged([a, b]);
  });

  it("same version and time: the higher invocation id wins", () => {
    const [a, b] = pair();
    add(a, `cn=x,${base}`);
    syncAll([a, b]);
    replace(a, `cn=x,${base}`, "description", ["from a"]);
    replace(b, `cn=x,${base}`, "description", ["from b"]);
    syncAll([a, b]);
    const expected = a.replica.invocationId > b.replica.invocationId ? "from a" : "from b";
    assert.deepEqual(values(b, `cn=x,${base}`, "description"), [expected]);
    assertConverged([a, b]);
  });

  it("a write made after observing another wins, whatever the clocks say", () => {
    const [a, b] = pair();
    add(a, `cn=x,${base}`);
    syncAll([a, b]);
    a.clock.set(epoch + 10 * minute);
    b.clock.set(epoch - 10 * minute);
    replace(a, `cn=x,${base}`, "description", ["first, on a fast clock"]);
    pull(b.replica, a.replica);
    replace(b, `cn=x,${base}`, "description", ["second, on a slow clock"]);
    syncAll([a, b]);
    assert.deepEqual(values(a, `cn=x,${base}`, "description"), ["second, on a slow clock"]);
    assertConverged([a, b]);
  });

  it("different attributes written concurrently both survive", () => {
    const [a, b] = pair();
    add(a, `cn=x,${base}`);
    syncAll([a, b]);
    replace(a, `cn=x,${base}`, "description", ["d"]);
    replace(b, `cn=x,${base}`, "telephoneNumber", ["123"]);
    syncAll([a, b]);
    assert.deepEqual(values(a, `cn=x,${base}`, "description"), ["d"]);
    assert.deepEqual(values(a, `cn=x,${base}`, "telephoneNumber"), ["123"]);
    assertConverged([a, b]);
  });
});

describe("link-valued attributes merge per value", () => {
  const group = `cn=staff,${base}`;

  function members(replica: TestReplica): string[] {
    return [...values(replica, group, "member")].sort();
  }

  it("concurrent adds of different members and a removal all survive", () => {
    const [a, b] = pair();
    unwrap(
      a.replica.writeOne({
        op: "add",
        dn: group,
        attributes: { objectClass: ["groupOfNames"], member: [`cn=x,${base}`] },
      }),
    );
    syncAll([a, b]);
    unwrap(
      a.replica.writeOne({
        op: "modify",
        dn: group,
        changes: [{ operation: "add", attribute: "member", values: [`cn=y,${base}`] }],
      }),
    );
    unwrap(
      b.replica.writeOne({
        op: "modify",
        dn: group,
        changes: [{ operation: "add", attribute: "member", values: [`cn=z,${base}`] }],
      }),
    );
    unwrap(
      b.replica.writeOne({
        op: "modify",
        dn: group,
        changes: [{ operation: "delete", attribute: "member", values: [`cn=x,${base}`] }],
      }),
    );
    syncAll([a, b]);
    assert.deepEqual(members(a), [`cn=y,${base}`, `cn=z,${base}`]);
    assertConverged([a, b]);
  });

  it("a value removed and re-added after seeing the removal is present", () => {
    const [a, b] = pair();
    unwrap(
      a.replica.writeOne({
        op: "add",
        dn: group,
        attributes: { objectClass: ["groupOfNames"], member: [`cn=x,${base}`] },
      }),
    );
    syncAll([a, b]);
    unwrap(
      a.replica.writeOne({
        op: "modify",
        dn: group,
        changes: [{ operation: "delete", attribute: "member", values: [`cn=x,${base}`] }],
      }),
    );
    pull(b.replica, a.replica);
    unwrap(
      b.replica.writeOne({
        op: "modify",
        dn: group,
        changes: [{ operation: "add", attribute: "member", values: [`CN=X, ${base}`] }],
      }),
    );
    syncAll([a, b]);
    assert.deepEqual(members(a), [`CN=X, ${base}`]);
    assertConverged([a, b]);
  });

  it("the same value added on two replicas concurrently converges to one value", () => {
    const [a, b] = pair();
    unwrap(
      a.replica.writeOne({
        op: "add",
        dn: group,
        attributes: { objectClass: ["groupOfNames"], member: [`cn=x,${base}`] },
      }),
    );
    syncAll([a, b]);
    unwrap(
      a.replica.writeOne({
        op: "modify",
        dn: group,
        changes: [{ operation: "add", attribute: "member", values: [`cn=w,${base}`] }],
      }),
    );
    unwrap(
      b.replica.writeOne({
        op: "modify",
        dn: group,
        changes: [{ operation: "add", attribute: "member", values: [`cn=w,${base}`] }],
      }),
    );
    syncAll([a, b]);
    assert.deepEqual(members(b), [`cn=w,${base}`, `cn=x,${base}`]);
    assertConverged([a, b]);
  });
});

describe("naming conflicts", () => {
  it("two entries added concurrently with the same DN both survive; the loser gets a CNF name", () => {
    const [a, b] = pair();
    a.clock.set(epoch + 1000);
    b.clock.set(epoch + 2000); // b's add is later: it keeps the name
    add(a, `cn=dup,${base}`, { description: ["a"] });
    add(b, `cn=dup,${base}`, { description: ["b"] });
    syncAll([a, b]);
    assertConverged([a, b]);
    for (const replica of [a, b]) {
      assert.deepEqual(values(replica, `cn=dup,${base}`, "description"), ["b"]);
      const [conflict] = replica.replica.conflicts();
      assert.ok(conflict !== undefined);
      assert.equal(conflict.kind, "name");
      assert.equal(conflict.dn, `cn=dup\\0ACNF:${conflict.guid},${base}`);
      assert.equal(conflict.claimedParentDn, base, "the parent it claims, by DN");
      assert.deepEqual(values(replica, conflict.dn, "description"), ["a"]);
    }
  });

  it("deleting the winner gives the loser its name back; renaming the loser resolves the conflict", () => {
    const [a, b] = pair();
    a.clock.set(epoch + 1000);
    b.clock.set(epoch + 2000);
    add(a, `cn=dup,${base}`, { description: ["a"] });
    add(b, `cn=dup,${base}`, { description: ["b"] });
    add(a, `cn=other,${base}`, { description: ["a"] });
    add(b, `cn=other,${base}`, { description: ["b"] });
    syncAll([a, b]);
    unwrap(b.replica.writeOne({ op: "delete", dn: `cn=dup,${base}` }));
    const loser = a.replica.conflicts().find((c) => c.dn.startsWith("cn=other"));
    assert.ok(loser !== undefined);
    unwrap(a.replica.writeOne({ op: "modifyDn", dn: loser.dn, newRdn: "cn=other2" }));
    syncAll([a, b]);
    assertConverged([a, b]);
    assert.deepEqual(a.replica.conflicts(), []);
    assert.deepEqual(values(a, `cn=dup,${base}`, "description"), ["a"]);
    assert.deepEqual(values(a, `cn=other2,${base}`, "description"), ["a"]);
  });

  it("an entry added under a parent deleted concurrently appears under LostAndFound", () => {
    const [a, b] = pair();
    unwrap(
      a.replica.writeOne({
        op: "add",
        dn: `ou=x,${base}`,
        attributes: { objectClass: ["organizationalUnit"] },
      }),
    );
    syncAll([a, b]);
    unwrap(a.replica.writeOne({ op: "delete", dn: `ou=x,${base}` }));
    add(b, `cn=child,ou=x,${base}`);
    syncAll([a, b]);
    assertConverged([a, b]);
    for (const replica of [a, b]) {
      assert.deepEqual(
        liveDns(replica.store).filter((dn) => dn.startsWith("cn=child")),
        [`cn=child,cn=LostAndFound,${base}`],
      );
      assert.deepEqual(
        replica.replica.conflicts().map((c) => [c.kind, c.claimedParentDn]),
        [["orphan", null]],
        "its claimed parent is deleted: no DN to show",
      );
      assert.equal(replica.replica.get(`ou=x,${base}`).ok, false);
    }
  });

  it("concurrent moves that would form a cycle are broken deterministically", () => {
    const [a, b] = pair();
    for (const ou of ["p", "q"]) {
      unwrap(
        a.replica.writeOne({
          op: "add",
          dn: `ou=${ou},${base}`,
          attributes: { objectClass: ["organizationalUnit"] },
        }),
      );
    }
    syncAll([a, b]);
    unwrap(
      a.replica.writeOne({ op: "modifyDn", dn: `ou=q,${base}`, newRdn: "ou=q", newParent: `ou=p,${base}` }),
    );
    unwrap(
      b.replica.writeOne({ op: "modifyDn", dn: `ou=p,${base}`, newRdn: "ou=p", newParent: `ou=q,${base}` }),
    );
    syncAll([a, b]);
    assertConverged([a, b]);
    const dns = liveDns(a.store).filter((dn) => dn.startsWith("ou="));
    // One of the two is the cycle breaker under LostAndFound, the other sits under it.
    assert.ok(
      JSON.stringify(dns) ===
        JSON.stringify([`ou=p,cn=LostAndFound,${base}`, `ou=q,ou=p,cn=LostAndFound,${base}`]) ||
        JSON.stringify(dns) ===
          JSON.stringify([`ou=p,ou=q,cn=LostAndFound,${base}`, `ou=q,cn=LostAndFound,${base}`]),
      dns.join(" | "),
    );
    assert.deepEqual(
      a.replica.conflicts().map((c) => c.kind),
      ["cycle"],
    );
    // An operator moves the breaker back under the root: the cycle is gone everywhere.
    const [breaker] = a.replica.conflicts();
    assert.ok(breaker !== undefined);
    unwrap(
      a.replica.writeOne({ op: "modifyDn", dn: breaker.dn, newRdn: breaker.claimedRdn, newParent: base }),
    );
    syncAll([a, b]);
    assertConverged([a, b]);
    assert.deepEqual(a.replica.conflicts(), []);
  });
});

describe("deletes", () => {
  it("delete versus concurrent modify: the entry stays deleted and keeps no attributes", () => {
    const [a, b] = pair();
    add(a, `cn=x,${base}`, { description: ["old"] });
    syncAll([a, b]);
    unwrap(a.replica.writeOne({ op: "delete", dn: `cn=x,${base}` }));
    replace(b, `cn=x,${base}`, "description", ["new"]);
    replace(b, `cn=x,${base}`, "description", ["newer"]);
    syncAll([a, b]);
    assertConverged([a, b]);
    assert.equal(b.replica.get(`cn=x,${base}`).ok, false);
    const tombstone = convergedState(b.store).find((entry) => entry.rdn === "cn=x");
    assert.ok(tombstone?.deleted);
    assert.deepEqual(tombstone.items.map((item) => item.attribute).sort(), ["@deleted", "@name"]);
  });

  it("delete versus concurrent rename: deleted, and the tombstone carries the winning name", () => {
    const [a, b] = pair();
    add(a, `cn=x,${base}`);
    syncAll([a, b]);
    unwrap(a.replica.writeOne({ op: "delete", dn: `cn=x,${base}` }));
    unwrap(b.replica.writeOne({ op: "modifyDn", dn: `cn=x,${base}`, newRdn: "cn=y" }));
    syncAll([a, b]);
    assertConverged([a, b]);
    assert.equal(a.replica.get(`cn=y,${base}`).ok, false);
    assert.equal(convergedState(a.store).find((entry) => entry.deleted)?.rdn, "cn=y");
  });

  it("a tombstone reaches a replica that never saw the entry as a tombstone", () => {
    const [a, b, c] = directory(["node-a", "node-b", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    add(a, `cn=x,${base}`);
    pull(b.replica, a.replica);
    unwrap(b.replica.writeOne({ op: "delete", dn: `cn=x,${base}` }));
    pull(c.replica, b.replica);
    assert.equal(c.replica.get(`cn=x,${base}`).ok, false);
    assert.equal(c.replica.counts().tombstones, 1);
    syncAll([a, b, c]);
    assertConverged([a, b, c]);
  });
});
