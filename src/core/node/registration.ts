import { escapeValue } from "../directory/dn.ts";
import { isNodeId, type NodeId } from "../ids.ts";
import type { WriteRequest } from "../replica/originating.ts";
import { fail, ok, type Result } from "../result.ts";
import { formatAddress, parseAddress } from "../topology/address.ts";
import { topologyContainers } from "../topology/entries.ts";
import { isSiteName, type SiteName, siteKey, type TopologyConfig } from "../topology/model.ts";

/**
 * A node's registration in the config partition: the writes that make the topology hold this
 * server at this address — nothing when it already does, an update when its address or port
 * changed (a restart on another port), and, for a site the topology does not know yet and only
 * when the node asks for it (`newSite`), the site and a link to the site of the node that
 * admits it, so that the new site is reachable. Whoever admits the node (itself, or the node it
 * joins through) runs these writes.
 */
export interface Registration {
  readonly node: NodeId;
  readonly site: SiteName;
  readonly address: string;
  readonly httpPort: number;
  /**
   * The operator asked for the site to be created if the topology lacks it (`plexus start
   * --new-site`). Absent or false: a site the topology lacks is refused, since a misspelt
   * `--site` would otherwise make a new site and a link that take manual deletions to undo.
   */
  readonly newSite?: boolean;
}

/** A link created for a site that joined without one: AD's default cost and interval. */
export const joinedLinkDefaults = { cost: 100, intervalMinutes: 15 } as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Checks a registration that arrived from another node (untrusted). */
export function checkRegistration(input: unknown): Result<Registration> {
  if (!isRecord(input)) return fail("invalid-request", "a registration must be an object");
  const { node, site, address, httpPort, newSite } = input;
  if (!isNodeId(node)) return fail("invalid-request", "node must be a node id");
  if (!isSiteName(site)) return fail("invalid-request", "site must be a DNS label");
  const bytes = typeof address === "string" && address.length <= 64 ? parseAddress(address) : null;
  if (bytes === null) return fail("invalid-request", "address must be an IP address");
  if (typeof httpPort !== "number" || !Number.isInteger(httpPort) || httpPort < 1 || httpPort > 65_535)
    return fail("invalid-request", "httpPort must be a port number (1-65535)");
  if (newSite !== undefined && typeof newSite !== "boolean")
    return fail("invalid-request", "newSite must be true or false (or absent)");
  return ok({
    node,
    site,
    address: formatAddress(bytes),
    httpPort,
    ...(newSite === undefined ? {} : { newSite }),
  });
}

/** Whether the topology has a site of that name (site names compare case-insensitively). */
export function hasSite(config: TopologyConfig, name: SiteName): boolean {
  return config.sites.some((site) => siteKey(site.name) === siteKey(name));
}

/** Known sites named in a refusal: enough to spot the intended one, not a page of thousands. */
export const knownSitesListedMax = 10;
/** Edits (insert, delete, substitute) within which a known site is offered as the one meant. */
export const siteSuggestionEditsMax = 2;

/**
 * The edit distance (Levenshtein) between `a` and `b` when it is at most `limit`, else null.
 * Only the band of cells within `limit` of the diagonal is computed (no path outside it can
 * end within `limit`), so comparing a name with every site of a large topology stays cheap.
 */
export function editDistanceWithin(a: string, b: string, limit: number): number | null {
  if (Math.abs(a.length - b.length) > limit) return null;
  const beyond = limit + 1;
  let previous = Array.from({ length: b.length + 1 }, (_, column) => (column <= limit ? column : beyond));
  for (let row = 1; row <= a.length; row++) {
    const current = new Array<number>(b.length + 1).fill(beyond);
    if (row <= limit) current[0] = row;
    let rowMin = current[0] as number;
    const first = Math.max(1, row - limit);
    const last = Math.min(b.length, row + limit);
    for (let column = first; column <= last; column++) {
      const substitution = (previous[column - 1] as number) + (a[row - 1] === b[column - 1] ? 0 : 1);
      const deletion = (previous[column] as number) + 1;
      const insertion = (current[column - 1] as number) + 1;
      const cell = Math.min(substitution, deletion, insertion, beyond);
      current[column] = cell;
      rowMin = Math.min(rowMin, cell);
    }
    if (rowMin > limit) return null;
    previous = current;
  }
  const distance = previous[b.length] as number;
  return distance <= limit ? distance : null;
}

/**
 * The known site closest to `name` (case-insensitively) within siteSuggestionEditsMax edits,
 * or null: a suggestion for the operator, never applied in their stead. Ties go to the site
 * that sorts first, so the suggestion does not depend on the order the topology lists them.
 */
export function closestSite(name: string, known: readonly SiteName[]): SiteName | null {
  let best: { site: SiteName; distance: number } | null = null;
  for (const site of known) {
    const distance = editDistanceWithin(siteKey(name), siteKey(site), siteSuggestionEditsMax);
    if (distance === null) continue;
    if (
      best === null ||
      distance < best.distance ||
      (distance === best.distance && bySiteKey(site, best.site) < 0)
    )
      best = { site, distance };
  }
  return best?.site ?? null;
}

/** Site names in case-insensitive code-point order: the same on every machine, whatever its locale. */
function bySiteKey(a: SiteName, b: SiteName): number {
  const [left, right] = [siteKey(a), siteKey(b)];
  return left < right ? -1 : left > right ? 1 : 0;
}

/** "a, b, c" for at most knownSitesListedMax names, then "and N more". */
function listedSites(known: readonly SiteName[]): string {
  if (known.length === 0) return "it has no sites";
  const shown = known.slice(0, knownSitesListedMax).join(", ");
  const rest = known.length - knownSitesListedMax;
  return `its sites are ${shown}${rest > 0 ? ` and ${rest} more` : ""}`;
}

/**
 * Why a registration may not name its site, or null: a site the topology lacks is created only
 * on request (`newSite`). The sentence names the site, the known ones (bounded), the closest
 * known name when one is close, and the two ways to create it on purpose.
 */
export function unknownSiteRefusal(config: TopologyConfig, registration: Registration): string | null {
  if (registration.newSite === true || hasSite(config, registration.site)) return null;
  const known = config.sites.map((site) => site.name).sort(bySiteKey);
  const suggestion = closestSite(registration.site, known);
  return (
    `the site ${registration.site} is not in the topology` +
    `${suggestion === null ? "" : ` (did you mean ${suggestion}?)`}; ${listedSites(known)}. ` +
    "Give --site an existing site, or to create this one on purpose start the node with " +
    "--new-site (the new site gets a link to the admitting node's site), or add the site " +
    'first (docs/operations.md, "Adding a site")'
  );
}

/**
 * The writes that register `registration` (see Registration), or a failure when its site is
 * not in the topology and it did not ask for a new one (unknownSiteRefusal): nothing is then
 * to be written. `admittingSite` is the site the new site's link goes to.
 */
export function registrationWrites(
  config: TopologyConfig,
  registration: Registration,
  admittingSite: SiteName,
): Result<WriteRequest[]> {
  const refusal = unknownSiteRefusal(config, registration);
  if (refusal !== null) return fail("invalid-request", refusal);
  const site = hasSite(config, registration.site) ? [] : newSiteWrites(registration.site, admittingSite);
  return ok([...site, ...serverWrites(config, registration)]);
}

/** A site the topology lacks, and a link to the admitting node's site so that it is reachable. */
function newSiteWrites(site: SiteName, admittingSite: SiteName): WriteRequest[] {
  const writes: WriteRequest[] = [
    {
      op: "add",
      dn: `cn=${escapeValue(site)},${topologyContainers.sites}`,
      attributes: { objectClass: ["top", "plexusSite"], cn: [site], plexusTier: ["peer"] },
    },
  ];
  if (siteKey(admittingSite) === siteKey(site)) return writes;
  const name = `${siteKey(admittingSite)}-${siteKey(site)}`.slice(0, 63).replace(/-+$/, "");
  writes.push({
    op: "add",
    dn: `cn=${escapeValue(name)},${topologyContainers.links}`,
    attributes: {
      objectClass: ["top", "plexusSiteLink"],
      cn: [name],
      plexusSite: [admittingSite, site],
      plexusCost: [String(joinedLinkDefaults.cost)],
      plexusIntervalMinutes: [String(joinedLinkDefaults.intervalMinutes)],
      plexusNotify: ["FALSE"],
      plexusCompress: ["TRUE"],
    },
  });
  return writes;
}

/** The server entry: added, updated where its site, address or port changed, else left be. */
function serverWrites(config: TopologyConfig, registration: Registration): WriteRequest[] {
  const dn = `cn=${escapeValue(registration.node)},${topologyContainers.servers}`;
  const existing = config.servers.find((server) => server.node === registration.node);
  const wanted = {
    plexusSite: [registration.site],
    plexusAddress: [registration.address],
    plexusHttpPort: [String(registration.httpPort)],
  };
  if (existing === undefined)
    return [
      {
        op: "add",
        dn,
        attributes: { objectClass: ["top", "plexusServer"], cn: [registration.node], ...wanted },
      },
    ];
  const unchanged =
    siteKey(existing.site) === siteKey(registration.site) &&
    existing.httpPort === registration.httpPort &&
    existing.addresses.length === 1 &&
    existing.addresses[0] === registration.address;
  if (unchanged) return [];
  return [
    {
      op: "modify",
      dn,
      changes: Object.entries(wanted).map(([attribute, values]) => ({
        operation: "replace" as const,
        attribute,
        values,
      })),
    },
  ];
}

/**
 * Whether `self` may take client writes under a topology with these servers: not once its
 * server entry is gone (an operator decommissioned it). It then has no partners and nobody
 * pulls from it, so a write it took would replicate nowhere. An empty server list (the
 * topology not read yet) refuses nothing.
 */
export function checkServerStanding(
  servers: readonly { readonly node: NodeId }[],
  self: NodeId,
): Result<void> {
  if (servers.length === 0 || servers.some((server) => server.node === self)) return ok(undefined);
  return fail(
    "not-a-server",
    `${self} is no longer a server of the topology (its entry under cn=servers,cn=config is gone): ` +
      "it takes no writes, which would replicate nowhere; write elsewhere, and stop this node " +
      "(to bring it back, join it afresh with an empty data directory)",
  );
}
