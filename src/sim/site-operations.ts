import { type SiteLink, type SiteName, siteKey, type TopologyConfig } from "../core/topology/model.ts";
import { SiteRoutes } from "../core/topology/origins.ts";
import { SeededRandom } from "./ports.ts";

/**
 * What an operator does to a directory that has been running for a while (site simulator,
 * sites.ts, its operations phase), each through the config partition or the backup tools as
 * in production:
 *
 * - shortcuts: a link between two served sites that no link joins yet, cheap, so that many
 *   routes move onto it;
 * - cheaper links: a second link beside an existing one, cheaper than it, so that the pair's
 *   adjacency (graph.ts, the cheapest link of a pair) changes to the new one;
 * - removals: a link deleted again, one of those just added or one of the first, only when the
 *   topology still routes every pair of sites it routed (so that the run can still converge);
 * - restores: a server's database put back from a backup taken earlier (`plexus restore`): it
 *   starts with a new invocation id, and its partners must give it back what the backup lacks.
 */
export interface SiteOperations {
  readonly shortcuts: number;
  readonly cheaperLinks: number;
  readonly removals: number;
  readonly restores: number;
}

export type LinkOperation =
  | { readonly kind: "add"; readonly link: SiteLink; readonly why: "shortcut" | "cheaper" }
  | { readonly kind: "remove"; readonly name: string };

/** A stream of its own, so that turning the operations on or off leaves the rest of a seed as it was. */
export const operationsSalt = 0x0be4a7;
const shortcutsMax = 2;
const restoresMax = 2;
/** A removal about this often takes a link just added, otherwise one of the directory's first. */
const removeAddedChance = 0.5;
/** A shortcut's cost: cheap next to the generated links (geometric 1–1,400, hub-and-spoke 1–200). */
const shortcutCost = { min: 1, max: 20 } as const;
/** Pairs of sites tried for a shortcut, links tried for a removal, before giving up. */
const attemptsMax = 50;
const removalCandidatesMax = 8;
const linkIntervalMinutes = { min: 2, max: 15 } as const;

export function deriveSiteOperations(seed: number): SiteOperations {
  const random = new SeededRandom(seed ^ operationsSalt);
  return {
    shortcuts: random.int(1, shortcutsMax),
    cheaperLinks: 1,
    removals: random.chance(0.7) ? 1 : 0,
    restores: random.int(1, restoresMax),
  };
}

/**
 * The link operations of a seed, in the order they are made, over `topology` as it is (its
 * links after any earlier writes). Links added are named x0, x1, … (no first link is).
 */
export function planLinkOperations(
  topology: TopologyConfig,
  operations: SiteOperations,
  random: SeededRandom,
): LinkOperation[] {
  const planned: LinkOperation[] = [];
  const links = [...topology.links];
  const add = (link: SiteLink, why: "shortcut" | "cheaper"): void => {
    planned.push({ kind: "add", link, why });
    links.push(link);
  };
  const newLink = (sites: readonly SiteName[], cost: number): SiteLink => ({
    name: `x${planned.length}`,
    sites,
    cost,
    intervalMinutes: random.int(linkIntervalMinutes.min, linkIntervalMinutes.max),
    schedule: null,
    notify: random.chance(0.5),
    compress: true,
  });
  for (let k = 0; k < operations.shortcuts; k++) {
    const pair = unlinkedPair(topology, links, random);
    if (pair !== null) add(newLink(pair, random.int(shortcutCost.min, shortcutCost.max)), "shortcut");
  }
  for (let k = 0; k < operations.cheaperLinks; k++) {
    const dear = links.filter((link) => link.cost >= 2 && link.sites.length === 2);
    if (dear.length === 0) break;
    const beside = random.pick(dear);
    add(newLink(beside.sites, random.int(1, beside.cost - 1)), "cheaper");
  }
  for (let k = 0; k < operations.removals; k++) {
    const removed = removableLink(topology, links, planned, random);
    if (removed === null) continue;
    planned.push({ kind: "remove", name: removed.name });
    links.splice(links.indexOf(removed), 1);
  }
  return planned;
}

/** Two served sites no link joins, at random; null when none was found. */
function unlinkedPair(
  topology: TopologyConfig,
  links: readonly SiteLink[],
  random: SeededRandom,
): [SiteName, SiteName] | null {
  const served = [...new Set(topology.servers.map((server) => server.site))];
  if (served.length < 2) return null;
  const linked = new Set<string>();
  for (const link of links)
    for (const a of link.sites) for (const b of link.sites) linked.add(`${siteKey(a)}|${siteKey(b)}`);
  for (let attempt = 0; attempt < attemptsMax; attempt++) {
    const a = random.pick(served);
    const b = random.pick(served);
    if (siteKey(a) !== siteKey(b) && !linked.has(`${siteKey(a)}|${siteKey(b)}`)) return [a, b];
  }
  return null;
}

/**
 * A link whose removal leaves every pair of served sites routed that was: one just added (about
 * half the time, when there is one), else one of the others; null when no candidate keeps the
 * routes.
 */
function removableLink(
  topology: TopologyConfig,
  links: readonly SiteLink[],
  planned: readonly LinkOperation[],
  random: SeededRandom,
): SiteLink | null {
  const added = new Set(
    planned.flatMap((operation) => (operation.kind === "add" ? [operation.link.name] : [])),
  );
  const fromAdded = added.size > 0 && random.chance(removeAddedChance);
  const pool = links.filter((link) => added.has(link.name) === fromAdded);
  const before = unroutedPairs({ ...topology, links: [...links] });
  for (let tried = 0; tried < removalCandidatesMax && pool.length > 0; tried++) {
    const candidate = pool.splice(random.int(0, pool.length - 1), 1)[0] as SiteLink;
    const after = unroutedPairs({ ...topology, links: links.filter((link) => link !== candidate) });
    if (after <= before) return candidate;
  }
  return null;
}

/** Ordered pairs of served sites with no route from the first to the second. */
function unroutedPairs(topology: TopologyConfig): number {
  const routes = new SiteRoutes(topology);
  const sites = [...new Set(topology.servers.map((server) => siteKey(server.site)))];
  return sites.reduce((sum, site) => sum + routes.unreachableFrom(site).length, 0);
}

export function describeLinkOperation(operation: LinkOperation): string {
  switch (operation.kind) {
    case "add":
      return `${operation.why} ${operation.link.name} added (${operation.link.sites.join("-")}, cost ${operation.link.cost})`;
    case "remove":
      return `link ${operation.name} removed`;
    default: {
      const unknown: never = operation;
      return String(unknown);
    }
  }
}
