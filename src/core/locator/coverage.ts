import { MinHeap } from "../heap.ts";
import { compileGraph } from "../topology/graph.ts";
import { type SiteName, siteKey, type TopologyConfig } from "../topology/model.ts";

/**
 * Which served site covers each site that has no server (AD's "automatic site coverage"): the
 * served site with the least total link cost from it, ties to the lower site name. The nodes of
 * the covering site register their records under the empty site's names too, so that a client
 * there still finds servers in its own site's records — the closest ones.
 *
 * A site counts as served once one of its servers has registered (`registered`): until its
 * records have replicated here, the covering nodes keep answering for it, so that its names
 * never go empty in between.
 *
 * One multi-source Dijkstra from every served site at once: each site ends labelled with its
 * nearest served site, O(E log V) for the whole topology.
 */
export function coveringSites(
  config: Pick<TopologyConfig, "sites" | "links" | "servers">,
  registered: (node: string) => boolean = () => true,
): Map<string, SiteName> {
  const graph = compileGraph(config);
  const count = graph.names.length;
  const served = new Set(
    config.servers.filter((server) => registered(server.node)).map((server) => siteKey(server.site)),
  );
  const cost = new Float64Array(count).fill(Number.POSITIVE_INFINITY);
  const owner = new Int32Array(count).fill(-1);
  const nameKey = (index: number): string => siteKey(graph.names[index] as string);
  const better = (a: { cost: number; owner: number }, b: { cost: number; owner: number }): number =>
    a.cost - b.cost ||
    (nameKey(a.owner) < nameKey(b.owner) ? -1 : nameKey(a.owner) > nameKey(b.owner) ? 1 : 0);
  const heap = new MinHeap<{ site: number; cost: number; owner: number }>(better);
  for (let site = 0; site < count; site++) {
    if (!served.has(nameKey(site))) continue;
    cost[site] = 0;
    owner[site] = site;
    heap.push({ site, cost: 0, owner: site });
  }
  // Each pop settles or skips one heap entry; entries are pushed only on an improvement.
  for (let item = heap.pop(); item !== undefined; item = heap.pop()) {
    if (item.cost !== cost[item.site] || item.owner !== owner[item.site]) continue;
    for (
      let edge = graph.offsets[item.site] as number;
      edge < (graph.offsets[item.site + 1] as number);
      edge++
    ) {
      const next = graph.targets[edge] as number;
      const candidate = { cost: item.cost + (graph.costs[edge] as number), owner: item.owner };
      const current = { cost: cost[next] as number, owner: owner[next] as number };
      if (current.owner >= 0 && better(candidate, current) >= 0) continue;
      cost[next] = candidate.cost;
      owner[next] = candidate.owner;
      heap.push({ site: next, ...candidate });
    }
  }
  const covering = new Map<string, SiteName>();
  for (let site = 0; site < count; site++) {
    const by = owner[site] as number;
    if (by >= 0 && by !== site) covering.set(nameKey(site), graph.names[by] as SiteName);
  }
  return covering;
}

/** The sites whose names a node of `site` registers under: its own and those it covers (sorted). */
export function sitesServedBy(
  covering: ReadonlyMap<string, SiteName>,
  config: Pick<TopologyConfig, "sites">,
  site: string,
): SiteName[] {
  const mine = siteKey(site);
  const names = config.sites
    .filter(
      (other) =>
        covering.get(siteKey(other.name)) !== undefined &&
        siteKey(covering.get(siteKey(other.name)) as string) === mine,
    )
    .map((other) => other.name);
  return [site as SiteName, ...names.sort((a, b) => (siteKey(a) < siteKey(b) ? -1 : 1))];
}
