import { assert } from "../assert.ts";
import { type Canaries, noCanaries } from "../canaries.ts";
import { type SiteLink, type SiteName, siteKey, type Tier, type TopologyConfig } from "./model.ts";

/**
 * The site graph compiled from a topology: sites numbered in name order (so that every node
 * numbers them alike), and for each pair of sites joined by one or more links the cheapest
 * such link. Adjacency is kept in compact arrays (CSR) so that graphs of tens of thousands of
 * sites stay small.
 */
export interface SiteGraph {
  readonly names: readonly SiteName[];
  readonly tiers: Uint8Array;
  /** Neighbours of site s are targets[offsets[s] .. offsets[s+1]), sorted by site index. */
  readonly offsets: Int32Array;
  readonly targets: Int32Array;
  readonly costs: Int32Array;
  /** The index of the link (in the config's order) that gives each adjacency its cost. */
  readonly links: Int32Array;
}

export const tierCodes: Readonly<Record<Tier, number>> = { hub: 0, branch: 1, peer: 2 };

export function siteIndex(graph: SiteGraph, name: string): number | undefined {
  const key = siteKey(name);
  let low = 0;
  let high = graph.names.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const probe = siteKey(graph.names[middle] as string);
    if (probe === key) return middle;
    if (probe < key) low = middle + 1;
    else high = middle - 1;
  }
  return undefined;
}

/**
 * Compiles the graph. `linkUp` says which links take part (a failed link is left out), so
 * that the same function serves the steady state and every failure case.
 */
export function compileGraph(
  config: Pick<TopologyConfig, "sites" | "links">,
  linkUp: (link: SiteLink, index: number) => boolean = () => true,
  canaries: Canaries = noCanaries,
): SiteGraph {
  const sorted = [...config.sites].sort((a, b) => compareKeys(siteKey(a.name), siteKey(b.name)));
  const names = sorted.map((site) => site.name);
  const tiers = Uint8Array.from(sorted, (site) => tierCodes[site.tier]);
  const indexOf = new Map(names.map((name, index) => [siteKey(name), index]));
  const pairs = new CheapestPairs(names.length, canaries.keepFirstParallelLink === true);
  config.links.forEach((link, linkIndex) => {
    if (!linkUp(link, linkIndex)) return;
    const members = link.sites.map((name) => indexOf.get(siteKey(name)));
    for (let i = 0; i < members.length; i++) {
      for (let j = i + 1; j < members.length; j++) {
        const a = members[i];
        const b = members[j];
        assert(a !== undefined && b !== undefined, "links name known sites (checked by checkTopology)");
        pairs.offer(a, b, link.cost, linkIndex);
      }
    }
  });
  return fromPairs(names, tiers, pairs.best);
}

/** Per unordered pair of sites, the cheapest link offered; a tie keeps the earlier one. */
class CheapestPairs {
  readonly best = new Map<number, { cost: number; link: number }>();

  constructor(
    private readonly count: number,
    private readonly keepFirst = false,
  ) {}

  offer(a: number, b: number, cost: number, link: number): void {
    const key = Math.min(a, b) * this.count + Math.max(a, b);
    const known = this.best.get(key);
    if (known === undefined || (cost < known.cost && !this.keepFirst)) this.best.set(key, { cost, link });
  }
}

function fromPairs(
  names: readonly SiteName[],
  tiers: Uint8Array,
  pairs: ReadonlyMap<number, { cost: number; link: number }>,
): SiteGraph {
  const count = names.length;
  const degree = new Int32Array(count);
  for (const key of pairs.keys()) {
    const a = Math.floor(key / count);
    const b = key % count;
    degree[a] = (degree[a] as number) + 1;
    degree[b] = (degree[b] as number) + 1;
  }
  const offsets = new Int32Array(count + 1);
  for (let site = 0; site < count; site++)
    offsets[site + 1] = (offsets[site] as number) + (degree[site] as number);
  const total = offsets[count] as number;
  const targets = new Int32Array(total);
  const costs = new Int32Array(total);
  const links = new Int32Array(total);
  const fill = offsets.slice(0, count);
  const put = (from: number, to: number, cost: number, link: number): void => {
    const at = fill[from] as number;
    targets[at] = to;
    costs[at] = cost;
    links[at] = link;
    fill[from] = at + 1;
  };
  for (const [key, { cost, link }] of [...pairs.entries()].sort((x, y) => x[0] - y[0])) {
    const a = Math.floor(key / count);
    const b = key % count;
    put(a, b, cost, link);
    put(b, a, cost, link);
  }
  // Pairs come in (a, b) order, so each row is already sorted for a's smaller neighbours; sort rows fully.
  for (let site = 0; site < count; site++)
    sortRow(offsets[site] as number, offsets[site + 1] as number, targets, costs, links);
  return { names, tiers, offsets, targets, costs, links };
}

function sortRow(
  start: number,
  end: number,
  targets: Int32Array,
  costs: Int32Array,
  links: Int32Array,
): void {
  const order = Array.from({ length: end - start }, (_, index) => start + index).sort(
    (x, y) => (targets[x] as number) - (targets[y] as number),
  );
  const t = order.map((index) => targets[index] as number);
  const c = order.map((index) => costs[index] as number);
  const l = order.map((index) => links[index] as number);
  targets.set(t, start);
  costs.set(c, start);
  links.set(l, start);
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The cost of the adjacency from `a` to `b`, or undefined when they are not neighbours. */
export function adjacencyCost(graph: SiteGraph, a: number, b: number): number | undefined {
  for (let at = graph.offsets[a] as number; at < (graph.offsets[a + 1] as number); at++) {
    if (graph.targets[at] === b) return graph.costs[at];
  }
  return undefined;
}

/** Builds a graph directly from numbered sites and weighted pairs (generators and benchmarks). */
export function graphFromEdges(
  names: readonly SiteName[],
  tiers: readonly Tier[],
  edges: ReadonlyArray<readonly [number, number, number]>,
): SiteGraph {
  const count = names.length;
  for (let index = 1; index < count; index++) {
    assert(
      siteKey(names[index - 1] as string) < siteKey(names[index] as string),
      "names are sorted and unique",
    );
  }
  const pairs = new CheapestPairs(count);
  edges.forEach(([a, b, cost], link) => {
    assert(a !== b && a >= 0 && b >= 0 && a < count && b < count, "an edge joins two distinct known sites");
    pairs.offer(a, b, cost, link);
  });
  return fromPairs(
    names,
    Uint8Array.from(tiers, (tier) => tierCodes[tier]),
    pairs.best,
  );
}

/** The same sites with only the edges `keep` accepts (failed links left out). */
export function compileGraphSubset(
  graph: SiteGraph,
  edges: ReadonlyArray<readonly [number, number, number]>,
  keep: (index: number) => boolean,
): SiteGraph {
  const pairs = new CheapestPairs(graph.names.length);
  edges.forEach(([a, b, cost], link) => {
    if (keep(link)) pairs.offer(a, b, cost, link);
  });
  return fromPairs(graph.names, graph.tiers, pairs.best);
}

/**
 * The graph routing runs on: only sites with at least one server (a site without servers has
 * no bridgehead, so it can neither hold routes nor carry changes), and links joining what is
 * left of their sites (a three-site link still joins the two served ones).
 */
export function compileServedGraph(
  config: Pick<TopologyConfig, "sites" | "links" | "servers">,
  canaries: Canaries = noCanaries,
): SiteGraph {
  const served = new Set(config.servers.map((server) => siteKey(server.site)));
  const sites = config.sites.filter((site) => served.has(siteKey(site.name)));
  const links = config.links
    .map((link) => ({ ...link, sites: link.sites.filter((site) => served.has(siteKey(site))) }))
    .filter((link) => link.sites.length >= 2);
  return compileGraph({ sites, links }, () => true, canaries);
}
