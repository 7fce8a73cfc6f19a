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
 * changed (a restart on another port), and, for a site the topology does not know yet, the
 * site and a link to the site of the node that admits it, so that the new site is reachable.
 * Whoever admits the node (itself, or the node it joins through) runs these writes.
 */
export interface Registration {
  readonly node: NodeId;
  readonly site: SiteName;
  readonly address: string;
  readonly httpPort: number;
}

/** A link created for a site that joined without one: AD's default cost and interval. */
export const joinedLinkDefaults = { cost: 100, intervalMinutes: 15 } as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Checks a registration that arrived from another node (untrusted). */
export function checkRegistration(input: unknown): Result<Registration> {
  if (!isRecord(input)) return fail("invalid-request", "a registration must be an object");
  const { node, site, address, httpPort } = input;
  if (!isNodeId(node)) return fail("invalid-request", "node must be a node id");
  if (!isSiteName(site)) return fail("invalid-request", "site must be a DNS label");
  const bytes = typeof address === "string" && address.length <= 64 ? parseAddress(address) : null;
  if (bytes === null) return fail("invalid-request", "address must be an IP address");
  if (typeof httpPort !== "number" || !Number.isInteger(httpPort) || httpPort < 1 || httpPort > 65_535)
    return fail("invalid-request", "httpPort must be a port number (1-65535)");
  return ok({ node, site, address: formatAddress(bytes), httpPort });
}

export function registrationWrites(
  config: TopologyConfig,
  registration: Registration,
  admittingSite: SiteName,
): WriteRequest[] {
  const writes: WriteRequest[] = [];
  const siteKnown = config.sites.some((site) => siteKey(site.name) === siteKey(registration.site));
  if (!siteKnown) {
    writes.push({
      op: "add",
      dn: `cn=${escapeValue(registration.site)},${topologyContainers.sites}`,
      attributes: { objectClass: ["top", "plexusSite"], cn: [registration.site], plexusTier: ["peer"] },
    });
    if (siteKey(admittingSite) !== siteKey(registration.site)) {
      const name = `${siteKey(admittingSite)}-${siteKey(registration.site)}`.slice(0, 63).replace(/-+$/, "");
      writes.push({
        op: "add",
        dn: `cn=${escapeValue(name)},${topologyContainers.links}`,
        attributes: {
          objectClass: ["top", "plexusSiteLink"],
          cn: [name],
          plexusSite: [admittingSite, registration.site],
          plexusCost: [String(joinedLinkDefaults.cost)],
          plexusIntervalMinutes: [String(joinedLinkDefaults.intervalMinutes)],
          plexusNotify: ["FALSE"],
          plexusCompress: ["TRUE"],
        },
      });
    }
  }
  const dn = `cn=${escapeValue(registration.node)},${topologyContainers.servers}`;
  const existing = config.servers.find((server) => server.node === registration.node);
  const wanted = {
    plexusSite: [registration.site],
    plexusAddress: [registration.address],
    plexusHttpPort: [String(registration.httpPort)],
  };
  if (existing === undefined) {
    writes.push({
      op: "add",
      dn,
      attributes: { objectClass: ["top", "plexusServer"], cn: [registration.node], ...wanted },
    });
  } else if (
    siteKey(existing.site) !== siteKey(registration.site) ||
    existing.httpPort !== registration.httpPort ||
    existing.addresses.length !== 1 ||
    existing.addresses[0] !== registration.address
  ) {
    writes.push({
      op: "modify",
      dn,
      changes: Object.entries(wanted).map(([attribute, values]) => ({
        operation: "replace" as const,
        attribute,
        values,
      })),
    });
  }
  return writes;
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
