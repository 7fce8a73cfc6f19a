import { assert } from "../assert.ts";
import type { RoutingCanaries } from "../canaries.ts";
import type { SiteGraph } from "./graph.ts";
import { compareRoutes, exportAllowed, originTier } from "./policy.ts";

/**
 * The inter-site path-vector router one site's bridgehead runs (BGP-like). Neighbouring sites
 * keep a session; over it each advertises, per destination site, its best route — the full
 * site path and its total cost — or withdraws it. A route whose path holds the receiving site
 * is refused (loop-free by construction: no count-to-infinity). When a session goes down every
 * route learned over it is withdrawn, and the next best takes over.
 *
 * Sites are numbered as in the compiled SiteGraph, which every node derives alike from the
 * same config; the transport carries these messages between bridgeheads. Sessions are ordered
 * channels: messages on one session arrive in the order they were sent.
 */
export type RouteMessage =
  | {
      readonly kind: "advertise";
      readonly destination: number;
      /** The sites from the sender to the destination, sender first. */
      readonly path: readonly number[];
      /** Total cost from the sender to the destination. */
      readonly cost: number;
    }
  | { readonly kind: "withdraw"; readonly destination: number };

export interface RouteOut {
  readonly to: number;
  readonly message: RouteMessage;
}

/** A route as a site holds it. `path` runs from the next hop to the destination. */
export interface Route {
  readonly destination: number;
  readonly cost: number;
  readonly path: readonly number[];
}

interface Learned {
  readonly cost: number;
  readonly path: readonly number[];
}

export class SiteRouter {
  /** Routes learned per neighbour (only while the session is up), by destination. */
  private readonly learned = new Map<number, Map<number, Learned>>();
  private readonly best = new Map<number, Route>();
  /** Per destination, the path this site advertises ([self, ...best path]): one array shared by every neighbour. */
  private readonly outgoing = new Map<number, readonly number[]>();
  /** Per neighbour, the destinations currently advertised to it (to withdraw them later). */
  private readonly advertised = new Map<number, Set<number>>();
  private readonly neighbourCost = new Map<number, number>();
  /** Messages sent and received, for the benchmark and the simulator's accounting. */
  sent = 0;
  received = 0;

  constructor(
    readonly site: number,
    private readonly graph: SiteGraph,
    private readonly canaries: RoutingCanaries = {},
  ) {
    const { offsets, targets, costs } = graph;
    for (let at = offsets[site] as number; at < (offsets[site + 1] as number); at++) {
      this.neighbourCost.set(targets[at] as number, costs[at] as number);
    }
  }

  /** This site's best route to every destination it reaches (itself excluded). */
  routes(): ReadonlyMap<number, Route> {
    return this.best;
  }

  route(destination: number): Route | undefined {
    return this.best.get(destination);
  }

  sessions(): number[] {
    return [...this.learned.keys()];
  }

  /** A session with a neighbour came up: send it every route it may have. */
  sessionUp(neighbour: number): RouteOut[] {
    assert(this.neighbourCost.has(neighbour), `site ${neighbour} is not a neighbour of site ${this.site}`);
    if (this.learned.has(neighbour)) return [];
    this.learned.set(neighbour, new Map());
    this.advertised.set(neighbour, new Set());
    const out: RouteOut[] = [];
    this.offer(neighbour, this.site, out);
    for (const destination of this.best.keys()) this.offer(neighbour, destination, out);
    return out;
  }

  /** The session went down (link or bridgehead failure): withdraw what was learned over it. */
  sessionDown(neighbour: number): RouteOut[] {
    const routes = this.learned.get(neighbour);
    if (routes === undefined) return [];
    if (this.canaries.keepRoutesOfClosedSessions === true) {
      this.learned.set(neighbour, new Map(routes));
      return [];
    }
    this.learned.delete(neighbour);
    this.advertised.delete(neighbour);
    const out: RouteOut[] = [];
    for (const destination of routes.keys()) this.decide(destination, out);
    return out;
  }

  receive(from: number, message: RouteMessage): RouteOut[] {
    const routes = this.learned.get(from);
    if (routes === undefined) return []; // no session: a late message of a closed one
    this.received++;
    const destination = message.destination;
    if (destination === this.site) return [];
    if (message.kind === "withdraw") {
      if (!routes.delete(destination)) return [];
    } else if (
      (message.path.includes(this.site) && this.canaries.skipLoopCheck !== true) ||
      message.path[0] !== from ||
      message.path.length > this.graph.names.length
    ) {
      // A loop, a path that does not start at the sender, or one longer than there are sites
      // (it must repeat one): as good as a withdrawal.
      if (!routes.delete(destination)) return [];
    } else {
      routes.set(destination, {
        cost: message.cost + (this.neighbourCost.get(from) as number),
        path: message.path,
      });
    }
    const out: RouteOut[] = [];
    this.decide(destination, out);
    return out;
  }

  /** Recomputes the best route to one destination; on a change, tells the neighbours. */
  private decide(destination: number, out: RouteOut[]): void {
    let chosen: Learned | undefined;
    let chosenNext = -1;
    for (const [neighbour, routes] of this.learned) {
      const candidate = routes.get(destination);
      if (candidate === undefined) continue;
      if (
        chosen === undefined ||
        compareRoutes(
          candidate.cost,
          candidate.path.length,
          neighbour,
          chosen.cost,
          chosen.path.length,
          chosenNext,
        ) < 0
      ) {
        chosen = candidate;
        chosenNext = neighbour;
      }
    }
    const previous = this.best.get(destination);
    if (chosen === undefined) {
      if (previous === undefined) return;
      this.best.delete(destination);
      this.outgoing.delete(destination);
    } else {
      if (previous !== undefined && previous.cost === chosen.cost && samePath(previous.path, chosen.path))
        return;
      this.best.set(destination, { destination, cost: chosen.cost, path: chosen.path });
      this.outgoing.set(destination, [this.site, ...chosen.path]);
    }
    for (const neighbour of this.learned.keys()) this.offer(neighbour, destination, out);
  }

  /** Advertises the current best route to one neighbour, or withdraws it when policy or loops forbid. */
  private offer(neighbour: number, destination: number, out: RouteOut[]): void {
    const advertised = this.advertised.get(neighbour) as Set<number>;
    const tiers = this.graph.tiers;
    if (destination === this.site) {
      advertised.add(destination);
      this.send(out, neighbour, { kind: "advertise", destination, path: [this.site], cost: 0 });
      return;
    }
    const route = this.best.get(destination);
    const learnedFrom = route === undefined ? originTier : (tiers[route.path[0] as number] as number);
    const allowed =
      route !== undefined &&
      (!route.path.includes(neighbour) || this.canaries.skipLoopCheck === true) &&
      (this.canaries.ignoreExportPolicy === true ||
        exportAllowed(tiers[this.site] as number, learnedFrom, tiers[neighbour] as number));
    if (allowed) {
      advertised.add(destination);
      this.send(out, neighbour, {
        kind: "advertise",
        destination,
        path: [this.site, ...route.path],
        cost: route.cost,
      });
    } else if (advertised.delete(destination)) {
      this.send(out, neighbour, { kind: "withdraw", destination });
    }
  }

  private send(out: RouteOut[], to: number, message: RouteMessage): void {
    this.sent++;
    out.push({ to, message });
  }
}

function samePath(a: readonly number[], b: readonly number[]): boolean {
  return a === b || (a.length === b.length && a.every((site, index) => site === b[index]));
}
