import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { newHistory, runStep, settle, stepArbitrary } from "../../../test/support/history.ts";
import { referenceState } from "../../../test/support/reference-model.ts";
import { makeDirectory, pull, type TestReplica } from "../../../test/support/replicas.ts";
import { convergedState } from "../../sim/state.ts";
import { type CanaryName, filterCanaryNames } from "../canaries.ts";
import type { InvocationId } from "../ids.ts";
import type { ChangePage } from "../replication/page.ts";
import { unwrap } from "../result.ts";
import type { Replica } from "./replica.ts";

/**
 * Origin-filtered pulls (reverse-path pulling between sites): a destination leaves out the
 * changes of some invocations because another partner brings them. Nothing may be lost: the
 * filtered cycle must not claim those origins in the UTD, and a filter that gives an origin
 * back must pull again from zero.
 */
const base = "dc=example,dc=com";
const runs = Number(process.env.PLEXUS_PROPERTY_RUNS ?? 60);

function filteredPull(destination: Replica, source: Replica, exclude: readonly InvocationId[]): ChangePage[] {
  const pages: ChangePage[] = [];
  for (let guard = 0; guard < 1000; guard++) {
    const page = unwrap(source.getChanges(destination.changeRequest(source.nodeId, {}, exclude)));
    pages.push(page);
    if (unwrap(destination.applyChanges(page)).cycleComplete) return pages;
  }
  throw new Error("pull did not finish");
}

function addPerson(replica: Replica, cn: string): void {
  unwrap(
    replica.writeOne({
      op: "add",
      dn: `cn=${cn},${base}`,
      attributes: { objectClass: ["person"], sn: [cn] },
    }),
  );
}

function setDescription(replica: Replica, cn: string, value: string): void {
  const changes = [{ operation: "replace" as const, attribute: "description", values: [value] }];
  unwrap(replica.writeOne({ op: "modify", dn: `cn=${cn},${base}`, changes }));
}

/** Three replicas of a fresh directory: a holds the partition, b and c have pulled it. */
function threeReplicas(): [TestReplica, TestReplica, TestReplica] {
  const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
  assert.ok(a !== undefined && b !== undefined && c !== undefined);
  pull(b.replica, a.replica);
  pull(c.replica, a.replica);
  return [a, b, c];
}

function description(replica: Replica, dn: string): readonly string[] | undefined {
  const entry = replica.get(dn, ["description"]);
  return entry.ok ? entry.value.attributes.description : undefined;
}

function property(canary: CanaryName | null): fc.IPropertyWithHooks<[number, unknown[], number]> {
  return fc.property(
    fc.integer({ min: 2, max: 5 }),
    fc.array(stepArbitrary({ filtered: true }), { minLength: 5, maxLength: 80, size: "max" }),
    fc.nat(1000),
    (count, steps, seed) => {
      const history = newHistory(count, seed, canary === null ? {} : { [canary]: true });
      for (const step of steps) runStep(history, step as Parameters<typeof runStep>[1]);
      settle(history);
      const expected = referenceState(history.log);
      for (const replica of history.replicas) {
        assert.deepEqual(convergedState(replica.store), expected, `${replica.name} differs from the model`);
      }
      assert.deepEqual(history.idempotenceFailures, []);
    },
  );
}

describe("origin-filtered pulls", () => {
  it("leave out the filtered origin and do not claim it in the UTD", () => {
    const [a, b, c] = threeReplicas();
    addPerson(a.replica, "x");
    pull(b.replica, a.replica);
    pull(c.replica, a.replica);
    setDescription(a.replica, "x", "from-a");
    addPerson(b.replica, "y");
    pull(b.replica, a.replica);
    const aUsnAtB = b.replica.utd()[a.replica.invocationId];
    filteredPull(c.replica, b.replica, [a.replica.invocationId]);
    assert.ok(c.replica.get(`cn=y,${base}`).ok, "b's own change arrives");
    assert.equal(description(c.replica, `cn=x,${base}`), undefined, "a's change stays out");
    assert.ok(aUsnAtB !== undefined && aUsnAtB > (c.replica.utd()[a.replica.invocationId] ?? 0));
    pull(c.replica, a.replica);
    assert.deepEqual(description(c.replica, `cn=x,${base}`), ["from-a"]);
  });

  it("start again from zero when the filter gives an origin back", () => {
    const [a, b, c] = threeReplicas();
    addPerson(a.replica, "x");
    pull(b.replica, a.replica);
    pull(c.replica, a.replica);
    setDescription(a.replica, "x", "from-a");
    pull(b.replica, a.replica);
    addPerson(b.replica, "y");
    filteredPull(c.replica, b.replica, [a.replica.invocationId]);
    assert.equal(description(c.replica, `cn=x,${base}`), undefined);
    // The route toward a's site now runs through b: without a restart, b's watermark (past
    // the modification) would skip it for good.
    const [first] = filteredPull(c.replica, b.replica, []);
    assert.equal(first?.from.objectUsn, 0, "the first page of the new filter starts from zero");
    assert.deepEqual(description(c.replica, `cn=x,${base}`), ["from-a"]);
  });

  it("send an entry whole when the destination may not hold its creation", () => {
    const [a, b, c] = threeReplicas();
    addPerson(a.replica, "x");
    pull(b.replica, a.replica);
    setDescription(b.replica, "x", "from-b");
    filteredPull(c.replica, b.replica, [a.replica.invocationId]);
    assert.deepEqual(
      description(c.replica, `cn=x,${base}`),
      ["from-b"],
      "b's change is placed, creation included",
    );
  });

  it("send an entry whole when an earlier filtered cycle skipped its creation", () => {
    const [a, b, c] = threeReplicas();
    addPerson(a.replica, "x");
    pull(b.replica, a.replica);
    // c's cycle from b leaves a's creation of cn=x out, and moves past it.
    filteredPull(c.replica, b.replica, [a.replica.invocationId]);
    assert.equal(c.replica.get(`cn=x,${base}`).ok, false);
    setDescription(b.replica, "x", "from-b");
    filteredPull(c.replica, b.replica, [a.replica.invocationId]);
    assert.deepEqual(
      description(c.replica, `cn=x,${base}`),
      ["from-b"],
      "the creation comes with b's change",
    );
  });

  it("ignore a page made under another filter", () => {
    const [a, b, c, d] = makeDirectory(["node-a", "node-b", "node-c", "node-d"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined && d !== undefined);
    pull(b.replica, a.replica);
    pull(c.replica, b.replica);
    addPerson(a.replica, "x");
    pull(b.replica, a.replica);
    const stale = unwrap(
      b.replica.getChanges(c.replica.changeRequest(b.replica.nodeId, {}, [a.replica.invocationId])),
    );
    // The filter grows (same watermark, one more origin left out) before the page arrives.
    const now = c.replica.changeRequest(b.replica.nodeId, {}, [
      a.replica.invocationId,
      d.replica.invocationId,
    ]);
    assert.equal(now.from.objectUsn, stale.from.objectUsn);
    const outcome = unwrap(c.replica.applyChanges(stale));
    assert.equal(outcome.contiguous, false);
    assert.deepEqual(outcome.watermark, now.from);
  });

  it("refuse a malformed filter with invalid-page", () => {
    const [a, b] = makeDirectory(["node-a", "node-b"]);
    assert.ok(a !== undefined && b !== undefined);
    const request = b.replica.changeRequest(a.replica.nodeId);
    for (const excluded of ["x", [1], ["not an invocation"], Array.from({ length: 100_001 }, () => "x")]) {
      const answer = a.replica.getChanges({ ...request, from: { ...request.from, excluded } });
      assert.equal(answer.ok ? "ok" : answer.error.code, "invalid-page");
    }
  });

  it("converge to the reference model whatever the filters (property)", () => {
    fc.assert(property(null), { numRuns: runs });
  });

  for (const canary of filterCanaryNames) {
    it(`the property catches the planted bug ${canary}`, () => {
      const result = fc.check(property(canary), { numRuns: 300, seed: 42 });
      assert.equal(result.failed, true, `${canary} went undetected in ${result.numRuns} runs`);
    });
  }
});
