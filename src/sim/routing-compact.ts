import { assert } from "../core/assert.ts";
import type { SiteGraph } from "../core/topology/graph.ts";
import { compareRoutes, exportAllowed, originTier } from "../core/topology/policy.ts";
import { routesTo } from "../core/topology/reference.ts";
import type { SeededRandom } from "./ports.ts";
import { type PullSchedule, propagation } from "./propagation.ts";

/**
 * The path-vector protocol of core/topology/router.ts, simulated for every site of a large
 * graph in one process with compact tables. Routing decisions for one destination never depend
 * on another destination's, so destinations are simulated one after the other, each from a
 * cold start with every session up, reusing the same typed arrays; a site's table for the
 * destination is checked against the reference and then dropped. Memory is O(sites + links),
 * time O(sites × links × log).
 *
 * The decisions are the core's own (policy.ts: `compareRoutes`, `exportAllowed`), the sessions
 * ordered with random delays, updates batched per session for an advertisement interval as in
 * routing.ts. Paths are interned in a trie (site, tail) whose nodes carry jump pointers, so
 * "does this path hold site s" takes O(log length) steps: only s itself creates trie nodes
 * headed by s, and there are few per destination. A test checks that this simulation and the
 * SiteRouter one converge to the same (reference) tables.
 */
export interface CompactOptions {
  readonly delayMs: { readonly min: number; readonly max: number };
  readonly advertisementIntervalMs: number;
  /** Check each destination's tables against the reference (Dijkstra); false skips it. */
  readonly verify: (destination: number) => boolean;
  /** Pull intervals and phases: for each verified destination, one change from it is followed. */
  readonly schedule?: PullSchedule;
}

export interface CompactResult {
  readonly destinations: number;
  readonly updates: number;
  /** The longest cold-start convergence of one destination, in simulated milliseconds. */
  readonly convergeSimulatedMsMax: number;
  readonly verifiedDestinations: number;
  readonly mismatches: string[];
  readonly unreachablePairs: number;
  /**
   * Over the verified destinations: route cost over the plain least-cost path cost (policy
   * ignored), for the pairs that have a route: 1 where the valley-free policy forces no detour.
   */
  readonly stretchMax: number;
  readonly stretchMean: number;
  /** With a schedule: one change from each verified destination, followed to every site. */
  readonly propagation: PropagationFigures | null;
}

export interface PropagationFigures {
  /** The latest arrival of any change at any site, and the largest bound, in simulated ms. */
  readonly arrivalMsMax: number;
  readonly boundMsMax: number;
  /** Mean over (origin, site) pairs of arrival / least-cost-path bound. */
  readonly ratioMean: number;
  /** Pairs whose arrival came later than their bound (policy detours), and all pairs. */
  readonly overBound: number;
  readonly pairs: number;
}

const kindAdvertise = 1;
const kindWithdraw = 2;
const eventDeliver = 0;
const eventFlush = 1;

/** Growable Int32 storage. */
class IntList {
  data: Int32Array;
  length = 0;
  constructor(capacity: number) {
    this.data = new Int32Array(Math.max(16, capacity));
  }
  ensure(size: number): void {
    if (size <= this.data.length) return;
    const next = new Int32Array(Math.max(size, this.data.length * 2));
    next.set(this.data);
    this.data = next;
  }
}

/** Paths from a site to the destination, as a trie: node = (head site, tail node); -1 ends. */
class PathTrie {
  head = new IntList(1024);
  tail = new IntList(1024);
  depth = new IntList(1024);
  jump = new IntList(1024);
  /** Per node, the next node created by the same site (its own-node list). */
  nextOwn = new IntList(1024);
  count = 0;
  /** Interning: equal paths are one node, so "same path" is "same node". */
  private readonly known = new Map<number, number>();

  constructor(private readonly sites: number) {}

  reset(): void {
    this.count = 0;
    this.known.clear();
  }

  add(site: number, tail: number, ownHead: Int32Array): number {
    const key = (tail + 1) * this.sites + site;
    const existing = this.known.get(key);
    if (existing !== undefined) return existing;
    const node = this.count++;
    this.known.set(key, node);
    for (const list of [this.head, this.tail, this.depth, this.jump, this.nextOwn]) list.ensure(this.count);
    this.head.data[node] = site;
    this.tail.data[node] = tail;
    const depth = tail < 0 ? 1 : (this.depth.data[tail] as number) + 1;
    this.depth.data[node] = depth;
    // Myers' skew-binary jump pointers: ancestor-at-depth in O(log depth) with one pointer.
    let jump = tail;
    if (tail >= 0) {
      const tailJump = this.jump.data[tail] as number;
      if (
        tailJump >= 0 &&
        (this.depth.data[tail] as number) - (this.depth.data[tailJump] as number) ===
          (this.depth.data[tailJump] as number) -
            ((this.jump.data[tailJump] as number) < 0
              ? 0
              : (this.depth.data[this.jump.data[tailJump] as number] as number))
      ) {
        jump = this.jump.data[tailJump] as number;
      }
    }
    this.jump.data[node] = jump;
    this.nextOwn.data[node] = ownHead[site] as number;
    ownHead[site] = node;
    return node;
  }

  /** The ancestor of `node` (itself included) at `depth`, or -1. */
  ancestorAt(node: number, depth: number): number {
    let at = node;
    while (at >= 0 && (this.depth.data[at] as number) > depth) {
      const jump = this.jump.data[at] as number;
      at = jump >= 0 && (this.depth.data[jump] as number) >= depth ? jump : (this.tail.data[at] as number);
    }
    return at;
  }

  /** Whether the path starting at `node` holds `site`. */
  holds(node: number, site: number, ownHead: Int32Array): boolean {
    if (node < 0) return false;
    const depth = this.depth.data[node] as number;
    for (let own = ownHead[site] as number; own >= 0; own = this.nextOwn.data[own] as number) {
      const ownDepth = this.depth.data[own] as number;
      if (ownDepth <= depth && this.ancestorAt(node, ownDepth) === own) return true;
    }
    return false;
  }
}

/** A min-heap of events on parallel typed arrays: (time, sequence) order. */
class EventHeap {
  private times = new Float64Array(1024);
  private sequences = new Float64Array(1024);
  private ids = new Int32Array(1024);
  size = 0;
  private sequence = 0;

  clear(): void {
    this.size = 0;
  }

  push(time: number, id: number): void {
    if (this.size === this.times.length) {
      const grow = <T extends Float64Array | Int32Array>(array: T): T => {
        const next = new (array.constructor as new (length: number) => T)(array.length * 2);
        next.set(array);
        return next;
      };
      this.times = grow(this.times);
      this.sequences = grow(this.sequences);
      this.ids = grow(this.ids);
    }
    let index = this.size++;
    const sequence = this.sequence++;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.before(time, sequence, parent)) break;
      this.move(parent, index);
      index = parent;
    }
    this.times[index] = time;
    this.sequences[index] = sequence;
    this.ids[index] = id;
  }

  topTime(): number {
    return this.times[0] as number;
  }

  /** Removes the first event and returns its id. */
  pop(): number {
    const top = this.ids[0] as number;
    const last = --this.size;
    const time = this.times[last] as number;
    const sequence = this.sequences[last] as number;
    const id = this.ids[last] as number;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= last) break;
      const right = left + 1;
      const child = right < last && this.lessAt(right, left) ? right : left;
      if (!this.lessThan(child, time, sequence)) break;
      this.move(child, index);
      index = child;
    }
    this.times[index] = time;
    this.sequences[index] = sequence;
    this.ids[index] = id;
    return top;
  }

  private before(time: number, sequence: number, at: number): boolean {
    const other = this.times[at] as number;
    return time < other || (time === other && sequence < (this.sequences[at] as number));
  }

  private lessAt(a: number, b: number): boolean {
    return this.before(this.times[a] as number, this.sequences[a] as number, b);
  }

  private lessThan(at: number, time: number, sequence: number): boolean {
    const t = this.times[at] as number;
    return t < time || (t === time && (this.sequences[at] as number) < sequence);
  }

  private move(from: number, to: number): void {
    this.times[to] = this.times[from] as number;
    this.sequences[to] = this.sequences[from] as number;
    this.ids[to] = this.ids[from] as number;
  }
}

export class CompactRouting {
  private readonly count: number;
  private readonly adjacencies: number;
  /** For each directed adjacency s→t, the index of t→s, and the owning site s. */
  private readonly reverse: Int32Array;
  private readonly owner: Int32Array;
  // per site, for the current destination
  private readonly bestCost: Int32Array;
  private readonly bestNext: Int32Array;
  private readonly bestPath: Int32Array;
  /** The adjacency the best route was learned over (-1: none, or the destination itself). */
  private readonly bestAdjacency: Int32Array;
  private readonly ownHead: Int32Array;
  // per directed adjacency s→t: what s learned from t, what s advertised to t, what waits
  private readonly inCost: Int32Array;
  private readonly inPath: Int32Array;
  private readonly advertised: Uint8Array;
  private readonly pendingKind: Uint8Array;
  private readonly pendingPath: Int32Array;
  private readonly pendingCost: Int32Array;
  private readonly flushScheduled: Uint8Array;
  private readonly lastArrival: Float64Array;
  // messages in flight: event id → (adjacency, kind, path, cost) or a flush of an adjacency
  private readonly eventType = new IntList(1024);
  private readonly eventAdjacency = new IntList(1024);
  private readonly eventKind = new IntList(1024);
  private readonly eventPath = new IntList(1024);
  private readonly eventCost = new IntList(1024);
  private readonly freeEvents = new IntList(1024);
  private eventCount = 0;
  private readonly trie: PathTrie;
  private readonly heap = new EventHeap();
  private now = 0;
  updates = 0;

  constructor(
    private readonly graph: SiteGraph,
    private readonly random: SeededRandom,
    private readonly options: CompactOptions,
  ) {
    this.count = graph.names.length;
    this.trie = new PathTrie(this.count);
    this.adjacencies = graph.offsets[this.count] as number;
    this.reverse = new Int32Array(this.adjacencies);
    this.owner = new Int32Array(this.adjacencies);
    for (let site = 0; site < this.count; site++) {
      for (let at = graph.offsets[site] as number; at < (graph.offsets[site + 1] as number); at++) {
        this.owner[at] = site;
        const target = graph.targets[at] as number;
        let back = -1;
        for (
          let other = graph.offsets[target] as number;
          other < (graph.offsets[target + 1] as number);
          other++
        ) {
          if (graph.targets[other] === site) back = other;
        }
        assert(back >= 0, "adjacency is symmetric");
        this.reverse[at] = back;
      }
    }
    const perSite = () => new Int32Array(this.count);
    const perAdjacency = () => new Int32Array(this.adjacencies);
    this.bestCost = perSite();
    this.bestNext = perSite();
    this.bestPath = perSite();
    this.bestAdjacency = perSite();
    this.ownHead = perSite();
    this.inCost = perAdjacency();
    this.inPath = perAdjacency();
    this.advertised = new Uint8Array(this.adjacencies);
    this.pendingKind = new Uint8Array(this.adjacencies);
    this.pendingPath = perAdjacency();
    this.pendingCost = perAdjacency();
    this.flushScheduled = new Uint8Array(this.adjacencies);
    this.lastArrival = new Float64Array(this.adjacencies);
  }

  /** Simulates every destination in turn; returns the totals. */
  run(): CompactResult {
    let convergeMax = 0;
    let verified = 0;
    let unreachable = 0;
    const mismatches: string[] = [];
    const stretch = { max: 1, sum: 0, pairs: 0 };
    const spread = { arrivalMsMax: 0, boundMsMax: 0, ratioSum: 0, overBound: 0, pairs: 0 };
    for (let destination = 0; destination < this.count; destination++) {
      convergeMax = Math.max(convergeMax, this.simulate(destination));
      for (let site = 0; site < this.count; site++)
        if (site !== destination && this.bestCost[site] === -1) unreachable++;
      if (this.options.verify(destination)) {
        verified++;
        if (mismatches.length < 20) this.verify(destination, mismatches);
        this.measureStretch(destination, stretch);
        if (this.options.schedule !== undefined)
          this.measurePropagation(destination, this.options.schedule, spread);
      }
    }
    return {
      destinations: this.count,
      updates: this.updates,
      convergeSimulatedMsMax: convergeMax,
      verifiedDestinations: verified,
      mismatches,
      unreachablePairs: unreachable,
      stretchMax: stretch.max,
      stretchMean: stretch.pairs === 0 ? 1 : stretch.sum / stretch.pairs,
      propagation:
        this.options.schedule === undefined
          ? null
          : {
              arrivalMsMax: spread.arrivalMsMax,
              boundMsMax: spread.boundMsMax,
              ratioMean: spread.pairs === 0 ? 1 : spread.ratioSum / spread.pairs,
              overBound: spread.overBound,
              pairs: spread.pairs,
            },
    };
  }

  /** One destination from a cold start; returns the simulated time of its last event. */
  simulate(destination: number): number {
    this.bestCost.fill(-1);
    this.bestNext.fill(-1);
    this.bestPath.fill(-1);
    this.bestAdjacency.fill(-1);
    this.ownHead.fill(-1);
    this.inCost.fill(-1);
    this.advertised.fill(0);
    this.pendingKind.fill(0);
    this.flushScheduled.fill(0);
    this.lastArrival.fill(0);
    this.trie.reset();
    this.heap.clear();
    this.eventCount = 0;
    this.freeEvents.length = 0;
    this.now = 0;
    this.bestCost[destination] = 0;
    this.bestPath[destination] = this.trie.add(destination, -1, this.ownHead);
    this.offerAll(destination);
    let last = 0;
    while (this.heap.size > 0) {
      this.now = this.heap.topTime();
      last = this.now;
      const id = this.heap.pop();
      const adjacency = this.eventAdjacency.data[id] as number;
      if (this.eventType.data[id] === eventFlush) this.flush(adjacency);
      else {
        this.receive(
          adjacency,
          this.eventKind.data[id] as number,
          this.eventPath.data[id] as number,
          this.eventCost.data[id] as number,
          destination,
        );
      }
      this.release(id);
    }
    return last;
  }

  private allocate(type: number, adjacency: number): number {
    let id: number;
    if (this.freeEvents.length > 0) id = this.freeEvents.data[--this.freeEvents.length] as number;
    else {
      id = this.eventCount++;
      for (const list of [
        this.eventType,
        this.eventAdjacency,
        this.eventKind,
        this.eventPath,
        this.eventCost,
      ]) {
        list.ensure(this.eventCount);
      }
    }
    this.eventType.data[id] = type;
    this.eventAdjacency.data[id] = adjacency;
    return id;
  }

  private release(id: number): void {
    this.freeEvents.ensure(this.freeEvents.length + 1);
    this.freeEvents.data[this.freeEvents.length++] = id;
  }

  private offerAll(site: number): void {
    for (let at = this.graph.offsets[site] as number; at < (this.graph.offsets[site + 1] as number); at++) {
      this.offer(site, at);
    }
  }

  /** As SiteRouter.offer: advertise the best route over adjacency `at`, or withdraw it. */
  private offer(site: number, at: number): void {
    const neighbour = this.graph.targets[at] as number;
    const tiers = this.graph.tiers;
    const path = this.bestPath[site] as number;
    const next = this.bestNext[site] as number;
    const learnedFrom = next < 0 ? originTier : (tiers[next] as number);
    const allowed =
      path >= 0 &&
      !this.trie.holds(path, neighbour, this.ownHead) &&
      exportAllowed(tiers[site] as number, learnedFrom, tiers[neighbour] as number);
    if (allowed) {
      this.advertised[at] = 1;
      this.queue(at, kindAdvertise, path, this.bestCost[site] as number);
    } else if (this.advertised[at] === 1) {
      this.advertised[at] = 0;
      this.queue(at, kindWithdraw, -1, 0);
    }
  }

  private queue(at: number, kind: number, path: number, cost: number): void {
    if (this.options.advertisementIntervalMs === 0) {
      this.transmit(at, kind, path, cost);
      return;
    }
    this.pendingKind[at] = kind;
    this.pendingPath[at] = path;
    this.pendingCost[at] = cost;
    if (this.flushScheduled[at] === 0) {
      this.flushScheduled[at] = 1;
      this.heap.push(this.now + this.options.advertisementIntervalMs, this.allocate(eventFlush, at));
    }
  }

  private flush(at: number): void {
    this.flushScheduled[at] = 0;
    const kind = this.pendingKind[at] as number;
    if (kind === 0) return;
    this.pendingKind[at] = 0;
    this.transmit(at, kind, this.pendingPath[at] as number, this.pendingCost[at] as number);
  }

  private transmit(at: number, kind: number, path: number, cost: number): void {
    const { min, max } = this.options.delayMs;
    const arrival = Math.max(this.now + this.random.int(min, max), this.lastArrival[at] as number);
    this.lastArrival[at] = arrival;
    this.updates++;
    const id = this.allocate(eventDeliver, at);
    this.eventKind.data[id] = kind;
    this.eventPath.data[id] = path;
    this.eventCost.data[id] = cost;
    this.heap.push(arrival, id);
  }

  /** A message sent over adjacency `at` (sender → receiver) arrives. */
  private receive(at: number, kind: number, path: number, cost: number, destination: number): void {
    const receiver = this.graph.targets[at] as number;
    const back = this.reverse[at] as number; // receiver → sender: where the receiver keeps it
    if (receiver === destination) return;
    if (kind === kindWithdraw || this.trie.holds(path, receiver, this.ownHead)) {
      if (this.inCost[back] === -1) return;
      this.inCost[back] = -1;
    } else {
      this.inCost[back] = cost + (this.graph.costs[back] as number);
      this.inPath[back] = path;
    }
    // Only a change of the chosen route needs a rescan; any other can only win or change nothing.
    const best = this.bestAdjacency[receiver] as number;
    if (back === best) this.decide(receiver);
    else if (this.inCost[back] !== -1 && (best < 0 || this.better(back, best))) this.adopt(receiver, back);
  }

  private better(a: number, b: number): boolean {
    return (
      compareRoutes(
        this.inCost[a] as number,
        this.trie.depth.data[this.inPath[a] as number] as number,
        this.graph.targets[a] as number,
        this.inCost[b] as number,
        this.trie.depth.data[this.inPath[b] as number] as number,
        this.graph.targets[b] as number,
      ) < 0
    );
  }

  private decide(site: number): void {
    let chosen = -1;
    for (let at = this.graph.offsets[site] as number; at < (this.graph.offsets[site + 1] as number); at++) {
      const cost = this.inCost[at] as number;
      if (cost < 0) continue;
      if (chosen < 0 || this.better(at, chosen)) chosen = at;
    }
    if (chosen >= 0) {
      this.adopt(site, chosen);
      return;
    }
    if (this.bestCost[site] === -1) return;
    this.bestCost[site] = -1;
    this.bestNext[site] = -1;
    this.bestPath[site] = -1;
    this.bestAdjacency[site] = -1;
    this.offerAll(site);
  }

  /** Makes the route learned over `chosen` the site's best; tells the neighbours if it changed. */
  private adopt(site: number, chosen: number): void {
    const cost = this.inCost[chosen] as number;
    const tail = this.inPath[chosen] as number;
    const current = this.bestPath[site] as number;
    this.bestAdjacency[site] = chosen;
    if (current >= 0 && this.bestCost[site] === cost && this.trie.tail.data[current] === tail) return;
    this.bestCost[site] = cost;
    this.bestNext[site] = this.graph.targets[chosen] as number;
    this.bestPath[site] = this.trie.add(site, tail, this.ownHead);
    this.offerAll(site);
  }

  private measureStretch(destination: number, stretch: { max: number; sum: number; pairs: number }): void {
    const bound = routesTo(this.graph, destination, false);
    for (let site = 0; site < this.count; site++) {
      const cost = this.bestCost[site] as number;
      if (site === destination || cost <= 0) continue;
      const ratio = cost / (bound.cost[site] as number);
      stretch.max = Math.max(stretch.max, ratio);
      stretch.sum += ratio;
      stretch.pairs++;
    }
  }

  private measurePropagation(
    origin: number,
    schedule: PullSchedule,
    spread: { arrivalMsMax: number; boundMsMax: number; ratioSum: number; overBound: number; pairs: number },
  ): void {
    const { arrivalMs, boundMs } = propagation(
      this.graph,
      origin,
      { cost: this.bestCost, nextHop: this.bestNext },
      schedule,
    );
    for (let site = 0; site < this.count; site++) {
      const arrival = arrivalMs[site] as number;
      const bound = boundMs[site] as number;
      if (site === origin || arrival < 0 || bound <= 0) continue;
      spread.arrivalMsMax = Math.max(spread.arrivalMsMax, arrival);
      spread.boundMsMax = Math.max(spread.boundMsMax, bound);
      spread.ratioSum += arrival / bound;
      if (arrival > bound) spread.overBound++;
      spread.pairs++;
    }
  }

  private verify(destination: number, mismatches: string[]): void {
    const reference = routesTo(this.graph, destination);
    for (let site = 0; site < this.count && mismatches.length < 20; site++) {
      if (site === destination) continue;
      const expected = reference.cost[site] as number;
      const cost = this.bestCost[site] as number;
      if (cost !== expected || (expected >= 0 && this.bestNext[site] !== reference.nextHop[site])) {
        mismatches.push(
          `s${site} → s${destination}: cost ${cost} via s${this.bestNext[site]}, expected ${expected} via s${reference.nextHop[site]}`,
        );
      }
    }
  }
}
