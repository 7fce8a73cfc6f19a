import { type Canaries, noCanaries } from "../canaries.ts";
import type { NodeId } from "../ids.ts";
import { compileServedGraph, type SiteGraph, siteIndex, tierCodes } from "./graph.ts";
import { bridgehead, intraSitePartners } from "./intra.ts";
import { type ScheduleWindow, type SiteName, siteKey, type TopologyConfig } from "./model.ts";

/**
 * A node's inbound connections, computed by the node itself from the replicated topology, what
 * it knows to be stale, and its site's routes:
 *
 * - intra: its intra-site partners (ring with shortcuts), pulled every intraSitePullIntervalMs
 *   and notified after each commit;
 * - probe: stale intra-site servers, and stale servers a neighbour site's bridgehead duty passed
 *   over, still tried so that they rejoin when they recover; and for a site with no route to any
 *   other served site, one server of each group of linked sites elsewhere, pulled unfiltered so
 *   that the site learns the topology that gives it a route (isolatedSiteSources); and for a
 *   site with routes that is linked to a site with no server in its view, the same sources,
 *   pulled for the changes of origins it cannot place and of sites outside its group only
 *   (onlyOrigins);
 * - inter: when this node is its site's bridgehead toward a neighbouring site that is the next
 *   hop toward some origin site, that neighbour's bridgehead toward this site — pulled on the
 *   cheapest link's interval and schedule, compressed if the link says so, notified if it says so.
 */
export type ConnectionKind = "intra" | "probe" | "inter";

export interface Connection {
  readonly node: NodeId;
  readonly site: SiteName;
  readonly kind: ConnectionKind;
  readonly pullIntervalMs: number;
  readonly notify: boolean;
  readonly compress: boolean;
  /** Open windows of the link (inter only); null = always open. */
  readonly schedule: readonly ScheduleWindow[] | null;
  /**
   * Pulled with no origin filter: a site with no route pulling from elsewhere to learn the
   * topology (isolatedSiteSources). Every other connection to another site is filtered.
   */
  readonly unfiltered?: true;
  /**
   * Pulled for what this node's routes cannot bring it (isolatedSiteSources, a site whose view
   * of the topology may be incomplete): the changes of origins it cannot place and of these
   * sites, the served sites outside its site's group of linked sites. Every other origin it
   * knows is left out: those of its own group come along its routes, or may not come at all
   * (the valley-free policy).
   */
  readonly onlyOrigins?: { readonly sites: readonly SiteName[] };
}

export interface Connections {
  readonly site: SiteName | null;
  readonly inbound: readonly Connection[];
  /** Why there are none, when there are none for a reason (not in the topology, alone, …). */
  readonly note: string | null;
}

const msPerMinute = 60_000;

export function connectionsOf(
  config: TopologyConfig,
  self: NodeId,
  stale: ReadonlySet<NodeId>,
  nextHopSites: ReadonlySet<string>,
  canaries: Canaries = noCanaries,
): Connections {
  const me = config.servers.find((server) => server.node === self);
  if (me === undefined) return { site: null, inbound: [], note: `${self} is not a server of the topology` };
  const serversOf = (site: string): NodeId[] =>
    config.servers.filter((server) => siteKey(server.site) === siteKey(site)).map((server) => server.node);
  const siteOf = (node: NodeId): SiteName =>
    config.servers.find((server) => server.node === node)?.site as SiteName;
  const inbound: Connection[] = [];
  const local = intraSitePartners(self, serversOf(me.site), stale);
  const intraInterval = config.settings.intraSitePullIntervalMs;
  for (const node of local.partners) {
    inbound.push({
      node,
      site: me.site,
      kind: "intra",
      pullIntervalMs: intraInterval,
      notify: true,
      compress: false,
      schedule: null,
    });
  }
  for (const node of local.probes) {
    inbound.push({
      node,
      site: me.site,
      kind: "probe",
      pullIntervalMs: intraInterval,
      notify: false,
      compress: false,
      schedule: null,
    });
  }
  const graph = compileServedGraph(config, canaries);
  const mine = graph.names.findIndex((name) => siteKey(name) === siteKey(me.site));
  const wanted = new Set([...nextHopSites].map(siteKey));
  for (let at = graph.offsets[mine] as number; mine >= 0 && at < (graph.offsets[mine + 1] as number); at++) {
    const neighbour = graph.names[graph.targets[at] as number] as SiteName;
    if (!wanted.has(siteKey(neighbour))) continue;
    if (bridgehead(serversOf(me.site), siteKey(neighbour), stale) !== self) continue;
    const link = config.links[graph.links[at] as number];
    if (link === undefined) continue;
    const theirs = bridgehead(serversOf(neighbour), siteKey(me.site), stale);
    if (theirs !== undefined) {
      inbound.push({
        node: theirs,
        site: siteOf(theirs),
        kind: "inter",
        pullIntervalMs: link.intervalMinutes * msPerMinute,
        notify: link.notify,
        compress: link.compress,
        schedule: link.schedule,
      });
    }
    // Tried like a stale intra-site server (every intra-site interval), to notice its return.
    const passedOver =
      canaries.dropStaleBridgeheads === true
        ? []
        : staleBridgeheadsBefore(serversOf(neighbour), siteKey(me.site), stale, theirs);
    for (const passed of passedOver) {
      inbound.push({
        node: passed,
        site: neighbour,
        kind: "probe",
        pullIntervalMs: intraInterval,
        notify: false,
        compress: link.compress,
        schedule: null,
      });
    }
  }
  if (wanted.size === 0) {
    if (canaries.dropIsolatedSiteSources !== true)
      inbound.push(...isolatedSiteSources(config, graph, mine, self, stale, "unfiltered"));
  } else if (bordersUnservedSite(config, me.site)) {
    inbound.push(...isolatedSiteSources(config, graph, mine, self, stale, "outside-origins"));
  }
  const note =
    inbound.length === 0 ? `${self} has no partner: it is alone in ${me.site} and no bridgehead duty` : null;
  return { site: me.site, inbound, note };
}

/**
 * The bridgehead purpose of a site pulling from outside its group of linked sites; not a DNS
 * label, so no site name can take it.
 */
const isolatedPurpose = "(no route)";

/**
 * Where a site pulls from when its view of the topology may be incomplete: one server of each
 * group of linked sites elsewhere (its site's bridgehead for that purpose pulls from them every
 * intra-site interval), and the stale ones passed over before each. A node's view of the
 * topology comes only through pulls, and pulls follow the view's routes: without these a site
 * could never learn of the servers that would give it a route.
 *
 * - A site with no route to any other served site pulls unfiltered. One that saw no server yet
 *   in its neighbouring sites (it joined before them, or a link was removed and added again)
 *   pulled from no one across its site's boundary — south, joined while north had no server
 *   yet, stayed without a partner for good, though north pulled its changes.
 * - A site with routes that a link joins to a site with no server in its view (so its view may
 *   lack servers) takes only what its routes cannot bring: the changes of origins it cannot
 *   place and of the served sites outside its group (`onlyOrigins`). Sites linked only to each
 *   other, whose servers joined before those of the sites between them and the rest, route
 *   among themselves and are not routeless, yet never learned of the servers that joined later
 *   elsewhere (the site simulator, --growth any: 14 of 20 seeds). Unfiltered, such a pull made a
 *   branch carry changes of hub origins to a hub (its valley-free check); leaving out every
 *   origin of its own group — those its routes bring, and those the valley-free policy keeps
 *   from it — it takes none of them from outside. Origins it cannot place stay in: a new
 *   server's own writes (its invocation id) bring its server object whole; and the origins of
 *   the other groups, since a server object is made by the node that admitted it, which may be
 *   known and elsewhere (seed 6 of the same run: n6, admitted by the creator in another group,
 *   was known to no one of the rest, and nobody pulled from it).
 *
 * From a hub or peer site, the source in each group is a server of a hub or peer site when the
 * group has one, so that no branch carries changes between two non-branch sites this way either.
 *
 * Once the servers between are in its replica, its routes take over, and with no other group
 * in its view there is no one to pull from. From each group, not from one server anywhere: a
 * server joins through any node, so the news of it may be in any group, and two routeless sites
 * that picked each other pulled from no one else and never learned more (--growth early, seeds
 * 4–6).
 */
function isolatedSiteSources(
  config: TopologyConfig,
  graph: SiteGraph,
  mine: number,
  self: NodeId,
  stale: ReadonlySet<NodeId>,
  filter: "unfiltered" | "outside-origins",
): Connection[] {
  if (mine < 0) return [];
  const groupOf = linkedGroups(graph);
  const group = (site: string): number => groupOf[siteIndex(graph, site) ?? -1] ?? -1;
  const myGroup = groupOf[mine] as number;
  const beyond = config.servers.filter((server) => group(server.site) !== myGroup);
  if (beyond.length === 0) return [];
  const outside = graph.names.filter((_, site) => groupOf[site] !== myGroup);
  const mySite = graph.names[mine] as SiteName;
  const inSite = (site: string): boolean => siteKey(site) === siteKey(mySite);
  const mySiteServers = config.servers.filter((server) => inSite(server.site)).map((server) => server.node);
  if (bridgehead(mySiteServers, isolatedPurpose, stale) !== self) return [];
  const siteOf = (node: NodeId): SiteName => beyond.find((server) => server.node === node)?.site as SiteName;
  const source = (node: NodeId): Connection => ({
    node,
    site: siteOf(node),
    kind: "probe",
    pullIntervalMs: config.settings.intraSitePullIntervalMs,
    notify: false,
    compress: true,
    schedule: null,
    ...(filter === "unfiltered" ? { unfiltered: true } : { onlyOrigins: { sites: outside } }),
  });
  const isBranch = (site: string): boolean => graph.tiers[siteIndex(graph, site) ?? -1] === tierCodes.branch;
  const sources: Connection[] = [];
  for (const target of new Set(beyond.map((server) => group(server.site)))) {
    const members = beyond.filter((server) => group(server.site) === target);
    // A hub or peer asks a hub or peer of the group when it has one: a branch is transit
    // between no two of them, in these pulls either.
    const transit = isBranch(mySite) ? [] : members.filter((server) => !isBranch(server.site));
    const nodes = (transit.length > 0 ? transit : members).map((server) => server.node);
    const chosen = bridgehead(nodes, siteKey(mySite), stale);
    if (chosen !== undefined) sources.push(source(chosen));
    sources.push(...staleBridgeheadsBefore(nodes, siteKey(mySite), stale, chosen).map(source));
  }
  return sources;
}

/** Whether a link joins `site` to a site with no server in the topology (as this node holds it). */
function bordersUnservedSite(config: TopologyConfig, site: SiteName): boolean {
  const served = new Set(config.servers.map((server) => siteKey(server.site)));
  return config.links.some(
    (link) =>
      link.sites.some((member) => siteKey(member) === siteKey(site)) &&
      link.sites.some((member) => !served.has(siteKey(member))),
  );
}

/** For each site of the graph, the number of its group of linked sites (connected component). */
function linkedGroups(graph: SiteGraph): Int32Array {
  const groups = new Int32Array(graph.names.length).fill(-1);
  let count = 0;
  for (let start = 0; start < graph.names.length; start++) {
    if (groups[start] !== -1) continue;
    const pending = [start];
    groups[start] = count;
    for (let site = pending.pop(); site !== undefined; site = pending.pop()) {
      for (let at = graph.offsets[site] as number; at < (graph.offsets[site + 1] as number); at++) {
        const next = graph.targets[at] as number;
        if (groups[next] !== -1) continue;
        groups[next] = count;
        pending.push(next);
      }
    }
    count++;
  }
  return groups;
}

/**
 * The stale servers of a neighbouring site that would be its bridgehead toward us before
 * `chosen` (every server of the site when all are stale: `chosen` undefined), in order. This
 * node keeps probing them: a server it stops pulling from loses the failures that made it
 * stale (the node's stale set is read off its partners), so dropping it would make it fresh
 * again at the next plan, chosen again, and failing again — the plan flipping every few
 * seconds, with nobody carrying the neighbour's changes while another server could; and once
 * it recovers, a probe's success makes it the bridgehead again.
 */
function staleBridgeheadsBefore(
  servers: readonly NodeId[],
  key: string,
  stale: ReadonlySet<NodeId>,
  chosen: NodeId | undefined,
): NodeId[] {
  const passed: NodeId[] = [];
  const skipped = new Set<NodeId>();
  for (let preferred = bridgehead(servers, key, skipped); preferred !== undefined && preferred !== chosen; ) {
    if (!stale.has(preferred)) break;
    passed.push(preferred);
    skipped.add(preferred);
    preferred = bridgehead(servers, key, skipped);
  }
  return passed;
}
