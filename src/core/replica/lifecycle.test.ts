import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  epoch,
  lingeringCheck,
  makeDirectory,
  pull,
  syncAll,
  type TestReplica,
} from "../../../test/support/replicas.ts";
import { type ManualClock, SeededRandom } from "../../sim/ports.ts";
import { convergedState, liveDns } from "../../sim/state.ts";
import { SqliteStore } from "../../store/sqlite-store.ts";
import { unwrap } from "../result.ts";
import { tombstoneLifetimeMsDefault } from "./context.ts";
import { Replica, readPageFrom } from "./replica.ts";

/** Tombstone purge, strict mode, rollback safety, idempotence and re-pulls. */
const base = "dc=example,dc=com";
const day = 24 * 60 * 60 * 1000;

function trio(): [TestReplica, TestReplica, TestReplica] {
  const replicas = makeDirectory(["node-a", "node-b", "node-c"]);
  syncAll(replicas);
  const [a, b, c] = replicas;
  assert.ok(a !== undefined && b !== undefined && c !== undefined);
  return [a, b, c];
}

function add(replica: TestReplica, dn: string): void {
  unwrap(replica.replica.writeOne({ op: "add", dn, attributes: { objectClass: ["person"] } }));
}

function setClocks(replicas: readonly TestReplica[], time: number): void {
  for (const replica of replicas) replica.clock.set(time);
}

const names = ["node-a", "node-b", "node-c"].map((name) => name as TestReplica["name"]);

describe("tombstone purge", () => {
  it("purges only once every replica has reported a UTD covering the deletion", () => {
    const [a, b, c] = trio();
    add(a, `cn=x,${base}`);
    syncAll([a, b, c]);
    unwrap(a.replica.writeOne({ op: "delete", dn: `cn=x,${base}` }));
    pull(b.replica, a.replica);
    // a has heard from b and c only before the delete reached them.
    assert.equal(a.replica.purgeTombstones(names).purged, 0);
    pull(a.replica, b.replica); // b's UTD now covers the delete; c's does not
    assert.equal(a.replica.purgeTombstones(names).purged, 0);
    pull(c.replica, b.replica);
    pull(a.replica, c.replica);
    assert.equal(a.replica.purgeTombstones(names).purged, 1);
    assert.equal(a.replica.counts().tombstones, 0);
    assert.equal(
      a.replica.events().some((event) => event.kind === "tombstones-purged"),
      true,
    );
  });

  it("purges after the tombstone lifetime even if a replica never reported (it is gone)", () => {
    const [a, b, c] = trio();
    add(a, `cn=x,${base}`);
    syncAll([a, b, c]);
    unwrap(a.replica.writeOne({ op: "delete", dn: `cn=x,${base}` }));
    a.clock.advance(tombstoneLifetimeMsDefault - day);
    assert.equal(a.replica.purgeTombstones(names).purged, 0);
    a.clock.advance(2 * day);
    assert.equal(a.replica.purgeTombstones(names).purged, 1);
  });

  it("a purged tombstone is not brought back by a concurrent rename arriving later", () => {
    const [a, b, c] = trio();
    add(a, `cn=x,${base}`);
    syncAll([a, b, c]);
    unwrap(a.replica.writeOne({ op: "delete", dn: `cn=x,${base}` }));
    unwrap(c.replica.writeOne({ op: "modifyDn", dn: `cn=x,${base}`, newRdn: "cn=renamed" }));
    pull(b.replica, a.replica);
    pull(a.replica, b.replica);
    pull(c.replica, a.replica); // c now has the tombstone carrying its own rename
    pull(a.replica, c.replica);
    // b has the deletion but not the rename yet: the tombstone must stay until it does.
    assert.equal(a.replica.purgeTombstones(names).purged, 0);
    pull(b.replica, a.replica);
    pull(a.replica, b.replica);
    assert.equal(a.replica.purgeTombstones(names).purged, 1);
    pull(a.replica, c.replica);
    syncAll([a, b, c]);
    assert.equal(a.replica.get(`cn=renamed,${base}`).ok, false);
    assert.equal(
      liveDns(a.store).some((dn) => dn.includes("renamed")),
      false,
    );
  });
});

describe("strict mode", () => {
  it("a pull admitted before the replica was quarantined gets a refusal, not a page, wherever it is read", () => {
    const [a, b, c] = trio();
    add(a, `cn=doomed,${base}`);
    syncAll([a, b, c]);
    unwrap(a.replica.writeOne({ op: "delete", dn: `cn=doomed,${base}` }));
    setClocks([a, b, c], epoch + tombstoneLifetimeMsDefault + 2 * day);
    assert.equal(a.replica.purgeTombstones(names.slice(0, 1)).purged, 1, "a purges it, b and c never saw it");
    // c, which has not heard of the purge, asks b for a page; then a's request quarantines b.
    const admitted = unwrap(b.replica.admitPull(c.replica.changeRequest(b.name)));
    assert.equal(b.replica.admitPull(a.replica.changeRequest(b.name)).ok, false);
    assert.equal(b.replica.isQuarantined(), true);
    const here = b.replica.readPage(admitted);
    const elsewhere = readPageFrom(b.store, admitted);
    for (const read of [here, elsewhere]) assert.equal(read.ok ? "a page" : read.error.code, "quarantined");
  });

  it("a replica disconnected longer than the tombstone lifetime refuses to send, then a lingering check restores it", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    syncAll([a, b]);
    add(a, `cn=doomed,${base}`);
    add(a, `cn=keeper,${base}`);
    syncAll([a, b]);
    // b goes dark. a deletes the entry and, past the lifetime, purges the tombstone.
    unwrap(a.replica.writeOne({ op: "delete", dn: `cn=doomed,${base}` }));
    setClocks([a, b], epoch + tombstoneLifetimeMsDefault + 2 * day);
    assert.equal(a.replica.purgeTombstones(names.slice(0, 2)).purged, 1);
    add(b, `cn=written-while-dark,${base}`);
    // b cannot know yet; a's first pull carries a's purge horizon, which b's UTD does not cover.
    assert.equal(b.replica.isQuarantined(), false);
    const refused = b.replica.getChanges(a.replica.changeRequest(b.name));
    assert.equal(refused.ok, false);
    assert.equal(refused.ok ? "" : refused.error.code, "quarantined");
    assert.equal(b.replica.isQuarantined(), true);
    // While quarantined it takes no writes: one on the lingering entry would be lost to the check.
    const usnBefore = b.replica.usn;
    const write = b.replica.writeOne({
      op: "modify",
      dn: `cn=doomed,${base}`,
      changes: [{ operation: "replace", attribute: "description", values: ["too late"] }],
    });
    assert.equal(write.ok ? "" : write.error.code, "quarantined");
    assert.equal(b.replica.usn, usnBefore);
    // The survivor is not quarantined: it missed nothing.
    assert.equal(a.replica.isQuarantined(), false);

    // The lingering-object check against a healthy partner, page by page.
    assert.equal(lingeringCheck(b.replica, a.replica, 2), 1);
    assert.equal(b.replica.isQuarantined(), false);
    syncAll([a, b]);
    assert.deepEqual(convergedState(a.store), convergedState(b.store));
    const dns = liveDns(a.store);
    assert.equal(dns.includes(`cn=doomed,${base}`), false);
    assert.equal(dns.includes(`cn=keeper,${base}`), true);
    assert.equal(dns.includes(`cn=written-while-dark,${base}`), true);
  });

  it("a replica that catches up from a partner which purged deletions it never saw quarantines itself", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    syncAll([a, b]);
    add(a, `cn=doomed,${base}`);
    syncAll([a, b]);
    unwrap(a.replica.writeOne({ op: "delete", dn: `cn=doomed,${base}` }));
    a.clock.advance(tombstoneLifetimeMsDefault + day);
    assert.equal(a.replica.purgeTombstones(names.slice(0, 2)).purged, 1);
    // Pulling brings a's UTD, which would cover the deletion b never received: b must notice first.
    pull(b.replica, a.replica);
    assert.equal(b.replica.isQuarantined(), true);
    assert.ok(b.replica.events().some((event) => event.kind === "quarantined"));
    assert.equal(lingeringCheck(b.replica, a.replica), 1);
    pull(b.replica, a.replica);
    assert.equal(b.replica.isQuarantined(), false);
    assert.equal(b.replica.get(`cn=doomed,${base}`).ok, false);
  });

  it("time alone quarantines nobody: replicas that missed no purge stay in service", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    syncAll([a, b]);
    setClocks([a, b], epoch + 2 * tombstoneLifetimeMsDefault);
    syncAll([a, b]);
    assert.equal(a.replica.isQuarantined(), false);
    assert.equal(b.replica.isQuarantined(), false);
  });
});

describe("rollback safety", () => {
  function restoredFrom(
    snapshot: Uint8Array,
    clock: ManualClock,
    restored: boolean,
  ): { replica: Replica; store: SqliteStore } {
    const store = SqliteStore.open({ path: ":memory:", snapshot });
    return { replica: Replica.open(store, { clock, random: new SeededRandom(99) }, { restored }), store };
  }

  it("a store opened as restored takes a new invocation id and loses nothing", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    add(a, `cn=before-backup,${base}`);
    const backup = a.store.serialize();
    add(a, `cn=after-backup,${base}`);
    syncAll([a, b]);
    const old = a.replica.invocationId;
    const restored = restoredFrom(backup, a.clock, true);
    assert.notEqual(restored.replica.invocationId, old);
    unwrap(
      restored.replica.writeOne({
        op: "add",
        dn: `cn=after-restore,${base}`,
        attributes: { objectClass: ["person"] },
      }),
    );
    const restoredTest: TestReplica = {
      replica: restored.replica,
      store: restored.store,
      clock: a.clock,
      name: a.name,
    };
    // Nothing was purged anywhere: the restored copy needs no lingering check and sends at once.
    assert.equal(restored.replica.isQuarantined(), false);
    syncAll([restoredTest, b]);
    for (const store of [restored.store, b.store]) {
      const dns = liveDns(store);
      for (const rdn of ["before-backup", "after-backup", "after-restore"])
        assert.ok(dns.includes(`cn=${rdn},${base}`), rdn);
    }
    assert.deepEqual(convergedState(restored.store), convergedState(b.store));
    assert.ok(restored.replica.events().some((event) => event.kind === "invocation-changed"));
  });

  it("a page asked for before a restore arrives after it: its items merge, but it advances nothing", () => {
    const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    syncAll([a, b, c]);
    const backup = b.store.serialize();
    // b learns of a's new entry through c: its watermark for a stays where the backup has it.
    add(a, `cn=via-c,${base}`);
    pull(c.replica, a.replica);
    pull(b.replica, c.replica);
    assert.ok(b.replica.get(`cn=via-c,${base}`).ok);
    // b asks a; b's UTD covers the entry, so the page leaves it out.
    const page = unwrap(a.replica.getChanges(b.replica.changeRequest(a.name)));
    assert.equal(page.entries.length, 0);
    assert.equal(page.destinationInvocation, b.replica.invocationId);
    // b is restored from the backup (which lacks the entry), then the late page arrives.
    const restored = restoredFrom(backup, b.clock, true);
    assert.deepEqual(restored.store.readWatermark(a.name), b.store.readWatermark(a.name));
    const utdBefore = restored.replica.utd();
    const outcome = unwrap(restored.replica.applyChanges(page));
    assert.equal(outcome.cycleComplete, false);
    // Merging a's UTD now would claim the entry this copy lacks, and it would never come.
    assert.deepEqual(restored.replica.utd(), utdBefore);
    assert.equal(restored.replica.get(`cn=via-c,${base}`).ok, false);
    // The next pull, asked by this instance, brings it.
    pull(restored.replica, a.replica);
    assert.ok(restored.replica.get(`cn=via-c,${base}`).ok);
  });

  it("a restored copy that holds an entry whose deletion was purged quarantines itself until checked", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    add(a, `cn=doomed,${base}`);
    syncAll([a, b]);
    const backup = a.store.serialize();
    unwrap(a.replica.writeOne({ op: "delete", dn: `cn=doomed,${base}` }));
    syncAll([a, b]);
    syncAll([a, b]); // both have reported UTDs covering the delete: purge by coverage
    assert.equal(b.replica.purgeTombstones(names.slice(0, 2)).purged, 1);
    const restored = restoredFrom(backup, a.clock, true);
    assert.ok(restored.replica.get(`cn=doomed,${base}`).ok, "the backup predates the delete");
    unwrap(
      restored.replica.applyChanges(unwrap(b.replica.getChanges(restored.replica.changeRequest(b.name)))),
    );
    assert.equal(restored.replica.isQuarantined(), true);
    assert.equal(lingeringCheck(restored.replica, b.replica), 1);
    assert.equal(restored.replica.get(`cn=doomed,${base}`).ok, false);
    assert.equal(restored.replica.isQuarantined(), false);
  });

  it("a partner that has seen more of our USNs makes us take a new invocation id at once", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    add(a, `cn=one,${base}`);
    const backup = a.store.serialize();
    add(a, `cn=two,${base}`);
    syncAll([a, b]);
    const old = a.replica.invocationId;
    const restored = restoredFrom(backup, a.clock, false); // nobody told it: an unannounced restore
    assert.equal(restored.replica.invocationId, old);
    // b pulls: its request's UTD shows USNs of `old` beyond the restored USN.
    unwrap(restored.replica.getChanges(b.replica.changeRequest(a.name)));
    assert.notEqual(restored.replica.invocationId, old);
    assert.ok(restored.replica.events().some((event) => event.kind === "rollback-detected"));
    const restoredTest: TestReplica = {
      replica: restored.replica,
      store: restored.store,
      clock: a.clock,
      name: a.name,
    };
    syncAll([restoredTest, b]);
    assert.ok(liveDns(restored.store).includes(`cn=two,${base}`));
    assert.deepEqual(convergedState(restored.store), convergedState(b.store));
  });
});

describe("pages", () => {
  it("applying the same page twice changes nothing the second time", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    add(a, `cn=x,${base}`);
    const page = unwrap(a.replica.getChanges(b.replica.changeRequest(a.name)));
    unwrap(b.replica.applyChanges(page));
    const after = convergedState(b.store);
    const usn = b.replica.usn;
    const again = unwrap(b.replica.applyChanges(page));
    assert.equal(again.entriesChanged, 0);
    assert.equal(b.replica.usn, usn);
    assert.deepEqual(convergedState(b.store), after);
  });

  it("an out-of-order page is merged but does not advance the watermark", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    for (let index = 0; index < 5; index++) add(a, `cn=e${index},${base}`);
    const limits = { entriesMax: 2 };
    const first = unwrap(a.replica.getChanges(b.replica.changeRequest(a.name, limits)));
    const second = unwrap(
      a.replica.getChanges({
        ...b.replica.changeRequest(a.name, limits),
        from: { invocation: a.replica.invocationId, objectUsn: first.highUsn, propertyUsn: 0 },
      }),
    );
    const late = unwrap(b.replica.applyChanges(second));
    assert.equal(late.contiguous, false);
    unwrap(b.replica.applyChanges(first));
    pull(b.replica, a.replica, limits);
    assert.deepEqual(convergedState(b.store), convergedState(a.store));
  });

  it("a partner with a new invocation id is pulled again from zero", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    add(a, `cn=x,${base}`);
    syncAll([a, b]);
    a.replica.takeNewInvocationId("test");
    const page = unwrap(a.replica.getChanges(b.replica.changeRequest(a.name)));
    assert.equal(page.from.objectUsn, 0);
    const outcome = unwrap(b.replica.applyChanges(page));
    assert.equal(outcome.contiguous, true);
    // The UTD keeps the re-pull cheap: nothing b already has travels again.
    assert.equal(page.entries.length, 0);
  });

  it("propagation dampening: a change b already has from a is not sent again by c", () => {
    const [a, b, c] = trio();
    add(a, `cn=x,${base}`);
    pull(b.replica, a.replica);
    pull(c.replica, a.replica);
    const page = unwrap(c.replica.getChanges(b.replica.changeRequest(c.name)));
    assert.equal(page.entries.length, 0);
  });

  it("small pages deliver the same state as one large page", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    const [, c] = makeDirectory(["node-x", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    for (let index = 0; index < 30; index++) add(a, `cn=e${index},${base}`);
    for (let index = 0; index < 30; index += 3) {
      unwrap(
        a.replica.writeOne({
          op: "modify",
          dn: `cn=e${index},${base}`,
          changes: [{ operation: "replace", attribute: "description", values: ["x"] }],
        }),
      );
    }
    assert.ok(pull(b.replica, a.replica, { entriesMax: 1 }) > 30);
    pull(c.replica, a.replica, { entriesMax: 1000 });
    assert.deepEqual(convergedState(b.store), convergedState(a.store));
    assert.deepEqual(convergedState(c.store), convergedState(a.store));
  });
});
