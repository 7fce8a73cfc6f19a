import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { routingCanaryNames } from "../core/canaries.ts";
import { SeededRandom } from "./ports.ts";
import { deriveRoutingParams, type RoutingResult, runRouting } from "./routing.ts";
import { CompactRouting } from "./routing-compact.ts";
import { generateSiteGraph } from "./site-graphs.ts";

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

  it("the compact simulation (bench:topology) reaches the reference tables on every destination", () => {
    for (let seed = 1; seed <= 24; seed++) {
      const random = new SeededRandom(seed);
      const shape = seed % 3 === 0 ? "hub-and-spoke" : "geometric";
      const { graph } = generateSiteGraph(random, random.int(2, 120), shape, seed % 2 === 0);
      const routing = new CompactRouting(graph, random, {
        delayMs: { min: 1, max: random.int(2, 200) },
        advertisementIntervalMs: random.pick([0, 20, 50]),
        verify: () => true,
      });
      const result = routing.run();
      assert.equal(result.verifiedDestinations, graph.names.length);
      assert.deepEqual(result.mismatches, [], `seed ${seed}`);
    }
  });

  it("replays a seed exactly", () => {
    const first = runRouting(deriveRoutingParams(42));
    const second = runRouting(deriveRoutingParams(42));
    assert.deepEqual(
      [first.coldMessages, first.reconvergeMessages, first.events],
      [second.coldMessages, second.reconvergeMessages, second.events],
    );
  });
});
