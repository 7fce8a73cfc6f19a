import type { RoutingCanaries, RoutingCanaryName } from "../core/canaries.ts";
import { compileGraphSubset, type SiteGraph } from "../core/topology/graph.ts";
import { pathValleyFree } from "../core/topology/policy.ts";
import { routesTo } from "../core/topology/reference.ts";
import { type RouteMessage, type RouteOut, SiteRouter } from "../core/topology/router.ts";
import { EventQueue } from "./heap.ts";
import { SeededRandom } from "./ports.ts";
import { type GraphShape, generateSiteGraph } from "./site-graphs.ts";

/**
 * The routing simulator: one SiteRouter per site (the core code bridgeheads run) exchanging
 * path-vector messages over ordered sessions with random delays, on simulated time, while links
 * fail and recover and bridgeheads fail over (the new bridgehead starts with an empty table).
 * At every quiet point it checks the invariants:
 *
 * - routes: every site's table equals the protocol's one stable state on the links that are up
 *   (reference.ts: same costs, same next hops, nothing missing, nothing extra);
 * - loop-free: no site ever chooses a path that holds itself or a site twice (checked on every
 *   delivery); following next hops from any site reaches the destination, and each stored path
 *   is exactly that chain;
 * - valley-free: with tiers, no branch is transit between two non-branch sites;
 * - reachability: while the graph of up links is connected and untiered, every site reaches
 *   every other; pairs that policy leaves unreachable are counted and reported.
 */
export interface RoutingParams {
  readonly seed: number;
  readonly sites: number;
  readonly shape: GraphShape;
  readonly tiered: boolean;
  readonly linkFailures: number;
  readonly bridgeheadFailures: number;
  readonly delayMs: { readonly min: number; readonly max: number };
  /**
   * Updates for one session are batched for this long; a later update for a destination
   * replaces a pending one (BGP's minimum route advertisement interval), which keeps path
   * exploration from multiplying messages.
   */
  readonly advertisementIntervalMs: number;
  /** A planted router defect the invariants must catch, or null. */
  readonly canary: RoutingCanaryName | null;
}

export interface RoutingResult {
  readonly params: RoutingParams;
  readonly links: number;
  readonly violations: string[];
  /** Messages until the first convergence, and during each later re-convergence. */
  readonly coldMessages: number;
  readonly reconvergeMessages: number;
  readonly reconvergences: number;
  /** Simulated time of the first convergence. */
  readonly coldConvergeMs: number;
  readonly unreachablePairs: number;
  readonly events: number;
}

export function deriveRoutingParams(
  seed: number,
  options: { sites?: number; canary?: RoutingCanaryName | null } = {},
): RoutingParams {
  const random = new SeededRandom(seed ^ 0x5172);
  const shape = random.pick(["geometric", "geometric", "hub-and-spoke"] as const);
  return {
    seed,
    sites: options.sites ?? random.int(2, 60),
    shape,
    tiered: shape === "hub-and-spoke" || random.chance(0.3),
    linkFailures: random.int(0, 8),
    bridgeheadFailures: random.int(0, 3),
    delayMs: { min: random.int(1, 20), max: random.int(20, 400) },
    advertisementIntervalMs: random.pick([0, 10, 50, 200]),
    canary: options.canary ?? null,
  };
}

type RoutingEvent =
  | {
      readonly type: "deliver";
      readonly from: number;
      readonly to: number;
      readonly epoch: number;
      readonly message: RouteMessage;
    }
  | { readonly type: "flush"; readonly from: number; readonly to: number; readonly epoch: number }
  | { readonly type: "fault"; readonly run: () => void };

/**
 * Events allowed before a run counts as not converging: path exploration costs a bounded
 * multiple of sites × links messages (measured: under 40 per site and link without batching).
 */
const eventsPerSiteLinkMax = 200;
const eventsFloor = 1_000_000;

export class RoutingWorld {
  readonly random: SeededRandom;
  readonly graph: SiteGraph;
  readonly edges: ReadonlyArray<readonly [number, number, number]>;
  routers: SiteRouter[];
  private readonly canaries: RoutingCanaries;
  readonly up: boolean[];
  readonly queue = new EventQueue<RoutingEvent>();
  time = 0;
  events = 0;
  readonly eventsMax: number;
  messages = 0;
  /** Per directed session: its epoch (bumped when it goes down) and when its last message arrives. */
  private readonly epochs = new Map<number, number>();
  private readonly lastArrival = new Map<number, number>();
  /** Per directed session: updates waiting for the advertisement interval, by destination. */
  private readonly pending = new Map<number, Map<number, RouteMessage>>();
  /** Routes seen holding a loop at the moment they were chosen (checked on every delivery). */
  readonly loops: string[] = [];
  /** Sites whose bridgehead is failing over: no sessions until it is back. */
  private readonly failingOver = new Set<number>();

  constructor(readonly params: RoutingParams) {
    this.random = new SeededRandom(params.seed);
    const generated = generateSiteGraph(this.random, params.sites, params.shape, params.tiered);
    this.graph = generated.graph;
    this.edges = generated.edges;
    this.up = this.edges.map(() => true);
    this.eventsMax = Math.max(eventsFloor, eventsPerSiteLinkMax * params.sites * this.edges.length);
    this.canaries = params.canary === null ? {} : { [params.canary]: true };
    this.routers = Array.from(
      { length: params.sites },
      (_, site) => new SiteRouter(site, this.graph, this.canaries),
    );
  }

  start(): void {
    for (const [index] of this.edges.entries()) this.openSession(index);
  }

  private key(from: number, to: number): number {
    return from * this.params.sites + to;
  }

  private openSession(edge: number): void {
    const [a, b] = this.edges[edge] as readonly [number, number, number];
    if (!this.up[edge] || this.failingOver.has(a) || this.failingOver.has(b)) return;
    this.sendAll(a, (this.routers[a] as SiteRouter).sessionUp(b));
    this.sendAll(b, (this.routers[b] as SiteRouter).sessionUp(a));
  }

  private closeSession(edge: number): void {
    const [a, b] = this.edges[edge] as readonly [number, number, number];
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      const key = this.key(from, to);
      this.epochs.set(key, (this.epochs.get(key) ?? 0) + 1);
      this.lastArrival.delete(key);
      this.pending.delete(key);
    }
    this.sendAll(a, (this.routers[a] as SiteRouter).sessionDown(b));
    this.sendAll(b, (this.routers[b] as SiteRouter).sessionDown(a));
  }

  private sendAll(from: number, outs: readonly RouteOut[]): void {
    for (const out of outs) {
      if (this.params.advertisementIntervalMs === 0) {
        this.transmit(from, out.to, out.message);
        continue;
      }
      const key = this.key(from, out.to);
      let waiting = this.pending.get(key);
      if (waiting === undefined) {
        waiting = new Map();
        this.pending.set(key, waiting);
        const epoch = this.epochs.get(key) ?? 0;
        this.queue.push(this.time + this.params.advertisementIntervalMs, {
          type: "flush",
          from,
          to: out.to,
          epoch,
        });
      }
      waiting.set(out.message.destination, out.message);
    }
  }

  private flush(from: number, to: number, epoch: number): void {
    const key = this.key(from, to);
    const waiting = this.pending.get(key);
    if (waiting === undefined || (this.epochs.get(key) ?? 0) !== epoch) return;
    this.pending.delete(key);
    for (const message of waiting.values()) this.transmit(from, to, message);
  }

  private transmit(from: number, to: number, message: RouteMessage): void {
    const key = this.key(from, to);
    const { min, max } = this.params.delayMs;
    // Sessions are ordered: a message never overtakes an earlier one on the same session.
    const arrival = Math.max(this.time + this.random.int(min, max), this.lastArrival.get(key) ?? 0);
    this.lastArrival.set(key, arrival);
    this.messages++;
    this.queue.push(arrival, { type: "deliver", from, to, epoch: this.epochs.get(key) ?? 0, message });
  }

  /** Runs until no event is left; false if this call's event budget ran out. */
  runUntilQuiet(): boolean {
    const limit = this.events + this.eventsMax;
    for (let next = this.queue.pop(); next !== undefined; next = this.queue.pop()) {
      this.time = next.time;
      if (++this.events > limit) return false;
      const event = next.event;
      if (event.type === "fault") {
        event.run();
        continue;
      }
      if (event.type === "flush") {
        this.flush(event.from, event.to, event.epoch);
        continue;
      }
      if ((this.epochs.get(this.key(event.from, event.to)) ?? 0) !== event.epoch) continue;
      const router = this.routers[event.to] as SiteRouter;
      this.sendAll(event.to, router.receive(event.from, event.message));
      this.checkLoopFree(router, event.message.destination);
    }
    return true;
  }

  /** Loop-free by construction: a chosen path never holds its own site or any site twice. */
  private checkLoopFree(router: SiteRouter, destination: number): void {
    const path = router.route(destination)?.path;
    if (path === undefined || this.loops.length >= 5) return;
    const seen = new Set<number>([router.site]);
    for (const site of path) {
      if (seen.has(site)) {
        this.loops.push(
          `s${router.site} chose a path to s${destination} that visits s${site} twice (at ${this.time} ms)`,
        );
        return;
      }
      seen.add(site);
    }
  }

  at(time: number, run: () => void): void {
    this.queue.push(time, { type: "fault", run });
  }

  failLink(edge: number): void {
    if (!this.up[edge]) return;
    this.closeSession(edge);
    this.up[edge] = false;
  }

  recoverLink(edge: number): void {
    if (this.up[edge]) return;
    this.up[edge] = true;
    this.openSession(edge);
  }

  /** The site's bridgehead dies: its sessions drop; after `failoverMs` another one starts empty. */
  failBridgehead(site: number, failoverMs: number): void {
    if (this.failingOver.has(site)) return;
    const incident = this.incidentEdges(site);
    for (const edge of incident) if (this.up[edge]) this.closeSession(edge);
    this.failingOver.add(site);
    this.at(this.time + failoverMs, () => {
      this.failingOver.delete(site);
      this.routers[site] = new SiteRouter(site, this.graph, this.canaries);
      for (const edge of incident) this.openSession(edge);
    });
  }

  private incidentEdges(site: number): number[] {
    const incident: number[] = [];
    for (const [index, [a, b]] of this.edges.entries()) if (a === site || b === site) incident.push(index);
    return incident;
  }

  /** The graph of the links that are up. */
  currentGraph(): SiteGraph {
    return compileGraphSubset(this.graph, this.edges, (index) => this.up[index] === true);
  }
}

/** Checks every invariant against the current graph; returns the violations and unreachable pairs. */
export function checkRouting(world: RoutingWorld): { violations: string[]; unreachablePairs: number } {
  const graph = world.currentGraph();
  const count = graph.names.length;
  const violations: string[] = [];
  let unreachablePairs = 0;
  const untiered = graph.tiers.every((tier) => tier !== 1);
  const connected = isConnected(graph);
  for (let destination = 0; destination < count && violations.length < 20; destination++) {
    const reference = routesTo(graph, destination);
    for (let site = 0; site < count && violations.length < 20; site++) {
      if (site === destination) continue;
      const route = (world.routers[site] as SiteRouter).route(destination);
      const expectedCost = reference.cost[site] as number;
      if (expectedCost < 0) {
        unreachablePairs++;
        if (route !== undefined)
          violations.push(`routes: s${site} has a route to s${destination} that policy forbids`);
        if (connected && untiered)
          violations.push(`reachability: s${site} cannot reach s${destination} in a connected graph`);
        continue;
      }
      if (route === undefined) {
        violations.push(`routes: s${site} has no route to s${destination} (expected cost ${expectedCost})`);
        continue;
      }
      if (route.cost !== expectedCost || route.path[0] !== reference.nextHop[site]) {
        violations.push(
          `routes: s${site} → s${destination} costs ${route.cost} via s${route.path[0]}, expected ${expectedCost} via s${reference.nextHop[site]}`,
        );
      }
      const chain = followNextHops(world, site, destination, count);
      if (chain === null)
        violations.push(`loop-free: next hops from s${site} toward s${destination} loop or dead-end`);
      else if (
        chain.length !== route.path.length + 1 ||
        chain.slice(1).some((hop, index) => hop !== route.path[index])
      ) {
        violations.push(`loop-free: s${site}'s path to s${destination} is not its next-hop chain`);
      }
      if (!pathValleyFree([site, ...route.path], graph.tiers)) {
        violations.push(`valley-free: s${site}'s path to s${destination} uses a branch as transit`);
      }
    }
  }
  return { violations, unreachablePairs };
}

function followNextHops(
  world: RoutingWorld,
  from: number,
  destination: number,
  count: number,
): number[] | null {
  const chain = [from];
  for (let at = from; at !== destination; ) {
    const next = (world.routers[at] as SiteRouter).route(destination)?.path[0];
    if (next === undefined || chain.length > count) return null;
    chain.push(next);
    at = next;
  }
  return chain;
}

function isConnected(graph: SiteGraph): boolean {
  const count = graph.names.length;
  const seen = new Uint8Array(count);
  const stack = [0];
  seen[0] = 1;
  let reached = 1;
  for (let site = stack.pop(); site !== undefined; site = stack.pop()) {
    for (let at = graph.offsets[site] as number; at < (graph.offsets[site + 1] as number); at++) {
      const next = graph.targets[at] as number;
      if (seen[next] === 1) continue;
      seen[next] = 1;
      reached++;
      stack.push(next);
    }
  }
  return reached === count;
}

/**
 * One seed: cold start to convergence (checked), then rounds of faults — a link fails or
 * recovers, a bridgehead fails over — each followed by re-convergence (checked), then every
 * link recovers and a last check runs on the whole graph.
 */
export function runRouting(params: RoutingParams): RoutingResult {
  const world = new RoutingWorld(params);
  world.start();
  const violations: string[] = [];
  let unreachablePairs = 0;
  const settle = (label: string): void => {
    if (!world.runUntilQuiet()) {
      violations.push(`convergence: ${label}: still not quiet after ${world.eventsMax} events`);
      return;
    }
    const checked = checkRouting(world);
    unreachablePairs = checked.unreachablePairs;
    for (const violation of checked.violations) violations.push(`${label}: ${violation}`);
    for (const loop of world.loops.splice(0)) violations.push(`${label}: loop-free: ${loop}`);
  };
  settle("cold start");
  const coldMessages = world.messages;
  const coldConvergeMs = world.time;
  const random = world.random;
  let reconvergences = 0;
  const faults = params.linkFailures + params.bridgeheadFailures;
  for (let round = 0; round < faults && violations.length === 0; round++) {
    const bridgehead = round >= params.linkFailures;
    const start = world.time + 1;
    // One to three faults at once, so that re-convergences overlap.
    const burst = random.int(1, 3);
    for (let index = 0; index < burst; index++) {
      const when = start + random.int(0, params.delayMs.max * 2);
      if (bridgehead) {
        const site = random.int(0, params.sites - 1);
        world.at(when, () => world.failBridgehead(site, random.int(10, 1_000)));
      } else {
        const edge = random.int(0, world.edges.length - 1);
        world.at(when, () => (world.up[edge] ? world.failLink(edge) : world.recoverLink(edge)));
      }
    }
    settle(`after fault round ${round + 1} at ${start} ms`);
    reconvergences++;
  }
  if (violations.length === 0) {
    for (const [edge] of world.edges.entries()) world.recoverLink(edge);
    settle("after every link recovered");
  }
  return {
    params,
    links: world.edges.length,
    violations,
    coldMessages,
    reconvergeMessages: world.messages - coldMessages,
    reconvergences,
    coldConvergeMs,
    unreachablePairs,
    events: world.events,
  };
}
