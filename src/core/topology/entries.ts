import { escapeValue } from "../directory/dn.ts";
import { configPartition } from "../directory/partition.ts";
import type { InvocationId, NodeId } from "../ids.ts";
import type { WriteRequest } from "../replica/originating.ts";
import type { EntryView, SearchRequest, SearchResult } from "../replica/read.ts";
import type { Result } from "../result.ts";
import {
  checkLink,
  checkServer,
  checkSite,
  checkSubnet,
  checkTopology,
  invocationsPerServerMax,
  type ServerConfig,
  type Site,
  type SiteLink,
  type Subnet,
  siteKey,
  type TopologyConfig,
} from "./model.ts";

/**
 * The topology as entries of the `config` partition, so that it replicates like any data and
 * every node reads the same objects:
 *
 *   cn=sites,cn=config       cn=<site>       objectClass plexusSite      plexusTier
 *   cn=subnets,cn=config     cn=<cidr>       objectClass plexusSubnet    plexusSite
 *   cn=site-links,cn=config  cn=<link>       objectClass plexusSiteLink  plexusSite (2+), plexusCost,
 *                                            plexusIntervalMinutes, plexusSchedule ("from-to", minutes
 *                                            of the week), plexusNotify, plexusCompress (TRUE/FALSE)
 *   cn=servers,cn=config     cn=<node id>    objectClass plexusServer    plexusSite, plexusAddress,
 *                                            plexusHttpPort, plexusInvocationId (its database's ids)
 *   cn=settings,cn=config                    objectClass plexusSettings  plexusNotifyDelayMs, ...
 *
 * Objects come back sorted by name (sites, links, servers) or network (subnets), whatever order
 * the search returns them in. Reading is forgiving per object: an object that does not check out (written by hand, or
 * naming a site deleted concurrently elsewhere) is left out and reported, and the rest of the
 * topology still applies — one bad object never stops every node from computing connections.
 */
export const topologyContainers = {
  sites: `cn=sites,${configPartition}`,
  subnets: `cn=subnets,${configPartition}`,
  links: `cn=site-links,${configPartition}`,
  servers: `cn=servers,${configPartition}`,
} as const;
export const settingsDn = `cn=settings,${configPartition}`;

export interface EntryWrite {
  readonly op: "add";
  readonly dn: string;
  readonly attributes: Record<string, readonly string[]>;
}

function under(container: string, name: string): string {
  return `cn=${escapeValue(name)},${container}`;
}

/** The adds that store a topology in an empty config partition (containers first). */
export function topologyWrites(config: TopologyConfig): EntryWrite[] {
  const writes: EntryWrite[] = Object.values(topologyContainers).map((dn) => ({
    op: "add",
    dn,
    attributes: { objectClass: ["top", "container"] },
  }));
  for (const site of config.sites) {
    writes.push({
      op: "add",
      dn: under(topologyContainers.sites, site.name),
      attributes: { objectClass: ["top", "plexusSite"], cn: [site.name], plexusTier: [site.tier] },
    });
  }
  for (const subnet of config.subnets) {
    writes.push({
      op: "add",
      dn: under(topologyContainers.subnets, subnet.cidr),
      attributes: { objectClass: ["top", "plexusSubnet"], cn: [subnet.cidr], plexusSite: [subnet.site] },
    });
  }
  for (const link of config.links) writes.push(linkWrite(link));
  for (const server of config.servers) {
    const attributes: Record<string, readonly string[]> = {
      objectClass: ["top", "plexusServer"],
      cn: [server.node],
      plexusSite: [server.site],
      plexusHttpPort: [String(server.httpPort)],
    };
    if (server.addresses.length > 0) attributes.plexusAddress = server.addresses;
    if (server.invocations !== undefined) attributes.plexusInvocationId = server.invocations;
    writes.push({ op: "add", dn: under(topologyContainers.servers, server.node), attributes });
  }
  const settings = config.settings;
  writes.push({
    op: "add",
    dn: settingsDn,
    attributes: {
      objectClass: ["top", "plexusSettings"],
      plexusNotifyDelayMs: [String(settings.notifyDelayMs)],
      plexusRelayPullDelayMs: [String(settings.relayPullDelayMs)],
      plexusTombstoneLifetimeDays: [String(settings.tombstoneLifetimeDays)],
      plexusStaleAfterFailures: [String(settings.staleAfterFailures)],
      plexusIntraSitePullIntervalMs: [String(settings.intraSitePullIntervalMs)],
    },
  });
  return writes;
}

/** The DN of a site link's object. */
export function linkDn(name: string): string {
  return under(topologyContainers.links, name);
}

/**
 * The add that stores one site link, as an operator adds a link to a running directory (its
 * container exists); deleting the object at linkDn removes the link.
 */
export function linkWrite(link: SiteLink): EntryWrite {
  const attributes: Record<string, readonly string[]> = {
    objectClass: ["top", "plexusSiteLink"],
    cn: [link.name],
    plexusSite: link.sites,
    plexusCost: [String(link.cost)],
    plexusIntervalMinutes: [String(link.intervalMinutes)],
    plexusNotify: [link.notify ? "TRUE" : "FALSE"],
    plexusCompress: [link.compress ? "TRUE" : "FALSE"],
  };
  if (link.schedule !== null) {
    attributes.plexusSchedule = link.schedule.map((window) => `${window.fromMinute}-${window.toMinute}`);
  }
  return { op: "add", dn: linkDn(link.name), attributes };
}

/**
 * The write that records `invocation` on this node's server object, or null when it is there
 * already (or the node has no server object yet: registration writes it). A node makes it when
 * it starts and whenever it takes a new invocation id, so that other sites can tell where its
 * changes come from. A full list starts again with the current id.
 */
export function invocationWrite(
  config: TopologyConfig,
  node: NodeId,
  invocation: InvocationId,
): Extract<WriteRequest, { op: "modify" }> | null {
  const server = config.servers.find((candidate) => candidate.node === node);
  if (server === undefined) return null;
  const known = server.invocations ?? [];
  if (known.includes(invocation)) return null;
  const full = known.length >= invocationsPerServerMax;
  return {
    op: "modify",
    dn: under(topologyContainers.servers, node),
    changes: [{ operation: full ? "replace" : "add", attribute: "plexusInvocationId", values: [invocation] }],
  };
}

export interface Searcher {
  search(request: SearchRequest): Result<SearchResult>;
}

export interface ReadTopology {
  readonly config: TopologyConfig;
  /** Objects left out, each with why. */
  readonly problems: readonly string[];
}

/** Topology objects per read; more is a configuration no node should compute routes for. */
const objectsPerKindMax = 100_000;

/** Reads the topology from a replica's config partition. */
export function readTopology(replica: Searcher): ReadTopology {
  const problems: string[] = [];
  const raw = rawTopology(replica);
  const accepted = acceptObjects(raw, problems);
  let checked = checkTopology({ ...accepted, settings: raw.settings });
  if (!checked.ok) {
    problems.push(`${settingsDn}: ${checked.error.message}; defaults apply`);
    checked = checkTopology({ ...accepted, settings: {} });
  }
  if (!checked.ok) throw new Error(`accepted topology objects failed together: ${checked.error.message}`);
  return { config: checked.value, problems };
}

/** One topology object as read, not yet checked. */
interface RawObject {
  readonly dn: string;
  readonly raw: Record<string, unknown>;
}

interface RawTopology {
  readonly sites: readonly RawObject[];
  readonly subnets: readonly RawObject[];
  readonly links: readonly RawObject[];
  readonly servers: readonly RawObject[];
  readonly settings: Record<string, unknown>;
}

/** The topology objects of the config partition, their attributes in the checkers' shapes. */
function rawTopology(replica: Searcher): RawTopology {
  const list = (base: string, objectClass: string): EntryView[] => {
    const found = replica.search({
      base,
      scope: "one",
      filter: `(objectClass=${objectClass})`,
      sizeLimit: objectsPerKindMax,
    });
    return found.ok ? [...found.value.entries] : [];
  };
  const one = (entry: EntryView, type: string): string | undefined => attribute(entry, type)[0];
  const sites = list(topologyContainers.sites, "plexusSite").map((entry) => ({
    dn: entry.dn,
    raw: { name: one(entry, "cn"), tier: one(entry, "plexusTier") },
  }));
  const subnets = list(topologyContainers.subnets, "plexusSubnet").map((entry) => ({
    dn: entry.dn,
    raw: { cidr: one(entry, "cn"), site: one(entry, "plexusSite") },
  }));
  const links = list(topologyContainers.links, "plexusSiteLink").map((entry) => {
    const schedule = attribute(entry, "plexusSchedule");
    return {
      dn: entry.dn,
      raw: {
        name: one(entry, "cn"),
        sites: attribute(entry, "plexusSite"),
        cost: integer(one(entry, "plexusCost")),
        intervalMinutes: integer(one(entry, "plexusIntervalMinutes")),
        schedule: schedule.length === 0 ? undefined : schedule.map(parseWindow),
        notify: boolean(one(entry, "plexusNotify")),
        compress: boolean(one(entry, "plexusCompress")),
      },
    };
  });
  const servers = list(topologyContainers.servers, "plexusServer").map((entry) => ({
    dn: entry.dn,
    raw: {
      node: one(entry, "cn"),
      site: one(entry, "plexusSite"),
      addresses: attribute(entry, "plexusAddress"),
      httpPort: integer(one(entry, "plexusHttpPort")),
      invocations: attribute(entry, "plexusInvocationId"),
    },
  }));
  const settingsEntry = list(configPartition, "plexusSettings").find(
    (entry) => entry.dn.toLowerCase() === settingsDn,
  );
  const settings: Record<string, unknown> = {};
  if (settingsEntry !== undefined) {
    for (const [key, type] of [
      ["notifyDelayMs", "plexusNotifyDelayMs"],
      ["relayPullDelayMs", "plexusRelayPullDelayMs"],
      ["tombstoneLifetimeDays", "plexusTombstoneLifetimeDays"],
      ["staleAfterFailures", "plexusStaleAfterFailures"],
      ["intraSitePullIntervalMs", "plexusIntraSitePullIntervalMs"],
    ] as const) {
      const value = one(settingsEntry, type);
      if (value !== undefined) settings[key] = integer(value);
    }
  }
  return { sites, subnets, links, servers, settings };
}

/**
 * Objects are checked one by one, in dependency order (sites first); one that fails, or that
 * repeats a name already taken, is left out (with why, in `problems`). Sorted, so that every
 * node sees them in one order (the first of two equal-cost links wins).
 */
function acceptObjects(
  raw: RawTopology,
  problems: string[],
): { sites: Site[]; links: SiteLink[]; subnets: Subnet[]; servers: ServerConfig[] } {
  const known = new Set<string>();
  const accepted = {
    sites: [] as Site[],
    links: [] as SiteLink[],
    subnets: [] as Subnet[],
    servers: [] as ServerConfig[],
  };
  const keep = <T>(
    dn: string,
    result: Result<T>,
    key: (value: T) => string,
    taken: Set<string>,
    into: T[],
  ): void => {
    if (!result.ok) problems.push(`${dn}: ${result.error.message}`);
    else if (taken.has(key(result.value))) problems.push(`${dn}: defined twice`);
    else {
      taken.add(key(result.value));
      into.push(result.value);
    }
  };
  for (const { dn, raw: object } of raw.sites)
    keep(dn, checkSite(drop(object), dn), (site) => siteKey(site.name), known, accepted.sites);
  const linkNames = new Set<string>();
  for (const { dn, raw: object } of raw.links) {
    keep(
      dn,
      checkLink(drop(object), dn, known),
      (link) => link.name.toLowerCase(),
      linkNames,
      accepted.links,
    );
  }
  const cidrs = new Set<string>();
  for (const { dn, raw: object } of raw.subnets)
    keep(dn, checkSubnet(drop(object), dn, known), (subnet) => subnet.cidr, cidrs, accepted.subnets);
  const nodes = new Set<string>();
  for (const { dn, raw: object } of raw.servers)
    keep(dn, checkServer(drop(object), dn, known), (server) => server.node, nodes, accepted.servers);
  accepted.sites.sort((x, y) => compareText(siteKey(x.name), siteKey(y.name)));
  accepted.links.sort((x, y) => compareText(x.name.toLowerCase(), y.name.toLowerCase()));
  accepted.subnets.sort((x, y) => compareText(x.cidr, y.cidr));
  accepted.servers.sort((x, y) => compareText(x.node, y.node));
  return accepted;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function attribute(entry: EntryView, type: string): readonly string[] {
  const wanted = type.toLowerCase();
  for (const [name, values] of Object.entries(entry.attributes))
    if (name.toLowerCase() === wanted) return values;
  return [];
}

/** Undefined fields go, so that checkTopology applies its defaults. */
function drop(raw: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(raw).filter(([, value]) => value !== undefined));
}

function integer(text: string | undefined): number | string | undefined {
  if (text === undefined) return undefined;
  return /^-?[0-9]{1,15}$/.test(text) ? Number(text) : text;
}

function boolean(text: string | undefined): boolean | string | undefined {
  if (text === undefined) return undefined;
  const upper = text.toUpperCase();
  return upper === "TRUE" ? true : upper === "FALSE" ? false : text;
}

function parseWindow(text: string): unknown {
  const match = /^([0-9]{1,5})-([0-9]{1,5})$/.exec(text);
  return match === null ? text : { fromMinute: Number(match[1]), toMinute: Number(match[2]) };
}
