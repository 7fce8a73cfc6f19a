/**
 * `npm run bench [-- --quick] [--skip-peers | --peers-only]`
 *
 * Measures real `plexus start` processes on loopback over HTTP (bench/http1.ts client), each figure
 * beside a baseline measured in the same run:
 *   (a) durable writes/s (synchronous=FULL, write concern local) and p50/p99 latency at
 *       concurrency 1, 16 and 64 on one node alone; baselines: single-row SQLite commits/s with
 *       synchronous=FULL on the same disk (one fsync each), and GET /v1/status requests/s;
 *   (b) the same on a node with two intra-site partners replicating (3 nodes, one site), as a
 *       ratio to (a); then c64 alternately on the node alone and on the site, a few rounds
 *       seconds apart (replicationTaxRatio = the median of with partners / alone over them);
 *       in each round, between the two, the node alone again beside two floor followers of its
 *       store file that only copy what it writes (bench/floor-followers.ts: bare-js and
 *       in-sqlite; floorTaxRatioBareJs, floorTaxRatioInSqlite), the baseline of the ratio;
 *       beside it, one replicated entry's cost to serve and to apply, and the bare-SQL floor
 *       of storing its rows and the wire's floor (bare SELECTs, JSON text out, JSON.parse in),
 *       measured in this process on one thread (bench/apply-cost.ts); and where the writer's
 *       event-loop thread spent each round: on a CPU, or runnable but waiting for one;
 *   (c) single-write replication lag inside the site: a write on node 1, its arrival on the
 *       watch streams (GET /v1/watch) of nodes 2 and 3, from the acknowledgement; beside it, the
 *       same delay on node 1's own watch stream (what the stream itself adds; negative when the
 *       event reaches the client before the acknowledgement does);
 *   (d) a 10,000-entry bulk load on node 1 at concurrency 64: time from the last
 *       acknowledgement until nodes 2 and 3 have streamed every entry (bulk10kConvergeMs);
 *   (e) when ../shared/peers is set up (PEERS_HOME, default /tmp/plexus-peers): OpenLDAP
 *       2-provider adds/s and bulk convergence, etcd 3-member puts/s, run by the peers' own
 *       scripts with small counts, as ratios against Plexus; and each peer's own replication
 *       tax: the same adds on one slapd without syncprov, the same puts on a 1-member etcd
 *       (bench/peers/), replicated / alone beside Plexus' replicationTaxRatio.
 * The nodes run the shipped defaults (topology settings, timings). Every load is bounded in
 * count and time; only the processes this run started are stopped; the temporary data is
 * removed at the end and on Ctrl-C. The last line of stdout is one JSON object.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { Pool } from "undici";
import { LocalCluster } from "../src/cli/local-cluster.ts";
import { settingsDefaults } from "../src/core/topology/model.ts";
import { databaseFileName } from "../src/store/data-directory.ts";
import { type ApplyCost, measureApplyCost } from "./apply-cost.ts";
import { startBareHttp } from "./bare-http.ts";
import { FloorFollowers, type FollowerMode, followerModes } from "./floor-followers.ts";
import { etcdClientAvailable, runEtcdAlone } from "./peers/etcd-alone.ts";
import { runLdapAlone } from "./peers/openldap-alone.ts";
import {
  type LoadBounds,
  type LoadResult,
  percentile,
  readLoad,
  userEntry,
  Watch,
  writeLoad,
} from "./server-load.ts";
import {
  type EtcdFigures,
  type LdapAddFigures,
  type LdapFigures,
  type PeerKnobs,
  type PeerRun,
  peersHomeDefault,
  peersMissing,
  runEtcd,
  runLdap,
} from "./server-peers.ts";
import { describeMachine, formatNumber, formatTable, loadAverage, round } from "./support.ts";

const usage = `usage: npm run bench [-- --quick] [--skip-peers | --peers-only] [--notify-delay-ms N] [--page-worker on|off]

  --quick       smaller counts (about a minute without the peers)
  --skip-peers  do not run OpenLDAP and etcd (../shared/peers) even when set up
  --peers-only  only the peers (e), replicated and alone, without Plexus (about 1.5 min;
                no ratio against Plexus)
  --notify-delay-ms N
                the site's notifyDelayMs topology setting (default: the shipped default,
                ${settingsDefaults.notifyDelayMs} ms): the window in which a node's changes after the
                first share one notification to its partners (the first goes at once)
  --page-worker on|off
                the nodes' plexus start --page-worker (default on, the shipped default): off
                builds the pages partners pull on each node's own thread, for comparison
  --help        this text
`;

interface Scale {
  /** Writes per concurrency level, and the time cap of each level. */
  readonly writes: Readonly<Record<number, number>>;
  readonly levelWallMs: number;
  readonly warmupWrites: number;
  /** Interleaved c64 rounds, alone then with partners, for the replication tax ratio. */
  readonly taxRounds: number;
  readonly lagSamples: number;
  readonly bulkEntries: number;
  readonly peers: PeerKnobs;
}

const concurrencies = [1, 16, 64] as const;
const full: Scale = {
  writes: { 1: 1_000, 16: 6_000, 64: 12_000 },
  levelWallMs: 20_000,
  warmupWrites: 1_000,
  taxRounds: 3,
  lagSamples: 200,
  bulkEntries: 10_000,
  peers: { ldapBulk: 10_000, ldapAdds: 2_000, concurrency: 64, etcdPuts: 10_000 },
};
const quick: Scale = {
  writes: { 1: 300, 16: 2_000, 64: 4_000 },
  levelWallMs: 8_000,
  warmupWrites: 500,
  taxRounds: 1,
  lagSamples: 50,
  bulkEntries: 10_000,
  peers: { ldapBulk: 2_000, ldapAdds: 1_000, concurrency: 64, etcdPuts: 3_000 },
};
const site = "bench";
/**
 * Pause between two lag samples, plus up to as much again at random: single writes, not a
 * stream. A partner that applied a write notifies its own partners (the writer included)
 * within notifyDelayMs, and their pulls follow; with the default delay these are over well
 * within this pause on an idle machine, so a sample does not measure the previous one's traffic.
 */
const lagSpacingMs = 100;
/** A sample whose write has not arrived on a partner within this counts as lost. */
const lagTimeoutMs = 5_000;
const bulkConvergeTimeoutMs = 120_000;
const bulkWallMs = 120_000;
const sqliteBaselineCommits = 500;
const sqliteBaselineWallMs = 5_000;
const statusReads = 5_000;
/** Entries of the per-entry serve / apply / floor measurement (bench/apply-cost.ts). */
const applyCostEntries = 10_000;
/** Requests of the bare-HTTP baseline (bench/bare-http.ts), at c64. */
const bareHttpRequests = 20_000;
const siteReadyAttemptsMax = 6;
/** USER_HZ of /proc/PID/stat on Linux. */
const clockTicksPerSec = 100;

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

function loadText(): string {
  return loadAverage().join(" ");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Single-row transactions with synchronous=FULL in WAL mode, as the store opens its file. */
function sqliteCommitsPerSec(directory: string): number {
  const db = new Database(join(directory, "baseline.sqlite"));
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
    const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
    const started = performance.now();
    let commits = 0;
    while (commits < sqliteBaselineCommits && performance.now() - started < sqliteBaselineWallMs) {
      insert.run("x".repeat(200));
      commits++;
    }
    return (commits / (performance.now() - started)) * 1000;
  } finally {
    db.close();
  }
}

/** CPU time (user + system) a process has used, from /proc; null where there is no /proc. */
function cpuMs(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSec;
  } catch {
    return null;
  }
}

function pidsOf(cluster: LocalCluster): number[] {
  return [...cluster.nodes.values()].flatMap((node) =>
    node.process?.pid === undefined ? [] : [node.process.pid],
  );
}

/** A thread's time on a CPU and waiting for one, in ns (Linux schedstat); null where not readable. */
function schedNs(pid: number): { run: number; wait: number } | null {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").split(" ").map(Number);
    return run === undefined || wait === undefined ? null : { run, wait };
  } catch {
    return null;
  }
}

/** The machine's CPU time so far, in USER_HZ ticks: all of it, and the idle part (idle + iowait). */
function machineTicks(): { total: number; idle: number } | null {
  try {
    const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const total = fields.reduce((sum, value) => sum + value, 0);
    return { total, idle: (fields[3] ?? 0) + (fields[4] ?? 0) };
  } catch {
    return null;
  }
}

/**
 * Where the writer's event-loop thread spent a load: on a CPU, waiting in the run queue for
 * one, or neither (blocked: fsync, idle); and how much of the machine's CPU time went idle.
 */
interface Scheduling {
  readonly writerRunShare: number;
  readonly writerWaitShare: number;
  readonly machineIdleShare: number;
}

async function withScheduling<T>(
  writer: number | undefined,
  run: () => Promise<T>,
): Promise<[T, Scheduling | null]> {
  const thread = writer === undefined ? null : schedNs(writer);
  const machine = machineTicks();
  const started = performance.now();
  const result = await run();
  const wallNs = (performance.now() - started) * 1e6;
  const threadAfter = writer === undefined ? null : schedNs(writer);
  const machineAfter = machineTicks();
  if (thread === null || threadAfter === null || machine === null || machineAfter === null)
    return [result, null];
  const ticks = machineAfter.total - machine.total;
  return [
    result,
    {
      writerRunShare: (threadAfter.run - thread.run) / wallNs,
      writerWaitShare: (threadAfter.wait - thread.wait) / wallNs,
      machineIdleShare: ticks > 0 ? (machineAfter.idle - machine.idle) / ticks : 0,
    },
  ];
}

/** CPU milliseconds the processes used while `run` ran (null where not measurable). */
async function withCpu<T>(pids: readonly number[], run: () => Promise<T>): Promise<[T, number | null]> {
  const before = pids.map(cpuMs);
  const result = await run();
  const after = pids.map(cpuMs);
  let total = 0;
  for (const [index, value] of after.entries()) {
    const start = before[index];
    if (value === null || start === null || start === undefined) return [result, null];
    total += value - start;
  }
  return [result, total];
}

function bounds(scale: Scale, concurrency: number): LoadBounds {
  return { concurrency, count: scale.writes[concurrency] ?? 0, wallMsMax: scale.levelWallMs };
}

function loadRow(label: string, result: Level): string[] {
  return [
    label,
    String(result.concurrency),
    formatNumber(Math.round(result.writesPerSec)),
    result.p50Ms.toFixed(1),
    result.p99Ms.toFixed(1),
    `${result.acknowledged}${result.errors > 0 ? ` (${result.errors} errors)` : ""}`,
    result.cpuMsPerWrite === null ? "-" : result.cpuMsPerWrite.toFixed(2),
    result.siteCpuMsPerWrite === null ? "-" : result.siteCpuMsPerWrite.toFixed(2),
    result.clientCpuMsPerRequest.toFixed(2),
  ];
}

function complain(result: LoadResult): void {
  if (result.errors > 0)
    log(`  ! ${result.errors} errors at c${result.concurrency}; first: ${result.firstError}`);
}

/** Writes at each concurrency after a warm-up, on `url`. */
interface Level extends LoadResult {
  /** CPU milliseconds per acknowledged write: the writer node's, and every node's of the site. */
  readonly cpuMsPerWrite: number | null;
  readonly siteCpuMsPerWrite: number | null;
  readonly scheduling: Scheduling | null;
}

/** Writes at each concurrency after a warm-up, on the cluster's node n1. */
async function writeLevels(cluster: LocalCluster, scale: Scale, tag: string): Promise<Map<number, Level>> {
  const url = cluster.node("n1").url;
  await writeLoad(url, `${tag}-warm-`, { concurrency: 16, count: scale.warmupWrites, wallMsMax: 30_000 });
  const results = new Map<number, Level>();
  for (const concurrency of concurrencies)
    results.set(concurrency, await measureLevel(cluster, scale, concurrency, `${tag}-c${concurrency}-`));
  return results;
}

/** One load at `concurrency` on the cluster's node n1, with the CPU it cost. */
async function measureLevel(
  cluster: LocalCluster,
  scale: Scale,
  concurrency: number,
  prefix: string,
): Promise<Level> {
  const url = cluster.node("n1").url;
  const writer = cluster.node("n1").process?.pid;
  const before = writer === undefined ? null : cpuMs(writer);
  const [[result, scheduling], siteCpu] = await withCpu(pidsOf(cluster), () =>
    withScheduling(writer, () => writeLoad(url, prefix, bounds(scale, concurrency))),
  );
  const after = writer === undefined ? null : cpuMs(writer);
  complain(result);
  const perWrite = (ms: number | null): number | null =>
    ms === null || result.acknowledged === 0 ? null : ms / result.acknowledged;
  return {
    ...result,
    cpuMsPerWrite: perWrite(before === null || after === null ? null : after - before),
    siteCpuMsPerWrite: perWrite(siteCpu),
    scheduling,
  };
}

/** One interleaved round: c64 on the node alone, beside two floor followers, then on the site's writer. */
interface TaxRound {
  readonly alone: number;
  readonly withPartners: number;
  readonly ratio: number;
  readonly aloneScheduling: Scheduling | null;
  readonly withPartnersScheduling: Scheduling | null;
  /** The node alone again, with two floor followers of its store file (bench/floor-followers.ts). */
  readonly floors: Readonly<Record<FollowerMode, FloorRound | null>>;
}

interface FloorRound {
  readonly writesPerSec: number;
  /** Over the same round's rate alone. */
  readonly ratio: number;
  /** CPU of both followers per acknowledged write, in µs. */
  readonly followersCpuUsPerWrite: number | null;
  /** From the last acknowledgement until both followers had it all; null if not within the bound. */
  readonly catchUpMs: number | null;
}

/** The followers copy what the load left them within this after it, or the round says so. */
const floorCatchUpTimeoutMs = 10_000;

/**
 * The replication tax ratio from c64 loads alternating between the node alone and the site,
 * each pair seconds apart: other tenants' load on this shared machine changes within minutes,
 * and (a) and (b) run minutes apart (ratios from them ranged 0.30-0.54 within 10 minutes).
 * Between the two, the node alone takes the same load beside two floor followers of each kind.
 */
async function measureTaxRounds(alone: LocalCluster, site: LocalCluster, scale: Scale): Promise<TaxRound[]> {
  const rounds: TaxRound[] = [];
  for (let serial = 1; serial <= scale.taxRounds; serial++) {
    const a = await measureLevel(alone, scale, 64, `tax${serial}-alone-`);
    const floors = {} as Record<FollowerMode, FloorRound | null>;
    for (const mode of followerModes)
      floors[mode] = await measureFloor(alone, scale, mode, `tax${serial}-${mode}-`, a.writesPerSec);
    const b = await measureLevel(site, scale, 64, `tax${serial}-site-`);
    rounds.push({
      alone: a.writesPerSec,
      withPartners: b.writesPerSec,
      ratio: b.writesPerSec / a.writesPerSec,
      aloneScheduling: a.scheduling,
      withPartnersScheduling: b.scheduling,
      floors,
    });
  }
  return rounds;
}

/** c64 on the node alone while two followers of `mode` copy what it writes; null if they failed. */
async function measureFloor(
  alone: LocalCluster,
  scale: Scale,
  mode: FollowerMode,
  prefix: string,
  aloneRate: number,
): Promise<FloorRound | null> {
  const sourcePath = join(alone.node("n1").dataDirectory, databaseFileName);
  let followers: FloorFollowers | undefined;
  try {
    followers = await FloorFollowers.start(sourcePath, mode);
    const [level, followersCpuMs] = await withCpu(followers.pids, () =>
      measureLevel(alone, scale, 64, prefix),
    );
    const catchUpMs = await followers.caughtUp(floorCatchUpTimeoutMs);
    return {
      writesPerSec: level.writesPerSec,
      ratio: level.writesPerSec / aloneRate,
      followersCpuUsPerWrite:
        followersCpuMs === null || level.acknowledged === 0
          ? null
          : (followersCpuMs * 1000) / level.acknowledged,
      catchUpMs,
    };
  } catch (error) {
    log(`  floor followers (${mode}) failed: ${error instanceof Error ? error.message : String(error)}`);
    return null;
  } finally {
    await followers?.stop();
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

async function startSite(count: number, notifyDelayMs: number, pageWorker: boolean): Promise<LocalCluster> {
  const topology = { sites: [{ name: site }], settings: { notifyDelayMs } };
  const cluster = new LocalCluster(topology, {}, { prefix: "plexus-bench-", logLevel: "warn", pageWorker });
  try {
    const first = await cluster.start("n1", site);
    for (let index = 2; index <= count; index++)
      await cluster.start(`n${index}`, site, { join: [first.url] });
    return cluster;
  } catch (error) {
    await cluster.stopAll();
    throw error;
  }
}

interface Lag {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly samples: number;
  readonly lost: number;
  readonly localP50Ms: number;
  readonly localP99Ms: number;
}

/** One write at a time on `writer`; its arrival on every watch, from the acknowledgement. */
async function measureLag(
  writer: string,
  own: Watch,
  partners: readonly Watch[],
  samples: number,
  prefix = "lag-",
): Promise<Lag> {
  const pool = new Pool(writer, { connections: 1 });
  const lags: number[] = [];
  const local: number[] = [];
  let lost = 0;
  try {
    for (let index = 0; index < samples; index++) {
      const entry = userEntry(`${prefix}${index}`);
      const response = await pool.request({
        method: "POST",
        path: "/v1/entries",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(entry),
      });
      await response.body.dump();
      const ackAt = performance.now();
      if (response.statusCode !== 201) throw new Error(`lag write answered ${response.statusCode}`);
      for (const watch of [own, ...partners]) {
        const arrived = await watch.until(() => watch.arrivals.has(entry.dn), lagTimeoutMs);
        const at = watch.arrivals.get(entry.dn);
        if (!arrived || at === undefined) lost++;
        else (watch === own ? local : lags).push(at - ackAt);
      }
      await sleep(lagSpacingMs + Math.random() * lagSpacingMs);
    }
  } finally {
    await pool.close();
  }
  lags.sort((a, b) => a - b);
  local.sort((a, b) => a - b);
  return {
    p50Ms: percentile(lags, 50),
    p99Ms: percentile(lags, 99),
    samples: lags.length,
    lost,
    localP50Ms: percentile(local, 50),
    localP99Ms: percentile(local, 99),
  };
}

/** The site is complete once a write on node 1 reaches both partners (the joiners may still sync). */
async function siteReady(writer: string, own: Watch, partners: readonly Watch[]): Promise<void> {
  for (let attempt = 0; attempt < siteReadyAttemptsMax; attempt++)
    if ((await measureLag(writer, own, partners, 1, `ready-${attempt}-`)).lost === 0) return;
  throw new Error("a write on n1 did not reach n2 and n3");
}

interface Bulk {
  readonly load: LoadResult;
  readonly convergeMs: number;
  readonly converged: boolean;
}

async function measureBulk(writer: string, partners: readonly Watch[], entries: number): Promise<Bulk> {
  const prefix = "uid=bulk-";
  for (const watch of partners) watch.track(prefix);
  const load = await writeLoad(writer, "bulk-", { concurrency: 64, count: entries, wallMsMax: bulkWallMs });
  complain(load);
  let converged = true;
  for (const watch of partners)
    converged =
      (await watch.until(() => watch.tracked >= load.acknowledged, bulkConvergeTimeoutMs)) && converged;
  const last = Math.max(...partners.map((watch) => watch.lastTrackedAt));
  return { load, convergeMs: converged ? Math.max(0, last - load.lastAckAt) : Number.NaN, converged };
}

interface PeerResults {
  readonly skipped: string | null;
  readonly ldap: PeerRun<LdapFigures> | null;
  readonly etcd: PeerRun<EtcdFigures> | null;
  /** The same adds on one provider and puts on one member, for each peer's own replication tax. */
  readonly ldapAlone: PeerRun<LdapAddFigures> | null;
  readonly etcdAlone: PeerRun<EtcdFigures> | null;
}

/** The lines of a peer script's output that its figures are read from, and its load averages. */
function peerLines(output: string): string {
  const wanted = /adds\/s|counted on node2|node2 has|^add conc=|^put conc=|^go-put|loadavg/;
  return output
    .split("\n")
    .filter((line) => wanted.test(line))
    .map((line) => `    ${line}`)
    .join("\n");
}

/**
 * Each peer replicated (its own script), then right after the same load on a single server of
 * it: one pair per peer, minutes from Plexus' rounds, so the machine's other load may differ.
 */
async function runPeers(scale: Scale, skip: boolean): Promise<PeerResults> {
  const none = { ldap: null, etcd: null, ldapAlone: null, etcdAlone: null };
  if (skip) return { skipped: "--skip-peers", ...none };
  const home = process.env.PEERS_HOME ?? peersHomeDefault;
  const missing = peersMissing(home);
  if (missing !== null) return { skipped: missing, ...none };
  log(`\n(e) peers from ${home} (their own scripts, small counts; load ${loadText()})`);
  const ldap = await runLdap(home, scale.peers);
  log(ldap.ok ? `  OpenLDAP:\n${peerLines(ldap.output)}` : `  OpenLDAP failed: ${ldap.reason}`);
  const ldapAlone = await runLdapAlone(home, scale.peers);
  log(
    ldapAlone.ok
      ? `  OpenLDAP, 1 provider without syncprov (load ${loadText()}):\n${peerLines(ldapAlone.output)}`
      : `  OpenLDAP, 1 provider failed: ${ldapAlone.reason}`,
  );
  const etcd = await runEtcd(home, scale.peers);
  log(etcd.ok ? `  etcd:\n${peerLines(etcd.output)}` : `  etcd failed: ${etcd.reason}`);
  // The client the 3-member figure came from, so that only the cluster size differs.
  const client = etcd.ok ? etcd.figures.client : etcdClientAvailable(home);
  const etcdAlone = await runEtcdAlone(home, scale.peers, client);
  log(
    etcdAlone.ok
      ? `  etcd, 1 member (load ${loadText()}):\n${peerLines(etcdAlone.output)}`
      : `  etcd, 1 member failed: ${etcdAlone.reason}`,
  );
  return { skipped: null, ldap, etcd, ldapAlone, etcdAlone };
}

/** --peers-only: part (e) and its JSON fields, without Plexus. */
async function peersOnlyRun(scale: Scale, loadAtStart: string): Promise<number> {
  // process.exit runs the exit hooks that stop the peers' processes and remove their directories.
  const onSignal = (): void => process.exit(130);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const peers = await runPeers(scale, false);
  const json: Record<string, unknown> = {};
  reportPeers(peers, scale.peers.concurrency, json, null);
  logJsonLine(json, loadAtStart);
  return 0;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean" },
      "skip-peers": { type: "boolean" },
      "peers-only": { type: "boolean" },
      "notify-delay-ms": { type: "string" },
      "page-worker": { type: "string" },
      help: { type: "boolean" },
    },
  });
  const notifyDelayMs = Number(values["notify-delay-ms"] ?? settingsDefaults.notifyDelayMs);
  if (!Number.isSafeInteger(notifyDelayMs) || notifyDelayMs < 0) {
    process.stderr.write(`--notify-delay-ms must be a whole number of milliseconds\n${usage}`);
    return 2;
  }
  const pageWorkerFlag = values["page-worker"] ?? "on";
  if (pageWorkerFlag !== "on" && pageWorkerFlag !== "off") {
    process.stderr.write(`--page-worker must be on or off\n${usage}`);
    return 2;
  }
  const pageWorker = pageWorkerFlag === "on";
  if (values.help === true) {
    process.stdout.write(usage);
    return 0;
  }
  const peersOnly = values["peers-only"] === true;
  if (peersOnly && values["skip-peers"] === true) {
    process.stderr.write(`--peers-only and --skip-peers exclude each other\n${usage}`);
    return 2;
  }
  const scale = values.quick === true ? quick : full;
  const machine = describeMachine();
  const loadAtStart = loadText();
  log(`plexus bench (server): ${machine.cpuCount} x ${machine.cpuModel}, node ${machine.node}`);
  log(`load average at start: ${loadAtStart}${values.quick === true ? "  (--quick)" : ""}`);
  if (peersOnly) return peersOnlyRun(scale, loadAtStart);
  log(`page worker: ${pageWorkerFlag}`);

  const scratch = mkdtempSync(join(tmpdir(), "plexus-bench-baseline-"));
  let sqliteRate: number;
  try {
    sqliteRate = sqliteCommitsPerSec(scratch);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  log(`baseline: SQLite single-row commits with synchronous=FULL on this disk: ${Math.round(sqliteRate)}/s`);
  const applyCost = measureApplyCost(applyCostEntries);

  const clusters = new Set<LocalCluster>();
  const stopAll = async (): Promise<void> => {
    for (const cluster of clusters) await cluster.stopAll();
    clusters.clear();
  };
  const onSignal = (): void => {
    void stopAll().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    log(`\n(a) one node alone (load ${loadText()})`);
    const alone = await startSite(1, notifyDelayMs, pageWorker);
    clusters.add(alone);
    const aloneUrl = alone.node("n1").url;
    const status = await readLoad(aloneUrl, "/v1/status", {
      concurrency: 64,
      count: statusReads,
      wallMsMax: 10_000,
    });
    const bare = await startBareHttp();
    let bareHttp: LoadResult;
    try {
      bareHttp = await writeLoad(bare.url, "bare", {
        concurrency: 64,
        count: bareHttpRequests,
        wallMsMax: 10_000,
      });
    } finally {
      bare.stop();
    }
    const single = await writeLevels(alone, scale, "a");

    log(`(b) one node with two intra-site partners (load ${loadText()})`);
    const trio = await startSite(3, notifyDelayMs, pageWorker);
    clusters.add(trio);
    const urls = ["n1", "n2", "n3"].map((name) => trio.node(name).url);
    const url1 = trio.node("n1").url;
    const openWatches = async (): Promise<Watch[]> =>
      Promise.all(urls.map((url, index) => Watch.open(`n${index + 1}`, url)));
    const ready = await openWatches();
    await siteReady(url1, ready[0] as Watch, ready.slice(1));
    // No watch stream is open while (a) and (b) are measured: each one costs its node a read per commit.
    for (const watch of ready) await watch.close();
    const replicated = await writeLevels(trio, scale, "b");
    log(`(b) ${scale.taxRounds} interleaved c64 rounds, alone then with partners (load ${loadText()})`);
    const taxRounds = await measureTaxRounds(alone, trio, scale);
    await alone.stopAll();
    clusters.delete(alone);
    const watches = await openWatches();
    const [own, ...partners] = watches as [Watch, Watch, Watch];
    log(`(c) replication lag, ${scale.lagSamples} single writes (load ${loadText()})`);
    const lag = await measureLag(url1, own, partners, scale.lagSamples);
    log(`(d) bulk load of ${scale.bulkEntries} entries (load ${loadText()})`);
    const bulk = await measureBulk(url1, partners, scale.bulkEntries);
    for (const watch of watches) await watch.close();
    await trio.stopAll();
    clusters.delete(trio);

    const peers = await runPeers(scale, values["skip-peers"] === true);
    report({
      scale,
      notifyDelayMs,
      pageWorker,
      sqliteRate,
      status,
      bareHttp,
      single,
      replicated,
      taxRounds,
      lag,
      bulk,
      peers,
      loadAtStart,
      applyCost,
    });
    return 0;
  } finally {
    await stopAll();
  }
}

interface Figures {
  readonly scale: Scale;
  readonly notifyDelayMs: number;
  readonly pageWorker: boolean;
  readonly sqliteRate: number;
  readonly status: LoadResult;
  readonly bareHttp: LoadResult;
  readonly single: Map<number, Level>;
  readonly replicated: Map<number, Level>;
  readonly taxRounds: readonly TaxRound[];
  readonly lag: Lag;
  readonly bulk: Bulk;
  readonly peers: PeerResults;
  readonly loadAtStart: string;
  readonly applyCost: ApplyCost;
}

function ratio(a: number, b: number): number {
  return round(a / b, 2);
}

/**
 * Why a ratio is what it is on a machine whose cores the writer shares with its partners: the
 * share of each tax round's wall time the writer's event-loop thread spent on a CPU and waiting
 * in the run queue for one (medians over the rounds), and how much CPU time the machine left idle.
 */
function logScheduling(rounds: readonly TaxRound[]): void {
  const share = (pick: (round: TaxRound) => number | undefined): string => {
    const values = rounds.map(pick).filter((value): value is number => value !== undefined);
    return values.length === 0 ? "-" : `${Math.round(median(values) * 100)}%`;
  };
  const alone = (round: TaxRound): Scheduling | undefined => round.aloneScheduling ?? undefined;
  const site = (round: TaxRound): Scheduling | undefined => round.withPartnersScheduling ?? undefined;
  if (rounds.every((round) => alone(round) === undefined || site(round) === undefined)) return;
  log(
    `  the writer's event-loop thread, share of each round's wall time (medians): on a CPU ` +
      `${share((round) => alone(round)?.writerRunShare)} alone, ${share((round) => site(round)?.writerRunShare)} with partners; ` +
      `runnable but waiting for a CPU ${share((round) => alone(round)?.writerWaitShare)} alone, ` +
      `${share((round) => site(round)?.writerWaitShare)} with partners; the machine's CPU time left idle ` +
      `${share((round) => alone(round)?.machineIdleShare)} alone, ${share((round) => site(round)?.machineIdleShare)} with partners`,
  );
}

/**
 * The per-entry costs of bench/apply-cost.ts, and what they add up to: with partners, each
 * write costs the site's cores at least what it costs the writer alone, plus the client, plus
 * per partner a page served and applied. Derived from figures of this run, not measured.
 */
function logApplyCost(figures: Figures, alone: Level | undefined): void {
  const cost = figures.applyCost;
  log(
    `per replicated entry, on one thread of this process (${formatNumber(cost.entries)} entries, ${cost.pages} pages): ` +
      `served ${cost.serveUsPerEntry.toFixed(1)} µs, applied ${cost.applyUsPerEntry.toFixed(1)} µs (synchronous=FULL); ` +
      `the same rows stored by bare SQL statements, no Plexus code: ${cost.floorUsPerEntry.toFixed(1)} µs ` +
      `(the schema's floor; the apply is x${ratio(cost.applyUsPerEntry, cost.floorUsPerEntry)} of it)`,
  );
  const wireFloorUs = cost.readFloorUsPerEntry + cost.encodeFloorUsPerEntry + cost.parseFloorUsPerEntry;
  log(
    `  the wire's floor, no Plexus code: the rows read by bare SELECTs ${cost.readFloorUsPerEntry.toFixed(1)} µs, ` +
      `as JSON text ${cost.encodeFloorUsPerEntry.toFixed(1)} µs, the received page parsed ${cost.parseFloorUsPerEntry.toFixed(1)} µs; ` +
      `with the store's floor, ${(wireFloorUs + cost.floorUsPerEntry).toFixed(1)} µs per entry and partner ` +
      `(Plexus: ${(cost.serveUsPerEntry + cost.applyUsPerEntry).toFixed(1)} µs)`,
  );
  if (alone === undefined || alone.cpuMsPerWrite === null) return;
  const cores = availableParallelism();
  const writerUs = (alone.cpuMsPerWrite + alone.clientCpuMsPerRequest) * 1000;
  const capOf = (perPartnerUs: number): { perWriteUs: number; perSec: number } => {
    const perWriteUs = writerUs + 2 * perPartnerUs;
    return { perWriteUs, perSec: (cores * 1_000_000) / perWriteUs };
  };
  const plexus = capOf(cost.serveUsPerEntry + cost.applyUsPerEntry);
  const floor = capOf(wireFloorUs + cost.floorUsPerEntry);
  log(
    `  derived: a write with 2 partners needs >= ${Math.round(plexus.perWriteUs)} µs of CPU (writer and client as alone at c64, ` +
      `plus 2 x (served + applied)); ${cores} cores cap that at ${formatNumber(Math.round(plexus.perSec))} w/s, ` +
      `x${ratio(plexus.perSec, alone.writesPerSec)} of alone at c64; with both partners at the floors above, ` +
      `${Math.round(floor.perWriteUs)} µs and x${ratio(floor.perSec, alone.writesPerSec)} (upper bounds: no core is ever idle ` +
      "and sharing them slows no thread)",
  );
  // How much of the derived cap the measured rounds reached: the idle cores and the slowdown of
  // shared ones, which no code change removes from the partners' share of these cores.
  const measured = median(figures.taxRounds.map((taxRound) => taxRound.ratio));
  const reached = measured / (plexus.perSec / alone.writesPerSec);
  log(
    `  the measured ratio x${round(measured, 2)} is ${round(reached, 2)} of that cap; the same share of the cap at the floors ` +
      `would be x${round(reached * (floor.perSec / alone.writesPerSec), 2)} (an estimate, not a measurement)`,
  );
}

/** The median over the rounds of one floor figure (null where no round measured it), rounded. */
function floorMedian(
  rounds: readonly TaxRound[],
  mode: FollowerMode,
  pick: (floor: FloorRound) => number | null,
  decimals: number,
): number | null {
  const values = rounds.flatMap((taxRound) => {
    const floor = taxRound.floors[mode];
    const value = floor === null ? null : pick(floor);
    return value === null ? [] : [value];
  });
  return values.length === 0 ? null : round(median(values), decimals);
}

/**
 * The baseline of the replication tax: in the same rounds, the node alone beside two floor
 * followers that only copy what it writes into store files of their own (bench/floor-followers.ts).
 */
function logFloors(rounds: readonly TaxRound[]): void {
  const described: Record<FollowerMode, string> = {
    "bare-js": "bare-js (rows read by bare SELECTs, JSON text out and back in, stored by bare INSERTs)",
    "in-sqlite": "in-sqlite (INSERT … SELECT from the node's file: no row enters JavaScript, no network)",
  };
  log(
    "  baseline, the node alone beside two floor followers of its store file that only copy what it writes " +
      "(no HTTP, authentication, validation, conflicts or UTD; bench/floor-followers.ts), same rounds:",
  );
  for (const mode of followerModes) {
    const text = rounds
      .map((taxRound) => {
        const floor = taxRound.floors[mode];
        if (floor === null) return "failed";
        const cpu =
          floor.followersCpuUsPerWrite === null
            ? ""
            : `, followers ${Math.round(floor.followersCpuUsPerWrite)} µs/w`;
        const caught = floor.catchUpMs === null ? ", NOT caught up" : "";
        return `${Math.round(floor.writesPerSec)} (x${round(floor.ratio, 2)}${cpu}${caught})`;
      })
      .join(", ");
    const ratioMedian = floorMedian(rounds, mode, (floor) => floor.ratio, 2);
    log(`    ${described[mode]}: ${text}; median x${ratioMedian ?? "-"}`);
  }
}

/** [alone, with partners] of one scheduling share, rounded to hundredths; null where not measured. */
function schedulingShares(
  taxRound: TaxRound,
  pick: (scheduling: Scheduling) => number,
): [number, number] | null {
  const { aloneScheduling, withPartnersScheduling } = taxRound;
  if (aloneScheduling === null || withPartnersScheduling === null) return null;
  return [round(pick(aloneScheduling), 2), round(pick(withPartnersScheduling), 2)];
}

function report(figures: Figures): void {
  const { single, replicated, lag, bulk, peers } = figures;
  const rate = (results: Map<number, Level>, level: number): number => results.get(level)?.writesPerSec ?? 0;
  log("\nwrites (POST /v1/entries, write concern local, synchronous=FULL)");
  const rows: string[][] = [];
  for (const level of concurrencies) {
    const alone = single.get(level);
    const withPartners = replicated.get(level);
    if (alone !== undefined) rows.push(loadRow("alone", alone));
    if (withPartners !== undefined)
      rows.push([
        ...loadRow("2 partners", withPartners),
        `x${ratio(withPartners.writesPerSec, alone?.writesPerSec ?? Number.NaN)}`,
      ]);
  }
  log(
    "cpu ms/w: CPU time of the writing node per acknowledged write; site cpu ms/w: of every node of the site; " +
      "client: of the load generator (this process), which shares the same cores",
  );
  log(
    formatTable(
      [
        "node",
        "conc",
        "writes/s",
        "p50 ms",
        "p99 ms",
        "acked",
        "cpu ms/w",
        "site cpu ms/w",
        "client",
        "vs alone",
      ],
      rows,
    ),
  );
  log(
    `baselines: SQLite FULL single-row commits ${Math.round(figures.sqliteRate)}/s (c1 ceiling without group commit: ` +
      `c1 is x${ratio(rate(single, 1), figures.sqliteRate)} of it); GET /v1/status at c64 ` +
      `${Math.round(figures.status.writesPerSec)}/s (a read of the node's state); the same POST /v1/entries at c64 ` +
      `against a bare fastify server that only parses it (bench/bare-http.ts) ${Math.round(figures.bareHttp.writesPerSec)}/s ` +
      `(HTTP and JSON alone: c64 writes are x${ratio(rate(single, 64), figures.bareHttp.writesPerSec)} of it)`,
  );
  const rounds = figures.taxRounds
    .map(
      (taxRound) =>
        `${Math.round(taxRound.alone)} / ${Math.round(taxRound.withPartners)} (x${round(taxRound.ratio, 2)})`,
    )
    .join(", ");
  log(
    `replication tax, c64 alone then with partners, interleaved: ${rounds}; ` +
      `replicationTaxRatio (median) x${round(median(figures.taxRounds.map((taxRound) => taxRound.ratio)), 2)}`,
  );
  logScheduling(figures.taxRounds);
  logFloors(figures.taxRounds);
  logApplyCost(figures, single.get(64));
  log(
    `\nreplication lag inside the site (ack on n1 -> event on n2/n3's watch): p50 ${lag.p50Ms.toFixed(1)} ms, ` +
      `p99 ${lag.p99Ms.toFixed(1)} ms over ${lag.samples} arrivals${lag.lost > 0 ? `, ${lag.lost} lost` : ""}`,
  );
  log(
    `  baseline: n1's own watch (event minus ack) p50 ${lag.localP50Ms.toFixed(1)} ms, p99 ${lag.localP99Ms.toFixed(1)} ms; ` +
      `notify window ${figures.notifyDelayMs} ms (a write after a quiet window is announced at once)`,
  );
  log(
    `bulk: ${bulk.load.acknowledged} entries at c64 in ${(bulk.load.wallMs / 1000).toFixed(2)} s ` +
      `(${Math.round(bulk.load.writesPerSec)}/s); on n2 and n3 ${bulk.converged ? `${Math.round(bulk.convergeMs)} ms` : "NOT all"} after the last ack`,
  );
  const c64 = rate(single, 64);
  const replicationTaxRatio = round(median(figures.taxRounds.map((taxRound) => taxRound.ratio)), 2);
  const json: Record<string, unknown> = {
    writesPerSecC1: Math.round(rate(single, 1)),
    writesPerSecC16: Math.round(rate(single, 16)),
    writesPerSecC64: Math.round(c64),
    p99MsC64: round(single.get(64)?.p99Ms ?? Number.NaN, 1),
    cpuMsPerWriteC64: round(single.get(64)?.cpuMsPerWrite ?? Number.NaN, 3),
    siteCpuMsPerWriteC64WithPartners: round(replicated.get(64)?.siteCpuMsPerWrite ?? Number.NaN, 3),
    clientCpuMsPerWriteC64: round(single.get(64)?.clientCpuMsPerRequest ?? Number.NaN, 3),
    writesPerSecC64WithPartners: Math.round(rate(replicated, 64)),
    replicationTaxRatio,
    replicationTaxRounds: figures.taxRounds.map((taxRound) => ({
      alone: Math.round(taxRound.alone),
      withPartners: Math.round(taxRound.withPartners),
      ratio: round(taxRound.ratio, 2),
      writerOnCpu: schedulingShares(taxRound, (scheduling) => scheduling.writerRunShare),
      writerWaitingForCpu: schedulingShares(taxRound, (scheduling) => scheduling.writerWaitShare),
      machineIdle: schedulingShares(taxRound, (scheduling) => scheduling.machineIdleShare),
      floors: Object.fromEntries(
        followerModes.map((mode) => {
          const floor = taxRound.floors[mode];
          return [
            mode,
            floor === null
              ? null
              : {
                  writesPerSec: Math.round(floor.writesPerSec),
                  ratio: round(floor.ratio, 2),
                  followersCpuUsPerWrite:
                    floor.followersCpuUsPerWrite === null ? null : Math.round(floor.followersCpuUsPerWrite),
                  catchUpMs: floor.catchUpMs === null ? null : Math.round(floor.catchUpMs),
                },
          ];
        }),
      ),
    })),
    replicationTaxRatioLevels: ratio(rate(replicated, 64), c64),
    floorTaxRatioBareJs: floorMedian(figures.taxRounds, "bare-js", (floor) => floor.ratio, 2),
    floorTaxRatioInSqlite: floorMedian(figures.taxRounds, "in-sqlite", (floor) => floor.ratio, 2),
    floorFollowersCpuUsPerWriteBareJs: floorMedian(
      figures.taxRounds,
      "bare-js",
      (floor) => floor.followersCpuUsPerWrite,
      0,
    ),
    floorFollowersCpuUsPerWriteInSqlite: floorMedian(
      figures.taxRounds,
      "in-sqlite",
      (floor) => floor.followersCpuUsPerWrite,
      0,
    ),
    lagP50Ms: round(lag.p50Ms, 1),
    lagP99Ms: round(lag.p99Ms, 1),
    notifyDelayMs: figures.notifyDelayMs,
    pageWorker: figures.pageWorker,
    bulk10kConvergeMs: Math.round(bulk.convergeMs),
    bulkEntries: bulk.load.acknowledged,
    sqliteFullCommitsPerSec: Math.round(figures.sqliteRate),
    statusReadsPerSecC64: Math.round(figures.status.writesPerSec),
    bareHttpPerSecC64: Math.round(figures.bareHttp.writesPerSec),
    serveUsPerEntry: round(figures.applyCost.serveUsPerEntry, 1),
    applyUsPerEntry: round(figures.applyCost.applyUsPerEntry, 1),
    applyFloorUsPerEntry: round(figures.applyCost.floorUsPerEntry, 1),
    wireFloorUsPerEntry: round(
      figures.applyCost.readFloorUsPerEntry +
        figures.applyCost.encodeFloorUsPerEntry +
        figures.applyCost.parseFloorUsPerEntry,
      1,
    ),
  };
  reportPeers(peers, figures.scale.peers.concurrency, json, {
    writesPerSecC64: c64,
    bulkConvergeMs: bulk.convergeMs,
    replicationTaxRatio,
  });
  logJsonLine(json, figures.loadAtStart);
}

/** The load averages, then the JSON object as the last line of stdout. */
function logJsonLine(json: Record<string, unknown>, loadAtStart: string): void {
  const loadAtEnd = loadText();
  log(`load average at end: ${loadAtEnd}`);
  json.loadAverageStart = loadAtStart;
  json.loadAverageEnd = loadAtEnd;
  log(JSON.stringify(json));
}

/** Plexus' figures of the same run that the peers' are set beside; null with --peers-only. */
interface PlexusBeside {
  readonly writesPerSecC64: number;
  readonly bulkConvergeMs: number;
  readonly replicationTaxRatio: number;
}

/** The peers' figures, as ratios against Plexus' when it ran, and their fields of the JSON line. */
function reportPeers(
  peers: PeerResults,
  concurrency: number,
  json: Record<string, unknown>,
  plexus: PlexusBeside | null,
): void {
  log("");
  if (peers.skipped !== null) log(`peers skipped: ${peers.skipped}`);
  if (peers.ldap !== null) {
    if (peers.ldap.ok) {
      const ldap = peers.ldap.figures;
      const versusWrites =
        plexus === null ? "" : ` (Plexus x${ratio(plexus.writesPerSecC64, ldap.addsPerSec)})`;
      const versusConverge =
        plexus === null
          ? ""
          : ` (Plexus converges x${ratio(ldap.bulkConvergeMs, plexus.bulkConvergeMs)} faster)`;
      log(
        `OpenLDAP 2-provider: ${ldap.addsPerSec} adds/s at c${concurrency}${versusWrites}; ` +
          `serial bulk of ${ldap.bulkEntries}: ${ldap.bulkAddsPerSec} adds/s, on node 2 ${Math.round(ldap.bulkConvergeMs)} ms ` +
          `after the last add${versusConverge}`,
      );
      Object.assign(json, {
        ldapAddsPerSecC64: ldap.addsPerSec,
        ldapAddsConvergeMs: Math.round(ldap.addsConvergeMs),
        ldapBulkAddsPerSec: ldap.bulkAddsPerSec,
        ldapBulkConvergeMs: Math.round(ldap.bulkConvergeMs),
        ldapBulkEntries: ldap.bulkEntries,
      });
      if (plexus !== null)
        Object.assign(json, {
          writesVsLdap: ratio(plexus.writesPerSecC64, ldap.addsPerSec),
          convergeVsLdap: ratio(ldap.bulkConvergeMs, plexus.bulkConvergeMs),
        });
    } else log(`OpenLDAP not measured: ${peers.ldap.reason}`);
  }
  if (peers.etcd !== null) {
    if (peers.etcd.ok) {
      const etcd = peers.etcd.figures;
      log(
        `etcd 3 members: ${etcd.putsPerSec} puts/s at c${concurrency} (${etcd.client} client, p99 ${etcd.putsP99Ms} ms` +
          `${plexus === null ? "" : `; Plexus x${ratio(plexus.writesPerSecC64, etcd.putsPerSec)}`})`,
      );
      Object.assign(json, { etcdPutsPerSecC64: etcd.putsPerSec, etcdClient: etcd.client });
      if (plexus !== null) json.writesVsEtcd = ratio(plexus.writesPerSecC64, etcd.putsPerSec);
    } else log(`etcd not measured: ${peers.etcd.reason}`);
  }
  reportPeerTax(peers, concurrency, json, plexus);
}

/** A measured rate, or "-". */
function shown(rate: number | null): string {
  return rate === null ? "-" : String(rate);
}

interface TaxLine {
  /** What is counted, and what runs alone and replicated, as printed. */
  readonly what: string;
  readonly aloneName: string;
  readonly replicatedName: string;
  readonly alone: number | null;
  readonly replicated: number | null;
  /** Printed after the ratio: what the replicated figure leaves out. */
  readonly note: string;
}

/** One peer's tax line: its rate on a single server, replicated, and their ratio when both exist. */
function logPeerTax(line: TaxLine, aloneFailed: string | null): number | null {
  const tax = line.alone === null || line.replicated === null ? null : ratio(line.replicated, line.alone);
  log(
    `  ${line.what}: ${line.aloneName} ${shown(line.alone)}, ${line.replicatedName} ${shown(line.replicated)}; ` +
      `replicated / alone x${tax ?? "-"}${line.note}`,
  );
  if (aloneFailed !== null) log(`    alone not measured: ${aloneFailed}`);
  return tax;
}

function ldapTaxLine({ ldap, ldapAlone }: PeerResults): TaxLine {
  return {
    what: "OpenLDAP adds/s",
    aloneName: "1 provider without syncprov",
    replicatedName: "node 1 of 2 providers",
    alone: ldapAlone?.ok === true ? ldapAlone.figures.addsPerSec : null,
    replicated: ldap?.ok === true ? ldap.figures.addsPerSec : null,
    // Node 1 acknowledges an add before node 2 has it, so node 2's share of the work may fall
    // after the measured window: how long after, so that the ratio is not read as that work's cost.
    note:
      ldap?.ok === true
        ? ` (node 2 held every add ${Math.round(ldap.figures.addsConvergeMs)} ms after the last one)`
        : "",
  };
}

/** The etcd client both runs used (the 1-member run takes the 3-member run's), or null. */
function etcdClientOf({ etcd, etcdAlone }: PeerResults): EtcdFigures["client"] | null {
  if (etcdAlone?.ok === true) return etcdAlone.figures.client;
  return etcd?.ok === true ? etcd.figures.client : null;
}

function etcdTaxLine(peers: PeerResults): TaxLine {
  const { etcd, etcdAlone } = peers;
  return {
    what: `etcd puts/s (${etcdClientOf(peers) ?? "no"} client)`,
    aloneName: "1 member",
    replicatedName: "3 members",
    alone: etcdAlone?.ok === true ? etcdAlone.figures.putsPerSec : null,
    replicated: etcd?.ok === true ? etcd.figures.putsPerSec : null,
    // Unlike the OpenLDAP adds, the replication is inside this figure: etcd answers a put once a
    // majority of the members has it in its log.
    note: " (each put on 2 of the 3 members before its answer)",
  };
}

/**
 * Each peer's own replication tax in this run: its rate replicated (the scripts' figures above)
 * over the same load on a single server of it (bench/peers/), beside Plexus' replicationTaxRatio.
 */
function reportPeerTax(
  peers: PeerResults,
  concurrency: number,
  json: Record<string, unknown>,
  plexus: PlexusBeside | null,
): void {
  const { ldapAlone, etcdAlone } = peers;
  if (ldapAlone === null && etcdAlone === null) return;
  const beside =
    plexus === null
      ? "Plexus not run: --peers-only"
      : `Plexus' replicationTaxRatio x${plexus.replicationTaxRatio}`;
  log(`replication tax at c${concurrency}, replicated / alone, in this run (${beside}):`);
  const ldapLine = ldapTaxLine(peers);
  const openldapTaxRatio = logPeerTax(ldapLine, ldapAlone?.ok === false ? ldapAlone.reason : null);
  const etcdLine = etcdTaxLine(peers);
  const etcdTaxRatio = logPeerTax(etcdLine, etcdAlone?.ok === false ? etcdAlone.reason : null);
  const fields = {
    ldapAddsPerSecC64Alone: ldapLine.alone,
    openldapTaxRatio,
    etcdPutsPerSecC64Alone: etcdLine.alone,
    etcdTaxRatio,
    etcdClient: etcdClientOf(peers),
  };
  // As for the other peer fields, a figure not measured is left out rather than null.
  for (const [key, value] of Object.entries(fields)) if (value !== null) json[key] = value;
}

process.exitCode = await main();
