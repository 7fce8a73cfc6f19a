import type { InvocationId } from "../ids.ts";
import type { Connection } from "./connections.ts";
import type { SiteGraph } from "./graph.ts";
import { siteKey, type TopologyConfig } from "./model.ts";
import { routesTo } from "./reference.ts";

/**
 * Reverse-path pulling (docs/topology.md): a site pulls the changes that originated in site X
 * from its next hop toward X, and from no other neighbour. A bridgehead does that by telling
 * each inter-site partner which origins to leave out (ChangeRequest.from.excluded): the
 * invocations of its own site (they arrive inside the site) and those of every site whose next
 * hop is another neighbour. Origins it cannot place — an invocation not yet in the config, a
 * site with no route — are left in, so that a change is never stranded by a filter; the UTD
 * keeps the extra copies cheap.
 */
export interface OriginSite {
  /** The site whose server holds (or held) these invocations. */
  readonly site: string;
  readonly invocations: readonly InvocationId[];
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

/** The origins an inbound connection leaves out; none for intra-site partners. */
export function originExclusions(
  connection: Pick<Connection, "kind" | "site">,
  mySite: string,
  nextHopToward: (originSite: string) => string | undefined,
  origins: readonly OriginSite[],
): InvocationId[] {
  if (connection.kind !== "inter") return [];
  const mine = siteKey(mySite);
  const partnerSite = siteKey(connection.site);
  const excluded: InvocationId[] = [];
  for (const origin of origins) {
    const site = siteKey(origin.site);
    const hop = site === mine ? undefined : nextHopToward(origin.site);
    const elsewhere = site === mine || (hop !== undefined && siteKey(hop) !== partnerSite);
    if (elsewhere) excluded.push(...origin.invocations);
  }
  return excluded.sort();
}

/** The origin sites of the invocations the servers of a topology have published. */
export function originSitesOf(config: Pick<TopologyConfig, "servers">): OriginSite[] {
  return config.servers.map((server) => ({ site: server.site, invocations: server.invocations ?? [] }));
}
