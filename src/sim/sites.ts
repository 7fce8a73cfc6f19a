import type { Canaries } from "../core/canaries.ts";
import type { InvocationId, NodeId, Usn } from "../core/ids.ts";
import { type NodeConfig, nodeConfigDefaults } from "../core/node/machine.ts";
import { stalePartners } from "../core/node/partners.ts";
import type { WriteRequest } from "../core/replica/originating.ts";
import type { ChangePage } from "../core/replication/page.ts";
import { utdCovers } from "../core/replication/utd.ts";
import { unwrap } from "../core/result.ts";
import { type Connections, connectionsOf } from "../core/topology/connections.ts";
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
import { Invariants } from "./invariants.ts";
import type { SimNode } from "./node.ts";
import { scenarioParams } from "./params.ts";
import { SeededRandom } from "./ports.ts";
import { type GraphShape, generateSiteGraph, siteNames } from "./site-graphs.ts";
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
 * 3. healed: everything back, steady again — the same two checks, then the end-state
 *    invariants of the replication simulator (convergence, no acknowledged write lost …).
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
  readonly simulatedMs: number;
  readonly events: number;
  readonly wallMs: number;
}

const minute = 60_000;
/** How long a phase may take to deliver a batch everywhere before it counts as a violation. */
const deliveryBoundMs = 12 * 60 * minute;
const deliveryCheckMs = 10_000;
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

export function deriveSiteSimParams(seed: number, sitesMax = 150): SiteSimParams {
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

class SiteWorld extends World {
  /** Links down (by index in the topology), as routers see them once they noticed. */
  readonly downLinks = new Set<number>();
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
  /** Each node's connections for its own stale set, and every node's with none stale (outbound). */
  private readonly ownPlans = new Map<NodeId, { readonly key: string; readonly connections: Connections }>();
  private freshPlans: Map<NodeId, Connections> | null = null;
  /** Each site's next-hop sites under the current routes. */
  private readonly hopCache = new Map<string, Set<string>>();
  private routes: SiteRoutes;
  private view: TopologyConfig;
  /** Every invocation each node has had: its old changes still carry them. */
  private readonly invocations = new Map<NodeId, Set<InvocationId>>();
  private planned: Map<NodeId, Connections> | null = null;
  private originSites: OriginSite[] | null = null;

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
  }

  /** Recomputes what the routers would converge to, and gives every node its new partners. */
  reroute(): void {
    this.view = {
      ...this.topology,
      links: this.topology.links.filter((_, index) => !this.downLinks.has(index)),
    };
    this.routes = new SiteRoutes(this.view);
    this.planned = null;
    this.freshPlans = null;
    this.ownPlans.clear();
    this.hopCache.clear();
    this.checkIntraDiameter();
    for (const node of this.nodes) {
      if (node.machine === null) continue;
      node.machine.reconfigure(this.config(node));
      this.scheduleWake(node);
    }
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

  nextHop(from: SiteName, to: SiteName): SiteName | undefined {
    return this.routes.toward(from, to) as SiteName | undefined;
  }

  siteOf(node: SimNode): SiteName {
    return this.topology.servers[node.index]?.site as SiteName;
  }

  noteInvocation(node: SimNode): void {
    const invocation = node.replica?.invocationId;
    if (invocation === undefined) return;
    const known = this.invocations.get(node.id) ?? new Set();
    known.add(invocation);
    this.invocations.set(node.id, known);
    this.originSites = null;
  }

  /** Every node's connections under the current view with the down servers stale (diameter check). */
  private connections(): Map<NodeId, Connections> {
    this.planned ??= this.plansWith(this.stale);
    return this.planned;
  }

  private plansWith(stale: ReadonlySet<NodeId>): Map<NodeId, Connections> {
    const planned = new Map<NodeId, Connections>();
    for (const node of this.nodes) {
      planned.set(node.id, connectionsOf(this.view, node.id, stale, this.hopsOf(node), this.canaries));
    }
    return planned;
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

  /** A node's own connections: under the current view, with the stale set it derived. */
  private ownConnections(node: SimNode): Connections {
    const stale = this.staleOf.get(node.id) ?? noneStale;
    const cached = this.ownPlans.get(node.id);
    if (cached !== undefined && cached.key === stale.key) return cached.connections;
    const connections = connectionsOf(this.view, node.id, stale.set, this.hopsOf(node), this.canaries);
    this.ownPlans.set(node.id, { key: stale.key, connections });
    return connections;
  }

  /**
   * After every step, as the runtime on every wake (node.ts refreshStale): the node's stale set
   * from its partners' consecutive failures; when it changed, the node's new plan.
   */
  protected override afterStep(node: SimNode): void {
    const machine = node.machine;
    if (machine === null) return;
    const set = stalePartners(machine.partnerStatus(), this.topology.settings.staleAfterFailures);
    const key = [...set].sort().join(",");
    if (key === (this.staleOf.get(node.id) ?? noneStale).key) return;
    this.staleOf.set(node.id, { key, set });
    this.noteStaleChange(node);
    machine.reconfigure(this.config(node));
  }

  /** A restarted node has no failures to remember: it plans with nothing stale. */
  override restart(node: SimNode, restored: boolean): void {
    this.staleOf.delete(node.id);
    super.restart(node, restored);
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

  /** Where each known invocation originated: this site's sites, by server. */
  private origins(): OriginSite[] {
    this.originSites ??= this.nodes.map((other) => ({
      site: this.siteOf(other),
      invocations: [...(this.invocations.get(other.id) ?? [])],
    }));
    return this.originSites;
  }

  override config(node: SimNode): NodeConfig {
    const mySite = this.siteOf(node);
    // Whom to notify, as partnerPlan says: the nodes that would pull from this one with nothing
    // stale (a node cannot know what the others consider stale).
    this.freshPlans ??= this.plansWith(new Set());
    const fresh = this.freshPlans;
    const origins = this.origins();
    const toward = (origin: string): string | undefined => this.nextHop(mySite, origin as SiteName);
    const noRoute = new Set(this.routes.unreachableFrom(mySite));
    const outbound = this.nodes
      .filter((other) => fresh.get(other.id)?.inbound.some((c) => c.node === node.id && c.notify) === true)
      .map((other) => other.id);
    const mine = this.ownConnections(node);
    return {
      ...nodeConfigDefaults,
      inbound: mine.inbound.map((connection) => ({
        node: connection.node,
        pullIntervalMs: connection.pullIntervalMs,
        exclude: originExclusions(connection, mySite, toward, origins, noRoute, this.canaries),
      })),
      outbound,
      replicaSet: this.replicaSet,
      pullTimeoutMs: 5_000,
      notifyDelayMs: 20,
      retryBackoffBaseMs: 1_000,
      retryBackoffMaxMs: 60_000,
      purgeIntervalMs: this.params.purgeIntervalMs,
      pageLimits: { entriesMax: 100, bytesMax: 256 * 1024 },
    };
  }
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
  const run = new SiteRun(world, random);
  run.start();
  run.steadyPhase(params.steadyBatches, params.changesPerBatch);
  const faultChanges = run.faultPhase(params);
  run.steadyPhase(1, params.changesPerBatch);
  run.finish();
  return {
    params,
    violations: world.violations,
    nodes: world.nodes.length,
    links: world.topology.links.length,
    changes: run.tracked.length,
    steadyTransfers: run.steadyTransfers,
    steadyTransfersMax: run.steadyTransfersMax,
    faultExtraTransfers: run.faultExtra(faultChanges),
    faultChanges: faultChanges.length,
    staleChangesMax: world.staleChangesMax,
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

  constructor(
    private readonly world: SiteWorld,
    private readonly random: SeededRandom,
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
    for (const entry of page.entries) {
      for (const item of entry.items) {
        const tracked = this.byStamp.get(`${item.stamp.invocation}:${item.stamp.usn}`);
        if (tracked !== undefined) carried.add(tracked);
      }
    }
    for (const tracked of carried) {
      tracked.transfers++;
      this.checkValleyFree(tracked, fromSite, toSite);
    }
  }

  /**
   * Valley-free (policy.ts): a branch never carries a change between two non-branch sites. A
   * branch that passes a change on to a hub or peer must have got it from a branch (or made
   * it): every site it got it from being a non-branch one is branch transit. Counted over every
   * page delivered to the branch, applied or not, so that a page it dropped cannot make a
   * lawful path look like transit.
   */
  private checkValleyFree(tracked: Tracked, fromSite: SiteName, toSite: SiteName): void {
    const sources = tracked.cameFrom.get(toSite) ?? new Set<SiteName>();
    sources.add(fromSite);
    tracked.cameFrom.set(toSite, sources);
    if (fromSite === tracked.site || this.isBranch(toSite) || !this.isBranch(fromSite)) return;
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

  start(): void {
    const world = this.world;
    for (const node of world.nodes) {
      node.create(world.config(node), world.canaries, world.params.tombstoneLifetimeMs);
      world.noteInvocation(node);
    }
    const first = world.nodes[0] as SimNode;
    unwrap((first.replica as NonNullable<SimNode["replica"]>).createPartition(dataPartition));
    world.reroute();
    this.awaitDelivery([], "the partition");
  }

  /** Writes batches of changes with no fault active; each must obey the transfer bound. */
  steadyPhase(batches: number, perBatch: number): void {
    const bound = this.servedSites() - 1;
    for (let batch = 0; batch < batches; batch++) {
      const written = this.writeBatch(perBatch);
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
    for (let k = 0; k < params.linkFailures; k++) {
      const link = this.random.int(0, world.topology.links.length - 1);
      const at = startAt + this.random.int(0, spanMs / 2);
      world.at(at, `link l${link} fails`, () => this.failLink(link, this.random.int(5, 30) * minute));
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

  faultExtra(changes: readonly Tracked[]): number {
    const bound = this.servedSites() - 1;
    return changes.reduce((sum, change) => sum + Math.max(0, change.transfers - bound), 0);
  }

  finish(): void {
    this.invariants.audit();
    this.invariants.final();
  }

  private failLink(link: number, forMs: number): void {
    const world = this.world;
    const [a, b] = world.topology.links[link]?.sites ?? [];
    const across = world.nodes.filter((node) => world.siteOf(node) === a);
    const other = world.nodes.filter((node) => world.siteOf(node) === b);
    for (const x of across) for (const y of other) world.cutLink(x.index, y.index);
    world.at(world.time + detectionDelayMs, `routes withdrawn over l${link}`, () => {
      world.downLinks.add(link);
      world.reroute();
    });
    world.at(world.time + forMs, `link l${link} recovers`, () => {
      for (const x of across) for (const y of other) world.restoreLink(x.index, y.index);
      world.at(world.time + detectionDelayMs, `routes back over l${link}`, () => {
        world.downLinks.delete(link);
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

  /** A batch of changes on random up nodes: new entries, and changes to earlier ones. */
  private writeBatch(count: number): Tracked[] {
    const written: Tracked[] = [];
    // Changes go to entries of earlier batches only: a batch's changes are independent, so
    // none of them needs another to travel with it (an entry created and changed in the same
    // batch may ride along with its change, a transfer outside the steady-state bound).
    const delivered = this.entries;
    for (let k = 0; k < count; k++) {
      const node = this.random.pick(this.world.nodes.filter((candidate) => candidate.up));
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
    };
    this.tracked.push(change);
    this.byStamp.set(`${change.invocation}:${change.usn}`, change);
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
    return this.lacking(change).length === 0;
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
