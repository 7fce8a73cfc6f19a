import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { type CanaryName, canaryNames } from "../core/canaries.ts";
import { runBatch, type SeedSummary, summarize } from "./batch.ts";
import { deriveParams, describeParams } from "./params.ts";
import { runSeed } from "./run.ts";

/**
 * `npm run sim -- …`: the simulator's command line.
 *   --seeds N [--from S]   run N seeds (S, S+1, …; default from 1), in parallel workers
 *   --seed S               run one seed, printing everything it derives and its trace on failure
 *   --canary NAME          plant a known bug; success means a violation was reported
 *   --canaries             plant every canary in turn (npm run sim:canaries)
 *   --workers K            worker processes (default: the machine's cores)
 *   --verbose              with --seed: print every event as it happens
 *   --determinism          run each seed twice and compare the trace hashes
 * Exit status: 0 when the run is clean (or every planted canary was caught), 1 otherwise,
 * 2 for bad arguments.
 */
const usage = `usage: npm run sim -- (--seeds N [--from S] | --seed S | --canaries) [--canary NAME] [--workers K] [--verbose] [--determinism]
canaries: ${canaryNames.join(", ")}`;

interface Options {
  readonly seeds: number[];
  readonly single: boolean;
  readonly canary: CanaryName | null;
  readonly canaries: boolean;
  readonly workers: number;
  readonly verbose: boolean;
  readonly determinism: boolean;
  readonly canarySeeds: number;
}

function parse(argv: readonly string[]): Options | string {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        seeds: { type: "string" },
        from: { type: "string" },
        seed: { type: "string" },
        canary: { type: "string" },
        canaries: { type: "boolean" },
        workers: { type: "string" },
        verbose: { type: "boolean" },
        determinism: { type: "boolean" },
        help: { type: "boolean" },
      },
      strict: true,
    }).values;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  if (values.help === true) return "";
  const count = positive(values.seeds, "--seeds");
  const from = values.from === undefined ? 1 : nonNegative(values.from, "--from");
  const seed = values.seed === undefined ? undefined : nonNegative(values.seed, "--seed");
  const workers =
    values.workers === undefined ? availableParallelism() : positive(values.workers, "--workers");
  for (const value of [count, from, seed, workers]) if (typeof value === "string") return value;
  const canary = values.canary;
  if (canary !== undefined && !canaryNames.includes(canary as CanaryName))
    return `unknown canary '${String(canary)}'`;
  const canaries = values.canaries === true;
  if (seed === undefined && count === undefined && !canaries) return "say --seeds N, --seed S or --canaries";
  if (seed !== undefined && count !== undefined) return "--seed and --seeds exclude each other";
  const seeds =
    seed !== undefined ? [seed as number] : range(from as number, (count as number | undefined) ?? 200);
  return {
    seeds,
    single: seed !== undefined,
    canary: (canary as CanaryName | undefined) ?? null,
    canaries,
    workers: workers as number,
    verbose: values.verbose === true,
    determinism: values.determinism === true,
    canarySeeds: (count as number | undefined) ?? 200,
  };
}

function positive(value: string | boolean | undefined, name: string): number | string | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  return Number.isSafeInteger(number) && number > 0 ? number : `${name} needs a positive whole number`;
}

function nonNegative(value: string | boolean | undefined, name: string): number | string {
  const number = Number(value);
  return Number.isSafeInteger(number) && number >= 0 && number < 2 ** 32
    ? number
    : `${name} needs a whole number 0..2^32-1`;
}

function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => from + index);
}

function replayCommand(seed: number, canary: CanaryName | null): string {
  return `npm run sim -- --seed ${seed}${canary === null ? "" : ` --canary ${canary}`}`;
}

function printViolations(summary: SeedSummary): void {
  console.log(describeParams(deriveParams(summary.seed)));
  for (const violation of summary.violations)
    console.log(`  VIOLATION ${violation.invariant} at ${violation.time} ms: ${violation.message}`);
  console.log("  the events that led to it:");
  for (const line of summary.traceTail) console.log(`    ${line}`);
  console.log(`  replay: ${replayCommand(summary.seed, summary.canary)}`);
}

function line(summary: SeedSummary): string {
  const verdict =
    summary.violations.length === 0
      ? "ok"
      : `VIOLATION ${[...new Set(summary.violations.map((v) => v.invariant))].join(",")}`;
  return (
    `seed ${summary.seed}: ${summary.nodes} nodes/${summary.sites} sites, ${summary.operations} ops, ` +
    `${summary.faults} faults (+${summary.networkFaults} network), ${summary.messages} messages, ${summary.simulatedMs} ms simulated, ${summary.wallMs} ms wall: ${verdict}`
  );
}

async function runSeeds(options: Options): Promise<number> {
  const started = Date.now();
  if (options.single) {
    const seed = options.seeds[0] as number;
    console.log(describeParams(deriveParams(seed)));
    const echo = options.verbose ? (text: string) => console.log(`  ${text}`) : undefined;
    const summary = summarize(
      runSeed(seed, { canary: options.canary, ...(echo === undefined ? {} : { echo }) }),
    );
    console.log(line(summary));
    if (summary.violations.length > 0) printViolations(summary);
    return finish([summary], started, options);
  }
  console.log(
    `running ${options.seeds.length} seeds from ${options.seeds[0]} on ${options.workers} workers${options.canary === null ? "" : ` with the canary ${options.canary}`}`,
  );
  const summaries = await runBatch({
    seeds: options.seeds,
    canary: options.canary,
    workers: options.workers,
    stopAtFirstViolation: options.canary !== null,
    onResult: (summary) => {
      console.log(line(summary));
      if (summary.violations.length > 0 && options.canary === null) printViolations(summary);
    },
  });
  const failed = await determinismFailures(options, summaries);
  return finish(summaries, started, options, failed);
}

/** With --determinism: run every seed again and compare the trace hashes. */
async function determinismFailures(options: Options, first: readonly SeedSummary[]): Promise<number> {
  if (!options.determinism) return 0;
  const again = await runBatch({
    seeds: first.map((summary) => summary.seed),
    canary: options.canary,
    workers: options.workers,
  });
  const hashes = new Map(again.map((summary) => [summary.seed, summary.traceHash]));
  let failures = 0;
  for (const summary of first) {
    if (hashes.get(summary.seed) === summary.traceHash) continue;
    failures++;
    console.log(
      `DETERMINISM seed ${summary.seed}: trace ${summary.traceHash} then ${hashes.get(summary.seed)}`,
    );
  }
  console.log(
    `determinism: ${first.length - failures} of ${first.length} seeds replayed to the same trace hash`,
  );
  return failures;
}

function finish(
  summaries: readonly SeedSummary[],
  started: number,
  options: Options,
  determinismFailures = 0,
): number {
  const wallMs = Date.now() - started;
  const total = (pick: (summary: SeedSummary) => number): number =>
    summaries.reduce((sum, summary) => sum + pick(summary), 0);
  const violating = summaries.filter((summary) => summary.violations.length > 0);
  const seeds = summaries.length;
  console.log(
    `\n${seeds} seeds: ${total((s) => s.operations)} operations (${total((s) => s.acknowledged)} acknowledged), ` +
      `${total((s) => s.messages)} messages, ${total((s) => s.faults)} faults (+${total((s) => s.networkFaults)} messages lost or duplicated), ${total((s) => s.invariantChecks)} invariant checks, ` +
      `${(total((s) => s.simulatedMs) / 1000).toFixed(1)} s simulated in ${(wallMs / 1000).toFixed(1)} s wall; ` +
      `${violating.length} seeds with violations`,
  );
  const canaryCaught = options.canary !== null && violating.length > 0;
  if (options.canary !== null) {
    console.log(
      canaryCaught
        ? `canary ${options.canary} caught by seed ${violating[0]?.seed} (${[...new Set(violating[0]?.violations.map((v) => v.invariant))].join(", ")})`
        : `canary ${options.canary} went UNDETECTED in ${seeds} seeds`,
    );
  }
  console.log(
    JSON.stringify({
      seeds,
      violations: violating.length,
      canary: options.canary,
      canaryCaught: options.canary === null ? null : canaryCaught,
      seedsPerSec: Number((seeds / (wallMs / 1000)).toFixed(2)),
      opsPerSeedAvg: Number((total((s) => s.operations) / Math.max(1, seeds)).toFixed(1)),
      faultsPerSeedAvg: Number((total((s) => s.faults) / Math.max(1, seeds)).toFixed(1)),
      networkFaultsPerSeedAvg: Number((total((s) => s.networkFaults) / Math.max(1, seeds)).toFixed(1)),
      messagesPerSeedAvg: Number((total((s) => s.messages) / Math.max(1, seeds)).toFixed(1)),
      wallMs,
      determinismFailures,
    }),
  );
  if (options.canary !== null) return canaryCaught ? 0 : 1;
  return violating.length === 0 && determinismFailures === 0 ? 0 : 1;
}

/** Every canary in turn; each must be caught within the seed budget. */
async function runCanaries(options: Options): Promise<number> {
  const started = Date.now();
  let undetected = 0;
  const report: Record<string, number | null> = {};
  for (const canary of canaryNames) {
    const summaries = await runBatch({
      seeds: range(1, options.canarySeeds),
      canary,
      workers: options.workers,
      stopAtFirstViolation: true,
    });
    const caught = summaries
      .filter((summary) => summary.violations.length > 0)
      .sort((a, b) => a.seed - b.seed)[0];
    report[canary] = caught?.seed ?? null;
    if (caught === undefined) undetected++;
    const invariants =
      caught === undefined ? "" : [...new Set(caught.violations.map((v) => v.invariant))].join(", ");
    console.log(
      caught === undefined
        ? `canary ${canary}: UNDETECTED in ${options.canarySeeds} seeds`
        : `canary ${canary}: caught by seed ${caught.seed} (${invariants})`,
    );
  }
  console.log(
    JSON.stringify({
      canaries: canaryNames.length,
      undetected,
      caughtBySeed: report,
      wallMs: Date.now() - started,
    }),
  );
  return undetected === 0 ? 0 : 1;
}

async function main(): Promise<void> {
  const options = parse(process.argv.slice(2));
  if (typeof options === "string") {
    if (options !== "") console.error(`sim: ${options}`);
    console.error(usage);
    process.exitCode = options === "" ? 0 : 2;
    return;
  }
  process.exitCode = options.canaries ? await runCanaries(options) : await runSeeds(options);
}

await main();
