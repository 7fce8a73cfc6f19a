import { type Canaries, noCanaries } from "../canaries.ts";
import type { InvocationId, NodeId } from "../ids.ts";
import type { Connection } from "./connections.ts";
import { compileServedGraph, type SiteGraph, siteIndex } from "./graph.ts";
import { siteKey, type TopologyConfig } from "./model.ts";
import { routesTo } from "./reference.ts";

/**
 * Reverse-path pulling (docs/topology.md): a site pulls the changes that originated in site X
 * from its next hop toward X, and from no other neighbour. A bridgehead does that by telling
 * each inter-site partner which origins to leave out (ChangeRequest.from.excluded): the
 * invocations of its own site (they arrive inside the site), those of every site whose next
 * hop is another neighbour, and those of every site it has no route toward (`noRoute`: the
 * valley-free policy, or no link up): pulled through a neighbour anyway, they would make that
 * neighbour the transit the policy forbids — a branch between two hubs. Origins it cannot place
 * — an invocation not yet in the config, a site outside the routes — are left in, so that a
 * change is never stranded by a filter; the UTD keeps the extra copies cheap. So are the node's
 * own invocations (`own`): see OriginSite.
 */
export interface OriginSite {
  /** The site whose server holds (or held) these invocations. */
  readonly site: string;
  readonly invocations: readonly InvocationId[];
  /**
   * The pulling node's own invocations: never left out. Its current one costs nothing (its
   * UTD covers every change of it, so no source sends one). One its database had before a
   * restore is retired: the backup lacks that instance's newest changes, no server of its site
   * makes them any more, and they may be held only beyond its site, by the sites it passed them
   * to. Left out like the rest of its site's origins, they never came back to a server restored
   * alone in its site (the site simulator's restores: seed 3 of up to 40 sites, n1 alone in s01).
   */
  readonly own?: true;
}

/** Next hops of every served site toward every other: `hop(from, to)`, -1 for none. */
export interface NextHopTable {
  readonly graph: SiteGraph;
  hop(from: number, to: number): number;
}

/** One route computation per destination, the protocol's stable state (reference.ts). */
export function nextHopTable(graph: SiteGraph): NextHopTable {
  const count = graph.names.length;
  // toward[to * count + from]: the table is count² entries, fine for the sites one node serves
  // a directory for (10,000 sites would be 400 MB: a node there asks its own router instead).
  const toward = new Int32Array(count * count).fill(-1);
  for (let to = 0; to < count; to++) toward.set(routesTo(graph, to).nextHop, to * count);
  return { graph, hop: (from, to) => (from === to ? -1 : (toward[to * count + from] as number)) };
}

/**
 * The origins an inbound connection leaves out: none inside the site, none for an unfiltered
 * one (isolatedSiteSources), every origin it knows outside `onlyOrigins.sites` for a pull from
 * outside its group (isolatedSiteSources: it takes the origins it cannot place and those of the
 * other groups, none its routes bring or the valley-free policy forbids); a probe of a
 * neighbour's stale bridgehead is filtered like the connection it stands in for, since the pull
 * that finds it back brings pages too (unfiltered, it made a branch transit between two hubs in
 * the site simulator).
 */
export function originExclusions(
  connection: Pick<Connection, "kind" | "site" | "unfiltered" | "onlyOrigins">,
  mySite: string,
  nextHopToward: (originSite: string) => string | undefined,
  origins: readonly OriginSite[],
  noRoute: ReadonlySet<string> = new Set(),
  canaries: Canaries = noCanaries,
): InvocationId[] {
  const mine = siteKey(mySite);
  const partnerSite = siteKey(connection.site);
  if (connection.kind === "intra" || connection.unfiltered === true || partnerSite === mine) return [];
  const only = connection.onlyOrigins;
  const kept = (origin: OriginSite): boolean => origin.own === true && canaries.leaveOutOwnOrigins !== true;
  if (only !== undefined) {
    const taken = new Set(only.sites.map(siteKey));
    return origins
      .filter((origin) => !taken.has(siteKey(origin.site)) && !kept(origin))
      .flatMap((origin) => origin.invocations)
      .sort();
  }
  const unroutable = new Set(canaries.keepUnroutableOrigins === true ? [] : [...noRoute].map(siteKey));
  const excluded: InvocationId[] = [];
  for (const origin of origins) {
    if (kept(origin)) continue;
    const site = siteKey(origin.site);
    const hop = site === mine ? undefined : nextHopToward(origin.site);
    const elsewhere =
      site === mine || unroutable.has(site) || (hop !== undefined && siteKey(hop) !== partnerSite);
    if (elsewhere) excluded.push(...origin.invocations);
  }
  return excluded.sort();
}

/**
 * The origin sites of the invocations the servers of a topology have published; those of
 * `self`, the node that pulls, marked as its own.
 */
export function originSitesOf(config: Pick<TopologyConfig, "servers">, self?: NodeId): OriginSite[] {
  return config.servers.map((server) => {
    const origin = { site: server.site, invocations: server.invocations ?? [] };
    return server.node === self ? { ...origin, own: true as const } : origin;
  });
}

/**
 * Next hops on the routes the path-vector protocol converges to. Every node holds the same
 * topology, so it computes those routes itself (the reference computation), which is what the
 * protocol's stable state is: one route computation per served site, shared by every question.
 */
export class SiteRoutes {
  private readonly table: NextHopTable;

  /** `canaries` for the simulator only (a planted defect of the graph's compilation). */
  constructor(config: Pick<TopologyConfig, "sites" | "links" | "servers">, canaries: Canaries = noCanaries) {
    this.table = nextHopTable(compileServedGraph(config, canaries));
  }

  /** The next hop from `site` toward `destination`, if there is a route. */
  toward(site: string, destination: string): string | undefined {
    const graph = this.table.graph;
    const from = siteIndex(graph, site);
    const to = siteIndex(graph, destination);
    if (from === undefined || to === undefined) return undefined;
    const hop = this.table.hop(from, to);
    return hop < 0 ? undefined : graph.names[hop];
  }

  /** Served sites other than `site` that it has no route toward. */
  unreachableFrom(site: string): string[] {
    if (siteIndex(this.table.graph, site) === undefined) return [];
    return this.table.graph.names.filter(
      (destination) => siteKey(destination) !== siteKey(site) && this.toward(site, destination) === undefined,
    );
  }

  /** The sites that are a next hop from `site` toward some other served site. */
  hopsFrom(site: string): Set<string> {
    const hops = new Set<string>();
    for (const destination of this.table.graph.names) {
      const hop = this.toward(site, destination);
      if (hop !== undefined) hops.add(siteKey(hop));
    }
    return hops;
  }
}
