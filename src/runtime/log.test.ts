import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startOptions } from "../cli/start.ts";
import {
  createLogger,
  isLogFormat,
  isLogLevel,
  type LogFormat,
  type LogLevel,
  logStringCharsMax,
} from "./log.ts";

/** The node's pino logger: one JSON object per line with level, time, node, site and event. */
function capture(
  level: LogLevel,
  format: LogFormat,
): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const log = createLogger({
    level,
    format,
    base: { node: "hq1", site: "hq" },
    output: { write: (text: string) => lines.push(text) },
  });
  return { lines, log };
}

describe("the node's log", () => {
  it("writes one JSON object per line with level, time, node, site, event and the fields", () => {
    const { lines, log } = capture("info", "json");
    log.log("info", "serving", { url: "http://127.0.0.1:1", partners: ["a", "b"] });
    log.log("error", "write-failed", { writes: 3, error: "disk full" });
    assert.equal(lines.length, 2);
    for (const line of lines) {
      assert.ok(line.endsWith("\n") && line.indexOf("\n") === line.length - 1, "one line each");
      const record = JSON.parse(line) as Record<string, unknown>;
      assert.equal(record.node, "hq1");
      assert.equal(record.site, "hq");
      assert.ok(!Number.isNaN(Date.parse(String(record.time))), "an ISO time");
      assert.ok(!("pid" in record) && !("hostname" in record));
    }
    const first = JSON.parse(lines[0] ?? "");
    assert.equal(first.level, "info");
    assert.equal(first.event, "serving");
    assert.equal(first.url, "http://127.0.0.1:1");
    assert.deepEqual(first.partners, ["a", "b"]);
    assert.equal(JSON.parse(lines[1] ?? "").level, "error");
    assert.equal(JSON.parse(lines[1] ?? "").writes, 3);
  });

  it("leaves out levels below the minimum", () => {
    const { lines, log } = capture("warn", "json");
    log.log("debug", "exchange-failed", {});
    log.log("info", "partners", {});
    log.log("warn", "drain-timeout", {});
    assert.deepEqual(
      lines.map((line) => JSON.parse(line).event),
      ["drain-timeout"],
    );
  });

  it("keeps a field named like a base field under its own name, never as a duplicate key", () => {
    const { lines, log } = capture("info", "json");
    log.log("info", "admitted", { node: "east1", level: "x", event: "y" });
    const line = lines[0] ?? "";
    assert.equal(line.match(/"node":/g)?.length, 1);
    const record = JSON.parse(line);
    assert.equal(record.node, "hq1");
    assert.equal(record.event, "admitted");
    assert.equal(record.field_node, "east1");
    assert.equal(record.field_level, "x");
    assert.equal(record.field_event, "y");
  });

  it("writes one readable line per event in the pretty format", () => {
    const { lines, log } = capture("info", "pretty");
    log.log("warn", "sites-unreachable", { sites: ["branch"] });
    assert.equal(lines.length, 1);
    const line = lines[0] ?? "";
    assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: hq1 sites-unreachable \{"sites":\["branch"\]\}\n$/);
  });

  it("keeps an error field on the event's one readable line in the pretty format", () => {
    // pino-pretty moves `err` and `error` to lines of their own by default: the events that
    // matter most (write-failed, dns-registration-failed, …) would span two lines.
    const { lines, log } = capture("info", "pretty");
    log.log("error", "write-failed", { writes: 3, error: "disk full" });
    log.log("warn", "x", { err: "y" });
    assert.deepEqual(
      lines.map((line) => line.replace(/^\[\d\d:\d\d:\d\d\.\d{3}\] /, "")),
      ['ERROR: hq1 write-failed {"writes":3,"error":"disk full"}\n', 'WARN: hq1 x {"err":"y"}\n'],
    );
  });

  it("cuts a long text field, so that a request's header cannot make a line as long as itself", () => {
    for (const format of ["json", "pretty"] as const) {
      const { lines, log } = capture("info", format);
      // About what a request's head may hold (src/edge/http/server.ts, requestHeadBytesMax).
      const claimed = "x".repeat(90_000);
      log.log("warn", "peer-request-refused", { claimed, reason: "unsigned request", inbound: [claimed] });
      assert.equal(lines.length, 1);
      const line = lines[0] ?? "";
      assert.ok(line.length < 3 * logStringCharsMax, `a line of ${line.length} characters`);
      assert.ok(line.includes("x".repeat(logStringCharsMax)), "the field's beginning is kept");
      assert.ok(line.includes(`${claimed.length - logStringCharsMax} more characters`));
      assert.match(line, /unsigned request/);
    }
  });

  it("takes its level and format from plexus start's flags or config, and refuses others", () => {
    const env = { PLEXUS_CLUSTER_SECRET: "a secret of sixteen bytes or more" };
    const args = ["--data", "unused-dir", "--node", "n1", "--site", "east"];
    const defaults = startOptions(args, env);
    assert.equal(defaults.logLevel, "info");
    assert.equal(defaults.logFormat, "json");
    const chosen = startOptions([...args, "--log-level", "warn", "--log-format", "pretty"], env);
    assert.equal(chosen.logLevel, "warn");
    assert.equal(chosen.logFormat, "pretty");
    assert.throws(
      () => startOptions([...args, "--log-format", "xml"], env),
      /--log-format must be json or pretty/,
    );
  });

  it("knows its levels and formats", () => {
    assert.ok(isLogLevel("debug") && isLogLevel("error") && !isLogLevel("trace") && !isLogLevel(1));
    assert.ok(isLogFormat("json") && isLogFormat("pretty") && !isLogFormat("text"));
  });
});
