import type { SiteGraph } from "../core/topology/graph.ts";
import { routesTo } from "../core/topology/reference.ts";

/**
 * One change's propagation under reverse-path pulling, in simulated time. Site Y pulls the
 * changes of origin X from its next hop toward X, every `interval` of the link between them, at
 * its own phase; so the change reaches Y at Y's first pull after it reached the next hop. The
 * bound is the same schedule along the plain least-cost path (policy ignored) with a whole
 * interval waited at every hop — the longest a change could take along the cheapest path. A
 * route that the valley-free policy bends away from that path can take longer.
 */
export interface PullSchedule {
  /** Pull interval of a link, by its index in the graph (SiteGraph.links), in ms. */
  intervalMs(link: number): number;
  /** Where in its interval a site's pulls fall, in [0, 1). */
  phase(site: number): number;
}

export interface Propagation {
  /** Per site: when the change arrived (ms after it was written at the origin); -1 never. */
  readonly arrivalMs: Float64Array;
  /** Per site: the least-cost-path bound; -1 where no path exists. */
  readonly boundMs: Float64Array;
}

function linkBetween(graph: SiteGraph, from: number, to: number): number {
  for (let at = graph.offsets[from] as number; at < (graph.offsets[from + 1] as number); at++) {
    if (graph.targets[at] === to) return graph.links[at] as number;
  }
  throw new RangeError(`sites ${from} and ${to} are not neighbours`);
}

/** Sites in the order of a route tree: every site after its next hop (costs grow along paths). */
function treeOrder(cost: ArrayLike<number>): number[] {
  const sites: number[] = [];
  for (let site = 0; site < cost.length; site++) if ((cost[site] as number) >= 0) sites.push(site);
  return sites.sort((a, b) => (cost[a] as number) - (cost[b] as number));
}

export function propagation(
  graph: SiteGraph,
  origin: number,
  route: { readonly cost: ArrayLike<number>; readonly nextHop: ArrayLike<number> },
  schedule: PullSchedule,
): Propagation {
  const count = graph.names.length;
  const arrivalMs = new Float64Array(count).fill(-1);
  arrivalMs[origin] = 0;
  for (const site of treeOrder(route.cost)) {
    const next = route.nextHop[site] as number;
    if (site === origin || next < 0) continue;
    const interval = schedule.intervalMs(linkBetween(graph, site, next));
    const offset = schedule.phase(site) * interval;
    const ready = arrivalMs[next] as number;
    arrivalMs[site] = offset + interval * Math.max(0, Math.ceil((ready - offset) / interval));
  }
  const cheapest = routesTo(graph, origin, false);
  const boundMs = new Float64Array(count).fill(-1);
  boundMs[origin] = 0;
  for (const site of treeOrder(cheapest.cost)) {
    const next = cheapest.nextHop[site] as number;
    if (site === origin || next < 0) continue;
    boundMs[site] = (boundMs[next] as number) + schedule.intervalMs(linkBetween(graph, site, next));
  }
  return { arrivalMs, boundMs };
}
