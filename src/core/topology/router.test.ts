import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { graphFromEdges, type SiteGraph } from "./graph.ts";
import type { SiteName, Tier } from "./model.ts";
import { pathValleyFree } from "./policy.ts";
import { pathFrom, routesTo } from "./reference.ts";
import { type RouteOut, SiteRouter } from "./router.ts";

/** Routers for every site, messages delivered one at a time in FIFO order until none is left. */
class Fabric {
  readonly routers: SiteRouter[];
  private readonly queue: Array<{ from: number; out: RouteOut }> = [];
  delivered = 0;

  constructor(readonly graph: SiteGraph) {
    this.routers = graph.names.map((_, site) => new SiteRouter(site, graph));
  }

  up(a: number, b: number): this {
    this.push(a, (this.routers[a] as SiteRouter).sessionUp(b));
    this.push(b, (this.routers[b] as SiteRouter).sessionUp(a));
    return this.settle();
  }

  down(a: number, b: number): this {
    // Messages in flight on the session are lost with it.
    for (let index = this.queue.length - 1; index >= 0; index--) {
      const item = this.queue[index] as { from: number; out: RouteOut };
      if ((item.from === a && item.out.to === b) || (item.from === b && item.out.to === a))
        this.queue.splice(index, 1);
    }
    this.push(a, (this.routers[a] as SiteRouter).sessionDown(b));
    this.push(b, (this.routers[b] as SiteRouter).sessionDown(a));
    return this.settle();
  }

  private push(from: number, outs: readonly RouteOut[]): void {
    for (const out of outs) this.queue.push({ from, out });
  }

  private settle(): this {
    for (let item = this.queue.shift(); item !== undefined; item = this.queue.shift()) {
      this.delivered++;
      this.push(item.out.to, (this.routers[item.out.to] as SiteRouter).receive(item.from, item.out.message));
    }
    return this;
  }

  path(from: number, to: number): number[] | null {
    const route = (this.routers[from] as SiteRouter).route(to);
    return route === undefined ? null : [from, ...route.path];
  }
}

function build(tiers: Tier[], edges: Array<[number, number, number]>): { fabric: Fabric; graph: SiteGraph } {
  const names = tiers.map((_, index) => `s${index}` as SiteName);
  const graph = graphFromEdges(names, tiers, edges);
  const fabric = new Fabric(graph);
  for (const [a, b] of edges) fabric.up(a, b);
  return { fabric, graph };
}

describe("site router (path-vector)", () => {
  it("finds least-cost paths, not fewest hops", () => {
    // 0 —10— 1 —10— 2, and 0 —50— 2
    const { fabric } = build(
      ["peer", "peer", "peer"],
      [
        [0, 1, 10],
        [1, 2, 10],
        [0, 2, 50],
      ],
    );
    assert.deepEqual(fabric.path(0, 2), [0, 1, 2]);
    assert.equal(fabric.routers[0]?.route(2)?.cost, 20);
  });

  it("withdraws on link failure, fails over to the next best, and returns on recovery", () => {
    const { fabric } = build(
      ["peer", "peer", "peer"],
      [
        [0, 1, 10],
        [1, 2, 10],
        [0, 2, 50],
      ],
    );
    fabric.down(1, 2);
    assert.deepEqual(fabric.path(0, 2), [0, 2]);
    assert.deepEqual(fabric.path(1, 2), [1, 0, 2]);
    fabric.down(0, 2);
    assert.equal(fabric.path(0, 2), null, "no route once the destination is cut off");
    assert.equal(fabric.path(1, 2), null);
    fabric.up(1, 2);
    assert.deepEqual(fabric.path(0, 2), [0, 1, 2]);
  });

  it("breaks cost ties by hops, then by the lower next-hop site, identically everywhere", () => {
    // Two equal-cost two-hop paths from 0 to 3: via 1 and via 2.
    const { fabric } = build(
      ["peer", "peer", "peer", "peer"],
      [
        [0, 2, 5],
        [2, 3, 5],
        [0, 1, 5],
        [1, 3, 5],
      ],
    );
    assert.deepEqual(fabric.path(0, 3), [0, 1, 3]);
    assert.deepEqual(fabric.path(3, 0), [3, 1, 0]);
  });

  it("never makes a branch transit between two hubs, and leaves the pair unreachable when only a branch joins them", () => {
    // hub0 — branch1 — hub2: the hubs cannot reach each other; the branch reaches both.
    const { fabric, graph } = build(
      ["hub", "branch", "hub"],
      [
        [0, 1, 1],
        [1, 2, 1],
      ],
    );
    assert.equal(fabric.path(0, 2), null);
    assert.equal(fabric.path(2, 0), null);
    assert.deepEqual(fabric.path(1, 0), [1, 0]);
    // A direct hub link, even an expensive one, restores reachability without using the branch.
    fabric.routers.length = 0;
    const direct = build(
      ["hub", "branch", "hub"],
      [
        [0, 1, 1],
        [1, 2, 1],
        [0, 2, 100],
      ],
    ).fabric;
    assert.deepEqual(direct.path(0, 2), [0, 2]);
    assert.equal(pathValleyFree([0, 1, 2], graph.tiers), false);
    assert.equal(pathValleyFree([0, 2], graph.tiers), true);
  });

  it("detours around a branch when policy forbids the cheap path, and the bound says by how much", () => {
    // hub0 — branch1 — hub2 costs 2; the allowed way is hub0 — peer3 — hub2 at 200.
    const { fabric, graph } = build(
      ["hub", "branch", "hub", "peer"],
      [
        [0, 1, 1],
        [1, 2, 1],
        [0, 3, 100],
        [3, 2, 100],
      ],
    );
    assert.deepEqual(fabric.path(0, 2), [0, 3, 2]);
    assert.equal(routesTo(graph, 2).cost[0], 200);
    assert.equal(routesTo(graph, 2, false).cost[0], 2, "the plain least-cost bound goes through the branch");
  });

  it("lets a branch carry traffic for a branch behind it", () => {
    // hub0 — branch1 — branch2: the hub reaches branch2 through branch1, and back.
    const { fabric } = build(
      ["hub", "branch", "branch"],
      [
        [0, 1, 1],
        [1, 2, 1],
      ],
    );
    assert.deepEqual(fabric.path(0, 2), [0, 1, 2]);
    assert.deepEqual(fabric.path(2, 0), [2, 1, 0]);
  });

  it("agrees with the reference (Dijkstra under the same policy) on a mixed graph", () => {
    const tiers: Tier[] = ["hub", "hub", "branch", "branch", "peer", "branch", "hub"];
    const edges: Array<[number, number, number]> = [
      [0, 1, 3],
      [0, 2, 4],
      [1, 3, 2],
      [2, 3, 1],
      [3, 4, 7],
      [4, 5, 1],
      [5, 6, 2],
      [2, 6, 9],
      [1, 6, 20],
    ];
    const { fabric, graph } = build(tiers, edges);
    for (let destination = 0; destination < tiers.length; destination++) {
      const reference = routesTo(graph, destination);
      for (let site = 0; site < tiers.length; site++) {
        if (site === destination) continue;
        assert.deepEqual(
          fabric.path(site, destination),
          pathFrom(reference, site),
          `s${site} → s${destination}`,
        );
      }
    }
  });

  it("ignores messages for closed sessions and paths that do not start at the sender", () => {
    const { fabric } = build(
      ["peer", "peer", "peer"],
      [
        [0, 1, 1],
        [1, 2, 1],
      ],
    );
    const router = fabric.routers[0] as SiteRouter;
    assert.deepEqual(router.receive(2, { kind: "advertise", destination: 1, path: [2, 1], cost: 1 }), []);
    assert.deepEqual(router.receive(1, { kind: "advertise", destination: 2, path: [2], cost: 0 }), []);
    assert.deepEqual(fabric.path(0, 2), null, "a forged path is as good as a withdrawal");
  });
});
