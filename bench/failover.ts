/**
 * `npm run bench:failover [-- --kills N]`
 *
 * Client failover time: node processes on loopback (site a: a1, a2, a3; site b: b1), one
 * client placed in site a reading in a loop (one request at a time), and N rounds of: SIGKILL
 * the node the client is using, measure from just before the signal to the first successful
 * answer from another node, restart the killed node on its port. The client finds the nodes
 * through the locator's SRV names (test/support/locator.ts reads them from the cluster, so that
 * DNS timing stays out of the figure). The baseline, measured in the same run: the latency of
 * one read with nothing failing, as a ratio.
 *
 * The last line of stdout is one JSON object: failoverP50Ms, failoverP99Ms, failoverMaxMs,
 * kills, readP50Ms, load average. `runFailoverBench` is exported for other benchmarks.
 */
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { LocalCluster } from "../src/cli/local-cluster.ts";
import { createClient } from "../src/client/index.ts";
import { clusterResolver } from "../test/support/locator.ts";
import { loadAverage, round } from "./support.ts";

const killsDefault = 10;
const killsMax = 50;
/** The whole run stops after this long, whatever is left of the rounds. */
const runDeadlineMs = 240_000;
/** Reads with nothing failing, for the baseline. */
const baselineReads = 200;
/** A round gives up waiting for an answer from another node after this long. */
const roundLimitMs = 20_000;
const zone = "plexus.test";
const base = "dc=example,dc=com";
/** Node processes start slowly on a loaded machine (tsx compiles the sources first). */
const nodeStartTimeoutMs = 60_000;

const topology = {
  sites: [{ name: "a" }, { name: "b" }],
  links: [{ name: "ab", sites: ["a", "b"], cost: 10, intervalMinutes: 1, notify: true }],
  subnets: [
    { cidr: "127.0.1.0/24", site: "a" },
    { cidr: "127.0.2.0/24", site: "b" },
  ],
  settings: { intraSitePullIntervalMs: 1_000, notifyDelayMs: 5 },
};
const timings = { pullTimeoutMs: 2_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };

export interface FailoverFigures {
  readonly kills: number;
  readonly failoverP50Ms: number;
  readonly failoverP99Ms: number;
  readonly failoverMaxMs: number;
  /** One read's latency with nothing failing (median), the baseline. */
  readonly readP50Ms: number;
  /** Rounds where no other node answered within the round limit. */
  readonly failedRounds: number;
  readonly samplesMs: readonly number[];
}

function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)] as number;
}

export async function runFailoverBench(
  kills = killsDefault,
  log: (line: string) => void = console.log,
): Promise<FailoverFigures> {
  const started = performance.now();
  const cluster = new LocalCluster(topology, timings, { prefix: "plexus-bench-failover-" });
  const client = createClient({
    zone,
    resolver: clusterResolver(cluster.nodes, zone),
    localAddress: "127.0.1.1",
    backoff: { baseMs: 1_000, maxMs: 5_000 },
  });
  try {
    const a1 = await cluster.start("a1", "a", { timeoutMs: nodeStartTimeoutMs });
    await Promise.all([
      cluster.start("a2", "a", { join: [a1.url], timeoutMs: nodeStartTimeoutMs }),
      cluster.start("a3", "a", { join: [a1.url], timeoutMs: nodeStartTimeoutMs }),
      cluster.start("b1", "b", { join: [a1.url], timeoutMs: nodeStartTimeoutMs }),
    ]);
    const dn = `cn=failover-probe,${base}`;
    await client.add(
      dn,
      { objectClass: ["person"], cn: ["failover-probe"], sn: ["probe"] },
      "sites=2; timeout=20000",
    );
    const reads: number[] = [];
    for (let index = 0; index < baselineReads; index++) {
      const at = performance.now();
      await client.get(dn);
      reads.push(performance.now() - at);
    }
    reads.sort((x, y) => x - y);
    log(`baseline: ${baselineReads} reads, median ${round(percentile(reads, 0.5), 2)} ms`);

    // The reader: one request at a time, each answer noted with the node that gave it.
    let last: { url: string; at: number } = { url: "", at: 0 };
    let reading = true;
    const waiters = new Set<() => void>();
    const reader = (async () => {
      while (reading) {
        try {
          const answer = await client.get(dn);
          last = { url: answer.url, at: performance.now() };
          for (const wake of waiters) wake();
        } catch {
          // Every server failed this once (a restart under way): the next request tries again.
        }
      }
    })();
    const answerFrom = (accept: (url: string) => boolean, after: number): Promise<number | null> =>
      new Promise((resolve) => {
        const timer = setTimeout(() => finish(null), roundLimitMs);
        const finish = (value: number | null): void => {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(value);
        };
        const check = (): void => {
          if (last.at > after && accept(last.url)) finish(last.at);
        };
        waiters.add(check);
      });

    const samples: number[] = [];
    let failedRounds = 0;
    for (let round = 0; round < Math.min(kills, killsMax); round++) {
      if (performance.now() - started > runDeadlineMs) break;
      // The node the reader is using now.
      await answerFrom(() => true, performance.now());
      const victim = [...cluster.nodes.values()].find((node) => node.url === last.url);
      if (victim === undefined) throw new Error(`no node at ${last.url}`);
      const port = Number(new URL(victim.url).port);
      const killedAt = performance.now();
      const stopped = cluster.stop(victim.name, "SIGKILL");
      const answeredAt = await answerFrom((url) => url !== victim.url, killedAt);
      await stopped;
      if (answeredAt === null) failedRounds++;
      else samples.push(answeredAt - killedAt);
      log(
        `kill ${round + 1}: ${victim.name} → ${answeredAt === null ? "no answer elsewhere" : `${(answeredAt - killedAt).toFixed(1)} ms`}`,
      );
      await cluster.start(victim.name, victim.site, { port, timeoutMs: nodeStartTimeoutMs });
    }
    reading = false;
    await reader;
    const sorted = [...samples].sort((x, y) => x - y);
    return {
      kills: samples.length + failedRounds,
      failoverP50Ms: round(percentile(sorted, 0.5), 2),
      failoverP99Ms: round(percentile(sorted, 0.99), 2),
      failoverMaxMs: round(sorted.at(-1) ?? Number.NaN, 2),
      readP50Ms: round(percentile(reads, 0.5), 2),
      failedRounds,
      samplesMs: samples.map((sample) => round(sample, 2)),
    };
  } finally {
    await client.close();
    await cluster.stopAll();
  }
}

/** The failover part of `npm run bench:dns`: its fields for that benchmark's last line. */
export async function failoverPart(): Promise<Record<string, unknown>> {
  const loadBefore = loadAverage();
  const figures = await runFailoverBench();
  console.log(
    `client failover p50 ${figures.failoverP50Ms} ms, p99 ${figures.failoverP99Ms} ms over ${figures.kills} kills (target p99 < 1000 ms); one read ${figures.readP50Ms} ms`,
  );
  return {
    failoverP50Ms: figures.failoverP50Ms,
    failoverP99Ms: figures.failoverP99Ms,
    failoverMaxMs: figures.failoverMaxMs,
    failoverKills: figures.kills,
    failoverFailedRounds: figures.failedRounds,
    failoverReadP50Ms: figures.readP50Ms,
    failoverLoadAverage: { start: loadBefore, end: loadAverage() },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { kills: { type: "string" } } });
  const kills = values.kills === undefined ? killsDefault : Number(values.kills);
  if (!Number.isInteger(kills) || kills < 1 || kills > killsMax) {
    console.error(`--kills must be an integer from 1 to ${killsMax}`);
    process.exit(2);
  }
  const loadBefore = loadAverage();
  const figures = await runFailoverBench(kills);
  const ratio = round(figures.failoverP99Ms / figures.readP50Ms, 1);
  console.log(
    `failover p50 ${figures.failoverP50Ms} ms, p99 ${figures.failoverP99Ms} ms over ${figures.kills} kills (${ratio}x one read); target p99 < 1000 ms`,
  );
  console.log(
    JSON.stringify({
      ...figures,
      failoverP99OverReadP50: ratio,
      loadAverageBefore: loadBefore,
      loadAverageAfter: loadAverage(),
    }),
  );
}
