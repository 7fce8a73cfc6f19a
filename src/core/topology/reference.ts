import type { SiteGraph } from "./graph.ts";
import { compareRoutes, exportAllowed, originTier } from "./policy.ts";

/**
 * The routes path-vector routing must converge to, computed centrally: Dijkstra's algorithm
 * from the destination outward, where a settled site offers its route to a neighbour only when
 * the export policy allows it. Costs grow strictly along every path, so a site's route is final
 * when it is settled, and every candidate that ties with it comes from a site settled earlier;
 * the result is the protocol's one stable state (see policy.ts). The simulator checks the
 * routers against it; the text view and the benchmark use it too.
 */
export interface DestinationRoutes {
  readonly destination: number;
  /** Per site: total cost, or -1 when the site has no route (the destination itself: 0). */
  readonly cost: Float64Array;
  readonly hops: Int32Array;
  /** Per site: the next site toward the destination; -1 for none (and for the destination). */
  readonly nextHop: Int32Array;
}

/**
 * With `policy` false the export rule is ignored: plain least-cost paths, the bound that
 * policy-compliant routes are measured against.
 */
export function routesTo(graph: SiteGraph, destination: number, policy = true): DestinationRoutes {
  const count = graph.names.length;
  const cost = new Float64Array(count).fill(-1);
  const hops = new Int32Array(count);
  const nextHop = new Int32Array(count).fill(-1);
  const settled = new Uint8Array(count);
  const heap = new RouteHeap(cost, hops, nextHop);
  cost[destination] = 0;
  heap.push(destination);
  const { offsets, targets, costs, tiers } = graph;
  for (let site = heap.pop(); site !== undefined; site = heap.pop()) {
    if (settled[site] === 1) continue;
    settled[site] = 1;
    const next = nextHop[site] as number;
    const learnedFrom = next < 0 ? originTier : (tiers[next] as number);
    for (let at = offsets[site] as number; at < (offsets[site + 1] as number); at++) {
      const neighbour = targets[at] as number;
      if (settled[neighbour] === 1) continue;
      if (policy && !exportAllowed(tiers[site] as number, learnedFrom, tiers[neighbour] as number)) continue;
      const offered = (cost[site] as number) + (costs[at] as number);
      const offeredHops = (hops[site] as number) + 1;
      const current = cost[neighbour] as number;
      if (
        current < 0 ||
        compareRoutes(
          offered,
          offeredHops,
          site,
          current,
          hops[neighbour] as number,
          nextHop[neighbour] as number,
        ) < 0
      ) {
        cost[neighbour] = offered;
        hops[neighbour] = offeredHops;
        nextHop[neighbour] = site;
        heap.push(neighbour);
      }
    }
  }
  return { destination, cost, hops, nextHop };
}

/** The site path from `site` to the destination (site first), or null when unreachable. */
export function pathFrom(routes: DestinationRoutes, site: number): number[] | null {
  if (routes.cost[site] === -1) return null;
  const path = [site];
  for (let at = site; at !== routes.destination; ) {
    at = routes.nextHop[at] as number;
    path.push(at);
  }
  return path;
}

/** A binary heap of sites keyed by their current (cost, hops, next hop); stale entries are skipped by the caller. */
class RouteHeap {
  private readonly items: number[] = [];
  private readonly keys: Array<[number, number, number]> = [];

  constructor(
    private readonly cost: Float64Array,
    private readonly hops: Int32Array,
    private readonly nextHop: Int32Array,
  ) {}

  push(site: number): void {
    this.items.push(site);
    this.keys.push([this.cost[site] as number, this.hops[site] as number, this.nextHop[site] as number]);
    let index = this.items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (this.less(parent, index)) break;
      this.swap(parent, index);
      index = parent;
    }
  }

  pop(): number | undefined {
    const top = this.items[0];
    if (top === undefined) return undefined;
    const lastItem = this.items.pop() as number;
    const lastKey = this.keys.pop() as [number, number, number];
    if (this.items.length > 0) {
      this.items[0] = lastItem;
      this.keys[0] = lastKey;
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        const right = left + 1;
        let smallest = index;
        if (left < this.items.length && this.less(left, smallest)) smallest = left;
        if (right < this.items.length && this.less(right, smallest)) smallest = right;
        if (smallest === index) break;
        this.swap(index, smallest);
        index = smallest;
      }
    }
    return top;
  }

  private less(a: number, b: number): boolean {
    const x = this.keys[a] as [number, number, number];
    const y = this.keys[b] as [number, number, number];
    return compareRoutes(x[0], x[1], x[2], y[0], y[1], y[2]) < 0;
  }

  private swap(a: number, b: number): void {
    [this.items[a], this.items[b]] = [this.items[b] as number, this.items[a] as number];
    [this.keys[a], this.keys[b]] = [
      this.keys[b] as [number, number, number],
      this.keys[a] as [number, number, number],
    ];
  }
}
