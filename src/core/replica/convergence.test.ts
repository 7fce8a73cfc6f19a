import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { newHistory, runStep, settle, stepArbitrary } from "../../../test/support/history.ts";
import { referenceState } from "../../../test/support/reference-model.ts";
import { convergedState } from "../../sim/state.ts";

/**
 * The replication contract as properties: whatever the operations, the pull order, the page
 * sizes, duplicated and late pages and clock skew, every replica ends with identical state,
 * and that state is exactly what the reference model of the merge rules computes.
 */
const runs = Number(process.env.PLEXUS_PROPERTY_RUNS ?? 60);

describe("convergence (property)", () => {
  it("all replicas converge to the reference model's state", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 5 }),
        fc.array(stepArbitrary(), { minLength: 5, maxLength: 80, size: "max" }),
        fc.nat(1000),
        (count, steps, seed) => {
          const history = newHistory(count, seed);
          for (const step of steps) runStep(history, step);
          settle(history);
          const expected = referenceState(history.log);
          for (const replica of history.replicas) {
            assert.deepEqual(
              convergedState(replica.store),
              expected,
              `${replica.name} differs from the model`,
            );
          }
          assert.deepEqual(history.idempotenceFailures, []);
        },
      ),
      { numRuns: runs },
    );
  });
});

describe("the convergence property can fail", () => {
  // Each planted bug must make the same property fail within a modest number of runs;
  // otherwise the property would be too weak to trust when it passes.
  for (const canary of ["compareTimeFirst", "nonIdempotentApply", "dropLastPage"] as const) {
    it(`catches the planted bug ${canary}`, () => {
      const result = fc.check(
        fc.property(
          fc.integer({ min: 2, max: 5 }),
          fc.array(stepArbitrary(), { minLength: 5, maxLength: 80, size: "max" }),
          fc.nat(1000),
          (count, steps, seed) => {
            const history = newHistory(count, seed, { [canary]: true });
            for (const step of steps) runStep(history, step);
            settle(history);
            const expected = referenceState(history.log);
            for (const replica of history.replicas) assert.deepEqual(convergedState(replica.store), expected);
            assert.deepEqual(history.idempotenceFailures, []);
          },
        ),
        { numRuns: 200, seed: 42 },
      );
      assert.equal(result.failed, true, `${canary} went undetected in ${result.numRuns} runs`);
    });
  }
});
