import { SeededRandom } from "./ports.ts";

/**
 * Everything a seed decides, derived from the seed alone (TigerBeetle's VOPR style): cluster
 * size and placement, the partner graph, timing, the workload mix and every fault rate. The
 * simulator prints these first, so a failing seed can be understood before it is replayed.
 */
export interface SimParams {
  readonly seed: number;
  readonly nodes: number;
  readonly sites: number;
  /** Site index of each node. */
  readonly placement: readonly number[];
  /** Undirected partner edges; each end pulls from the other. Connected. */
  readonly edges: ReadonlyArray<readonly [number, number]>;
  readonly intraPullIntervalMs: number;
  readonly interPullIntervalMs: number;
  readonly notifyDelayMs: number;
  /** NodeConfig.relayPullDelayMs; 0 for some seeds, and up to longer than a notification takes to cross the graph. */
  readonly relayPullDelayMs: number;
  /**
   * 0: a node builds a pull's page as it admits the pull (NodeMachine.receive); else it reads
   * the page up to this much later, from what its store holds then, and sends it up to as much
   * later again, as the runtime's page worker does (World.buildPageLater).
   */
  readonly pageBuildDelayMs: number;
  readonly pullTimeoutMs: number;
  readonly pageEntriesMax: number;
  readonly messageDelayMs: { readonly min: number; readonly max: number; readonly interSiteExtra: number };
  readonly lossRate: number;
  readonly duplicateRate: number;
  readonly safetyMs: number;
  readonly livenessBoundMs: number;
  readonly operations: number;
  readonly mix: WorkloadMix;
  readonly faults: FaultPlan;
  readonly maxSkewMs: number;
  readonly tombstoneLifetimeMs: number;
  readonly purgeIntervalMs: number;
}

export interface WorkloadMix {
  readonly add: number;
  readonly sameDnAdd: number;
  readonly modify: number;
  readonly link: number;
  readonly delete: number;
  readonly rename: number;
  readonly move: number;
  readonly readThenWrite: number;
}

export interface FaultPlan {
  readonly crashes: number;
  /** Of the crashes, the share that strike in the middle of applying a page. */
  readonly midApplyShare: number;
  readonly partitions: number;
  readonly swizzles: number;
  readonly clockEvents: number;
  readonly restores: number;
  /** One node is down for longer than the tombstone lifetime. */
  readonly longDowntime: boolean;
}

const minute = 60_000;
/** The longest a simulated page waits to be read, and then to be sent (a page worker's queue). */
const pageBuildDelayMsMax = 100;

/**
 * Parameters for a hand-written scenario: a small cluster, every partner linked to every
 * other, a clean network, no random workload and no random faults — the scenario makes its own.
 */
export function scenarioParams(nodes: number, overrides: Partial<SimParams> = {}): SimParams {
  const edges: Array<[number, number]> = [];
  for (let a = 0; a < nodes; a++) for (let b = a + 1; b < nodes; b++) edges.push([a, b]);
  return {
    seed: 1,
    nodes,
    sites: 1,
    placement: Array.from({ length: nodes }, () => 0),
    edges,
    intraPullIntervalMs: 1_000,
    interPullIntervalMs: 5_000,
    notifyDelayMs: 10,
    relayPullDelayMs: 500,
    pageBuildDelayMs: 0,
    pullTimeoutMs: 2_000,
    pageEntriesMax: 100,
    messageDelayMs: { min: 1, max: 10, interSiteExtra: 20 },
    lossRate: 0,
    duplicateRate: 0,
    safetyMs: 0,
    livenessBoundMs: 20 * minute,
    operations: 0,
    mix: { add: 0, sameDnAdd: 0, modify: 0, link: 0, delete: 0, rename: 0, move: 0, readThenWrite: 0 },
    faults: {
      crashes: 0,
      midApplyShare: 0,
      partitions: 0,
      swizzles: 0,
      clockEvents: 0,
      restores: 0,
      longDowntime: false,
    },
    maxSkewMs: 0,
    tombstoneLifetimeMs: 60 * minute,
    purgeIntervalMs: minute,
    ...overrides,
  };
}

export function deriveParams(seed: number): SimParams {
  const random = new SeededRandom(seed);
  // Most seeds are small (fast, and small clusters find most bugs); some go up to 30 nodes.
  const nodes = 2 + Math.floor(28 * random.float() ** 2.5);
  const sites = random.int(1, Math.min(6, nodes));
  const placement = place(random, nodes, sites);
  const longDowntime = nodes >= 3 && random.chance(0.12);
  // A tombstone must outlive the worst clock jump, or a jump alone could expire it early.
  const maxSkewMs = longDowntime ? random.int(0, minute) : random.int(0, 10 * minute);
  const tombstoneLifetimeMs = Math.max(4 * maxSkewMs, 3 * minute);
  const intraPullIntervalMs = random.int(500, 5_000);
  return {
    seed,
    nodes,
    sites,
    placement,
    edges: connectedGraph(random, nodes),
    intraPullIntervalMs,
    interPullIntervalMs: intraPullIntervalMs * random.int(1, 6),
    notifyDelayMs: random.int(1, 50),
    pullTimeoutMs: random.int(500, 3_000),
    pageEntriesMax: random.pick([1, 2, 3, 5, 8, 20, 100]),
    messageDelayMs: { min: random.int(0, 5), max: random.int(5, 200), interSiteExtra: random.int(0, 100) },
    lossRate: random.pick([0, 0, 0.01, 0.05, 0.1]),
    duplicateRate: random.pick([0, 0.01, 0.05]),
    safetyMs: random.int(30_000, 120_000),
    livenessBoundMs: 20 * minute,
    operations: random.int(100, 500),
    mix: {
      add: random.int(2, 8),
      sameDnAdd: random.int(0, 2),
      modify: random.int(1, 8),
      link: random.int(0, 4),
      delete: random.int(1, 4),
      rename: random.int(0, 3),
      move: random.int(0, 3),
      readThenWrite: random.int(0, 4),
    },
    faults: {
      crashes: random.int(1, 12),
      midApplyShare: random.float(),
      partitions: random.int(1, 8),
      swizzles: random.int(0, 3),
      clockEvents: random.int(1, 8),
      restores: random.int(0, 2),
      longDowntime,
    },
    maxSkewMs,
    tombstoneLifetimeMs,
    purgeIntervalMs: random.int(5_000, 30_000),
    // Drawn last, so that every other parameter of a seed stays what it was before this one.
    relayPullDelayMs: random.chance(0.2) ? 0 : random.int(1, 5_000),
    pageBuildDelayMs: random.chance(0.4) ? 0 : random.int(1, pageBuildDelayMsMax),
  };
}

function place(random: SeededRandom, nodes: number, sites: number): number[] {
  const placement = Array.from({ length: nodes }, (_, index) =>
    index < sites ? index : random.int(0, sites - 1),
  );
  // Shuffle so that site 0 is not always node 0.
  for (let index = placement.length - 1; index > 0; index--) {
    const other = random.int(0, index);
    [placement[index], placement[other]] = [placement[other] as number, placement[index] as number];
  }
  return placement;
}

/** A random spanning tree plus extra edges: connected, with cycles (alternative paths). */
function connectedGraph(random: SeededRandom, nodes: number): Array<[number, number]> {
  const edges: Array<[number, number]> = [];
  const seen = new Set<string>();
  const add = (a: number, b: number): void => {
    const key = a < b ? `${a}-${b}` : `${b}-${a}`;
    if (a === b || seen.has(key)) return;
    seen.add(key);
    edges.push(a < b ? [a, b] : [b, a]);
  };
  for (let node = 1; node < nodes; node++) add(node, random.int(0, node - 1));
  const extra = Math.floor(random.float() * nodes);
  for (let index = 0; index < extra; index++) add(random.int(0, nodes - 1), random.int(0, nodes - 1));
  return edges;
}

export function describeParams(params: SimParams): string {
  const { seed, nodes, sites, edges, faults, mix } = params;
  return [
    `seed ${seed}: ${nodes} nodes in ${sites} sites (${params.placement.join(",")}), ${edges.length} partner edges`,
    `  pull every ${params.intraPullIntervalMs} ms in a site, ${params.interPullIntervalMs} ms between sites; ` +
      `notify after ${params.notifyDelayMs} ms, relayed ones pulled after ${params.relayPullDelayMs} ms; ` +
      `pages built up to ${params.pageBuildDelayMs} ms after the pull; timeout ${params.pullTimeoutMs} ms; pages of ${params.pageEntriesMax} entries`,
    `  messages ${params.messageDelayMs.min}-${params.messageDelayMs.max} ms (+${params.messageDelayMs.interSiteExtra} between sites), ` +
      `loss ${params.lossRate}, duplication ${params.duplicateRate}`,
    `  workload: ${params.operations} operations over ${params.safetyMs} ms; mix ${JSON.stringify(mix)}`,
    `  faults: ${faults.crashes} crashes (${Math.round(faults.midApplyShare * 100)}% mid-apply), ${faults.partitions} partitions, ` +
      `${faults.swizzles} swizzle-clogs, ${faults.clockEvents} clock events (skew up to ±${params.maxSkewMs} ms), ` +
      `${faults.restores} restores from an older snapshot, long downtime: ${faults.longDowntime}`,
    `  tombstone lifetime ${params.tombstoneLifetimeMs} ms, purge every ${params.purgeIntervalMs} ms; liveness bound ${params.livenessBoundMs} ms`,
  ].join("\n");
}
