import type { Canaries } from "../core/canaries.ts";
import { configPartition } from "../core/directory/partition.ts";
import type { InvocationId, NodeId, Usn } from "../core/ids.ts";
import { type NodeConfig, nodeConfigDefaults } from "../core/node/machine.ts";
import { stalePartners } from "../core/node/partners.ts";
import type { WriteRequest } from "../core/replica/originating.ts";
import type { ChangePage } from "../core/replication/page.ts";
import { utdCovers } from "../core/replication/utd.ts";
import { unwrap } from "../core/result.ts";
import { type Connections, connectionsOf } from "../core/topology/connections.ts";
import {
  type EntryWrite,
  invocationWrite,
  linkDn,
  linkWrite,
  readTopology,
  topologyWrites,
} from "../core/topology/entries.ts";
import { graphDiameter } from "../core/topology/intra.ts";
import {
  type ServerConfig,
  type SiteLink,
  type SiteName,
  settingsDefaults,
  siteKey,
  type Tier,
  type TopologyConfig,
  tiers,
} from "../core/topology/model.ts";
import { type OriginSite, originExclusions, SiteRoutes } from "../core/topology/origins.ts";
import { holds } from "./faults.ts";
import { type GrowthOrder, joinWaves } from "./growth.ts";
import { Invariants } from "./invariants.ts";
import {
  type ConfigEffect,
  type ConfigWrite,
  LearnedTopology,
  type LinkVersion,
  linksAfter,
  noteLinkWrite,
} from "./learned-topology.ts";
import type { SimNode } from "./node.ts";
import { scenarioParams } from "./params.ts";
import { SeededRandom } from "./ports.ts";
import { type GraphShape, generateSiteGraph, siteNames } from "./site-graphs.ts";
import {
  deriveSiteOperations,
  describeLinkOperation,
  type LinkOperation,
  operationsSalt,
  planLinkOperations,
  type SiteOperations,
} from "./site-operations.ts";
import { dataPartition, recordWrite } from "./workload.ts";
import { type Violation, World } from "./world.ts";

/**
 * Replication along the topology (issue 4): every node takes its partners from the real
 * topology code (connectionsOf, bridgeheads) and its origin filters from the routes
 * (reverse-path pulling), over a random site graph of tens to hundreds of sites with one to
 * three servers each. Three phases:
 *
 * 1. steady: changes written in batches on random nodes; each must reach every node whose site
 *    has a route to the origin, and cross site boundaries at most (served sites − 1) times;
 * 2. faults: links fail and recover, bridgeheads crash and restart (their site fails over),
 *    writes go on; transfers beyond (sites − 1) are counted and reported, not failed;
 * 3. healed: everything back, steady again — the same two checks;
 * 4. operations (site-operations.ts; unless turned off): an operator adds links (a shortcut,
 *    a cheaper link beside another) and removes one, and servers are restored from backups
 *    taken earlier, while writes go on; every node must come to hold the new topology, and
 *    every change written so far, a restored server's own older ones included, must reach
 *    every node; then steady again. Then the end-state invariants of the replication
 *    simulator (convergence, no acknowledged write lost …).
 *
 * In steady state every inter-site page brings a change only from the next hop toward its
 * origin site (least-cost-path): a node planning with a topology older than the one it holds
 * pulls it from elsewhere.
 */
export interface SiteSimParams {
  readonly seed: number;
  readonly sites: number;
  readonly shape: GraphShape;
  readonly servers: readonly number[];
  readonly steadyBatches: number;
  readonly changesPerBatch: number;
  readonly linkFailures: number;
  readonly bridgeheadCrashes: number;
  /** The order servers join in (growth.ts): "routed" unless asked otherwise. */
  readonly growth: GrowthOrder;
  /** The operations phase's operations; null: no such phase. */
  readonly operations: SiteOperations | null;
}

export interface SiteSimResult {
  readonly params: SiteSimParams;
  readonly violations: readonly Violation[];
  readonly nodes: number;
  readonly links: number;
  readonly changes: number;
  /** Inter-site transfers of steady-state changes, and the most any one of them took. */
  readonly steadyTransfers: number;
  readonly steadyTransfersMax: number;
  /** Transfers beyond (sites − 1) of the changes written while faults were active. */
  readonly faultExtraTransfers: number;
  readonly faultChanges: number;
  /** The most times one node's stale set changed within staleWindowMs (plan-flapping's measure). */
  readonly staleChangesMax: number;
  /** Nodes that planned at some point with no route from their site (isolatedSiteSources). */
  readonly isolatedNodes: number;
  /**
   * Nodes that planned at some point with routes but a gap in their view (a linked site with no
   * server they knew of), pulling from outside their group of linked sites (isolatedSiteSources).
   */
  readonly outsideNodes: number;
  /** Simulated ms from the last join until every node held the whole topology; null if never. */
  readonly viewsCompleteMs: number | null;
  /** The link operations made, and the servers restored from a backup. */
  readonly linkOperations: number;
  readonly restores: number;
  /** Acknowledged writes lost with a restore (only the restored server held them). */
  readonly lostToRestores: number;
  readonly simulatedMs: number;
  readonly events: number;
  readonly wallMs: number;
}

const minute = 60_000;
/** How long a phase may take to deliver a batch everywhere before it counts as a violation. */
const deliveryBoundMs = 12 * 60 * minute;
const deliveryCheckMs = 10_000;
/** Servers join over this span after the first created the directory, the last wave at its end. */
const joinSpanMs = 60 * minute;
const growthSalt = 0x6e0e7;
/** Failures are noticed (routes withdrawn, bridgeheads declared stale) after this long. */
const detectionDelayMs = 30_000;
const intraPullIntervalMs = 5 * minute;
const largeSiteServers = { min: 8, max: 16 } as const;
/** Every change reaches every live server of its site within this many intra-site hops. */
const intraDiameterMax = 3;
/**
 * A node's stale set changes when a partner fails or comes back, and when a reroute drops a
 * failing partner: a few times per fault. More changes than this within staleWindowMs is a
 * plan flipping back and forth (a partner dropped, fresh again, chosen again, failing again).
 */
const staleChangesPerWindowMax = 12;
const staleWindowMs = 10 * minute;

export function deriveSiteSimParams(
  seed: number,
  sitesMax = 150,
  growth: GrowthOrder = "routed",
  operations = true,
): SiteSimParams {
  const random = new SeededRandom(seed ^ 0x517e5);
  const sites = random.int(Math.min(20, sitesMax), sitesMax);
  return {
    seed,
    sites,
    shape: random.chance(0.5) ? "geometric" : "hub-and-spoke",
    servers: withOneLargeSite(
      Array.from({ length: sites }, () => random.pick([1, 1, 1, 2, 2, 3])),
      random,
    ),
    steadyBatches: 2,
    changesPerBatch: random.int(3, 8),
    linkFailures: random.int(1, 6),
    bridgeheadCrashes: random.int(1, 4),
    growth,
    operations: operations ? deriveSiteOperations(seed) : null,
  };
}

/** One site gets 8–16 servers, so that its ring needs shortcuts (the diameter invariant). */
function withOneLargeSite(servers: number[], random: SeededRandom): number[] {
  servers[random.int(0, servers.length - 1)] = random.int(largeSiteServers.min, largeSiteServers.max);
  return servers;
}

/** The topology a seed describes: sites and links from the generated graph, servers placed. */
function buildTopology(params: SiteSimParams, random: SeededRandom): TopologyConfig {
  const generated = generateSiteGraph(random, params.sites, params.shape, params.shape === "hub-and-spoke");
  const names = siteNames(params.sites);
  // tiers lists the tiers in the order of their graph codes (graph.ts tierCodes).
  const tierOf = (code: number): Tier => tiers[code] ?? "peer";
  const links: SiteLink[] = generated.edges.map(([a, b, cost], index) => ({
    name: `l${index}`,
    sites: [names[a] as SiteName, names[b] as SiteName],
    cost,
    intervalMinutes: random.int(2, 15),
    schedule: null,
    notify: random.chance(0.5),
    compress: true,
  }));
  const servers: ServerConfig[] = [];
  params.servers.forEach((count, site) => {
    for (let k = 0; k < count; k++) {
      servers.push({
        node: `n${servers.length}` as NodeId,
        site: names[site] as SiteName,
        addresses: [],
        httpPort: 0,
      });
    }
  });
  return {
    sites: names.map((name, index) => ({ name, tier: tierOf(generated.graph.tiers[index] as number) })),
    links,
    subnets: [],
    servers,
    settings: { ...settingsDefaults, intraSitePullIntervalMs: intraPullIntervalMs },
  };
}

interface DerivedStale {
  readonly key: string;
  readonly set: ReadonlySet<NodeId>;
}

const noneStale: DerivedStale = { key: "", set: new Set() };

/**
 * One topology some node holds (the servers it learned of, the links up): its routes, and the
 * connections each server would compute from it, computed once however many nodes hold it.
 */
class HeldTopology {
  readonly routes: SiteRoutes;
  private readonly hops = new Map<string, Set<string>>();
  private readonly unreachable = new Map<string, Set<string>>();
  private readonly fresh = new Map<NodeId, Connections>();

  constructor(
    readonly config: TopologyConfig,
    private readonly linkedSites: ReadonlyMap<string, ReadonlySet<string>>,
    private readonly canaries: Canaries,
  ) {
    this.routes = new SiteRoutes(config, canaries);
  }

  hopsFrom(site: SiteName): Set<string> {
    let hops = this.hops.get(siteKey(site));
    if (hops === undefined) {
      hops = this.routes.hopsFrom(site);
      this.hops.set(siteKey(site), hops);
    }
    return hops;
  }

  unreachableFrom(site: SiteName): Set<string> {
    let sites = this.unreachable.get(siteKey(site));
    if (sites === undefined) {
      sites = new Set(this.routes.unreachableFrom(site));
      this.unreachable.set(siteKey(site), sites);
    }
    return sites;
  }

  connections(node: NodeId, site: SiteName, stale: ReadonlySet<NodeId>): Connections {
    return connectionsOf(this.config, node, stale, this.hopsFrom(site), this.canaries);
  }

  /**
   * Whom `self` notifies, as partnerPlan says: the servers that would pull from it, wanting
   * notifications, with nothing stale (it cannot know what the others consider stale). Only a
   * server of its own site, of a site a link joins to its own, or of a site with no route (which
   * pulls from a server anywhere) can name it, so only those are computed. (A site with a gap in
   * its view pulls from anywhere too, but never asks for notifications there.)
   */
  outboundOf(self: NodeId, site: SiteName): NodeId[] {
    const mine = siteKey(site);
    const none: ReadonlySet<NodeId> = new Set();
    const outbound: NodeId[] = [];
    for (const server of this.config.servers) {
      if (server.node === self) continue;
      const theirs = siteKey(server.site);
      const candidate =
        theirs === mine ||
        this.linkedSites.get(theirs)?.has(mine) === true ||
        this.hopsFrom(server.site).size === 0;
      if (!candidate) continue;
      let connections = this.fresh.get(server.node);
      if (connections === undefined) {
        connections = this.connections(server.node, server.site, none);
        this.fresh.set(server.node, connections);
      }
      if (connections.inbound.some((connection) => connection.node === self && connection.notify))
        outbound.push(server.node);
    }
    return outbound;
  }
}

class SiteWorld extends World {
  /** Links down (by lower-case name), as routers see them once they noticed. */
  readonly downLinks = new Set<string>();
  /**
   * The operator's writes of links since the directory's creation, newest per link: with the
   * directory's first links, the topology as it is (the oracle's), whichever nodes know it yet.
   */
  private readonly linkVersions = new Map<string, LinkVersion>();
  /**
   * Servers that are down, once detectionDelayMs passed: only the intra-site diameter check reads
   * it. Each node plans with the stale set it derives from its own pulls, as the runtime does
   * (staleOf): a node that dropped a partner forgets its failures, which is where plans can flip.
   */
  readonly stale = new Set<NodeId>();
  private readonly staleOf = new Map<NodeId, DerivedStale>();
  /** When each node's stale set changed, within the last staleWindowMs. */
  private readonly staleChanges = new Map<NodeId, number[]>();
  private readonly flapping = new Set<NodeId>();
  staleChangesMax = 0;
  /** The config writes made so far, in order: what nodes learn the topology from. */
  private readonly configLog: ConfigWrite[] = [];
  /** What each created node learned of the topology (its replica's config partition). */
  private readonly learned = new Map<NodeId, LearnedTopology>();
  /** Nodes in their initial sync, with the node that admitted them (their one source). */
  private readonly syncing = new Map<NodeId, NodeId>();
  /** Created nodes whose invocation id is not on their server object yet. */
  private readonly unpublished = new Set<NodeId>();
  /** The topologies nodes hold, by the servers they know (links as the routers see them). */
  private readonly held = new Map<string, HeldTopology>();
  /** Each node's own connections, for the topology it holds and the stale set it derived. */
  private readonly ownPlans = new Map<NodeId, { readonly key: string; readonly connections: Connections }>();
  /** Nodes that planned at some point with no route from their site: pulling from elsewhere. */
  readonly isolated = new Set<NodeId>();
  /** Nodes that planned at some point with routes and a gap in their view: pulling from outside their group. */
  readonly outside = new Set<NodeId>();
  /** Per site, the sites a link joins it to (whether up or not). */
  private readonly linkedSites = new Map<string, Set<string>>();
  private readonly serverSite: ReadonlyMap<NodeId, SiteName>;
  /**
   * The whole current topology (every server, the links up) and its routes: the oracle the
   * invariants judge by (who must receive what, the intra-site diameter), never what a node
   * plans with.
   */
  private routes: SiteRoutes;
  private view: TopologyConfig;
  private readonly hopCache = new Map<string, Set<string>>();
  private planned: Map<NodeId, Connections> | null = null;

  constructor(
    readonly topology: TopologyConfig,
    seed: number,
    canaries: Canaries,
  ) {
    const siteOf = new Map(topology.sites.map((site, index) => [site.name, index]));
    const placement = topology.servers.map((server) => siteOf.get(server.site) ?? 0);
    super(
      scenarioParams(placement.length, {
        seed,
        sites: topology.sites.length,
        placement,
        edges: [],
        messageDelayMs: { min: 1, max: 20, interSiteExtra: 40 },
        tombstoneLifetimeMs: 30 * 24 * 60 * minute,
        purgeIntervalMs: 60 * minute,
      }),
      canaries,
    );
    this.view = topology;
    this.routes = new SiteRoutes(topology);
    this.serverSite = new Map(topology.servers.map((server) => [server.node, server.site]));
    for (const link of topology.links) this.noteLinkedSites(link);
  }

  /**
   * linkedSites grows with every link ever added and never shrinks: it only narrows whom
   * outboundOf asks, and a node may still hold a link the operator removed.
   */
  private noteLinkedSites(link: SiteLink): void {
    for (const a of link.sites) {
      const linked = this.linkedSites.get(siteKey(a)) ?? new Set<string>();
      this.linkedSites.set(siteKey(a), linked);
      for (const b of link.sites) if (siteKey(b) !== siteKey(a)) linked.add(siteKey(b));
    }
  }

  /** The links as they are now: the directory's first ones after every write of the operator. */
  links(): SiteLink[] {
    return linksAfter(this.topology.links, this.linkVersions);
  }

  // -------------------------------------------------------------------------------------------
  // servers joining, and what each learns of the topology

  /**
   * The first server creates the directory, as `plexus` does with a topology file: the config
   * partition with every site, link and the settings, its own server object (with its
   * invocation id), and the data partition.
   */
  createDirectory(creator: SimNode): void {
    creator.create(this.config(creator), this.canaries, this.params.tombstoneLifetimeMs);
    this.learned.set(creator.id, new LearnedTopology([]));
    this.step(creator, () => {
      const machine = creator.machine as NonNullable<SimNode["machine"]>;
      const replica = creator.replica as NonNullable<SimNode["replica"]>;
      for (const partition of [configPartition, dataPartition]) unwrap(replica.createPartition(partition));
      const server = { ...this.serverOf(creator.id), invocations: [replica.invocationId] };
      const writes = topologyWrites({ ...this.topology, servers: [server] });
      machine.write(writes).forEach((result, index) => {
        const write = writes[index] as EntryWrite;
        if (isServerObject(write)) {
          this.record(creator, result, "the directory's creation", {
            kind: "create",
            server: creator.id,
            invocations: server.invocations,
          });
        } else if (!result.ok) {
          this.violate("config-write", `${creator.id} could not write ${write.dn}: ${result.error.message}`);
        }
      });
      return [];
    });
  }

  /**
   * A server joins as in the runtime (joinAndSync): the node that admits it writes its server
   * object, and it pulls everything from that node, unfiltered, before it plans from the
   * topology it then holds; then it publishes its invocation id on its server object.
   */
  join(joiner: SimNode, admitter: SimNode): void {
    const machine = admitter.machine;
    if (machine === null) return;
    this.step(admitter, () => {
      const writes = topologyWrites({ ...this.topology, servers: [this.serverOf(joiner.id)] });
      const write = writes.find(isServerObject) as EntryWrite;
      const [result] = machine.write([write]);
      if (result !== undefined)
        this.record(admitter, result, `${joiner.id}'s admission`, {
          kind: "create",
          server: joiner.id,
          invocations: [],
        });
      return [];
    });
    this.syncing.set(joiner.id, admitter.id);
    this.learned.set(joiner.id, new LearnedTopology(this.configLog.map((_, index) => index)));
    joiner.create(this.config(joiner), this.canaries, this.params.tombstoneLifetimeMs);
    this.scheduleWake(joiner);
  }

  /** Nodes that may admit a joiner: up, with their initial sync done. */
  admitters(): SimNode[] {
    return this.nodes.filter((node) => node.up && !this.syncing.has(node.id));
  }

  /** A server object as registration writes it (the simulator has no HTTP, but the object needs a port). */
  private serverOf(node: NodeId): ServerConfig {
    const server = this.topology.servers.find((candidate) => candidate.node === node) as ServerConfig;
    return { ...server, httpPort: server.httpPort === 0 ? registeredHttpPort : server.httpPort };
  }

  /** A config write made on `node`: every node learns of it once its UTD covers it. */
  private record(
    node: SimNode,
    result: ReturnType<NonNullable<SimNode["machine"]>["write"]>[number],
    what: string,
    effect: ConfigEffect,
  ): void {
    if (!result.ok) {
      this.violate("config-write", `${node.id} could not write ${what}: ${result.error.message}`);
      return;
    }
    const invocation = (node.replica as NonNullable<SimNode["replica"]>).invocationId;
    const site = this.siteOf(node);
    const index = this.configLog.push({ effect, invocation, site, usn: result.value.usn }) - 1;
    if (effect.kind === "link") noteLinkWrite(this.linkVersions, index, effect);
    for (const learned of this.learned.values()) learned.expect(index);
  }

  /** As the runtime's publishInvocation: the node's invocation id onto its server object. */
  private publishInvocation(node: SimNode): void {
    const machine = node.machine;
    const replica = node.replica;
    if (machine === null || replica === null) return; // it publishes when it restarts
    const learned = this.learnedOf(node);
    const write = invocationWrite(learned.config(this.topology), node.id, replica.invocationId);
    if (write === null) {
      if (learned.invocationsOf(node.id).includes(replica.invocationId)) this.unpublished.delete(node.id);
      return;
    }
    const [change] = write.changes;
    this.step(node, () => {
      const [result] = machine.write([write]);
      if (result === undefined) return [];
      this.record(node, result, "its invocation id", {
        kind: change?.operation === "replace" ? "replace-invocations" : "add-invocation",
        server: node.id,
        invocation: replica.invocationId,
      });
      if (result.ok) this.unpublished.delete(node.id);
      return [];
    });
  }

  /**
   * An operator's change of a site link, made on `node` as `plexus` would write it to the config
   * partition there (an add of the link's object, or its delete); it reaches the other nodes
   * by replication, as every config write does. False when the node could not write it.
   */
  writeLink(node: SimNode, name: string, link: SiteLink | null): boolean {
    const machine = node.machine;
    if (machine === null || this.syncing.has(node.id)) return false;
    const request: WriteRequest = link === null ? { op: "delete", dn: linkDn(name) } : linkWrite(link);
    let written = false;
    this.step(node, () => {
      const [result] = machine.write([request]);
      if (result === undefined) return [];
      this.record(node, result, `${link === null ? "the removal" : "the addition"} of link ${name}`, {
        kind: "link",
        name,
        link,
      });
      written = result.ok;
      return [];
    });
    if (link !== null) this.noteLinkedSites(link);
    this.reroute();
    return written;
  }

  /**
   * A server restored from a backup (`plexus restore`, then a start): its database replaced by
   * the older copy, it starts with a new invocation id (Replica.open restored), publishes that
   * id, and pulls back from its partners what the copy lacks. What it learned of the topology is
   * what the copy's UTD covers. The acknowledged writes no node holds any more (those only it
   * held, made after the backup) are lost with the restore, and excused; they are returned.
   */
  restoreFromBackup(node: SimNode, backup: Uint8Array): Set<string> {
    this.crash(node, null);
    node.restoreFrom(backup);
    const lost = new Set<string>();
    for (const write of this.ledger.writes) {
      const key = `${write.invocation}:${write.usn}`;
      if (this.ledger.excused.has(key) || this.nodes.some((other) => holds(other, write))) continue;
      this.ledger.excused.add(key);
      lost.add(key);
    }
    this.restart(node, true);
    const replica = node.replica;
    const machine = node.machine;
    if (replica === null || machine === null) return lost;
    const learned = new LearnedTopology(this.configLog.map((_, index) => index));
    learned.learn(replica.utd(), this.configLog);
    this.learned.set(node.id, learned);
    this.unpublished.add(node.id);
    machine.reconfigure(this.config(node));
    return lost;
  }

  /**
   * Whether every node knows `node`'s current invocation id (its server object says it). Until
   * then its changes cannot be placed, and every filter lets them through (origins.ts): a branch
   * may carry them between two hubs — the documented price of never stranding a change, which
   * the valley-free check would report. Clients write only to such nodes (a restored server
   * once its new id has spread), as the growth phase writes only once every view is complete.
   */
  placedEverywhere(node: SimNode): boolean {
    const invocation = node.replica?.invocationId;
    if (invocation === undefined) return false;
    return [...this.learned.values()].every((learned) => learned.invocationsOf(node.id).includes(invocation));
  }

  /** Whether `node`'s replica holds the link `name` (an operator removes a link they can see). */
  holdsLink(node: SimNode, name: string): boolean {
    const key = name.toLowerCase();
    const learned = this.learned.get(node.id);
    return learned?.linksOf(this.topology.links).some((link) => link.name.toLowerCase() === key) === true;
  }

  private learnedOf(node: SimNode): LearnedTopology {
    const learned = this.learned.get(node.id);
    if (learned === undefined) throw new Error(`${node.id} has not joined`);
    return learned;
  }

  /**
   * Every node joined, synced, published, and holding every config write made in its own site
   * or a site it has a route to (on the whole topology): a site with no route to another takes
   * none of its changes, config writes included.
   */
  viewsComplete(): boolean {
    if (this.syncing.size > 0 || this.unpublished.size > 0) return false;
    return this.nodes.every((node) => node.up && this.missingWrites(node).length === 0);
  }

  /** The config writes a node should hold and does not (all of them if it never joined). */
  private missingWrites(node: SimNode): ConfigWrite[] {
    const learned = this.learned.get(node.id);
    if (learned === undefined) return [...this.configLog];
    const site = this.siteOf(node);
    return learned
      .missingOf(this.configLog)
      .filter(
        (write) =>
          siteKey(write.site) === siteKey(site) || this.nextHop(site, write.site as SiteName) !== undefined,
      );
  }

  /** The nodes still missing config writes, for a violation: their site, and its routes as they see them. */
  incompleteViews(): string {
    const lacking = this.nodes.filter((node) => this.missingWrites(node).length > 0);
    const shown = lacking.slice(0, incompleteShownMax).map((node) => {
      const learned = this.learned.get(node.id);
      if (learned === undefined) return `${node.id} never joined`;
      const site = this.siteOf(node);
      const routed = this.heldBy(learned).hopsFrom(site).size > 0;
      return (
        `${node.id} in ${site} knows ${learned.servers.size} of ${this.topology.servers.length} servers, ` +
        `${this.missingWrites(node).length} config writes missing${this.syncing.has(node.id) ? ", still in its initial sync" : ""}` +
        ` (its site ${routed ? "has a route" : "has no route"} in its view)`
      );
    });
    const more = lacking.length > shown.length ? `; ${lacking.length - shown.length} more` : "";
    const unpublished = this.unpublished.size > 0 ? `; unpublished: ${[...this.unpublished].join(", ")}` : "";
    return `${shown.join("; ")}${more}${unpublished}`;
  }

  /**
   * The model against the replicas: what each node learned is exactly the topology its config
   * partition holds (readTopology, as the runtime reads it).
   */
  checkViewsAgainstReplicas(): void {
    for (const node of this.nodes) {
      const replica = node.replica;
      const learned = this.learned.get(node.id);
      if (replica === null || learned === undefined) continue;
      const read = readTopology(replica).config;
      const modeled = learned.config(this.topology);
      this.stats.invariantChecks++;
      const summary = (config: TopologyConfig): string =>
        `${config.sites.length} sites, links ${config.links
          .map((link) => `${link.name.toLowerCase()}:${link.cost}:${link.sites.map(siteKey).join("-")}`)
          .sort()
          .join(" ")}, servers ${config.servers
          .map((server) => `${server.node}@${siteKey(server.site)}[${(server.invocations ?? []).join("+")}]`)
          .sort()
          .join(" ")}`;
      if (summary(read) !== summary(modeled)) {
        this.violate(
          "view-model",
          `${node.id}'s config partition holds ${summary(read).slice(0, 300)}, the model says ${summary(modeled).slice(0, 300)}`,
        );
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // planning

  /** Recomputes what the routers would converge to, and gives every node its new partners. */
  reroute(): void {
    this.view = { ...this.topology, links: this.upLinks(this.links()) };
    this.routes = new SiteRoutes(this.view);
    this.planned = null;
    this.held.clear();
    this.ownPlans.clear();
    this.hopCache.clear();
    this.checkIntraDiameter();
    for (const node of this.nodes) {
      if (node.machine === null) continue;
      node.machine.reconfigure(this.config(node));
      this.scheduleWake(node);
    }
  }

  /** The links routers see up: all but those whose failure they noticed. */
  private upLinks(links: readonly SiteLink[]): SiteLink[] {
    return links.filter((link) => !this.downLinks.has(link.name.toLowerCase()));
  }

  /** Inside every site, a change flows from any live server to any other within 3 hops. */
  private checkIntraDiameter(): void {
    const flows = new Map<SiteName, Map<NodeId, NodeId[]>>();
    for (const node of this.nodes) {
      if (this.stale.has(node.id)) continue;
      const site = this.siteOf(node);
      const graph = flows.get(site) ?? new Map<NodeId, NodeId[]>();
      flows.set(site, graph);
      if (!graph.has(node.id)) graph.set(node.id, []);
      for (const connection of this.connections().get(node.id)?.inbound ?? []) {
        if (connection.kind !== "intra" || this.stale.has(connection.node)) continue;
        const out = graph.get(connection.node) ?? [];
        graph.set(connection.node, out);
        out.push(node.id);
      }
    }
    for (const [site, graph] of flows) {
      const diameter = graphDiameter(graph);
      this.stats.invariantChecks++;
      if (diameter > intraDiameterMax) {
        this.violate(
          "intra-diameter",
          `site ${site}: ${graph.size} live servers, intra-site diameter ${diameter} (at most ${intraDiameterMax})`,
        );
      }
    }
  }

  /** The next hop on the whole topology's routes (the oracle: who must receive a change). */
  nextHop(from: SiteName, to: SiteName): SiteName | undefined {
    return this.routes.toward(from, to) as SiteName | undefined;
  }

  siteOf(node: SimNode): SiteName {
    return this.topology.servers[node.index]?.site as SiteName;
  }

  /** Every node's connections under the whole topology with the down servers stale (diameter check). */
  private connections(): Map<NodeId, Connections> {
    if (this.planned === null) {
      const planned = new Map<NodeId, Connections>();
      for (const node of this.nodes) {
        planned.set(node.id, connectionsOf(this.view, node.id, this.stale, this.hopsOf(node), this.canaries));
      }
      this.planned = planned;
    }
    return this.planned;
  }

  private hopsOf(node: SimNode): Set<string> {
    const site = this.siteOf(node);
    let hops = this.hopCache.get(site);
    if (hops === undefined) {
      hops = this.routes.hopsFrom(site);
      this.hopCache.set(site, hops);
    }
    return hops;
  }

  /** The topology `learned` holds, with the links as the routers see them. */
  private heldBy(learned: LearnedTopology): HeldTopology {
    const key = learned.key(this.topology.servers);
    let held = this.held.get(key);
    if (held === undefined) {
      const servers = this.topology.servers.filter((server) => learned.servers.has(server.node));
      const links = this.upLinks(learned.linksOf(this.topology.links));
      held = new HeldTopology({ ...this.view, links, servers }, this.linkedSites, this.canaries);
      this.held.set(key, held);
    }
    return held;
  }

  /** A node's own connections: under the topology it holds, with the stale set it derived. */
  private ownConnections(node: SimNode, held: HeldTopology, heldKey: string): Connections {
    const stale = this.staleOf.get(node.id) ?? noneStale;
    const key = `${heldKey}/${stale.key}`;
    const cached = this.ownPlans.get(node.id);
    if (cached !== undefined && cached.key === key) return cached.connections;
    const connections = held.connections(node.id, this.siteOf(node), stale.set);
    this.ownPlans.set(node.id, { key, connections });
    if (connections.inbound.some((connection) => connection.unfiltered === true)) this.isolated.add(node.id);
    if (connections.inbound.some((connection) => connection.onlyOrigins !== undefined))
      this.outside.add(node.id);
    return connections;
  }

  /**
   * After every step, as the runtime on every wake (node.ts refreshTopology, refreshStale): a
   * syncing node whose initial sync is done starts planning; otherwise the config writes its
   * replica now holds, and its stale set from its partners' consecutive failures; when either
   * changed, the node's new plan.
   */
  protected override afterStep(node: SimNode): void {
    const machine = node.machine;
    const replica = node.replica;
    if (machine === null || replica === null) return;
    const learned = this.learnedOf(node);
    const admitter = this.syncing.get(node.id);
    if (admitter !== undefined) {
      const sync = machine.partnerStatus().find((status) => status.partner === admitter);
      if (sync?.lastSuccessAt === null || sync?.lastSuccessAt === undefined) return;
      this.syncing.delete(node.id);
      learned.learn(replica.utd(), this.configLog);
      machine.reconfigure(this.config(node));
      this.unpublished.add(node.id);
      this.at(this.time, `${node.id} publishes its invocation id`, () => this.publishInvocation(node));
      return;
    }
    const learnedMore = !learned.complete && learned.learn(replica.utd(), this.configLog);
    const set = stalePartners(machine.partnerStatus(), this.topology.settings.staleAfterFailures);
    const key = [...set].sort().join(",");
    const staleChanged = key !== (this.staleOf.get(node.id) ?? noneStale).key;
    if (staleChanged) {
      this.staleOf.set(node.id, { key, set });
      this.noteStaleChange(node);
    }
    if (learnedMore || staleChanged) machine.reconfigure(this.config(node));
  }

  /** A restarted node has no failures to remember: it plans with nothing stale. */
  override restart(node: SimNode, restored: boolean): void {
    this.staleOf.delete(node.id);
    super.restart(node, restored);
    // A restored database takes a new invocation id, which the node publishes.
    this.at(this.time, `${node.id} publishes its invocation id`, () => this.publishInvocation(node));
  }

  private noteStaleChange(node: SimNode): void {
    const recent = (this.staleChanges.get(node.id) ?? []).filter((at) => at > this.time - staleWindowMs);
    recent.push(this.time);
    this.staleChanges.set(node.id, recent);
    this.staleChangesMax = Math.max(this.staleChangesMax, recent.length);
    this.stats.invariantChecks++;
    if (recent.length <= staleChangesPerWindowMax || this.flapping.has(node.id)) return;
    this.flapping.add(node.id);
    this.violate(
      "plan-flapping",
      `${node.id}'s stale set changed ${recent.length} times within ${staleWindowMs / minute} minutes (at most ${staleChangesPerWindowMax}): now {${(this.staleOf.get(node.id) ?? noneStale).key}}`,
    );
  }

  override config(node: SimNode): NodeConfig {
    const timings = {
      ...nodeConfigDefaults,
      pullTimeoutMs: 5_000,
      notifyDelayMs: 20,
      retryBackoffBaseMs: 1_000,
      retryBackoffMaxMs: 60_000,
      purgeIntervalMs: this.params.purgeIntervalMs,
      pageLimits: { entriesMax: 100, bytesMax: 256 * 1024 },
    };
    const admitter = this.syncing.get(node.id);
    // The initial sync: everything from the admitter, unfiltered (node.ts joinAndSync).
    if (admitter !== undefined) {
      return {
        ...timings,
        inbound: [{ node: admitter, pullIntervalMs: this.topology.settings.intraSitePullIntervalMs }],
        outbound: [],
        replicaSet: [node.id, admitter],
      };
    }
    const learned = this.learned.get(node.id) ?? new LearnedTopology([]);
    const heldKey = learned.key(this.topology.servers);
    const held = this.heldBy(learned);
    const mySite = this.siteOf(node);
    // Where each invocation comes from, as far as this node's server objects say.
    const origins: OriginSite[] = [...learned.servers].map((server) => ({
      site: this.serverSite.get(server) as SiteName,
      invocations: learned.invocationsOf(server),
      ...(server === node.id ? { own: true as const } : {}),
    }));
    const toward = (origin: string): string | undefined => held.routes.toward(mySite, origin);
    const noRoute = held.unreachableFrom(mySite);
    const mine = this.ownConnections(node, held, heldKey);
    return {
      ...timings,
      inbound: mine.inbound.map((connection) => ({
        node: connection.node,
        pullIntervalMs: connection.pullIntervalMs,
        exclude: originExclusions(connection, mySite, toward, origins, noRoute, this.canaries),
      })),
      outbound: held.outboundOf(node.id, mySite),
      replicaSet: held.config.servers.map((server) => server.node),
    };
  }
}

/** The operations phase's link operations and restores happen over this span. */
const operationsSpanMs = 30 * minute;
/** A link operation with no server to make it on is tried again once a minute, this many times. */
const operationAttemptsMax = 10;
/** A server to be restored writes one change at most this long before the restore. */
const lastWriteBeforeRestoreMaxMs = 3_000;
/** Writes go on during the operations phase: this many rounds of two changes. */
const operationsWriteRounds = 4;
/** The operations phase's events draw from this stream (the counts from operationsSalt alone). */
const operationsStreamSalt = 0x5eed;

function stampKey(change: { readonly invocation: InvocationId; readonly usn: Usn }): string {
  return `${change.invocation}:${change.usn}`;
}

/** The port a server object says when the topology gave none (checkServer wants one). */
const registeredHttpPort = 8080;
/** At most this many nodes are named in a topology-view violation. */
const incompleteShownMax = 5;

function isServerObject(write: EntryWrite): boolean {
  return write.attributes.objectClass?.includes("plexusServer") === true;
}

/** One written change: its stamp, where it was written, and its inter-site transfers. */
interface Tracked {
  readonly invocation: InvocationId;
  readonly usn: Usn;
  readonly site: SiteName;
  transfers: number;
  /** Per site, the sites whose pages brought it there (valley-free check). */
  readonly cameFrom: Map<SiteName, Set<SiteName>>;
  transitReported: boolean;
  /** Written in a steady phase: it travels only from next hop to next hop (least-cost-path). */
  readonly steady: boolean;
  pathReported: boolean;
}

export interface SiteSimOptions {
  readonly canaries?: Canaries;
  /** A topology of the test's own instead of the one derived from the seed (servers named n0…). */
  readonly topology?: TopologyConfig;
  /** Wall clock for the summary only; never read by the simulation. */
  readonly now?: () => number;
}

export function runSiteSim(params: SiteSimParams, options: SiteSimOptions = {}): SiteSimResult {
  const now = options.now ?? Date.now;
  const started = now();
  const random = new SeededRandom(params.seed);
  const topology = options.topology ?? buildTopology(params, random);
  const world = new SiteWorld(topology, params.seed, options.canaries ?? {});
  const run = new SiteRun(world, random, params.growth);
  run.start();
  run.steadyPhase(params.steadyBatches, params.changesPerBatch);
  const faultChanges = run.faultPhase(params);
  run.steadyPhase(1, params.changesPerBatch);
  if (params.operations !== null) {
    run.operationsPhase(params.operations, params.changesPerBatch);
    run.steadyPhase(1, params.changesPerBatch);
  }
  run.finish();
  return {
    params,
    violations: world.violations,
    nodes: world.nodes.length,
    links: world.links().length,
    changes: run.tracked.length,
    steadyTransfers: run.steadyTransfers,
    steadyTransfersMax: run.steadyTransfersMax,
    faultExtraTransfers: run.faultExtra(faultChanges),
    faultChanges: faultChanges.length,
    staleChangesMax: world.staleChangesMax,
    isolatedNodes: world.isolated.size,
    outsideNodes: world.outside.size,
    viewsCompleteMs: run.viewsCompleteMs,
    linkOperations: run.linkOperations,
    restores: run.restores,
    lostToRestores: run.lost.size,
    simulatedMs: world.time,
    events: world.stats.events,
    wallMs: now() - started,
  };
}

class SiteRun {
  readonly tracked: Tracked[] = [];
  private readonly byStamp = new Map<string, Tracked>();
  private readonly invariants: Invariants;
  private entries = 0;
  steadyTransfers = 0;
  steadyTransfersMax = 0;
  /** Simulated time from the last join until every node held the whole topology. */
  viewsCompleteMs: number | null = null;
  /** Stamps (`invocation:usn`) of tracked changes lost with a restore: no node must hold them. */
  readonly lost = new Set<string>();
  linkOperations = 0;
  restores = 0;
  /** Set while a steady phase writes: its changes are checked for the least-cost path. */
  private steady = false;

  constructor(
    private readonly world: SiteWorld,
    private readonly random: SeededRandom,
    private readonly growth: GrowthOrder,
  ) {
    this.invariants = new Invariants(world);
    world.onPageDelivered = (from, to, page) => this.countTransfers(from, to, page as ChangePage);
  }

  /** Inter-site pages carry each change at most once per boundary in steady state. */
  private countTransfers(from: SimNode, to: SimNode, page: ChangePage): void {
    const fromSite = this.world.siteOf(from);
    const toSite = this.world.siteOf(to);
    if (fromSite === toSite) return;
    const carried = new Set<Tracked>();
    // Items of an origin the pull left out came along only because the destination lacks
    // their entry and a change that passed needs it (core/replica/outbound.ts: a change brings
    // everything its entry lacks, so that the destination can place it). Such a change is
    // carried, but not pulled from this source: not the routes' doing. It happens once a
    // restored server takes back its own changes newer than its backup, for entries whose
    // creation it lost too.
    const rodeAlong = new Set<Tracked>();
    const excluded = new Set<string>(page.from.excluded ?? []);
    for (const entry of page.entries) {
      for (const item of entry.items) {
        const tracked = this.byStamp.get(`${item.stamp.invocation}:${item.stamp.usn}`);
        if (tracked === undefined) continue;
        carried.add(tracked);
        if (excluded.has(item.stamp.invocation)) rodeAlong.add(tracked);
      }
    }
    for (const tracked of carried) {
      tracked.transfers++;
      const pulled = !rodeAlong.has(tracked);
      this.checkValleyFree(tracked, fromSite, toSite, pulled);
      if (pulled) this.checkLeastCostPath(tracked, fromSite, toSite);
    }
  }

  /**
   * Reverse-path pulling in steady state (every node holding the topology as it is): a site
   * takes a change only from its next hop toward the change's origin site, so that the change
   * travels the least-cost path. A node planning with links it no longer holds (one removed,
   * or without a cheaper one added) takes it from another neighbour. Sites with no route to the
   * origin pull from elsewhere (isolatedSiteSources) and are not judged.
   */
  private checkLeastCostPath(tracked: Tracked, fromSite: SiteName, toSite: SiteName): void {
    if (!tracked.steady || tracked.pathReported) return;
    const hop = this.world.nextHop(toSite, tracked.site);
    this.world.stats.invariantChecks++;
    if (hop === undefined || siteKey(hop) === siteKey(fromSite)) return;
    tracked.pathReported = true;
    this.world.violate(
      "least-cost-path",
      `change ${tracked.invocation.slice(0, 8)}:${tracked.usn} from ${tracked.site} came to ${toSite} from ${fromSite}, not from its next hop toward ${tracked.site}, ${hop}`,
    );
  }

  /**
   * Valley-free (policy.ts): a branch never carries a change between two non-branch sites. A
   * branch that passes a change on to a hub or peer must have got it from a branch (or made
   * it): every site it got it from being a non-branch one is branch transit. Counted over every
   * page delivered to the branch, applied or not, so that a page it dropped cannot make a
   * lawful path look like transit. A change going back to its own origin site is carried
   * between no two sites: a server restored from a backup takes its changes newer than the
   * backup back from every neighbour that has them, a branch included (origins.ts, `own`). A
   * change that rode along (not `pulled`) counts where it came from, and is not judged.
   */
  private checkValleyFree(tracked: Tracked, fromSite: SiteName, toSite: SiteName, pulled: boolean): void {
    const sources = tracked.cameFrom.get(toSite) ?? new Set<SiteName>();
    sources.add(fromSite);
    tracked.cameFrom.set(toSite, sources);
    if (!pulled || fromSite === tracked.site || toSite === tracked.site) return;
    if (this.isBranch(toSite) || !this.isBranch(fromSite)) return;
    const gotFrom = [...(tracked.cameFrom.get(fromSite) ?? [])];
    this.world.stats.invariantChecks++;
    if (gotFrom.length === 0 || gotFrom.some((site) => this.isBranch(site)) || tracked.transitReported)
      return;
    tracked.transitReported = true;
    this.world.violate(
      "valley-free",
      `change ${tracked.invocation.slice(0, 8)}:${tracked.usn} from ${tracked.site} went through the branch ${fromSite} from ${gotFrom.join(", ")} to ${toSite}: a branch is never transit between two non-branch sites`,
    );
  }

  private isBranch(site: SiteName): boolean {
    return this.world.topology.sites.find((candidate) => candidate.name === site)?.tier === "branch";
  }

  /**
   * Growth: one server creates the directory (every site and link, none of the other servers),
   * the others join in waves over joinSpanMs in the growth order (growth.ts), each admitted by the creator
   * (one join URL, as src/runtime/isolated-site.test.ts) or, in any order, by a random server
   * already synced, and plan from what replication brought them. A site whose servers join before any
   * of a neighbouring site's has no route then: only its pulls from elsewhere (connections.ts
   * isolatedSiteSources) bring the servers that give it one; so do the pulls from outside their
   * group of sites linked only to each other (in any order), which route among themselves while
   * a site linked to theirs has no server in their view. Every node must come to hold the whole
   * topology (topology-view), then the partition everywhere.
   */
  start(): void {
    const world = this.world;
    const byId = new Map(world.nodes.map((node) => [node.id, node]));
    // A stream of its own, so that growth leaves the seed's faults and writes as they were.
    const growthRandom = new SeededRandom(this.world.params.seed ^ growthSalt);
    const waves = joinWaves(world.topology, this.growth, growthRandom).map((wave) =>
      wave.map((id) => byId.get(id) as SimNode),
    );
    const creator = waves[0]?.[0];
    if (creator === undefined) return;
    world.createDirectory(creator);
    waves.slice(1).forEach((wave, k) => {
      world.at(((k + 1) * joinSpanMs) / (waves.length - 1), `wave ${k + 1} joins`, () => {
        for (const joiner of wave) {
          world.join(joiner, this.growth === "any" ? growthRandom.pick(world.admitters()) : creator);
        }
      });
    });
    world.runUntil(joinSpanMs);
    if (this.awaitViews("the last join")) this.viewsCompleteMs = world.time - joinSpanMs;
    world.reroute();
    this.awaitDelivery([], "the partition");
  }

  /**
   * Runs until every node holds every config write made (its topology view is complete); false
   * (a violation) when the bound passed first.
   */
  private awaitViews(since: string): boolean {
    const world = this.world;
    const deadline = world.time + deliveryBoundMs;
    while (!world.viewsComplete()) {
      if (world.time >= deadline || !world.runUntil(world.time + deliveryCheckMs)) {
        world.violate(
          "topology-view",
          `not every node learned the topology within ${deliveryBoundMs / minute} simulated minutes of ${since}: ${world.incompleteViews()}`,
        );
        return false;
      }
    }
    world.checkViewsAgainstReplicas();
    return true;
  }

  /** Writes batches of changes with no fault active; each must obey the transfer bound. */
  steadyPhase(batches: number, perBatch: number): void {
    const bound = this.servedSites() - 1;
    for (let batch = 0; batch < batches; batch++) {
      this.steady = true;
      const written = this.writeBatch(perBatch);
      this.steady = false;
      this.awaitDelivery(written, "a steady batch");
      for (const change of written) {
        this.steadyTransfers += change.transfers;
        this.steadyTransfersMax = Math.max(this.steadyTransfersMax, change.transfers);
        if (change.transfers > bound) {
          this.world.violate(
            "transfers",
            `change ${change.invocation.slice(0, 8)}:${change.usn} from ${change.site} crossed site boundaries ${change.transfers} times (at most ${bound} in steady state)`,
          );
        }
      }
    }
  }

  /** Links fail and recover, bridgeheads crash and restart, while writes go on. */
  faultPhase(params: SiteSimParams): Tracked[] {
    const world = this.world;
    const written: Tracked[] = [];
    const spanMs = 60 * minute;
    const startAt = world.time;
    const links = world.links();
    for (let k = 0; k < params.linkFailures; k++) {
      const link = links[this.random.int(0, links.length - 1)] as SiteLink;
      const at = startAt + this.random.int(0, spanMs / 2);
      world.at(at, `link ${link.name} fails`, () => this.failLink(link, this.random.int(5, 30) * minute));
    }
    for (let k = 0; k < params.bridgeheadCrashes; k++) {
      const node = this.random.pick(world.nodes);
      const at = startAt + this.random.int(0, spanMs / 2);
      world.at(at, `${node.id} crashes`, () => this.crash(node, this.random.int(5, 30) * minute));
    }
    for (let k = 0; k < 4; k++) {
      world.runUntil(startAt + ((k + 1) * spanMs) / 4);
      written.push(...this.writeBatch(2));
    }
    // Everything recovers by the end of the fault phase (the last recovery is ≤ 45 min in).
    world.runUntil(startAt + spanMs + detectionDelayMs + minute);
    this.awaitDelivery(written, "the fault phase's changes");
    return written;
  }

  /**
   * The operator at work (site-operations.ts): backups of a few servers, changes written after
   * them (delivered everywhere, so that other sites hold what a backup lacks), then over
   * operationsSpanMs the link operations, one after another, and the restores from those
   * backups, while writes go on. Then every node must hold the topology as it now is, and
   * every change written so far must reach every node: a restored server's own changes newer
   * than its backup come back to it from its partners (as docs say: it catches up).
   */
  operationsPhase(operations: SiteOperations, perBatch: number): void {
    const world = this.world;
    const random = new SeededRandom(world.params.seed ^ operationsSalt ^ operationsStreamSalt);
    const backups = this.takeBackups(operations.restores, random);
    // Newer than the backups, on the servers to be restored too: other sites hold these, and
    // must give them back to the restored servers.
    const after = backups.map((backup) => backup.node);
    this.awaitDelivery(this.writeBatch(perBatch + after.length, after), "the changes after the backups");
    const startAt = world.time;
    const planned = planLinkOperations({ ...world.topology, links: world.links() }, operations, random);
    const restoring = new Set(backups.map((backup) => backup.node.id));
    planned.forEach((operation, k) => {
      const at = startAt + ((k + 1) * operationsSpanMs) / (planned.length + 1);
      world.at(at, describeLinkOperation(operation), () => this.operateLink(operation, restoring, random));
    });
    for (const { node, backup } of backups) {
      const at = startAt + random.int(operationsSpanMs / 4, (3 * operationsSpanMs) / 4);
      // A change just before (half the time at the very moment): gone with the restore if it
      // had not left the server yet.
      const lastWriteAt = at - (random.chance(0.5) ? 0 : random.int(1, lastWriteBeforeRestoreMaxMs));
      world.at(lastWriteAt, `${node.id} writes before its restore`, () => this.writeBatch(1, [node]));
      world.at(at, `${node.id} restored from its backup`, () => this.restore(node, backup));
    }
    for (let k = 0; k < operationsWriteRounds; k++) {
      world.runUntil(startAt + ((k + 1) * operationsSpanMs) / operationsWriteRounds);
      this.writeBatch(2);
    }
    world.runUntil(startAt + operationsSpanMs + minute);
    this.awaitViews("the last operation");
    world.reroute();
    const standing = this.tracked.filter((change) => !this.lost.has(stampKey(change)));
    this.awaitDelivery(standing, "every change written, a restored server's own included");
  }

  /** Backups of `count` up servers, taken now (a server is restored from its own only). */
  private takeBackups(
    count: number,
    random: SeededRandom,
  ): { readonly node: SimNode; readonly backup: Uint8Array }[] {
    const candidates = this.world.nodes.filter((node) => node.up);
    const backups: { node: SimNode; backup: Uint8Array }[] = [];
    for (let k = 0; k < count && candidates.length > 0; k++) {
      const node = candidates.splice(random.int(0, candidates.length - 1), 1)[0] as SimNode;
      backups.push({ node, backup: node.snapshot() });
    }
    return backups;
  }

  /**
   * One link operation, written on a random up server that is not to be restored (a restore
   * could lose the write before it left that server, and the operator's change with it); a
   * removal on one that holds the link (the operator sees it there), tried again a minute
   * later while none does yet.
   */
  private operateLink(
    operation: LinkOperation,
    restoring: ReadonlySet<NodeId>,
    random: SeededRandom,
    attempt = 0,
  ): void {
    const world = this.world;
    const writers = world
      .admitters()
      .filter(
        (node) =>
          !restoring.has(node.id) && (operation.kind === "add" || world.holdsLink(node, operation.name)),
      );
    if (writers.length === 0) {
      if (attempt < operationAttemptsMax)
        world.at(world.time + minute, `${describeLinkOperation(operation)}, again`, () =>
          this.operateLink(operation, restoring, random, attempt + 1),
        );
      return;
    }
    const writer = random.pick(writers);
    const written =
      operation.kind === "add"
        ? this.world.writeLink(writer, operation.link.name, operation.link)
        : this.world.writeLink(writer, operation.name, null);
    if (written) this.linkOperations++;
  }

  private restore(node: SimNode, backup: Uint8Array): void {
    for (const key of this.world.restoreFromBackup(node, backup)) this.lost.add(key);
    this.restores++;
  }

  faultExtra(changes: readonly Tracked[]): number {
    const bound = this.servedSites() - 1;
    return changes.reduce((sum, change) => sum + Math.max(0, change.transfers - bound), 0);
  }

  finish(): void {
    this.invariants.audit();
    this.invariants.final();
  }

  private failLink(link: SiteLink, forMs: number): void {
    const world = this.world;
    const [a, b] = link.sites;
    const name = link.name.toLowerCase();
    const across = world.nodes.filter((node) => world.siteOf(node) === a);
    const other = world.nodes.filter((node) => world.siteOf(node) === b);
    for (const x of across) for (const y of other) world.cutLink(x.index, y.index);
    world.at(world.time + detectionDelayMs, `routes withdrawn over ${link.name}`, () => {
      world.downLinks.add(name);
      world.reroute();
    });
    world.at(world.time + forMs, `link ${link.name} recovers`, () => {
      for (const x of across) for (const y of other) world.restoreLink(x.index, y.index);
      world.at(world.time + detectionDelayMs, `routes back over ${link.name}`, () => {
        world.downLinks.delete(name);
        world.reroute();
      });
    });
  }

  private crash(node: SimNode, forMs: number): void {
    const world = this.world;
    if (!node.up) return;
    world.crash(node, null);
    world.at(world.time + detectionDelayMs, `${node.id} declared stale`, () => {
      world.stale.add(node.id);
      world.reroute();
    });
    world.at(world.time + forMs, `${node.id} restarts`, () => {
      world.restart(node, false);
      world.at(world.time + detectionDelayMs, `${node.id} back`, () => {
        world.stale.delete(node.id);
        world.reroute();
      });
    });
  }

  private servedSites(): number {
    return new Set(this.world.nodes.map((node) => siteKey(this.world.siteOf(node)))).size;
  }

  /**
   * A batch of changes on random up nodes (one on each of `on`, when given): new entries, and
   * changes to earlier ones.
   */
  private writeBatch(count: number, on: readonly SimNode[] = []): Tracked[] {
    const written: Tracked[] = [];
    // Changes go to entries of earlier batches only: a batch's changes are independent, so
    // none of them needs another to travel with it (an entry created and changed in the same
    // batch may ride along with its change, a transfer outside the steady-state bound).
    const delivered = this.entries;
    for (let k = 0; k < count; k++) {
      const node =
        on[k] ??
        this.random.pick(
          this.world.nodes.filter((candidate) => candidate.up && this.world.placedEverywhere(candidate)),
        );
      const request: WriteRequest =
        delivered > 0 && this.random.chance(0.4)
          ? {
              op: "modify",
              dn: `cn=u${this.random.int(0, delivered - 1)},${dataPartition}`,
              changes: [
                { operation: "replace", attribute: "description", values: [`v${this.tracked.length}`] },
              ],
            }
          : {
              op: "add",
              dn: `cn=u${this.entries++},${dataPartition}`,
              attributes: { objectClass: ["person"], sn: ["user"] },
            };
      const change = this.write(node, request);
      if (change !== undefined) written.push(change);
    }
    return written;
  }

  private write(node: SimNode, request: WriteRequest): Tracked | undefined {
    const machine = node.machine;
    if (machine === null) return undefined;
    let outcome: ReturnType<typeof machine.write>[number] | undefined;
    this.world.step(node, () => {
      [outcome] = machine.write([request]);
      return [];
    });
    if (outcome === undefined || !outcome.ok) return undefined;
    recordWrite(this.world, node, request.op, outcome.value.guid, outcome.value.usn);
    const replica = node.replica as NonNullable<SimNode["replica"]>;
    const change: Tracked = {
      invocation: replica.invocationId,
      usn: outcome.value.usn,
      site: this.world.siteOf(node),
      transfers: 0,
      cameFrom: new Map(),
      transitReported: false,
      steady: this.steady,
      pathReported: false,
    };
    this.tracked.push(change);
    this.byStamp.set(stampKey(change), change);
    return change;
  }

  /**
   * Runs until every up node whose site has a route to a change's origin site holds it
   * (its UTD covers the stamp): "every site receives every change". A bound passing first is
   * a violation. An empty list waits for full cross-coverage (bootstrap).
   */
  private awaitDelivery(changes: readonly Tracked[], what: string): void {
    const world = this.world;
    const deadline = world.time + deliveryBoundMs;
    const delivered = (): boolean =>
      changes.length === 0
        ? this.invariants.utdsCrossCovered()
        : changes.every((change) => this.everywhere(change));
    while (world.time < deadline) {
      if (!world.runUntil(world.time + deliveryCheckMs)) break;
      if (delivered()) return;
    }
    const missing = changes.find((change) => !this.everywhere(change));
    world.violate(
      "every-site",
      missing === undefined
        ? `${what} did not reach every node within ${deliveryBoundMs / minute} simulated minutes`
        : `change ${missing.invocation.slice(0, 8)}:${missing.usn} from ${missing.site} did not reach ${this.lacking(missing).join(", ")} within ${deliveryBoundMs / minute} simulated minutes`,
    );
  }

  private everywhere(change: Tracked): boolean {
    return this.lost.has(stampKey(change)) || this.lacking(change).length === 0;
  }

  private lacking(change: Tracked): NodeId[] {
    const world = this.world;
    const stamp = { invocation: change.invocation, usn: change.usn };
    return world.nodes
      .filter((node) => {
        const site = world.siteOf(node);
        const routed =
          siteKey(site) === siteKey(change.site) || world.nextHop(site, change.site) !== undefined;
        return routed && node.replica !== null && !utdCovers(node.replica.utd(), stamp);
      })
      .map((node) => node.id);
  }
}
