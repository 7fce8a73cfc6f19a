import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeId } from "../core/ids.ts";
import type { PartnerStatus } from "../core/node/machine.ts";
import { type ReplicatePort, replicateNow } from "./replicate-now.ts";

/**
 * POST /v1/replicate's wait, against a scripted machine: which partners are nudged, which
 * pull end counts, and what is reported when a pull does not end in time.
 */
function partner(name: string, extra: Partial<PartnerStatus> = {}): PartnerStatus {
  return {
    partner: name as NodeId,
    lastSuccessAt: 5,
    lastFailureAt: null,
    lastFailure: null,
    consecutiveFailures: 0,
    pulling: false,
    ...extra,
  };
}

/** A port whose clock is real time since creation and whose partners follow `script(now)`. */
function port(script: (now: number) => PartnerStatus[], nudged: string[]): ReplicatePort {
  const began = performance.now();
  return {
    partners: () => script(10 + performance.now() - began),
    nudge: (node) => nudged.push(node),
    now: () => 10 + performance.now() - began,
    stopped: () => false,
    wallTimeOf: (ms) => `t${ms}`,
  };
}

describe("replicate now", () => {
  it("nudges every partner not backing off and reports how each pull ended", async () => {
    const nudged: string[] = [];
    const script = (now: number): PartnerStatus[] => [
      partner("e2", now > 30 ? { lastSuccessAt: 30 } : { pulling: true }),
      partner("e3", now > 30 ? { lastFailureAt: 30, lastFailure: "refused", consecutiveFailures: 1 } : {}),
      partner("w1", { consecutiveFailures: 2, lastFailureAt: 4, lastFailure: "timeout" }),
      partner("w2", { pulling: false }),
    ];
    const results = await replicateNow(port(script, nudged), null, 200);
    assert.deepEqual(nudged, ["e2", "e3", "w2"]);
    assert.deepEqual(
      results.map((result) => [result.node, result.result]),
      [
        ["e2", "timeout"],
        ["e3", "failure"],
        ["w1", "backing-off"],
        ["w2", "timeout"],
      ],
    );
  });

  it("a pull under way when asked counts only through the one after it", async () => {
    const nudged: string[] = [];
    const script = (now: number): PartnerStatus[] => [
      partner("e2", now < 30 ? { pulling: true } : now < 60 ? { lastSuccessAt: 30 } : { lastSuccessAt: 60 }),
    ];
    const results = await replicateNow(port(script, nudged), "e2" as NodeId, 5_000);
    assert.deepEqual(results, [{ node: "e2", result: "success", at: "t60" }]);
  });

  it("a partner dropped by a topology change while asked is reported as such, not as a timeout", async () => {
    const nudged: string[] = [];
    const script = (now: number): PartnerStatus[] =>
      now < 30 ? [partner("e2", { pulling: true }), partner("e3")] : [partner("e3", { lastSuccessAt: 25 })];
    const began = performance.now();
    const results = await replicateNow(port(script, nudged), null, 5_000);
    assert.deepEqual(results, [
      { node: "e2", result: "no-longer-partner" },
      { node: "e3", result: "success", at: "t25" },
    ]);
    assert.ok(performance.now() - began < 4_000, "answered when the partner left, not at the timeout");
  });

  it("only the partner asked for", async () => {
    const nudged: string[] = [];
    const script = (now: number): PartnerStatus[] => [
      partner("e2", { lastSuccessAt: now > 20 ? 20 : 5 }),
      partner("e3"),
    ];
    const results = await replicateNow(port(script, nudged), "e2" as NodeId, 5_000);
    assert.deepEqual(nudged, ["e2"]);
    assert.deepEqual(
      results.map((result) => result.result),
      ["success"],
    );
  });
});
