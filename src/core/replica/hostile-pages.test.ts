import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { makeDirectory, pull, syncAll, type TestReplica } from "../../../test/support/replicas.ts";
import { SeededRandom } from "../../sim/ports.ts";
import { convergedState, liveDns } from "../../sim/state.ts";
import { SqliteStore } from "../../store/sqlite-store.ts";
import { dumpStore } from "../../store/store-contract.ts";
import { lostAndFoundGuid, partitionRootGuid } from "../directory/partition.ts";
import type { Guid } from "../ids.ts";
import type { ChangePage } from "../replication/page.ts";
import { utdEntriesMax } from "../replication/validate.ts";
import { type Result, unwrap } from "../result.ts";
import { Replica, rollbackClaimSpacingMs } from "./replica.ts";

/**
 * Pages a broken or hostile partner (one that holds the cluster secret) can send, beyond the
 * malformed ones bad-input.test.ts refuses: entries placed in a partition or under a parent
 * that does not hold them, GUIDs reserved for a partition that has not arrived yet, and claims
 * on this replica's USNs that would make it take a new invocation id per message.
 */
const base = "dc=example,dc=com";
const other = "dc=other,dc=com";
const later = "dc=later,dc=com";

type Json = Record<string, unknown>;
interface JsonItem {
  attribute: string;
  value: { rdn?: string; parent?: string | null };
}
interface JsonEntry {
  guid: string;
  partition: string;
  items: JsonItem[];
}

function draftOf(page: ChangePage): Json & { entries: JsonEntry[]; utd: Record<string, number> } {
  return JSON.parse(JSON.stringify(page));
}

/** The entry of a page draft whose name item carries `rdn`. */
function entryNamed(draft: { entries: JsonEntry[] }, rdn: string): JsonEntry {
  const found = draft.entries.find((entry) =>
    entry.items.some((item) => item.attribute === "@name" && item.value.rdn === rdn),
  );
  assert.ok(found !== undefined, `no entry named ${rdn} in the page`);
  return found;
}

function nameOf(entry: JsonEntry): JsonItem["value"] {
  const name = entry.items.find((item) => item.attribute === "@name");
  assert.ok(name !== undefined, "the entry has no name item");
  return name.value;
}

/**
 * Makes a page draft answer no pull: it is merged but advances no watermark and merges no UTD,
 * so the real changes it left out still come (a page of a's that left out alice, yet carried a's
 * UTD, would keep her from ever arriving: that is another matter than the one under test).
 */
function notTheAnswer(draft: Json): void {
  draft.from = { invocation: null, objectUsn: 0, propertyUsn: 0 };
  draft.destinationInvocation = "0".repeat(32);
}

function add(replica: TestReplica, dn: string, description = "d"): Guid {
  return unwrap(
    replica.replica.writeOne({
      op: "add",
      dn,
      attributes: { objectClass: ["person"], description: [description] },
    }),
  ).guid;
}

function codeOf(result: Result<unknown>): string {
  return result.ok ? "ok" : result.error.code;
}

/** Runs `run`, which must be refused with `code` and leave the store and the replica as they were. */
function refusedUnchanged(replica: TestReplica, code: string, run: () => Result<unknown>): string {
  const before = dumpStore(replica.store);
  const { usn, invocationId } = replica.replica;
  const result = run();
  assert.equal(codeOf(result), code, JSON.stringify(result));
  assert.deepEqual(dumpStore(replica.store), before);
  assert.equal(replica.replica.usn, usn);
  assert.equal(replica.replica.invocationId, invocationId);
  return result.ok ? "" : result.error.message;
}

// ---------------------------------------------------------------------------------------------
// item 1: an entry in a partition that is not here, or under a parent of another partition

describe("entries placed where their partition or parent does not hold them are parked, not refused", () => {
  it("an entry whose parent lives in another partition is an orphan of its own partition", () => {
    // Refusing the page would be unsound: a replica that stored the entry before the parent
    // reached it (it then looked like an orphan whose parent had not arrived) relays it, so an
    // honest partner's pages would be refused for good. Dropping it would depend on what each
    // replica held when the page came, and replicas would diverge. Placement is derived from
    // the replicated state alone (naming.ts), so every replica parks it the same way.
    const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    unwrap(a.replica.createPartition(other));
    const foreign = add(a, `cn=x,${other}`);
    pull(b.replica, a.replica);
    add(a, `cn=alice,${base}`);
    const draft = draftOf(unwrap(a.replica.getChanges(b.replica.changeRequest(a.name))));
    // Under a GUID of its own: a's alice under a's GUID, with a's stamps, would be a forged twin.
    const alice = entryNamed(draft, "cn=alice");
    alice.guid = "a".repeat(32);
    nameOf(alice).parent = foreign;
    notTheAnswer(draft);
    unwrap(b.replica.applyChanges(draft));
    assert.equal(b.replica.dnOf(alice.guid as Guid), `cn=alice,cn=LostAndFound,${base}`);
    assert.deepEqual(
      b.replica.conflicts().map((conflict) => [conflict.kind, conflict.dn]),
      [["orphan", `cn=alice,cn=LostAndFound,${base}`]],
    );
    // The foreign parent shows no child and can be deleted as a leaf.
    assert.deepEqual(unwrap(b.replica.search({ base: `cn=x,${other}`, scope: "one" })).entries, []);
    // The same wherever it arrives before its claimed parent: c gets alice first.
    unwrap(c.replica.applyChanges(draft));
    syncAll([a, b, c]);
    assert.deepEqual(convergedState(c.store), convergedState(b.store));
    unwrap(b.replica.writeOne({ op: "delete", dn: `cn=x,${other}` }));
  });

  it("a partition's entries that come pages before its root wait for it, then appear", () => {
    // The root was changed after its entries were added, so a source sends it after them (pages
    // follow usnChanged): during an initial sync a destination holds entries of a partition
    // whose root it has not seen. Refusing them would wedge that sync at its first page.
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    unwrap(a.replica.createPartition(other));
    add(a, `cn=first,${other}`);
    add(a, `cn=second,${other}`);
    unwrap(
      a.replica.writeOne({
        op: "modify",
        dn: other,
        changes: [{ operation: "replace", attribute: "description", values: ["changed last"] }],
      }),
    );
    const limits = { entriesMax: 1 };
    let sawEntryBeforeRoot = false;
    for (let pages = 0; pages < 100; pages++) {
      const page = unwrap(a.replica.getChanges(b.replica.changeRequest(a.name, limits)));
      const outcome = unwrap(b.replica.applyChanges(page));
      const rootHere = b.store.getEntry(partitionRootGuid(other)) !== undefined;
      if (!rootHere && page.entries.some((entry) => entry.partition === other)) {
        sawEntryBeforeRoot = true;
        assert.equal(codeOf(b.replica.get(`cn=first,${other}`)), "no-such-entry");
      }
      if (outcome.cycleComplete) break;
    }
    assert.ok(sawEntryBeforeRoot, "entries of the partition arrived before its root");
    assert.ok(b.replica.get(`cn=first,${other}`).ok);
    assert.ok(b.replica.get(`cn=second,${other}`).ok);
    assert.deepEqual(convergedState(b.store), convergedState(a.store));
  });
});

// ---------------------------------------------------------------------------------------------
// item 2: GUID squatting

/** b holds a squatter: a page from a put its alice (partition dc=example) under `guid`. */
function squatted(guid: Guid): { a: TestReplica; b: TestReplica; c: TestReplica; page: Json } {
  const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
  assert.ok(a !== undefined && b !== undefined && c !== undefined);
  const parent = add(a, `cn=alice,${base}`, "squatter");
  add(a, `cn=child,cn=alice,${base}`);
  const draft = draftOf(unwrap(a.replica.getChanges(b.replica.changeRequest(a.name))));
  // The squatter takes alice's items under the reserved GUID, and a child of its own (another
  // GUID: a copy of a's child under a's GUID, with a's stamps, would be a forged twin).
  entryNamed(draft, "cn=alice").guid = guid;
  const child = entryNamed(draft, "cn=child");
  child.guid = "c".repeat(32);
  nameOf(child).parent = guid;
  notTheAnswer(draft);
  unwrap(b.replica.applyChanges(draft));
  assert.equal(b.replica.dnOf(guid), `cn=alice,${base}`, "b holds the squatter");
  assert.notEqual(parent, guid);
  return { a, b, c, page: draft };
}

describe("GUID squatting: a partition's derived GUIDs are its own", () => {
  for (const [what, guidOf] of [
    ["root", partitionRootGuid],
    ["LostAndFound", lostAndFoundGuid],
  ] as const) {
    it(`an entry of another partition that holds the ${what} GUID gives way when the partition arrives`, () => {
      // The squatter came first: the partition's own entry was dropped as "a GUID that moved to
      // another partition", and b's UTD recorded it as received, so the partition never came.
      const guid = guidOf(later);
      const { a, b, c, page } = squatted(guid);
      unwrap(a.replica.createPartition(later));
      add(a, `cn=carol,${later}`);
      pull(b.replica, a.replica);
      assert.ok(b.replica.get(later).ok, "the partition root is here");
      assert.ok(b.replica.get(`cn=carol,${later}`).ok);
      assert.equal(
        b.replica.dnOf(guid),
        guid === partitionRootGuid(later) ? later : `cn=LostAndFound,${later}`,
      );
      assert.equal(b.store.getEntry(guid)?.partition, later);
      // The squatter's child claims an entry of another partition now: an orphan, as anywhere.
      assert.ok(liveDns(b.store).includes(`cn=child,cn=LostAndFound,${base}`));
      // c gets the partition first and the squatter after: the same state either way.
      pull(c.replica, a.replica);
      unwrap(c.replica.applyChanges(page));
      syncAll([a, b, c]);
      assert.deepEqual(convergedState(b.store), convergedState(c.store));
      // a never had the squatter's child, and its own stamps keep it from coming back to a.
      assert.deepEqual(liveDns(b.store), [...liveDns(a.store), `cn=child,cn=LostAndFound,${base}`].sort());
    });
  }

  it("creating the partition here evicts a squatter rather than taking over its items", () => {
    const { a, b } = squatted(partitionRootGuid(later));
    unwrap(b.replica.createPartition(later));
    unwrap(a.replica.createPartition(later));
    const root = unwrap(b.replica.get(later));
    assert.deepEqual(
      Object.keys(root.attributes).sort(),
      Object.keys(unwrap(a.replica.get(later)).attributes).sort(),
    );
    assert.equal(root.attributes.description, undefined, "no attribute of the squatter");
    assert.ok(liveDns(b.store).includes(`cn=child,cn=LostAndFound,${base}`));
  });

  it("a squatter that comes after the partition is dropped, as before", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    unwrap(a.replica.createPartition(later));
    add(a, `cn=alice,${base}`);
    pull(b.replica, a.replica);
    const before = convergedState(b.store);
    add(a, `cn=bob,${base}`);
    const draft = draftOf(unwrap(a.replica.getChanges(b.replica.changeRequest(a.name))));
    entryNamed(draft, "cn=bob").guid = partitionRootGuid(later);
    unwrap(b.replica.applyChanges(draft));
    assert.deepEqual(convergedState(b.store), before);
  });
});

// ---------------------------------------------------------------------------------------------
// item 3: claims on this replica's USNs

/** A pull request from `partner` whose UTD claims `victim`'s current invocation beyond its USN. */
function claimingRequest(victim: TestReplica, partner: TestReplica): Json {
  const request = JSON.parse(JSON.stringify(partner.replica.changeRequest(victim.name)));
  request.utd = { ...request.utd, [victim.replica.invocationId]: victim.replica.usn + 1000 };
  return request;
}

function restoredFrom(backup: Uint8Array, like: TestReplica, seed: number): TestReplica {
  const store = SqliteStore.open({ path: ":memory:", snapshot: backup });
  // restored: false: nobody told it (a whole data directory, or a virtual machine, went back).
  const replica = Replica.open(
    store,
    { clock: like.clock, random: new SeededRandom(seed) },
    { restored: false },
  );
  return { replica, store, clock: like.clock, name: like.name };
}

describe("claims on this replica's USNs", () => {
  it("a partner that echoes every new invocation id back above our USN retires one id, not one per message", () => {
    // Each claim made b take a new id, and each retired id stays in every UTD for good: 100,000
    // messages took b's UTD past utdEntriesMax, and every partner refused b from then on.
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    syncAll([a, b]);
    const first = b.replica.invocationId;
    unwrap(b.replica.getChanges(claimingRequest(b, a)));
    const taken = b.replica.invocationId;
    assert.notEqual(taken, first, "the first claim is obeyed");
    const utdSize = Object.keys(b.replica.utd()).length;
    for (let message = 0; message < 5; message++) {
      b.clock.advance(1000);
      const why = refusedUnchanged(b, "invalid-request", () => b.replica.getChanges(claimingRequest(b, a)));
      assert.match(why, /took \d+ ms ago on another partner's claim/);
      const page = draftOf(unwrap(a.replica.getChanges(b.replica.changeRequest(a.name))));
      page.utd = { ...page.utd, [taken]: b.replica.usn + 1000 };
      refusedUnchanged(b, "invalid-page", () => b.replica.applyChanges(page));
      refusedUnchanged(b, "invalid-page", () =>
        b.replica.recordPeerUtd(a.name, a.replica.invocationId, page.utd),
      );
    }
    assert.equal(Object.keys(b.replica.utd()).length, utdSize);
    // Honest messages, which claim nothing beyond b's USN, still flow both ways.
    add(a, `cn=after,${base}`);
    add(b, `cn=from-b,${base}`);
    syncAll([a, b]);
    assert.deepEqual(convergedState(a.store), convergedState(b.store));
    // After rollbackClaimSpacingMs a claim is obeyed again.
    b.clock.advance(rollbackClaimSpacingMs);
    unwrap(b.replica.getChanges(claimingRequest(b, a)));
    assert.notEqual(b.replica.invocationId, taken);
  });

  it("a restored copy meeting several partners that saw its later writes takes one new id and loses nothing", () => {
    const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    add(a, `cn=one,${base}`);
    syncAll([a, b, c]);
    const backup = a.store.serialize();
    add(a, `cn=two,${base}`);
    syncAll([a, b, c]);
    const old = a.replica.invocationId;
    const restored = restoredFrom(backup, a, 77);
    // Both partners saw USNs of `old` beyond the copy's: the first claim retires it, the second
    // claims a retired id and costs nothing.
    unwrap(restored.replica.getChanges(b.replica.changeRequest(a.name)));
    const taken = restored.replica.invocationId;
    assert.notEqual(taken, old);
    unwrap(restored.replica.getChanges(c.replica.changeRequest(a.name)));
    pull(restored.replica, b.replica);
    pull(restored.replica, c.replica);
    assert.equal(restored.replica.invocationId, taken);
    add(restored, `cn=three,${base}`);
    syncAll([restored, b, c]);
    for (const replica of [restored, b, c]) {
      for (const cn of ["one", "two", "three"])
        assert.ok(liveDns(replica.store).includes(`cn=${cn},${base}`));
    }
    assert.deepEqual(convergedState(restored.store), convergedState(b.store));
    assert.deepEqual(convergedState(restored.store), convergedState(c.store));
  });

  it("a copy restored again, to a backup made after the first claim, is caught at the next claim", () => {
    // The spacing lives in the process: a restore of the whole data directory restarts it.
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    syncAll([a, b]);
    const first = restoredFrom(a.store.serialize(), a, 78);
    add(a, `cn=lost-once,${base}`);
    syncAll([a, b]);
    unwrap(first.replica.getChanges(b.replica.changeRequest(a.name)));
    const taken = first.replica.invocationId;
    const second = restoredFrom(first.store.serialize(), first, 79);
    add(first, `cn=lost-twice,${base}`);
    syncAll([first, b]);
    unwrap(second.replica.getChanges(b.replica.changeRequest(a.name)));
    assert.notEqual(second.replica.invocationId, taken);
    add(second, `cn=after,${base}`);
    syncAll([second, b]);
    assert.deepEqual(convergedState(second.store), convergedState(b.store));
  });

  it("a new invocation id never takes the UTD past utdEntriesMax", () => {
    // Recording the retired id made b's UTD one entry too many: every pull it sent was refused.
    const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    pull(b.replica, a.replica);
    const draft = draftOf(unwrap(a.replica.getChanges(b.replica.changeRequest(a.name))));
    const crowded: Record<string, number> = { [String(draft.sourceInvocation)]: Number(draft.highUsn) };
    // With b's own invocation, b's UTD is exactly utdEntriesMax once this merges.
    for (let index = 1; index < utdEntriesMax - 1; index++) crowded[index.toString(16).padStart(32, "0")] = 1;
    draft.utd = crowded;
    unwrap(b.replica.applyChanges(draft));
    assert.equal(Object.keys(b.replica.utd()).length, utdEntriesMax);
    unwrap(b.replica.getChanges(claimingRequest(b, c)));
    assert.ok(Object.keys(b.replica.utd()).length <= utdEntriesMax);
    add(b, `cn=still,${base}`);
    pull(c.replica, b.replica);
    assert.equal(codeOf(b.replica.getChanges(c.replica.changeRequest(b.name))), "ok");
    assert.equal(
      codeOf(c.replica.getChanges(b.replica.changeRequest(c.name))),
      "ok",
      "b's pulls are answered",
    );
  });
});
