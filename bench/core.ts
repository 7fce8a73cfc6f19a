/**
 * `npm run bench:core [-- --quick | --sizes 100000,1000000] [--seed 1]`
 *
 * Measures the replication core (class Replica) on file-backed SQLite stores in a fresh temp
 * directory, removed at the end and on Ctrl-C. For each size N it loads N user entries under
 * 100 `ou=` containers (batched adds, 1000 per transaction), then measures originating writes,
 * DN lookups, getChanges pages, a full pull into an empty second replica, the floor under the
 * batched writes (the same modifies as bare SQL statements, bench/sql-floor.ts), and the RSS of
 * a separate process that holds the store open. Every phase is bounded by a step count and a
 * wall-time cap. Rates are operations per second of time spent inside the measured calls;
 * batched writes and applied changes are also given per second of this process's CPU time,
 * which other processes on a shared machine hardly move.
 *
 * The last line of stdout is one JSON object with every figure of this run.
 * With `--rss-probe <path> <entries> <seed>` this file is the child that measures RSS.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { assert } from "../src/core/assert.ts";
import { type InvocationId, type Millis, nodeId } from "../src/core/ids.ts";
import type { Clock } from "../src/core/ports.ts";
import { Replica, type ReplicaPorts } from "../src/core/replica/replica.ts";
import {
  type ChangeRequest,
  initialWatermark,
  pageBytesMaxDefault,
  pageEntriesMaxDefault,
  type Watermark,
} from "../src/core/replication/page.ts";
import { unwrap } from "../src/core/result.ts";
import { SeededRandom } from "../src/sim/ports.ts";
import { SqliteStore } from "../src/store/sqlite-store.ts";
import { type FloorWorkload, measureModifyFloor } from "./sql-floor.ts";
import {
  type Bounds,
  describeMachine,
  formatNumber,
  formatTable,
  loadAverage,
  type Machine,
  type Measured,
  makeScratchDir,
  ratePerSec,
  round,
  runBounded,
} from "./support.ts";

// ---------------------------------------------------------------------------------------------
// workload shape and limits

const partitionDn = "dc=example,dc=com";
/** Users are spread over this many `ou=` containers: 10,000 children each at a million. */
const containersCount = 100;
const loadEntriesPerWrite = 1000;
const batchedWritesPerTransaction = 100;
const rssProbeLookups = 10_000;
const lookupWarmupCount = 2_000;
const sizesDefault: readonly number[] = [100_000, 1_000_000];
const sizesQuick: readonly number[] = [10_000, 100_000];
const sizeMin = 1_000;
const sizeMax = 5_000_000;

const loadWallMsMax = 30 * 60_000;
const pullWallMsMax = 15 * 60_000;
const rssProbeWallMsMax = 5 * 60_000;
const lookupBounds: Bounds = { stepsMax: 500, wallMsMax: 15_000 }; // steps of 100 lookups
const pageBounds: Bounds = { stepsMax: 400, wallMsMax: 20_000 };
const singleWriteBounds: Bounds = { stepsMax: 20_000, wallMsMax: 15_000 };
const singleWriteFullBounds: Bounds = { stepsMax: 3_000, wallMsMax: 15_000 };
const batchedWriteBounds: Bounds = { stepsMax: 300, wallMsMax: 20_000 };
/** 20,000 modifies (200 transactions of 100) made on the source, then pulled. */
const replicatedModifiesBounds: Bounds = { stepsMax: 200, wallMsMax: 30_000 };
const lookupsPerStep = 100;

const targets = {
  writesPerSecBatchedMin: 20_000,
  appliedChangesPerSecMin: 50_000,
  /** "Flat": lookups/s at the largest size are at least this share of those at the smallest. */
  lookupsFlatRatioMin: 0.8,
  rssMbAt1MMax: 300,
} as const;

const systemClock: Clock = { now: () => Date.now() as Millis };

function containerRdn(container: number): string {
  return `ou=people-${String(container).padStart(2, "0")}`;
}

function containerDn(container: number): string {
  return `${containerRdn(container)},${partitionDn}`;
}

function userRdn(index: number): string {
  return `cn=user${index}`;
}

/** User `index`, e.g. `cn=user123,ou=people-23,dc=example,dc=com`: two levels below the partition root. */
function userDn(index: number): string {
  return `${userRdn(index)},${containerDn(index % containersCount)}`;
}

/** What the SQL floor needs to name the same users (bench/sql-floor.ts). */
const floorWorkload: FloorWorkload = {
  partitionDn,
  containerRdn: (index) => containerRdn(index % containersCount),
  userRdn,
  writesPerTransaction: batchedWritesPerTransaction,
};

function userAttributes(index: number): Record<string, readonly string[]> {
  return {
    objectClass: ["top", "person", "organizationalPerson", "inetOrgPerson"],
    cn: [`user${index}`],
    sn: [`Surname${index % 5000}`],
    givenName: [`Given${index % 1000}`],
    uid: [`user${index}`],
    mail: [`user${index}@example.com`],
    telephoneNumber: [`+1 555 ${String(index % 10_000_000).padStart(7, "0")}`],
    description: [`benchmark user ${index}`],
  };
}

// ---------------------------------------------------------------------------------------------
// figures

interface SizeFigures {
  readonly size: number;
  readonly entriesLoaded: number;
  readonly loadAddsPerSec: number;
  readonly writesPerSecSingle: number;
  readonly writesPerSecSingleFull: number;
  readonly writesPerSecBatched: number;
  /** The same writes per second of this process's CPU time. */
  readonly writesPerSecBatchedCpu: number;
  /** The same writes as bare SQL statements, no Plexus code (bench/sql-floor.ts): the floor. */
  readonly writesPerSecBatchedSqlFloor: number;
  /** Replicated attribute and value changes (items) applied per second of applyChanges. */
  readonly appliedChangesPerSec: number;
  /** The same changes per second of this process's CPU time inside applyChanges. */
  readonly appliedChangesPerSecCpu: number;
  /** Replicated entries applied per second of applyChanges, in the initial pull. */
  readonly appliedEntriesPerSec: number;
  /** Steady-state replication: single-attribute modifies made on the source, applied here. */
  readonly appliedModifiesPerSec: number;
  readonly pullChangesPerSec: number;
  readonly pullPages: number;
  readonly entriesApplied: number;
  readonly getChangesPagesPerSec: number;
  readonly lookupsPerSec: number;
  readonly rssMb: number;
  readonly rssBaselineMb: number;
  readonly storeMb: number;
  /** Wall time of each phase, in seconds: where the run's time went. */
  readonly phaseSeconds: Readonly<Record<string, number>>;
  /** Phases that hit their wall-time cap (their rates cover what was done). */
  readonly capped: readonly string[];
}

interface Options {
  readonly sizes: readonly number[];
  readonly seed: number;
  readonly quick: boolean;
}

// ---------------------------------------------------------------------------------------------
// command line

function parseOptions(args: readonly string[]): Options {
  let sizes = sizesDefault;
  let seed = 1;
  let quick = false;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index];
    if (arg === "--quick") {
      quick = true;
      sizes = sizesQuick;
    } else if (arg === "--sizes") {
      sizes = parseSizes(args[++index]);
    } else if (arg === "--seed") {
      seed = parseInteger(args[++index], "--seed");
    } else {
      throw new Error(`unknown argument ${arg}; use --quick, --sizes 100000,1000000 or --seed N`);
    }
  }
  return { sizes, seed, quick };
}

function parseSizes(text: string | undefined): number[] {
  if (text === undefined) throw new Error("--sizes needs a list, e.g. --sizes 100000,1000000");
  const sizes = text.split(",").map((part) => parseInteger(part.replaceAll("_", ""), "--sizes"));
  for (const size of sizes) {
    if (size < sizeMin || size > sizeMax) throw new Error(`a size must be ${sizeMin}..${sizeMax}: ${size}`);
  }
  return [...new Set(sizes)].sort((a, b) => a - b);
}

function parseInteger(text: string | undefined, flag: string): number {
  const value = Number(text);
  if (text === undefined || !Number.isSafeInteger(value)) throw new Error(`${flag} needs an integer`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// stores

interface OpenReplica {
  readonly replica: Replica;
  readonly store: SqliteStore;
  readonly path: string;
  readonly ports: ReplicaPorts;
}

function createReplica(path: string, name: string, seed: number): OpenReplica {
  const store = SqliteStore.open({ path, synchronous: "normal" });
  const ports: ReplicaPorts = { clock: systemClock, random: new SeededRandom(seed) };
  const replica = Replica.create(store, ports, nodeId(name));
  checkSettings(store, "normal");
  return { replica, store, path, ports };
}

/** Reopens a replica's file with another `synchronous` setting; the old handle is closed. */
function reopenReplica(open: OpenReplica, synchronous: "full" | "normal"): OpenReplica {
  open.replica.close();
  const store = SqliteStore.open({ path: open.path, synchronous });
  checkSettings(store, synchronous);
  return { ...open, store, replica: Replica.open(store, open.ports) };
}

function checkSettings(store: SqliteStore, synchronous: "full" | "normal"): void {
  const settings = store.connectionSettings();
  assert(settings.journalMode === "wal", `expected WAL, got ${settings.journalMode}`);
  assert(settings.synchronous === synchronous, `expected ${synchronous}, got ${settings.synchronous}`);
}

function fileMb(path: string): number {
  let bytes = 0;
  for (const suffix of ["", "-wal", "-shm"]) {
    if (existsSync(path + suffix)) bytes += statSync(path + suffix).size;
  }
  return bytes / (1024 * 1024);
}

function progress(size: number, message: string): void {
  process.stderr.write(`[${formatNumber(size)}] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// phases

/** Creates the partition and the containers, then adds `size` users (fewer if the wall-time cap hits). */
async function loadEntries(replica: Replica, size: number): Promise<Measured> {
  unwrap(replica.createPartition(partitionDn));
  const containers = Array.from({ length: containersCount }, (_, container) => ({
    op: "add" as const,
    dn: containerDn(container),
    attributes: { objectClass: ["top", "organizationalUnit"] },
  }));
  for (const result of replica.write(containers)) unwrap(result);
  const batches = Math.ceil(size / loadEntriesPerWrite);
  let reported = performance.now();
  const measured = await runBounded({ stepsMax: batches, wallMsMax: loadWallMsMax }, (batch) => {
    const first = batch * loadEntriesPerWrite;
    const count = Math.min(loadEntriesPerWrite, size - first);
    const requests = Array.from({ length: count }, (_, offset) => ({
      op: "add" as const,
      dn: userDn(first + offset),
      attributes: userAttributes(first + offset),
    }));
    for (const result of replica.write(requests)) unwrap(result);
    if (performance.now() - reported > 10_000) {
      reported = performance.now();
      progress(size, `  loaded ${formatNumber(first + count)}`);
    }
    return count;
  });
  progress(size, `  ${formatNumber(ratePerSec(measured.operations, measured.busyMs))} adds/s`);
  return measured;
}

async function measureLookups(replica: Replica, loaded: number, picker: SeededRandom): Promise<Measured> {
  const lookup = (): void => {
    const index = picker.int(0, loaded - 1);
    const view = unwrap(replica.get(userDn(index)));
    assert(view.attributes.uid?.[0] === `user${index}`, `lookup of user${index} found another entry`);
  };
  for (let warmup = 0; warmup < lookupWarmupCount; warmup++) lookup();
  return runBounded(lookupBounds, () => {
    for (let count = 0; count < lookupsPerStep; count++) lookup();
    return lookupsPerStep;
  });
}

/** Pages through the source from USN zero for a destination that holds nothing, wrapping around. */
const readerInvocation = "00000000000000000000000000000001" as InvocationId;

async function measureGetChangesPages(source: Replica): Promise<Measured> {
  const destination = nodeId("bench-reader");
  let from: Watermark = initialWatermark;
  return runBounded(pageBounds, () => {
    const request: ChangeRequest = {
      destination,
      destinationInvocation: readerInvocation,
      from,
      utd: {},
      purgeHorizon: {},
      limits: { entriesMax: pageEntriesMaxDefault, bytesMax: pageBytesMaxDefault },
    };
    const page = unwrap(source.getChanges(request));
    assert(page.entries.length > 0 || !page.more, "a page with more to come holds entries");
    from = page.more
      ? { invocation: page.sourceInvocation, objectUsn: page.highUsn, propertyUsn: page.from.propertyUsn }
      : initialWatermark;
    return 1;
  });
}

function modifyRequest(index: number, serial: number) {
  return {
    op: "modify" as const,
    dn: userDn(index),
    changes: [{ operation: "replace" as const, attribute: "description", values: [`bench write ${serial}`] }],
  };
}

async function measureSingleWrites(
  replica: Replica,
  loaded: number,
  picker: SeededRandom,
  bounds: Bounds,
): Promise<Measured> {
  return runBounded(bounds, (serial) => {
    const outcome = unwrap(replica.writeOne(modifyRequest(picker.int(0, loaded - 1), serial)));
    assert(outcome.entries === 1, "a modify that changes a value writes one entry");
    return 1;
  });
}

/**
 * CPU time (user + system) of this process, in milliseconds. Other processes on a shared machine
 * lower the wall-time rates but hardly this one's CPU time, so rates per CPU second are printed
 * beside the wall-time rates (the targets are judged on wall time).
 */
function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

async function measureBatchedWrites(
  replica: Replica,
  loaded: number,
  picker: SeededRandom,
  bounds: Bounds = batchedWriteBounds,
): Promise<Measured & { readonly cpuMs: number }> {
  let spentCpuMs = 0;
  const measured = await runBounded(bounds, (batch) => {
    const requests = Array.from({ length: batchedWritesPerTransaction }, (_, offset) =>
      modifyRequest(picker.int(0, loaded - 1), batch * batchedWritesPerTransaction + offset),
    );
    const before = cpuMs();
    for (const result of replica.write(requests)) unwrap(result);
    spentCpuMs += cpuMs() - before;
    return batchedWritesPerTransaction;
  });
  return { ...measured, cpuMs: spentCpuMs };
}

interface PullFigures {
  readonly measured: Measured;
  readonly applyMs: number;
  /** CPU time of this process inside applyChanges. */
  readonly applyCpuMs: number;
  readonly entriesApplied: number;
  readonly itemsApplied: number;
  readonly capped: boolean;
}

/** One whole pull cycle with the default page limits, timing applyChanges on its own. */
async function measurePull(destination: Replica, source: Replica): Promise<PullFigures> {
  let applyMs = 0;
  let applyCpuMs = 0;
  let entriesApplied = 0;
  let itemsApplied = 0;
  let complete = false;
  const pagesMax = Math.ceil(source.usn / pageEntriesMaxDefault) + 10;
  const measured = await runBounded({ stepsMax: pagesMax, wallMsMax: pullWallMsMax }, () => {
    if (complete) return "done";
    const page = unwrap(source.getChanges(destination.changeRequest(source.nodeId)));
    const before = performance.now();
    const cpuBefore = cpuMs();
    const outcome = unwrap(destination.applyChanges(page));
    applyMs += performance.now() - before;
    applyCpuMs += cpuMs() - cpuBefore;
    entriesApplied += outcome.entriesChanged;
    itemsApplied += outcome.itemsApplied;
    complete = outcome.cycleComplete;
    return 1;
  });
  if (complete) {
    const expected = source.counts().entries;
    const got = destination.counts().entries;
    assert(got === expected, `after the pull the destination holds ${got} entries, the source ${expected}`);
  }
  return { measured, applyMs, applyCpuMs, entriesApplied, itemsApplied, capped: measured.capped };
}

// ---------------------------------------------------------------------------------------------
// RSS probe (a child process, so that the figure holds nothing of the benchmark's own)

interface RssProbe {
  readonly rssBaselineMb: number;
  readonly rssMb: number;
  readonly maxRssMb: number;
  readonly heapUsedMb: number;
}

const megabyte = 1024 * 1024;

function rssProbeMain(path: string, entries: number, seed: number): void {
  const rssBaselineMb = process.memoryUsage().rss / megabyte;
  const store = SqliteStore.open({ path, synchronous: "normal" });
  const replica = Replica.open(store, { clock: systemClock, random: new SeededRandom(seed) });
  const picker = new SeededRandom(seed);
  for (let count = 0; count < rssProbeLookups; count++) {
    const index = picker.int(0, entries - 1);
    assert(unwrap(replica.get(userDn(index))).attributes.uid?.[0] === `user${index}`, "wrong entry");
  }
  const memory = process.memoryUsage();
  const probe: RssProbe = {
    rssBaselineMb,
    rssMb: memory.rss / megabyte,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    heapUsedMb: memory.heapUsed / megabyte,
  };
  replica.close();
  process.stdout.write(`${JSON.stringify(probe)}\n`);
}

async function probeRss(path: string, entries: number, seed: number): Promise<RssProbe> {
  const script = fileURLToPath(import.meta.url);
  const root = fileURLToPath(new URL("..", import.meta.url));
  const args = ["--import", "tsx", script, "--rss-probe", path, String(entries), String(seed)];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  let output = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    output += chunk;
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), rssProbeWallMsMax);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", resolve);
  }).finally(() => clearTimeout(timer));
  const line = output.trim().split("\n").at(-1) ?? "";
  if (code !== 0) throw new Error(`the RSS probe exited with ${code}: ${line}`);
  return JSON.parse(line) as RssProbe;
}

/** A failed probe costs its figures (NaN, null in the JSON), not the figures of the whole run. */
async function probeRssOrNothing(path: string, entries: number, seed: number): Promise<RssProbe> {
  try {
    return await probeRss(path, entries, seed);
  } catch (error) {
    process.stderr.write(`the RSS probe failed: ${error instanceof Error ? error.message : String(error)}\n`);
    return { rssBaselineMb: Number.NaN, rssMb: Number.NaN, maxRssMb: Number.NaN, heapUsedMb: Number.NaN };
  }
}

// ---------------------------------------------------------------------------------------------
// one size

/** Runs the phases of one size in order, recording each one's wall time and whether it was capped. */
class PhaseLog {
  readonly seconds: Record<string, number> = {};
  readonly capped: string[] = [];

  constructor(private readonly size: number) {}

  async run<T extends object>(phase: string, description: string, body: () => Promise<T>): Promise<T> {
    progress(this.size, description);
    const started = performance.now();
    const result = await body();
    this.seconds[phase] = round((performance.now() - started) / 1000, 1);
    if ("capped" in result && result.capped === true) this.capped.push(phase);
    return result;
  }
}

async function runSize(size: number, dir: string, seed: number): Promise<SizeFigures> {
  const log = new PhaseLog(size);
  const picker = new SeededRandom(seed + 7);
  let source = createReplica(join(dir, "source.db"), "source", seed);
  const load = await log.run(
    "load",
    `load ${formatNumber(size)} entries, ${loadEntriesPerWrite} per write`,
    () => loadEntries(source.replica, size),
  );
  const loaded = load.operations;
  const lookups = await log.run("lookups", "DN lookups", () =>
    measureLookups(source.replica, loaded, picker),
  );
  const pages = await log.run("getChangesPages", "getChanges pages", () =>
    measureGetChangesPages(source.replica),
  );
  const batched = await log.run("batchedWrites", "writes, 100 per transaction", () =>
    measureBatchedWrites(source.replica, loaded, picker),
  );
  const single = await log.run("singleWrites", "writes, 1 per transaction", () =>
    measureSingleWrites(source.replica, loaded, picker, singleWriteBounds),
  );
  source = reopenReplica(source, "full");
  const full = await log.run("singleWritesFull", "writes, 1 per transaction, synchronous=FULL", () =>
    measureSingleWrites(source.replica, loaded, picker, singleWriteFullBounds),
  );
  source = reopenReplica(source, "normal");
  const destination = createReplica(join(dir, "destination.db"), "destination", seed + 1);
  const pull = await log.run(
    "pull",
    `pull ${formatNumber(source.replica.usn)} source USNs into an empty replica`,
    () => measurePull(destination.replica, source.replica),
  );
  const modifies = await log.run(
    "replicatedModifies",
    "replicate 20,000 single-attribute modifies",
    async () => {
      await measureBatchedWrites(source.replica, loaded, picker, replicatedModifiesBounds);
      return measurePull(destination.replica, source.replica);
    },
  );
  destination.replica.close();
  source.replica.close();
  // On the source's own file once its replica is closed: a copy made for it was slower than
  // the original (the kernel still writing the copy back), and the RSS probe only reads.
  const floor = await log.run("sqlFloor", "the same batched writes as bare SQL (the floor)", () =>
    measureModifyFloor(source.path, loaded, picker, floorWorkload, batchedWriteBounds),
  );
  const rss = await log.run("rssProbe", "RSS probe (child process)", () =>
    probeRssOrNothing(source.path, loaded, seed + 11),
  );
  return {
    size,
    entriesLoaded: loaded,
    loadAddsPerSec: ratePerSec(loaded, load.busyMs),
    writesPerSecSingle: ratePerSec(single.operations, single.busyMs),
    writesPerSecSingleFull: ratePerSec(full.operations, full.busyMs),
    writesPerSecBatched: ratePerSec(batched.operations, batched.busyMs),
    writesPerSecBatchedCpu: ratePerSec(batched.operations, batched.cpuMs),
    writesPerSecBatchedSqlFloor: ratePerSec(floor.operations, floor.busyMs),
    appliedChangesPerSec: ratePerSec(pull.itemsApplied, pull.applyMs),
    appliedChangesPerSecCpu: ratePerSec(pull.itemsApplied, pull.applyCpuMs),
    appliedEntriesPerSec: ratePerSec(pull.entriesApplied, pull.applyMs),
    appliedModifiesPerSec: ratePerSec(modifies.itemsApplied, modifies.applyMs),
    pullChangesPerSec: ratePerSec(pull.entriesApplied, pull.measured.busyMs),
    pullPages: pull.measured.operations,
    entriesApplied: pull.entriesApplied,
    getChangesPagesPerSec: ratePerSec(pages.operations, pages.busyMs),
    lookupsPerSec: ratePerSec(lookups.operations, lookups.busyMs),
    rssMb: rss.rssMb,
    rssBaselineMb: rss.rssBaselineMb,
    storeMb: fileMb(source.path),
    phaseSeconds: log.seconds,
    capped: log.capped,
  };
}

// ---------------------------------------------------------------------------------------------
// report

interface Row {
  readonly label: string;
  readonly figure: (figures: SizeFigures) => number;
  readonly target: string;
}

const rows: readonly Row[] = [
  { label: "load: adds/s (1000 per transaction)", figure: (f) => f.loadAddsPerSec, target: "" },
  { label: "  load: wall seconds", figure: (f) => f.phaseSeconds.load ?? Number.NaN, target: "" },
  { label: "writes/s, 1 per transaction, NORMAL", figure: (f) => f.writesPerSecSingle, target: "" },
  { label: "writes/s, 1 per transaction, FULL", figure: (f) => f.writesPerSecSingleFull, target: "baseline" },
  {
    label: "writes/s, 100 per transaction, NORMAL",
    figure: (f) => f.writesPerSecBatched,
    target: `>= ${formatNumber(targets.writesPerSecBatchedMin)}`,
  },
  { label: "  same, per CPU second of this process", figure: (f) => f.writesPerSecBatchedCpu, target: "" },
  {
    label: "  floor: the same as bare SQL statements",
    figure: (f) => f.writesPerSecBatchedSqlFloor,
    target: "baseline",
  },
  {
    label: "replicated changes applied/s (attribute values)",
    figure: (f) => f.appliedChangesPerSec,
    target: `>= ${formatNumber(targets.appliedChangesPerSecMin)}`,
  },
  { label: "  same, per CPU second of this process", figure: (f) => f.appliedChangesPerSecCpu, target: "" },
  { label: "  same pull: replicated entries applied/s", figure: (f) => f.appliedEntriesPerSec, target: "" },
  {
    label: "replicated single-attribute modifies applied/s",
    figure: (f) => f.appliedModifiesPerSec,
    target: "",
  },
  { label: "replicated changes/s, whole pull", figure: (f) => f.pullChangesPerSec, target: "" },
  { label: "  pull: pages", figure: (f) => f.pullPages, target: "" },
  { label: "  pull: wall seconds", figure: (f) => f.phaseSeconds.pull ?? Number.NaN, target: "" },
  { label: "getChanges pages/s (500 entries/page)", figure: (f) => f.getChangesPagesPerSec, target: "" },
  {
    label: "DN lookups/s (get, depth 3)",
    figure: (f) => f.lookupsPerSec,
    target: `flat: largest >= ${targets.lookupsFlatRatioMin} x smallest`,
  },
  {
    label: "RSS MB, open store + 10k lookups",
    figure: (f) => f.rssMb,
    target: `< ${targets.rssMbAt1MMax} MB at 1,000,000`,
  },
  { label: "  RSS MB of the same process before open", figure: (f) => f.rssBaselineMb, target: "" },
  { label: "store file MB (db + wal)", figure: (f) => f.storeMb, target: "" },
];

function printTable(results: readonly SizeFigures[]): void {
  const header = ["operation", ...results.map((f) => `N = ${formatNumber(f.size)}`), "target"];
  const body = rows.map((row) => [row.label, ...results.map((f) => formatNumber(row.figure(f))), row.target]);
  process.stdout.write(`${formatTable(header, body)}\n`);
}

function summarize(results: readonly SizeFigures[]) {
  const largest = results.at(-1);
  const smallest = results[0];
  assert(largest !== undefined && smallest !== undefined, "at least one size ran");
  const atMillion = results.find((f) => f.size === 1_000_000);
  const lookupsFlatRatio = smallest.lookupsPerSec > 0 ? largest.lookupsPerSec / smallest.lookupsPerSec : 0;
  return {
    headlineSize: largest.size,
    writesPerSecBatched: Math.round(largest.writesPerSecBatched),
    appliedChangesPerSec: Math.round(largest.appliedChangesPerSec),
    rssMbAt1M: atMillion === undefined ? null : round(atMillion.rssMb, 1),
    lookupsFlatRatio: round(lookupsFlatRatio, 3),
    targetsMet: {
      writesPerSecBatched: results.every((f) => f.writesPerSecBatched >= targets.writesPerSecBatchedMin),
      appliedChangesPerSec: results.every((f) => f.appliedChangesPerSec >= targets.appliedChangesPerSecMin),
      lookupsFlat: lookupsFlatRatio >= targets.lookupsFlatRatioMin,
      rssAt1M: atMillion === undefined ? null : atMillion.rssMb < targets.rssMbAt1MMax,
    },
  };
}

function figuresJson(f: SizeFigures) {
  return {
    entriesLoaded: f.entriesLoaded,
    loadAddsPerSec: Math.round(f.loadAddsPerSec),
    writesPerSecSingle: Math.round(f.writesPerSecSingle),
    writesPerSecSingleFull: Math.round(f.writesPerSecSingleFull),
    writesPerSecBatched: Math.round(f.writesPerSecBatched),
    writesPerSecBatchedCpu: Math.round(f.writesPerSecBatchedCpu),
    writesPerSecBatchedSqlFloor: Math.round(f.writesPerSecBatchedSqlFloor),
    appliedChangesPerSec: Math.round(f.appliedChangesPerSec),
    appliedChangesPerSecCpu: Math.round(f.appliedChangesPerSecCpu),
    appliedEntriesPerSec: Math.round(f.appliedEntriesPerSec),
    appliedModifiesPerSec: Math.round(f.appliedModifiesPerSec),
    pullChangesPerSec: Math.round(f.pullChangesPerSec),
    pullPages: f.pullPages,
    entriesApplied: f.entriesApplied,
    getChangesPagesPerSec: Math.round(f.getChangesPagesPerSec),
    lookupsPerSec: Math.round(f.lookupsPerSec),
    rssMb: round(f.rssMb, 1),
    rssBaselineMb: round(f.rssBaselineMb, 1),
    storeMb: round(f.storeMb, 1),
    phaseSeconds: f.phaseSeconds,
    capped: f.capped,
  };
}

// ---------------------------------------------------------------------------------------------
// main

interface RunContext {
  readonly options: Options;
  readonly machine: Machine;
  readonly loadAverageStart: readonly number[];
  readonly started: number;
}

async function runAll(options: Options): Promise<SizeFigures[]> {
  const scratch = makeScratchDir("plexus-bench-core-");
  const results: SizeFigures[] = [];
  try {
    for (const size of options.sizes) {
      // Each size gets its own directory, removed when it is done: a million entries take GBs.
      const dir = join(scratch.path, String(size));
      mkdirSync(dir);
      results.push(await runSize(size, dir, options.seed));
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    scratch.remove();
  }
  return results;
}

function report(run: RunContext, results: readonly SizeFigures[]): void {
  const loadAverageEnd = loadAverage();
  const seconds = (performance.now() - run.started) / 1000;
  process.stdout.write("\n");
  printTable(results);
  const summary = summarize(results);
  const cappedPhases = results.flatMap((f) => f.capped.map((phase) => `${phase} at ${formatNumber(f.size)}`));
  const phaseLines = results.map(
    (f) =>
      `  N = ${formatNumber(f.size)}: ` +
      Object.entries(f.phaseSeconds)
        .map(([phase, phaseSeconds]) => `${phase} ${formatNumber(phaseSeconds)}`)
        .join(", "),
  );
  process.stdout.write(
    `\nwall seconds per phase:\n${phaseLines.join("\n")}\n` +
      `load average at start ${run.loadAverageStart.join(" ")}, at end ${loadAverageEnd.join(" ")}; ` +
      `${formatNumber(seconds)} s in all\n` +
      `capped phases (rates cover the part done): ${cappedPhases.length === 0 ? "none" : cappedPhases.join(", ")}\n` +
      `targets met: ${JSON.stringify(summary.targetsMet)}\n`,
  );
  const json = {
    bench: "core",
    seed: run.options.seed,
    quick: run.options.quick,
    sizes: run.options.sizes,
    ...summary,
    targets,
    machine: run.machine,
    loadAverageStart: run.loadAverageStart,
    loadAverageEnd,
    seconds: round(seconds, 1),
    bySize: Object.fromEntries(results.map((f) => [String(f.size), figuresJson(f)])),
  };
  process.stdout.write(`${JSON.stringify(json)}\n`);
}

async function main(args: readonly string[]): Promise<void> {
  if (args[0] === "--rss-probe") {
    rssProbeMain(args[1] ?? "", parseInteger(args[2], "entries"), parseInteger(args[3], "seed"));
    return;
  }
  const run: RunContext = {
    options: parseOptions(args),
    machine: describeMachine(),
    loadAverageStart: loadAverage(),
    started: performance.now(),
  };
  const { options, machine } = run;
  process.stdout.write(
    `bench:core seed ${options.seed}, sizes ${options.sizes.map(formatNumber).join(", ")}, ` +
      "synchronous=NORMAL (one FULL row as a baseline)\n" +
      `machine: ${machine.cpuCount} x ${machine.cpuModel}, ${formatNumber(machine.memoryMb)} MB, ` +
      `node ${machine.node} ${machine.platform}; load average ${run.loadAverageStart.join(" ")}\n`,
  );
  report(run, await runAll(options));
}

await main(process.argv.slice(2));
