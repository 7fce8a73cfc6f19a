import type { Canaries, CanaryName } from "../core/canaries.ts";
import { unwrap } from "../core/result.ts";
import { Faults } from "./faults.ts";
import { Invariants } from "./invariants.ts";
import type { SimNode } from "./node.ts";
import { probeLostLinks, probeLostNotifications, probeNotifications } from "./notify-probe.ts";
import { deriveParams, type SimParams } from "./params.ts";
import { dataPartition, Workload } from "./workload.ts";
import { eventsPerSeedMax, type Violation, World } from "./world.ts";

/**
 * One seed, start to finish: derive everything from the seed, run the safety phase (workload
 * and faults), then the liveness phase (heal everything, stop the workload, run until every
 * replica has every change), then check the end-state invariants. Deterministic: the same
 * seed and canary give the same trace hash.
 */
export interface SeedResult {
  readonly seed: number;
  readonly canary: CanaryName | null;
  readonly params: SimParams;
  readonly violations: readonly Violation[];
  readonly traceHash: string;
  readonly traceTail: readonly string[];
  readonly operations: number;
  readonly acknowledged: number;
  readonly faults: number;
  /** Messages lost (loss rate, cut links) or duplicated: faults too, counted apart. */
  readonly networkFaults: number;
  readonly messages: number;
  readonly invariantChecks: number;
  readonly events: number;
  readonly simulatedMs: number;
  readonly wallMs: number;
  readonly entries: number;
  readonly converged: boolean;
}

const auditIntervalMs = 5_000;
const quiescenceCheckMs = 1_000;
const stateCheckMs = 30_000;
const stateStableMs = 90_000;

export interface RunOptions {
  readonly canary?: CanaryName | null;
  /** Receives every trace line as it happens. */
  readonly echo?: (line: string) => void;
  /** Wall clock for the summary only; never read by the simulation itself. */
  readonly now?: () => number;
}

export function runSeed(seed: number, options: RunOptions = {}): SeedResult {
  const now = options.now ?? Date.now;
  const canary = options.canary ?? null;
  const started = now();
  const params = deriveParams(seed);
  const canaries: Canaries = canary === null ? {} : { [canary]: true };
  const world = new World(params, canaries);
  world.trace.echo = options.echo ?? null;
  const invariants = new Invariants(world);
  const workload = new Workload(world);
  const faults = new Faults(world);

  start(world);
  workload.schedule(params.safetyMs);
  faults.schedule(params.safetyMs);
  scheduleAudits(world, invariants, params.safetyMs + params.livenessBoundMs);
  const safe = world.runUntil(params.safetyMs);
  const converged = safe && liveness(world, faults, invariants);
  if (converged && faults.longDown === null) {
    faults.stop();
    world.healAll();
    probeNotifications(world);
    probeLostNotifications(world);
    probeLostLinks(world);
    settleAfterProbes(world, invariants);
  }
  const withinBudget = safe && world.stats.events <= eventsPerSeedMax;
  let entries = 0;
  if (!withinBudget) world.violate("liveness", `the seed exceeded its event budget at ${world.time} ms`);
  else if (!converged)
    world.violate("liveness", `replicas did not converge within ${params.livenessBoundMs} ms of healing`);
  if (withinBudget) entries = invariants.final().length;
  return {
    seed,
    canary,
    params,
    violations: world.violations,
    traceHash: world.trace.hash(),
    traceTail: world.trace.lines(),
    operations: workload.attempted,
    acknowledged: workload.acknowledged,
    faults: faults.injected,
    networkFaults: world.stats.messagesLost + world.stats.messagesDuplicated,
    messages: world.stats.messagesSent,
    invariantChecks: world.stats.invariantChecks,
    events: world.stats.events,
    simulatedMs: world.time,
    wallMs: now() - started,
    entries,
    converged,
  };
}

/** Every node starts; the first creates the data partition, the others receive it by pulling. */
function start(world: World): void {
  for (const node of world.nodes)
    node.create(world.config(node), world.canaries, world.params.tombstoneLifetimeMs);
  const first = world.nodes[0] as SimNode;
  unwrap((first.replica as NonNullable<SimNode["replica"]>).createPartition(dataPartition));
  for (const node of world.nodes) world.scheduleWake(node);
}

function scheduleAudits(world: World, invariants: Invariants, until: number): void {
  for (let time = auditIntervalMs; time < until; time += auditIntervalMs) {
    world.at(time, "audit", () => invariants.audit());
  }
}

/**
 * Heal everything (partitions, cut links, message loss and duplication, armed crashes, down
 * nodes; the long-downtime node returns at its time), then run until every replica's UTD covers
 * every other replica's USN, within the liveness bound. Returns whether that happened.
 */
/**
 * The probes' writes replicate like any other, and the last may still be on its way (a cycle
 * of one-entry pages, a relayed notification put off): the end checks wait until every UTD
 * covers every replica again, within the liveness bound.
 */
function settleAfterProbes(world: World, invariants: Invariants): void {
  const deadline = world.time + world.params.livenessBoundMs;
  for (let time = world.time; !invariants.utdsCrossCovered() && time <= deadline; time += quiescenceCheckMs)
    if (!world.runUntil(time)) return;
}

function liveness(world: World, faults: Faults, invariants: Invariants): boolean {
  world.healAll();
  world.networkFaults = false;
  for (const node of world.nodes) {
    node.disarmCrash();
    if (!node.up && node !== faults.longDown?.node) world.restart(node, false);
  }
  const deadline = world.params.safetyMs + world.params.livenessBoundMs;
  let quiet = false;
  let sameStateSince: { digest: string; time: number } | null = null;
  let checks = 0;
  for (let time = world.time + quiescenceCheckMs; time <= deadline && !quiet; time += quiescenceCheckMs) {
    if (!world.runUntil(time)) return false;
    quiet = faults.longDown === null && invariants.utdsCrossCovered();
    if (quiet || faults.longDown !== null || ++checks % (stateCheckMs / quiescenceCheckMs) !== 0) continue;
    // Replicas that hold the same state for a long time but never learn it from each other's
    // UTDs will not get there: stop early and let the final checks say what is wrong.
    const digest = invariants.stateDigest();
    if (digest === null) sameStateSince = null;
    else if (sameStateSince === null || sameStateSince.digest !== digest) sameStateSince = { digest, time };
    else if (time - sameStateSince.time >= stateStableMs) return true;
  }
  return quiet;
}
