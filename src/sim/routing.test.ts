import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { routingCanaryNames } from "../core/canaries.ts";
import { deriveRoutingParams, type RoutingResult, runRouting } from "./routing.ts";

/**
 * The routing simulator in CI: many small site graphs with link and bridgehead failures, two
 * graphs of a few hundred sites, and every planted router defect caught. (`npm run sim:routing`
 * runs more seeds and larger graphs.)
 */
const smallSeeds = 150;
const canarySeedsMax = 60;

function failures(result: RoutingResult): string {
  return `seed ${result.params.seed} (${result.params.sites} sites, ${result.params.shape}${result.params.tiered ? ", tiered" : ""}): ${result.violations.slice(0, 3).join("; ")}`;
}

describe("routing simulator", () => {
  it(`converges to the stable routes, loop-free and valley-free, on ${smallSeeds} seeds`, () => {
    let reconvergences = 0;
    for (let seed = 1; seed <= smallSeeds; seed++) {
      const result = runRouting(deriveRoutingParams(seed));
      assert.deepEqual(result.violations, [], failures(result));
      reconvergences += result.reconvergences;
    }
    assert.ok(reconvergences > smallSeeds, "faults were injected and re-converged from");
  });

  for (const [seed, sites] of [
    [7, 200],
    [8, 250],
  ] as const) {
    it(`converges on ${sites} sites (seed ${seed})`, () => {
      const params = { ...deriveRoutingParams(seed, { sites }), advertisementIntervalMs: 50 };
      const result = runRouting(params);
      assert.deepEqual(result.violations, [], failures(result));
    });
  }

  for (const canary of routingCanaryNames) {
    it(`catches the planted router defect ${canary}`, () => {
      for (let seed = 1; seed <= canarySeedsMax; seed++) {
        const result = runRouting(deriveRoutingParams(seed, { canary }));
        if (result.violations.length > 0) return;
      }
      assert.fail(`${canary} went undetected in ${canarySeedsMax} seeds`);
    });
  }

  it("replays a seed exactly", () => {
    const first = runRouting(deriveRoutingParams(42));
    const second = runRouting(deriveRoutingParams(42));
    assert.deepEqual(
      [first.coldMessages, first.reconvergeMessages, first.events],
      [second.coldMessages, second.reconvergeMessages, second.events],
    );
  });
});
