/**
 * `npm run sim:routing -- --seeds N [--from S] [--sites K] [--canary NAME]`, or `--seed S`:
 * the routing simulator (routing.ts) over many seeds. Prints one line per failing seed (or
 * every seed with --seed), a summary, and last one JSON line. Exits 1 on any violation (or,
 * with --canary, when the planted defect went undetected), 2 on bad arguments.
 */
import { parseArgs } from "node:util";
import { type RoutingCanaryName, routingCanaryNames } from "../core/canaries.ts";
import { deriveRoutingParams, type RoutingResult, runRouting } from "./routing.ts";

const usage = "usage: npm run sim:routing -- (--seeds N [--from S] | --seed S) [--sites K] [--canary NAME]";
const seedsMax = 1_000_000;
const sitesRange = { min: 2, max: 2_000 } as const;

function fail(message: string): never {
  process.stderr.write(`sim:routing: ${message}\n${usage}\n`);
  process.exit(2);
}

function integer(text: string | undefined, name: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max)
    fail(`${name} must be an integer from ${min} to ${max}`);
  return value;
}

function main(): void {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        seeds: { type: "string" },
        from: { type: "string" },
        seed: { type: "string" },
        sites: { type: "string" },
        canary: { type: "string" },
      },
      strict: true,
    }));
  } catch (error) {
    fail((error as Error).message);
  }
  const count = integer(values.seeds as string | undefined, "--seeds", 1, seedsMax);
  const single = integer(values.seed as string | undefined, "--seed", 0, 2 ** 31);
  const from = integer(values.from as string | undefined, "--from", 0, 2 ** 31) ?? 1;
  const sites = integer(values.sites as string | undefined, "--sites", sitesRange.min, sitesRange.max);
  const canary = (values.canary as string | undefined) ?? null;
  if ((count === undefined) === (single === undefined)) fail("say either --seeds N or --seed S");
  if (canary !== null && !routingCanaryNames.includes(canary as RoutingCanaryName)) {
    fail(`unknown canary ${canary}; known: ${routingCanaryNames.join(", ")}`);
  }
  const seeds =
    single === undefined ? Array.from({ length: count as number }, (_, index) => from + index) : [single];
  const started = Date.now();
  const results: RoutingResult[] = [];
  for (const seed of seeds) {
    const options = { ...(sites === undefined ? {} : { sites }), canary: canary as RoutingCanaryName | null };
    const result = runRouting(deriveRoutingParams(seed, options));
    results.push(result);
    const p = result.params;
    if (result.violations.length > 0 || single !== undefined) {
      process.stdout.write(
        `seed ${seed}: ${p.sites} sites (${p.shape}${p.tiered ? ", tiered" : ""}), ${result.links} links, ` +
          `${p.linkFailures} link faults, ${p.bridgeheadFailures} bridgehead faults, batches of ${p.advertisementIntervalMs} ms: ` +
          `${result.coldMessages} updates to converge, ${result.reconvergeMessages} to re-converge, ` +
          `${result.unreachablePairs} pairs unreachable by policy: ${result.violations.length === 0 ? "ok" : "VIOLATION"}\n`,
      );
      for (const violation of result.violations.slice(0, 10)) process.stdout.write(`  ${violation}\n`);
      if (result.violations.length > 0)
        process.stdout.write(
          `  replay: npm run sim:routing -- --seed ${seed}${sites === undefined ? "" : ` --sites ${sites}`}${canary === null ? "" : ` --canary ${canary}`}\n`,
        );
    }
  }
  const violating = results.filter((result) => result.violations.length > 0).length;
  const wallMs = Date.now() - started;
  const sum = (pick: (result: RoutingResult) => number): number =>
    results.reduce((total, result) => total + pick(result), 0);
  process.stdout.write(
    `${results.length} seeds, ${sum((r) => r.params.sites)} sites, ${sum((r) => r.reconvergences)} fault rounds, ` +
      `${sum((r) => r.coldMessages)} updates to converge and ${sum((r) => r.reconvergeMessages)} to re-converge, ` +
      `${violating} seeds with violations, ${(wallMs / 1000).toFixed(1)} s\n`,
  );
  process.stdout.write(
    `${JSON.stringify({
      seeds: results.length,
      violations: violating,
      canary,
      canaryCaught: canary === null ? null : violating > 0,
      sitesAvg: Number((sum((r) => r.params.sites) / results.length).toFixed(1)),
      coldUpdates: sum((r) => r.coldMessages),
      reconvergeUpdates: sum((r) => r.reconvergeMessages),
      faultRounds: sum((r) => r.reconvergences),
      wallMs,
    })}\n`,
  );
  process.exitCode = canary === null ? (violating > 0 ? 1 : 0) : violating > 0 ? 0 : 1;
}

main();
