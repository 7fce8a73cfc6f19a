/**
 * `npm run sim:sites -- --seeds N [--from S] [--sites-max K] [--canary NAME] [--growth routed|early|any]
 * [--operations on|off]`, or `--seed S`:
 * replication along the topology (sites.ts) over many seeds. Prints one line per seed, a
 * summary, and last one JSON line. `--operations off` leaves out the operations phase (links
 * added and removed, servers restored from backups: site-operations.ts). Exits 1 on any violation (or, with --canary, when the
 * planted defect went undetected), 2 on bad arguments.
 */
import { siteCanaryNames } from "../core/canaries.ts";
import {
  argumentFailure,
  canaryChoice,
  finishRun,
  integerArgument,
  parseOptions,
  seedChoice,
} from "./cli-args.ts";
import { type GrowthOrder, growthOrders } from "./growth.ts";
import { deriveSiteSimParams, runSiteSim, type SiteSimResult } from "./sites.ts";

const usage =
  "usage: npm run sim:sites -- (--seeds N [--from S] | --seed S) [--sites-max K] [--canary NAME] [--growth routed|early|any] [--operations on|off]";
const seedsMax = 100_000;
const sitesRange = { min: 2, max: 1_000 } as const;
const sitesMaxDefault = 150;

const fail: (message: string) => never = argumentFailure("sim:sites", usage);
const integer = integerArgument(fail);

function describe(result: SiteSimResult): string {
  const p = result.params;
  return (
    `seed ${p.seed}: ${p.sites} sites (${p.shape}), ${result.nodes} nodes, ${result.links} links, ` +
    `${p.linkFailures} link faults, ${p.bridgeheadCrashes} bridgehead crashes: ${result.changes} changes, ` +
    `steady transfers per change ≤ ${result.steadyTransfersMax} (bound ${p.sites - 1}), ` +
    `${result.faultExtraTransfers} extra transfers during re-convergence, ` +
    `stale set changed ≤ ${result.staleChangesMax} times per node in 10 min, ` +
    `${result.isolatedNodes} nodes planned with no route from their site, ` +
    `${result.outsideNodes} with a gap in their view, ` +
    `views complete ${result.viewsCompleteMs === null ? "never" : `${(result.viewsCompleteMs / 60_000).toFixed(0)} min`} after the last join, ` +
    (p.operations === null
      ? ""
      : `${result.linkOperations} link operations, ${result.restores} restores (${result.lostToRestores} writes lost with them), `) +
    `${(result.simulatedMs / 60_000).toFixed(0)} simulated min, ${(result.wallMs / 1000).toFixed(1)} s: ` +
    `${result.violations.length === 0 ? "ok" : "VIOLATION"}`
  );
}

function growthChoice(value: string | undefined): GrowthOrder {
  if (value === undefined) return "routed";
  const found = growthOrders.find((order) => order === value);
  return found ?? fail(`--growth must be one of ${growthOrders.join(", ")}`);
}

function operationsChoice(value: string | undefined): boolean {
  if (value === undefined || value === "on") return true;
  return value === "off" ? false : fail("--operations must be on or off");
}

function main(): void {
  const values = parseOptions(fail, ["seeds", "from", "seed", "sites-max", "canary", "growth", "operations"]);
  const { seeds } = seedChoice(values, fail, seedsMax);
  const sitesMax =
    integer(values["sites-max"], "--sites-max", sitesRange.min, sitesRange.max) ?? sitesMaxDefault;
  const canary = canaryChoice(values.canary, siteCanaryNames, fail);
  const growth = growthChoice(values.growth);
  const operations = operationsChoice(values.operations);
  const started = Date.now();
  const results: SiteSimResult[] = [];
  for (const seed of seeds) {
    const canaries = canary === null ? {} : { [canary]: true };
    const result = runSiteSim(deriveSiteSimParams(seed, sitesMax, growth, operations), { canaries });
    results.push(result);
    process.stdout.write(`${describe(result)}\n`);
    for (const violation of result.violations.slice(0, 10))
      process.stdout.write(`  ${violation.invariant} at ${violation.time} ms: ${violation.message}\n`);
    if (result.violations.length > 0)
      process.stdout.write(
        `  replay: npm run sim:sites -- --seed ${seed} --sites-max ${sitesMax}${canary === null ? "" : ` --canary ${canary}`}${growth === "routed" ? "" : ` --growth ${growth}`}${operations ? "" : " --operations off"}\n`,
      );
  }
  const violating = results.filter((result) => result.violations.length > 0).length;
  const wallMs = Date.now() - started;
  const sum = (pick: (result: SiteSimResult) => number): number =>
    results.reduce((total, result) => total + pick(result), 0);
  process.stdout.write(
    `${results.length} seeds, ${sum((r) => r.params.sites)} sites, ${sum((r) => r.changes)} changes, ` +
      `${sum((r) => r.faultExtraTransfers)} extra transfers during re-convergence, ` +
      `${violating} seeds with violations, ${(wallMs / 1000).toFixed(1)} s\n`,
  );
  finishRun(
    { seeds: results.length, violations: violating, canary },
    {
      sites: sum((r) => r.params.sites),
      changes: sum((r) => r.changes),
      steadyTransfers: sum((r) => r.steadyTransfers),
      faultChanges: sum((r) => r.faultChanges),
      faultExtraTransfers: sum((r) => r.faultExtraTransfers),
      staleChangesMax: Math.max(0, ...results.map((r) => r.staleChangesMax)),
      linkOperations: sum((r) => r.linkOperations),
      restores: sum((r) => r.restores),
      lostToRestores: sum((r) => r.lostToRestores),
      wallMs,
    },
  );
}

main();
