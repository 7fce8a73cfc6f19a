/**
 * `npm run bench:topology [-- --quick | --sizes 100,1000] [--seed 1]`
 *
 * Route convergence of the inter-site path-vector protocol on random site graphs: random
 * geometric (WAN links between nearby offices, cost by distance) and hub-and-spoke (hubs in a
 * full mesh, dual-homed branches, tiered), average degree 3–4, at 100, 1,000, 5,000 and 10,000
 * sites. Each size runs in its own child process so that its peak RSS is its own.
 *
 * Per size: the wall time until every destination has converged from a cold start (every
 * session up at once, updates batched 50 ms per session, delays 5–50 ms), the route updates
 * exchanged, the longest simulated convergence, peak RSS, and whether the tables match the
 * reference (all destinations up to 1,000 sites, a sample of 200 above). The baseline, measured
 * in the same child: the centralized computation of the same routes (Dijkstra from every
 * destination under the same policy), as a ratio. And how far the routes are from the plain
 * least-cost paths (policy ignored): stretch 1 means none; the valley-free policy forces detours
 * in tiered graphs. And one change from each checked destination, pulled along the routes
 * (reverse-path pulling, link intervals of 5–60 minutes, each site at its own phase): the latest
 * it reached any site in simulated time, against the least-cost-path bound (a whole interval
 * waited at each hop of the cheapest path), the mean ratio, and the pairs that came later than
 * their bound.
 *
 * The last line of stdout is one JSON object with every figure.
 */
import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { routesTo } from "../src/core/topology/reference.ts";
import { SeededRandom } from "../src/sim/ports.ts";
import { CompactRouting } from "../src/sim/routing-compact.ts";
import { type GraphShape, generateSiteGraph } from "../src/sim/site-graphs.ts";
import { describeMachine, formatNumber, formatTable, loadAverage, round } from "./support.ts";

const sizesDefault = [100, 1_000, 5_000, 10_000];
const sizesQuick = [100, 1_000];
const shapes: readonly GraphShape[] = ["geometric", "hub-and-spoke"];
const sizeMin = 2;
const sizeMax = 20_000;
const verifyAllUpTo = 1_000;
const verifySample = 200;
const delayMs = { min: 5, max: 50 };
const advertisementIntervalMs = 50;
/** A child that runs longer than this is killed and its size reported as not converged. */
const childTimeoutMs = 45 * 60_000;
/** Pull intervals of the site links, in minutes (each link gets one at random). */
const linkIntervalsMinutes = [5, 15, 30, 60] as const;
const megabyte = 1024 * 1024;

interface SizeFigures {
  readonly sites: number;
  readonly shape: GraphShape;
  readonly links: number;
  readonly averageDegree: number;
  readonly convergeMs: number;
  readonly messages: number;
  readonly messagesPerSiteLink: number;
  readonly simulatedConvergeMs: number;
  readonly peakRssMb: number;
  readonly verifiedDestinations: number;
  readonly converged: boolean;
  readonly unreachablePairs: number;
  readonly baselineDijkstraMs: number;
  readonly ratioToBaseline: number;
  readonly stretchMax: number;
  readonly stretchMean: number;
  /** One change from each checked destination, pulled along the routes (see propagation.ts). */
  readonly propagationMinutesMax: number;
  readonly propagationBoundMinutesMax: number;
  readonly propagationRatioMean: number;
  readonly propagationOverBound: number;
}

function childMain(sites: number, shape: GraphShape, seed: number): void {
  const random = new SeededRandom(seed);
  const { graph, edges } = generateSiteGraph(random, sites, shape, shape === "hub-and-spoke");
  const sampleEvery = sites <= verifyAllUpTo ? 1 : Math.ceil(sites / verifySample);
  // Link intervals and pull phases come from their own generator, so that the graph and the
  // routing run are the same as without them.
  const scheduling = new SeededRandom(seed ^ 0x5c4ed);
  const intervals = edges.map(() => scheduling.pick(linkIntervalsMinutes) * 60_000);
  const phases = Array.from({ length: sites }, () => scheduling.float());
  const routing = new CompactRouting(graph, random, {
    delayMs,
    advertisementIntervalMs,
    verify: (destination) => destination % sampleEvery === 0,
    schedule: { intervalMs: (link) => intervals[link] as number, phase: (site) => phases[site] as number },
  });
  const started = performance.now();
  const result = routing.run();
  const convergeMs = performance.now() - started;
  // The baseline: the same routes computed centrally, every destination.
  const baselineStarted = performance.now();
  for (let destination = 0; destination < sites; destination++) routesTo(graph, destination);
  const baselineDijkstraMs = performance.now() - baselineStarted;
  const figures: SizeFigures = {
    sites,
    shape,
    links: edges.length,
    averageDegree: round((2 * edges.length) / sites, 2),
    convergeMs: Math.round(convergeMs),
    messages: result.updates,
    messagesPerSiteLink: round(result.updates / (sites * edges.length), 2),
    simulatedConvergeMs: result.convergeSimulatedMsMax,
    peakRssMb: Math.round((process.resourceUsage().maxRSS * 1024) / megabyte),
    verifiedDestinations: result.verifiedDestinations,
    converged: result.mismatches.length === 0,
    unreachablePairs: result.unreachablePairs,
    baselineDijkstraMs: Math.round(baselineDijkstraMs),
    ratioToBaseline: round(convergeMs / Math.max(1, baselineDijkstraMs), 1),
    stretchMax: round(result.stretchMax, 3),
    stretchMean: round(result.stretchMean, 4),
    propagationMinutesMax: round((result.propagation?.arrivalMsMax ?? 0) / 60_000, 1),
    propagationBoundMinutesMax: round((result.propagation?.boundMsMax ?? 0) / 60_000, 1),
    propagationRatioMean: round(result.propagation?.ratioMean ?? 0, 3),
    propagationOverBound: result.propagation?.overBound ?? 0,
  };
  if (result.mismatches.length > 0)
    process.stderr.write(`mismatches: ${result.mismatches.slice(0, 5).join("; ")}\n`);
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

function parseSizes(text: string | undefined, quick: boolean): number[] {
  if (text === undefined) return quick ? sizesQuick : sizesDefault;
  const sizes = text.split(",").map(Number);
  for (const size of sizes) {
    if (!Number.isInteger(size) || size < sizeMin || size > sizeMax) {
      throw new Error(`--sizes: each size is an integer from ${sizeMin} to ${sizeMax}, got ${text}`);
    }
  }
  return sizes;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean" },
      sizes: { type: "string" },
      seed: { type: "string" },
      child: { type: "string" },
    },
    strict: true,
  });
  const seed = values.seed === undefined ? 1 : Number(values.seed);
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new Error(`--seed must be a non-negative integer, got ${values.seed}`);
  if (values.child !== undefined) {
    const [sites, shape] = values.child.split(":");
    childMain(Number(sites), shape as GraphShape, seed);
    return;
  }
  const sizes = parseSizes(values.sizes, values.quick === true);
  const machine = describeMachine();
  process.stderr.write(
    `bench:topology on ${machine.cpuCount} × ${machine.cpuModel}, ${machine.node}; load ${loadAverage().join(" ")}\n`,
  );
  const results: SizeFigures[] = [];
  const self = fileURLToPath(import.meta.url);
  for (const sites of sizes) {
    for (const shape of shapes) {
      process.stderr.write(`  ${formatNumber(sites)} sites, ${shape} …\n`);
      const child = spawnSync(
        process.execPath,
        [...process.execArgv, self, "--child", `${sites}:${shape}`, "--seed", String(seed)],
        {
          encoding: "utf8",
          timeout: childTimeoutMs,
          maxBuffer: 16 * megabyte,
        },
      );
      const line = child.stdout.trim().split("\n").at(-1) ?? "";
      if (child.status !== 0 || !line.startsWith("{")) {
        process.stderr.write(
          `    failed (${child.signal ?? `exit ${child.status}`}): ${child.stderr.slice(-500)}\n`,
        );
        results.push({
          sites,
          shape,
          links: 0,
          averageDegree: 0,
          convergeMs: 0,
          messages: 0,
          messagesPerSiteLink: 0,
          simulatedConvergeMs: 0,
          peakRssMb: 0,
          verifiedDestinations: 0,
          converged: false,
          unreachablePairs: 0,
          baselineDijkstraMs: 0,
          ratioToBaseline: 0,
          stretchMax: 0,
          stretchMean: 0,
          propagationMinutesMax: 0,
          propagationBoundMinutesMax: 0,
          propagationRatioMean: 0,
          propagationOverBound: 0,
        });
        continue;
      }
      const figures = JSON.parse(line) as SizeFigures;
      process.stderr.write(
        `    ${formatNumber(figures.convergeMs)} ms, ${formatNumber(figures.messages)} updates, ${figures.peakRssMb} MB\n`,
      );
      results.push(figures);
    }
  }
  const table = formatTable(
    [
      "sites",
      "graph",
      "links",
      "degree",
      "converge (wall)",
      "updates",
      "per site·link",
      "simulated",
      "peak RSS",
      "checked",
      "Dijkstra ×",
      "stretch max/mean",
      "change: latest/bound min",
      "mean/bound",
      "over bound",
    ],
    results.map((f) => [
      formatNumber(f.sites),
      f.shape,
      formatNumber(f.links),
      String(f.averageDegree),
      `${formatNumber(f.convergeMs)} ms`,
      formatNumber(f.messages),
      String(f.messagesPerSiteLink),
      `${formatNumber(f.simulatedConvergeMs)} ms`,
      `${f.peakRssMb} MB`,
      f.converged ? `ok (${f.verifiedDestinations} dest.)` : "MISMATCH",
      String(f.ratioToBaseline),
      `${f.stretchMax}/${f.stretchMean}`,
      `${f.propagationMinutesMax}/${f.propagationBoundMinutesMax}`,
      String(f.propagationRatioMean),
      formatNumber(f.propagationOverBound),
    ]),
  );
  process.stdout.write(`${table}\n`);
  process.stdout.write(
    `${JSON.stringify({
      machine,
      seed,
      delayMs,
      advertisementIntervalMs,
      sizes: results.map((f) => ({
        sites: f.sites,
        shape: f.shape,
        links: f.links,
        convergeMs: f.convergeMs,
        messages: f.messages,
        messagesPerSiteLink: f.messagesPerSiteLink,
        simulatedConvergeMs: f.simulatedConvergeMs,
        peakRssMb: f.peakRssMb,
        converged: f.converged,
        verifiedDestinations: f.verifiedDestinations,
        unreachablePairs: f.unreachablePairs,
        baselineDijkstraMs: f.baselineDijkstraMs,
        ratioToBaseline: f.ratioToBaseline,
        stretchMax: f.stretchMax,
        stretchMean: f.stretchMean,
        propagationMinutesMax: f.propagationMinutesMax,
        propagationBoundMinutesMax: f.propagationBoundMinutesMax,
        propagationRatioMean: f.propagationRatioMean,
        propagationOverBound: f.propagationOverBound,
      })),
    })}\n`,
  );
  if (results.some((f) => !f.converged)) process.exitCode = 1;
}

main();
