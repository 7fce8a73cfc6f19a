import { MinHeap } from "../heap.ts";
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

interface HeapEntry {
  readonly site: number;
  readonly cost: number;
  readonly hops: number;
  readonly next: number;
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
  // Entries carry the key they were pushed with; a stale one (its site since improved or settled) is skipped.
  const heap = new MinHeap<HeapEntry>((a, b) =>
    compareRoutes(a.cost, a.hops, a.next, b.cost, b.hops, b.next),
  );
  cost[destination] = 0;
  heap.push({ site: destination, cost: 0, hops: 0, next: -1 });
  const { offsets, targets, costs, tiers } = graph;
  for (let entry = heap.pop(); entry !== undefined; entry = heap.pop()) {
    const site = entry.site;
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
        heap.push({ site: neighbour, cost: offered, hops: offeredHops, next: site });
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
