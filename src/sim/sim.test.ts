import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canaryNames } from "../core/canaries.ts";
import { runBatch } from "./batch.ts";
import { runSeed } from "./run.ts";

/**
 * The simulator in CI: a few hundred random seeds must pass every invariant, every planted
 * canary bug must be caught, and a seed run twice must replay to the same trace. (The full
 * 10,000-seed run is `npm run sim -- --seeds 10000`.)
 */
const seeds = Number(process.env.PLEXUS_SIM_SEEDS ?? 300);
const canarySeedsMax = 200;
const determinismSample = [1, 2, 3, 5, 8, 13, 21, 34];

function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => from + index);
}

describe("simulator", () => {
  it(`${seeds} random seeds keep every invariant`, async () => {
    const results = await runBatch({ seeds: range(1, seeds) });
    const failing = results.filter((result) => result.violations.length > 0);
    const report = failing.map(
      (result) =>
        `seed ${result.seed}: ${result.violations.map((v) => `${v.invariant}: ${v.message}`).join("; ")} — replay: npm run sim -- --seed ${result.seed}`,
    );
    assert.equal(results.length, seeds);
    assert.deepEqual(report, []);
    const operations = results.reduce((sum, result) => sum + result.operations, 0);
    const faults = results.reduce((sum, result) => sum + result.faults, 0);
    assert.ok(operations / seeds > 100, `seeds are trivial: ${operations / seeds} operations on average`);
    assert.ok(faults / seeds > 5, `seeds are trivial: ${faults / seeds} faults on average`);
  });

  for (const canary of canaryNames) {
    it(`catches the planted bug ${canary}`, async () => {
      const results = await runBatch({ seeds: range(1, canarySeedsMax), canary, stopAtFirstViolation: true });
      assert.ok(
        results.some((result) => result.violations.length > 0),
        `${canary} went undetected in ${results.length} seeds`,
      );
    });
  }

  it("replays a seed to the same trace, in this process and in a worker", async () => {
    const here = determinismSample.map((seed) => runSeed(seed).traceHash);
    const again = determinismSample.map((seed) => runSeed(seed).traceHash);
    assert.deepEqual(again, here);
    const workers = await runBatch({ seeds: determinismSample, workers: 2 });
    const byWorker = new Map(workers.map((result) => [result.seed, result.traceHash]));
    assert.deepEqual(
      determinismSample.map((seed) => byWorker.get(seed)),
      here,
    );
  });
});
