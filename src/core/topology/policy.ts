import { tierCodes } from "./graph.ts";

/**
 * Route preference and export policy of the inter-site path-vector protocol, shared by the
 * per-site router (router.ts) and the reference computation (reference.ts) so that both decide
 * alike.
 *
 * Preference: least total cost, then fewest site hops, then the lowest next-hop site index
 * (sites are numbered in name order on every node, so every site breaks ties alike).
 *
 * Export (valley-free, after Gao and Rexford): a branch site exports a route it learned from a
 * hub or a peer site only to branch sites; everything else is exported to every neighbour.
 * So a branch office never carries traffic between two non-branch sites, while hubs and
 * untiered (peer) sites are transit. Costs are at least 1 on every link, so a route's cost
 * strictly grows along its path; with that, path-vector routing under any such export filter
 * has one stable state and always converges to it (Sobrinho, "An algebraic theory of dynamic
 * network routing", 2005), and Dijkstra's algorithm computes that state (reference.ts).
 */
export const originTier = -1;
const branch = tierCodes.branch;

/**
 * Whether a site of tier `exporter` that learned a route from a neighbour of tier `learnedFrom`
 * (or originated it: `originTier`) may advertise it to a neighbour of tier `to`.
 * Tiers are the codes of graph.ts.
 */
export function exportAllowed(exporter: number, learnedFrom: number, to: number): boolean {
  if (exporter !== branch || learnedFrom === originTier) return true;
  return learnedFrom === branch || to === branch;
}

/** Negative when route (costA, hopsA, nextA) is preferred to (costB, hopsB, nextB). */
export function compareRoutes(
  costA: number,
  hopsA: number,
  nextA: number,
  costB: number,
  hopsB: number,
  nextB: number,
): number {
  return costA - costB || hopsA - hopsB || nextA - nextB;
}

/**
 * Whether a path (the sites from a route's holder to its destination, holder first) is
 * valley-free: no branch on it carries traffic between two non-branch neighbours on the path.
 * Traffic for the destination enters a site from the side of the holder; the route itself
 * was learned from the side of the destination.
 */
export function pathValleyFree(path: ArrayLike<number>, tiers: Uint8Array): boolean {
  // Stated on its own, not through exportAllowed, so that it checks the policy rather than repeats it.
  for (let index = 1; index + 1 < path.length; index++) {
    if (tiers[path[index] as number] !== branch) continue;
    const towardHolder = tiers[path[index - 1] as number];
    const towardDestination = tiers[path[index + 1] as number];
    if (towardHolder !== branch && towardDestination !== branch) return false;
  }
  return true;
}
