import type { InvocationId, NodeId } from "../ids.ts";
import { type Connection, connectionsOf } from "../topology/connections.ts";
import { minutesPerWeek, scheduleOpen, siteKey, type TopologyConfig } from "../topology/model.ts";
import { originExclusions, originSitesOf, SiteRoutes } from "../topology/origins.ts";
import type { PartnerStatus } from "./machine.ts";

/** An inbound connection with its origin filter (reverse-path pulling; none inside a site). */
export interface PlannedConnection extends Connection {
  readonly exclude: readonly InvocationId[];
}

/**
 * What one node does with the replicated topology: whom it pulls from (and how, and which
 * origins each partner leaves out), whom it notifies after a commit, and which replicas make
 * up the directory. Every node computes this for itself from its own replica of the config
 * partition; nodes that hold the same topology agree, so a node's outbound list is exactly the
 * set of nodes whose inbound lists name it.
 */
export interface PartnerPlan {
  readonly inbound: readonly PlannedConnection[];
  /** Nodes that pull from this one and want a notification after each commit. */
  readonly outbound: readonly NodeId[];
  /** Every server of the topology (this one included): tombstone purge needs them all. */
  readonly replicaSet: readonly NodeId[];
  /** Why this node has no partner, when it has none. */
  readonly note: string | null;
  /**
   * Served sites this node's site has no route toward (no link up, or the valley-free policy
   * forbids every path): their changes cannot reach it. Reported, never silent.
   */
  readonly unreachableSites: readonly string[];
}

export function nextHopSites(config: TopologyConfig, site: string): Set<string> {
  return new SiteRoutes(config).hopsFrom(site);
}

/**
 * The plan of `self` given the nodes it knows to be stale. Other nodes' inbound lists are
 * computed as they would compute them with no stale partner: this node cannot know what they
 * consider stale, and a notification too many costs one cheap pull.
 */
export function partnerPlan(config: TopologyConfig, self: NodeId, stale: ReadonlySet<NodeId>): PartnerPlan {
  const routes = new SiteRoutes(config);
  const hopCache = new Map<string, Set<string>>();
  const hopsOf = (site: string): Set<string> => {
    const key = siteKey(site);
    let hops = hopCache.get(key);
    if (hops === undefined) {
      hops = routes.hopsFrom(site);
      hopCache.set(key, hops);
    }
    return hops;
  };
  const me = config.servers.find((server) => server.node === self);
  const mine = me === undefined ? null : connectionsOf(config, self, stale, hopsOf(me.site));
  const outbound: NodeId[] = [];
  const none: ReadonlySet<NodeId> = new Set();
  for (const server of config.servers) {
    if (server.node === self || me === undefined) continue;
    const theirs = connectionsOf(config, server.node, none, hopsOf(server.site));
    if (theirs.inbound.some((connection) => connection.node === self && connection.notify)) {
      outbound.push(server.node);
    }
  }
  const origins = originSitesOf(config, self);
  const unreachableSites = me === undefined ? [] : routes.unreachableFrom(me.site);
  const noRoute = new Set(unreachableSites);
  const inbound = (mine?.inbound ?? []).map((connection) => ({
    ...connection,
    exclude:
      me === undefined
        ? []
        : originExclusions(connection, me.site, (origin) => routes.toward(me.site, origin), origins, noRoute),
  }));
  return {
    inbound,
    outbound,
    replicaSet: config.servers.map((server) => server.node),
    note: mine === null ? `${self} is not a server of the topology` : mine.note,
    unreachableSites,
  };
}

/**
 * The partners a node knows to be stale: those whose last `staleAfterFailures` pulls in a row
 * failed. A node learns it from its own pulls only (no one announces a server dead), and the
 * plan it computes with it closes the ring around them and passes bridgehead duty on.
 */
export function stalePartners(
  statuses: readonly Pick<PartnerStatus, "partner" | "consecutiveFailures">[],
  staleAfterFailures: number,
): Set<NodeId> {
  return new Set(
    statuses
      .filter((status) => status.consecutiveFailures >= staleAfterFailures)
      .map((status) => status.partner),
  );
}

const msPerMinute = 60_000;
/** 1970-01-01, where epoch milliseconds start, was a Thursday: three days after a Monday. */
const epochMinuteOfWeek = 3 * 24 * 60;

/** The minute of the week (0 = Monday 00:00 UTC) of a wall-clock time, as link schedules count. */
export function minuteOfWeek(epochMs: number): number {
  const minutes = Math.floor(epochMs / msPerMinute) + epochMinuteOfWeek;
  return ((minutes % minutesPerWeek) + minutesPerWeek) % minutesPerWeek;
}

/**
 * The plan as it applies at `minute`: an inter-site connection whose link schedule is closed
 * is left out, so that nothing is pulled over it; when the window opens the connection comes
 * back as a new partner and is pulled at once. (Intra-site connections have no schedule.)
 */
export function openPlan(plan: PartnerPlan, minute: number): PartnerPlan {
  const inbound = plan.inbound.filter((connection) => scheduleOpen(connection, minute));
  return inbound.length === plan.inbound.length ? plan : { ...plan, inbound };
}

/**
 * How many minutes after `minute` a link schedule of `inbound` next opens or closes (a minute
 * boundary at which `openPlan` may change); null when no connection has a schedule. The node
 * server wakes then, so that a window that opens is pulled at once and one that closes stops
 * the pulls at once, rather than at its next pull or once-a-minute wake, which other events
 * keep putting off.
 */
export function minutesToScheduleChange(inbound: readonly Connection[], minute: number): number | null {
  const now = ((minute % minutesPerWeek) + minutesPerWeek) % minutesPerWeek;
  let next: number | null = null;
  for (const connection of inbound) {
    for (const window of connection.schedule ?? []) {
      for (const boundary of [window.fromMinute, window.toMinute]) {
        // A boundary at this very minute has passed already; it comes back a week later.
        const ahead =
          (((boundary - now) % minutesPerWeek) + minutesPerWeek) % minutesPerWeek || minutesPerWeek;
        if (next === null || ahead < next) next = ahead;
      }
    }
  }
  return next;
}
