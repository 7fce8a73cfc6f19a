import { assert } from "../core/assert.ts";
import { graphFromEdges, type SiteGraph } from "../core/topology/graph.ts";
import type { SiteName, Tier } from "../core/topology/model.ts";
import type { SeededRandom } from "./ports.ts";

/**
 * Random site graphs for the routing simulator and the topology benchmark: connected, with an
 * average degree of 3–4, costs of at least 1.
 *
 * - geometric: sites at random points of a square, each joined to its nearest neighbours, cost
 *   by distance (WAN links between nearby offices), components bridged to their nearest site;
 * - hub-and-spoke: a few hubs in a full mesh, branches homed to one hub and most of them to a
 *   second, and some branch-to-branch links (tiered: the valley-free policy matters here).
 */
export type GraphShape = "geometric" | "hub-and-spoke";

export interface GeneratedGraph {
  readonly graph: SiteGraph;
  readonly edges: ReadonlyArray<readonly [number, number, number]>;
}

export function siteNames(count: number): SiteName[] {
  const width = String(count - 1).length;
  return Array.from({ length: count }, (_, index) => `s${String(index).padStart(width, "0")}` as SiteName);
}

export function generateSiteGraph(
  random: SeededRandom,
  count: number,
  shape: GraphShape,
  tiered: boolean,
): GeneratedGraph {
  assert(count >= 2, "a site graph has two sites or more");
  const built = shape === "geometric" ? geometric(random, count) : hubAndSpoke(random, count);
  const tiers: Tier[] =
    shape === "hub-and-spoke"
      ? built.tiers
      : tiered
        ? Array.from({ length: count }, () => random.pick(["hub", "branch", "branch", "peer"] as const))
        : new Array<Tier>(count).fill("peer");
  return { graph: graphFromEdges(siteNames(count), tiers, built.edges), edges: built.edges };
}

interface Built {
  readonly edges: Array<[number, number, number]>;
  readonly tiers: Tier[];
}

/** Nearest neighbours on a grid of cells, so that building stays near-linear at 10,000 sites. */
function geometric(random: SeededRandom, count: number): Built {
  const x = Float64Array.from({ length: count }, () => random.float());
  const y = Float64Array.from({ length: count }, () => random.float());
  const cells = Math.max(1, Math.floor(Math.sqrt(count / 2)));
  const grid = new Map<number, number[]>();
  const cellOf = (site: number): [number, number] => [
    Math.min(cells - 1, Math.floor((x[site] as number) * cells)),
    Math.min(cells - 1, Math.floor((y[site] as number) * cells)),
  ];
  for (let site = 0; site < count; site++) {
    const [cx, cy] = cellOf(site);
    const key = cx * cells + cy;
    const list = grid.get(key);
    if (list === undefined) grid.set(key, [site]);
    else list.push(site);
  }
  const distance = (a: number, b: number): number =>
    Math.hypot((x[a] as number) - (x[b] as number), (y[a] as number) - (y[b] as number));
  const costOf = (a: number, b: number): number => 1 + Math.round(distance(a, b) * 1000);
  const seen = new Set<number>();
  const edges: Array<[number, number, number]> = [];
  const add = (a: number, b: number): void => {
    const key = Math.min(a, b) * count + Math.max(a, b);
    if (a === b || seen.has(key)) return;
    seen.add(key);
    edges.push([a, b, costOf(a, b)]);
  };
  for (let site = 0; site < count; site++) {
    const wanted = random.int(2, 3);
    const [cx, cy] = cellOf(site);
    const nearby: number[] = [];
    for (let radius = 1; nearby.length <= wanted && radius <= cells; radius++) {
      nearby.length = 0;
      for (let dx = -radius; dx <= radius; dx++) {
        for (let dy = -radius; dy <= radius; dy++) {
          for (const other of grid.get((cx + dx) * cells + (cy + dy)) ?? []) {
            if (other !== site && cx + dx >= 0 && cx + dx < cells && cy + dy >= 0 && cy + dy < cells)
              nearby.push(other);
          }
        }
      }
    }
    nearby.sort((a, b) => distance(site, a) - distance(site, b) || a - b);
    for (const other of nearby.slice(0, wanted)) add(site, other);
  }
  connectComponents(count, edges, add, distance);
  return { edges, tiers: [] };
}

/** Joins every component to the first one by its closest pair found among a sample. */
function connectComponents(
  count: number,
  edges: ReadonlyArray<readonly [number, number, number]>,
  add: (a: number, b: number) => void,
  distance: (a: number, b: number) => number,
): void {
  const parent = Int32Array.from({ length: count }, (_, index) => index);
  const find = (site: number): number => {
    let root = site;
    while (parent[root] !== root) root = parent[root] as number;
    for (let at = site; parent[at] !== root; ) {
      const next = parent[at] as number;
      parent[at] = root;
      at = next;
    }
    return root;
  };
  for (const [a, b] of edges) parent[find(a)] = find(b);
  const members = new Map<number, number[]>();
  for (let site = 0; site < count; site++) {
    const root = find(site);
    const list = members.get(root);
    if (list === undefined) members.set(root, [site]);
    else list.push(site);
  }
  const components = [...members.values()];
  for (let index = 1; index < components.length; index++) {
    // Link to the closest site of any earlier component (sampled, so it stays cheap).
    const here = components[index] as number[];
    let best: [number, number] | undefined;
    let bestDistance = Number.POSITIVE_INFINITY;
    for (let other = 0; other < index; other++) {
      for (const a of here.slice(0, 8)) {
        for (const b of (components[other] as number[]).slice(0, 64)) {
          const d = distance(a, b);
          if (d < bestDistance) {
            bestDistance = d;
            best = [a, b];
          }
        }
      }
    }
    if (best !== undefined) add(best[0], best[1]);
  }
}

function hubAndSpoke(random: SeededRandom, count: number): Built {
  const hubs = Math.max(2, Math.min(count - 1, Math.round(Math.sqrt(count) / 2)));
  const tiers: Tier[] = Array.from({ length: count }, (_, index) => (index < hubs ? "hub" : "branch"));
  const seen = new Set<number>();
  const edges: Array<[number, number, number]> = [];
  const add = (a: number, b: number, cost: number): void => {
    const key = Math.min(a, b) * count + Math.max(a, b);
    if (a === b || seen.has(key)) return;
    seen.add(key);
    edges.push([a, b, cost]);
  };
  for (let a = 0; a < hubs; a++) for (let b = a + 1; b < hubs; b++) add(a, b, random.int(1, 20));
  for (let branch = hubs; branch < count; branch++) {
    const first = random.int(0, hubs - 1);
    add(branch, first, random.int(10, 100));
    if (hubs > 1 && random.chance(0.6))
      add(branch, (first + random.int(1, hubs - 1)) % hubs, random.int(10, 200));
    if (branch > hubs && random.chance(0.2)) add(branch, random.int(hubs, branch - 1), random.int(5, 50));
  }
  return { edges, tiers };
}
