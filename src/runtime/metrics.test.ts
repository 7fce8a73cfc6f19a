import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Gauge } from "prom-client";
import type { InvocationId, NodeId } from "../core/ids.ts";
import { linkIntervalMinutesDefault, type SiteName } from "../core/topology/model.ts";
import { type ClusterSecret, clusterSecret } from "./auth.ts";
import { silentLogger } from "./log.ts";
import { conflictsCountedMax, type MetricsSource, NodeMetrics } from "./metrics.ts";
import { PlexusNode, runtimeTimingsDefault } from "./node.ts";

/**
 * GET /metrics on two nodes of one site in this process: the second joins through the first,
 * the first takes client writes, the second replicates them. The counters must have moved by
 * exactly what was done, the lag gauges must name the partner, and the text must be valid
 * Prometheus exposition format (every sample declared by TYPE, `name{labels} value`).
 */
const base = "dc=example,dc=com";
const secretText = "the metrics test's cluster secret";
const secret = clusterSecret(secretText) as ClusterSecret;
const writesMade = 5;

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const metricName = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const labelPair = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"`;
const sampleLine = new RegExp(
  `^(${metricName})(?:\\{((?:${labelPair})(?:,${labelPair})*)?,?\\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$`,
);
const typeLine = new RegExp(`^# TYPE (${metricName}) (counter|gauge|histogram|summary|untyped)$`);
const helpLine = new RegExp(`^# HELP (${metricName}) .*$`);

/**
 * Parses the text exposition format strictly enough to fail on anything malformed: every
 * sample declared by one TYPE and one HELP line, values as the format writes them (`NaN`,
 * `+Inf`, `-Inf`), and no series twice.
 */
function parseExposition(text: string): Sample[] {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const series = new Set<string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const help = helpLine.exec(line);
    if (help !== null) {
      assert.ok(!helps.has(help[1] as string), `a second HELP line for ${help[1]}`);
      helps.add(help[1] as string);
      continue;
    }
    const type = typeLine.exec(line);
    if (type !== null) {
      assert.ok(!types.has(type[1] as string), `a second TYPE line for ${type[1]}`);
      types.set(type[1] as string, type[2] as string);
      continue;
    }
    const sample = sampleLine.exec(line);
    assert.ok(sample !== null, `not a sample, HELP or TYPE line: ${line}`);
    const name = sample[1] as string;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count|total)$/, "");
    assert.ok(types.has(family) || types.has(name), `sample ${name} has no TYPE line`);
    assert.ok(helps.has(family) || helps.has(name), `sample ${name} has no HELP line`);
    const labels: Record<string, string> = {};
    for (const pair of (sample[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1] as string] = pair[2] as string;
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!series.has(key), `series ${key} twice`);
    series.add(key);
    samples.push({ name, labels, value: Number(sample[3]) });
  }
  return samples;
}

function find(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter(
    (sample) =>
      sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
}

function total(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return find(samples, name, labels).reduce((sum, sample) => sum + sample.value, 0);
}

async function scrape(url: string): Promise<{ contentType: string; text: string }> {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(response.status, 200);
  return { contentType: response.headers.get("content-type") ?? "", text: await response.text() };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe("GET /metrics", { timeout: 60_000 }, () => {
  const directory = mkdtempSync(join(tmpdir(), "plexus-metrics-"));
  const nodes: PlexusNode[] = [];

  const start = async (name: string, joinUrl: string | null): Promise<PlexusNode> => {
    const node = await PlexusNode.start({
      dataDirectory: join(directory, name),
      node: name as NodeId,
      site: "east" as SiteName,
      host: "127.0.0.1",
      port: 0,
      join: joinUrl === null ? [] : [joinUrl],
      secret,
      partitions: joinUrl === null ? [base] : [],
      topology: { settings: { intraSitePullIntervalMs: 1_000, notifyDelayMs: 10 } },
      synchronous: "normal",
      pageWorker: true,
      timings: runtimeTimingsDefault,
      log: silentLogger,
    });
    nodes.push(node);
    return node;
  };

  before(async () => {
    const first = await start("m1", null);
    await start("m2", first.url);
  });

  after(async () => {
    for (const node of nodes) await node.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  it("counts writes, pulls and pages, and shows lag per partner and per origin", async () => {
    const [writer, reader] = nodes as [PlexusNode, PlexusNode];
    const dns = Array.from({ length: writesMade }, (_, index) => `cn=metrics${index},${base}`);
    for (const dn of dns) {
      const response = await fetch(`${writer.url}/v1/entries`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          dn,
          attributes: { objectClass: ["person"], cn: [dn.slice(3, -base.length - 1)], sn: ["x"] },
        }),
      });
      assert.equal(response.status, 201, await response.text());
    }
    const again = await fetch(`${writer.url}/v1/entries`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        dn: dns[0],
        attributes: { objectClass: ["person"], cn: ["metrics0"], sn: ["x"] },
      }),
    });
    assert.equal(again.status, 409);
    await waitFor("the second node holding every write", async () => {
      for (const dn of dns) {
        const response = await fetch(`${reader.url}/v1/entries/${encodeURIComponent(dn)}`);
        await response.arrayBuffer();
        if (response.status !== 200) return false;
      }
      return true;
    });

    const written = await scrape(writer.url);
    assert.match(written.contentType, /^text\/plain; version=0\.0\.4/);
    const w = parseExposition(written.text);
    assert.equal(total(w, "plexus_client_writes_total", { operation: "add", outcome: "ok" }), writesMade);
    assert.equal(total(w, "plexus_client_writes_total", { operation: "add", outcome: "entry-exists" }), 1);
    assert.equal(total(w, "plexus_client_writes_total"), writesMade + 1);
    assert.ok(total(w, "plexus_group_commit_writes_count") >= 1);
    assert.ok(total(w, "plexus_group_commit_seconds_count") >= 1);
    assert.equal(find(w, "plexus_write_queue_length").length, 1);
    assert.ok(find(w, "process_cpu_user_seconds_total").length === 1, "default process metrics");
    for (const sample of w) assert.equal(sample.labels.node, "m1", `${sample.name} labelled with its node`);

    const read = parseExposition((await scrape(reader.url)).text);
    assert.ok(total(read, "plexus_pulls_total", { partner: "m1", outcome: "ok" }) > 0);
    assert.ok(total(read, "plexus_pages_applied_total", { partner: "m1" }) > 0);
    assert.ok(total(read, "plexus_entries_applied_total", { partner: "m1" }) >= writesMade);
    assert.ok(total(read, "plexus_pull_received_bytes_total", { partner: "m1" }) > 0);
    assert.equal(total(read, "plexus_client_writes_total"), 0);
    const lag = find(read, "plexus_partner_last_success_age_seconds", { partner: "m1" });
    assert.equal(lag.length, 1, "a lag gauge for the inbound partner");
    assert.ok((lag[0]?.value ?? -1) >= 0);
    assert.equal(find(read, "plexus_partner_consecutive_failures", { partner: "m1" }).length, 1);
    assert.ok(
      find(read, "plexus_origin_utd_usn", { origin_node: "m1" }).length >= 1,
      "UTD per origin, named",
    );
    assert.ok(find(read, "plexus_origin_last_change_age_seconds", { origin_node: "m1" }).length >= 1);
    assert.ok(find(read, "plexus_origin_replication_delay_seconds", { origin_node: "m1" }).length >= 1);
    assert.ok(total(read, "plexus_replication_delay_seconds_count") >= 1);
    for (const sample of read) assert.equal(sample.labels.node, "m2");
    // What each node holds: every write, on both; no conflict was made.
    for (const samples of [w, read]) {
      assert.ok(
        total(samples, "plexus_entries", { state: "live" }) >= writesMade + 1,
        "the writes and the root",
      );
      assert.equal(find(samples, "plexus_entries", { state: "tombstone" }).length, 1);
      assert.equal(total(samples, "plexus_naming_conflicts"), 0);
    }
  });

  it("answers without authentication and leaks no secret", async () => {
    const [writer] = nodes as [PlexusNode];
    const { text } = await scrape(writer.url);
    assert.ok(!text.includes(secretText));
    assert.ok(!text.includes(Buffer.from(secretText).toString("base64")));
  });

  it("rejects the exposition parser's own counter-examples", () => {
    assert.throws(() => parseExposition("plexus_x 1\n"), /no TYPE line/);
    assert.throws(() => parseExposition("# TYPE plexus_x gauge\nplexus_x{a=1} 1\n"), /not a sample/);
    assert.throws(
      () => parseExposition("# HELP plexus_x x\n# TYPE plexus_x gauge\nplexus_x Nan\n"),
      /not a sample/,
    );
    assert.throws(() => parseExposition("# TYPE plexus_x gauge\nplexus_x 1\n"), /no HELP line/);
    assert.throws(
      () =>
        parseExposition('# HELP plexus_x x\n# TYPE plexus_x gauge\nplexus_x{a="1"} 1\nplexus_x{a="1"} 2\n'),
      /twice/,
    );
  });
});

/** NodeMetrics on its own, fed what node.ts feeds it. */
describe("NodeMetrics", () => {
  const origin = "0123456789abcdef0123456789abcdef" as InvocationId;
  const source: MetricsSource = {
    usn: () => 0,
    invocation: () => "fedcba9876543210fedcba9876543210" as InvocationId,
    utd: () => ({}),
    ready: () => true,
    partners: () => [],
    queues: () => ({ writes: 0, writeConcernWaits: 0, peerRequestsInFlight: 0, peerRequestsWaiting: 0 }),
    servers: () => [],
    entries: () => ({ live: 0, tombstones: 0 }),
    conflicts: () => 0,
    rejectedPages: () => 0,
    storageFull: () => false,
  };

  it("shows the entries held and the naming conflicts, counted up to conflictsCountedMax", async () => {
    const asked: number[] = [];
    const counting: MetricsSource = {
      ...source,
      entries: () => ({ live: 7, tombstones: 2 }),
      conflicts: (max) => {
        asked.push(max);
        return 3;
      },
    };
    const samples = parseExposition(await new NodeMetrics({ node: "m1", site: "east" }, counting).text());
    assert.equal(total(samples, "plexus_entries", { state: "live" }), 7);
    assert.equal(total(samples, "plexus_entries", { state: "tombstone" }), 2);
    assert.equal(total(samples, "plexus_naming_conflicts"), 3);
    assert.deepEqual(asked, [conflictsCountedMax], "counted once per scrape, bounded");
  });

  it("counts a page the machine did not apply as rejected, even when it came late", async () => {
    let rejected = 0;
    const metrics = new NodeMetrics(
      { node: "m1", site: "east" },
      { ...source, rejectedPages: () => rejected },
    );
    const partner = "hq1" as NodeId;
    const before = metrics.beforeApply(partner, "pull");
    rejected++; // the machine refused the page; the partner's last failure stays (a late page)
    metrics.answerApplied(before, { ok: true, status: 200, body: { kind: "page", page: {} }, bytes: 10 });
    const samples = parseExposition(await metrics.text());
    assert.equal(total(samples, "plexus_pulls_total", { partner, outcome: "rejected" }), 1);
    assert.equal(total(samples, "plexus_pulls_total", { partner, outcome: "ok" }), 0);
    assert.equal(total(samples, "plexus_pages_applied_total", { partner }), 0);
  });

  /** A pull answered with one page holding one change `delayMs` old, applied now. */
  const applyPageOfAge = (metrics: NodeMetrics, delayMs: number): void => {
    const partner = "hq1" as NodeId;
    const page = { entries: [{ items: [{ stamp: { invocation: origin, time: Date.now() - delayMs } }] }] };
    metrics.answerApplied(metrics.beforeApply(partner, "pull"), {
      ok: true,
      status: 200,
      body: { kind: "page", page },
      bytes: 100,
    });
  };

  it("puts inter-site delays (a link's interval per hop, a closed schedule) in finite buckets", async () => {
    // With the defaults (15-minute interval, no notification across sites) a change waits up
    // to a whole interval at each site boundary; a scheduled link holds it for hours.
    const interval = linkIntervalMinutesDefault * 60_000;
    for (const delayMs of [interval, 2 * interval, 3_600_000, 12 * 3_600_000]) {
      const metrics = new NodeMetrics({ node: "m1", site: "east" }, source);
      applyPageOfAge(metrics, delayMs);
      const buckets = find(parseExposition(await metrics.text()), "plexus_replication_delay_seconds_bucket")
        .filter((bucket) => bucket.value === 1)
        .map((bucket) => (bucket.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(bucket.labels.le)));
      const smallest = Math.min(...buckets);
      assert.ok(Number.isFinite(smallest), `a ${delayMs / 1_000} s delay is beyond the last finite bucket`);
      assert.ok(
        smallest <= (2 * delayMs) / 1_000,
        `a ${delayMs / 1_000} s delay lands in the ${smallest} s bucket`,
      );
    }
  });

  it("writes a value that is not a number as NaN, as the exposition format spells it", async () => {
    // prom-client writes `Nan`, e.g. for nodejs_eventloop_lag_mean_seconds scraped twice
    // within the event-loop monitor's resolution.
    const metrics = new NodeMetrics({ node: "m1", site: "east" }, source);
    new Gauge({ name: "plexus_test_nan", help: "not a number", registers: [metrics.registry] }).set(
      Number.NaN,
    );
    const text = await metrics.text();
    assert.match(text, /^plexus_test_nan\{node="m1",site="east"\} NaN$/m);
    parseExposition(text);
  });
});
