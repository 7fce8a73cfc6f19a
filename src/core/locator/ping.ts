import type { NodeId } from "../ids.ts";
import { type Cidr, formatAddress, longestMatch, parseAddress, parseCidr } from "../topology/address.ts";
import { compileGraph, siteIndex } from "../topology/graph.ts";
import { type SiteName, siteKey, type TopologyConfig } from "../topology/model.ts";
import { routesTo } from "../topology/reference.ts";

/**
 * Site discovery ("ping"): which site a client is in (its address, longest-prefix subnet,
 * site), which site the answering node is in, and which sites are next closest by link cost.
 * A client asks once, then resolves the SRV records of its own site and keeps the list of
 * closest sites as the order it fails over in (docs/client.md). Deterministic: the same
 * topology and address give the same answer on every node.
 */
export interface LocateAnswer {
  /** The address the answer is about, in canonical text (an IPv4-mapped IPv6 address as IPv4). */
  readonly address: string;
  /** The client's site; null when no subnet holds its address. */
  readonly clientSite: SiteName | null;
  /** The subnet that placed the client (the longest prefix holding its address). */
  readonly subnet: string | null;
  readonly node: NodeId;
  readonly nodeSite: SiteName;
  /** Whether the answering node is in the client's site (false when the client has no site). */
  readonly inClientSite: boolean;
  /**
   * Other sites by least total link cost from the client's site (from the node's site when the
   * client has none), cheapest first, ties by name; at most `closestSitesMax`. Sites with no
   * route are left out.
   */
  readonly closestSites: readonly ClosestSite[];
}

export interface ClosestSite {
  readonly site: SiteName;
  /** Total link cost of the least-cost path. */
  readonly cost: number;
  /** Servers the topology lists in that site (a site with none is covered by a neighbour's). */
  readonly servers: number;
}

/** Sites listed in an answer: a client fails over through a few sites, never through all. */
export const closestSitesMax = 8;

export interface Answerer {
  readonly node: NodeId;
  readonly site: SiteName;
}

/**
 * The answer for `address` (text as a socket reports it; an invalid one places the client in
 * no site), asked of `answerer`, under `config`.
 */
export function locate(
  config: Pick<TopologyConfig, "sites" | "links" | "subnets" | "servers">,
  address: string,
  answerer: Answerer,
  limit = closestSitesMax,
): LocateAnswer {
  const bytes = clientAddressBytes(address);
  const placed = bytes === null ? undefined : longestMatch(subnetPrefixes(config), bytes);
  const clientSite = placed === undefined ? null : canonicalSite(config, placed.site);
  const from = clientSite ?? answerer.site;
  return {
    address: bytes === null ? address : formatAddress(bytes),
    clientSite,
    subnet: placed?.cidr.text ?? null,
    node: answerer.node,
    nodeSite: answerer.site,
    inClientSite: clientSite !== null && siteKey(clientSite) === siteKey(answerer.site),
    closestSites: closestSites(config, from, Math.max(0, Math.min(limit, closestSitesMax))),
  };
}

/** Address bytes, with an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, dual-stack sockets) as IPv4. */
export function clientAddressBytes(text: string): Uint8Array | null {
  const zone = text.indexOf("%");
  const bytes = parseAddress(zone < 0 ? text : text.slice(0, zone));
  if (bytes === null || bytes.length === 4) return bytes;
  const mapped =
    bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}

interface Prefix {
  readonly cidr: Cidr;
  readonly site: SiteName;
}

function subnetPrefixes(config: Pick<TopologyConfig, "subnets">): Prefix[] {
  const prefixes: Prefix[] = [];
  for (const subnet of config.subnets) {
    const cidr = parseCidr(subnet.cidr);
    if (cidr !== null) prefixes.push({ cidr, site: subnet.site });
  }
  return prefixes;
}

/** The site's name as the site list spells it (subnets may differ in case). */
function canonicalSite(config: Pick<TopologyConfig, "sites">, name: SiteName): SiteName {
  return config.sites.find((site) => siteKey(site.name) === siteKey(name))?.name ?? name;
}

/**
 * Least-cost distances from `from` over every site and link (client traffic is not bound by
 * the replication export policy), cheapest first.
 */
export function closestSites(
  config: Pick<TopologyConfig, "sites" | "links" | "servers">,
  from: string,
  limit = closestSitesMax,
): ClosestSite[] {
  const graph = compileGraph(config);
  const start = siteIndex(graph, from);
  if (start === undefined || limit === 0) return [];
  const routes = routesTo(graph, start, false);
  const servers = new Map<string, number>();
  for (const server of config.servers)
    servers.set(siteKey(server.site), (servers.get(siteKey(server.site)) ?? 0) + 1);
  const found: ClosestSite[] = [];
  for (const [index, site] of graph.names.entries()) {
    const cost = routes.cost[index] as number;
    if (index === start || cost < 0) continue;
    found.push({ site, cost, servers: servers.get(siteKey(site)) ?? 0 });
  }
  found.sort((a, b) => a.cost - b.cost || compareText(siteKey(a.site), siteKey(b.site)));
  return found.slice(0, limit);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
