/**
 * `npm run sim:routing -- --seeds N [--from S] [--sites K] [--canary NAME]`, or `--seed S`:
 * the routing simulator (routing.ts) over many seeds. Prints one line per failing seed (or
 * every seed with --seed), a summary, and last one JSON line. Exits 1 on any violation (or,
 * with --canary, when the planted defect went undetected), 2 on bad arguments.
 */
import { type RoutingCanaryName, routingCanaryNames } from "../core/canaries.ts";
import {
  argumentFailure,
  canaryChoice,
  finishRun,
  integerArgument,
  parseOptions,
  seedChoice,
} from "./cli-args.ts";
import { deriveRoutingParams, type RoutingResult, runRouting } from "./routing.ts";

const usage = "usage: npm run sim:routing -- (--seeds N [--from S] | --seed S) [--sites K] [--canary NAME]";
const seedsMax = 1_000_000;
const sitesRange = { min: 2, max: 2_000 } as const;

const fail: (message: string) => never = argumentFailure("sim:routing", usage);
const integer = integerArgument(fail);

function main(): void {
  const values = parseOptions(fail, ["seeds", "from", "seed", "sites", "canary"]);
  const { seeds, single } = seedChoice(values, fail, seedsMax);
  const sites = integer(values.sites, "--sites", sitesRange.min, sitesRange.max);
  const canary = canaryChoice(values.canary, routingCanaryNames, fail);
  const started = Date.now();
  const results: RoutingResult[] = [];
  for (const seed of seeds) {
    const options = { ...(sites === undefined ? {} : { sites }), canary: canary as RoutingCanaryName | null };
    const result = runRouting(deriveRoutingParams(seed, options));
    results.push(result);
    const p = result.params;
    if (result.violations.length > 0 || single) {
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
  finishRun(
    { seeds: results.length, violations: violating, canary },
    {
      sitesAvg: Number((sum((r) => r.params.sites) / results.length).toFixed(1)),
      coldUpdates: sum((r) => r.coldMessages),
      reconvergeUpdates: sum((r) => r.reconvergeMessages),
      faultRounds: sum((r) => r.reconvergences),
      wallMs,
    },
  );
}

main();
