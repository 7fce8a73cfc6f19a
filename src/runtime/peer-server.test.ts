import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Logger } from "./log.ts";
import { RefusalLog, refusedLogsPerWindowMax, refusedLogWindowMs } from "./peer-server.ts";

describe("the log of refused peer requests", () => {
  it("logs at most refusedLogsPerWindowMax per window, and then says how many went unlogged", () => {
    const lines: Record<string, unknown>[] = [];
    const log: Logger = { log: (_level, _event, fields = {}) => void lines.push(fields) };
    const refusals = new RefusalLog(log);
    const flood = refusedLogsPerWindowMax * 50;
    for (let index = 0; index < flood; index++) refusals.refused({ reason: "unsigned request" }, 1_000);
    assert.equal(lines.length, refusedLogsPerWindowMax, "a flood of unsigned requests writes a bounded log");
    refusals.refused({ reason: "bad signature" }, 1_000 + refusedLogWindowMs);
    assert.equal(lines.length, refusedLogsPerWindowMax + 1);
    assert.deepEqual(lines.at(-1), { reason: "bad signature", unlogged: flood - refusedLogsPerWindowMax });
    refusals.refused({ reason: "unsigned request" }, 1_001 + refusedLogWindowMs);
    assert.deepEqual(lines.at(-1), { reason: "unsigned request" }, "the count is told once");
  });
});
