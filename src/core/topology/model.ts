import { type InvocationId, isInvocationId, isNodeId, type NodeId } from "../ids.ts";
import { fail, ok, type Result } from "../result.ts";
import { parseCidr } from "./address.ts";

/**
 * The replication topology as configuration data: sites, the subnets that map client
 * addresses to sites, site links, servers and settings. It lives in the `config` partition and
 * replicates like any entry; every node compiles it (see graph.ts) and computes its own
 * connections from it. `checkTopology` is the one gate every config object passes through.
 */
export type SiteName = string & { readonly __brand: "SiteName" };

/**
 * hub: a backbone site; branch: an office that must never carry traffic between two other
 * non-branch sites; peer (the default): an untiered site, transit like a hub.
 */
export type Tier = "hub" | "branch" | "peer";
export const tiers: readonly Tier[] = ["hub", "branch", "peer"];

export interface Site {
  readonly name: SiteName;
  readonly tier: Tier;
}

/** An open window of a weekly schedule, in minutes from Monday 00:00 UTC: [from, to). */
export interface ScheduleWindow {
  readonly fromMinute: number;
  readonly toMinute: number;
}

export interface SiteLink {
  readonly name: string;
  /** Two or more sites; a link with more joins every pair of them. */
  readonly sites: readonly SiteName[];
  readonly cost: number;
  readonly intervalMinutes: number;
  /** Open windows; null means always open. */
  readonly schedule: readonly ScheduleWindow[] | null;
  readonly notify: boolean;
  readonly compress: boolean;
}

export interface Subnet {
  readonly cidr: string;
  readonly site: SiteName;
}

export interface ServerConfig {
  readonly node: NodeId;
  readonly site: SiteName;
  readonly addresses: readonly string[];
  readonly httpPort: number;
  /**
   * Invocation ids this server's database has had (a restore adds one), in no particular
   * order: other nodes map a change's origin to a site through them (reverse-path pulling).
   * Absent: none known yet, and that server's changes travel unfiltered.
   */
  readonly invocations?: readonly InvocationId[];
}

export interface TopologySettings {
  /** Notifications to intra-site partners go at most once per this window (NodeConfig.notifyDelayMs). */
  readonly notifyDelayMs: number;
  /** How long a server waits before pulling changes a partner passed on from a server it also
   * pulls from and hears from directly (see NodeConfig.relayPullDelayMs); 0 pulls at once. */
  readonly relayPullDelayMs: number;
  readonly tombstoneLifetimeDays: number;
  /** Consecutive failed pulls after which a partner counts as stale. */
  readonly staleAfterFailures: number;
  readonly intraSitePullIntervalMs: number;
}

export interface TopologyConfig {
  readonly sites: readonly Site[];
  readonly links: readonly SiteLink[];
  readonly subnets: readonly Subnet[];
  readonly servers: readonly ServerConfig[];
  readonly settings: TopologySettings;
}

export const settingsDefaults: TopologySettings = {
  notifyDelayMs: 20,
  relayPullDelayMs: 500,
  tombstoneLifetimeDays: 180,
  staleAfterFailures: 3,
  intraSitePullIntervalMs: 60_000,
};

export const linkCostMax = 1_000_000;
export const minutesPerWeek = 7 * 24 * 60;
export const linkIntervalMinutesDefault = 15;
const sitesMax = 100_000;
const scheduleWindowsMax = 64;
const addressesPerServerMax = 16;
/** Invocation ids kept per server; past this the list starts again with the current one (an
 * id forgotten only means its old changes travel unfiltered). */
export const invocationsPerServerMax = 32;
const notifyDelayMsMax = 60_000;
const relayPullDelayMsMax = 60_000;
const tombstoneLifetimeDaysRange = { min: 2, max: 3650 } as const;
const staleAfterFailuresMax = 100;
const pullIntervalMsRange = { min: 100, max: 24 * 60 * 60_000 } as const;

const namePattern = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

export function isSiteName(value: unknown): value is SiteName {
  return typeof value === "string" && namePattern.test(value);
}

/** Site names compare case-insensitively, as DNS labels do (they become `_sites` labels). */
export function siteKey(name: string): string {
  return name.toLowerCase();
}

type Raw = Record<string, unknown>;

function isRecord(value: unknown): value is Raw {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function bad(where: string, message: string): ReturnType<typeof fail> {
  return fail("invalid-config", `${where}: ${message}`);
}

function integerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= min && value <= max;
}

/**
 * Checks a whole topology given as plain data (JSON from the config partition, a file or a
 * test) and returns it typed, with defaults filled in; the first problem found is reported
 * with where it is. Cross references (links to sites, servers to sites) are checked too.
 */
export function checkTopology(input: unknown): Result<TopologyConfig> {
  if (!isRecord(input)) return bad("topology", "expected an object");
  const sites = checkList(input.sites, "sites", checkSite);
  if (!sites.ok) return sites;
  if (sites.value.length > sitesMax) return bad("sites", `at most ${sitesMax} sites`);
  const known = new Set<string>();
  for (const site of sites.value) {
    if (known.has(siteKey(site.name))) return bad(`site ${site.name}`, "defined twice");
    known.add(siteKey(site.name));
  }
  const links = checkList(input.links ?? [], "links", (raw, where) => checkLink(raw, where, known));
  if (!links.ok) return links;
  const linkNames = new Set<string>();
  for (const link of links.value) {
    if (linkNames.has(link.name.toLowerCase())) return bad(`link ${link.name}`, "defined twice");
    linkNames.add(link.name.toLowerCase());
  }
  const subnets = checkList(input.subnets ?? [], "subnets", (raw, where) => checkSubnet(raw, where, known));
  if (!subnets.ok) return subnets;
  const cidrs = new Set<string>();
  for (const subnet of subnets.value) {
    if (cidrs.has(subnet.cidr)) return bad(`subnet ${subnet.cidr}`, "defined twice");
    cidrs.add(subnet.cidr);
  }
  const servers = checkList(input.servers ?? [], "servers", (raw, where) => checkServer(raw, where, known));
  if (!servers.ok) return servers;
  const nodes = new Set<string>();
  for (const server of servers.value) {
    if (nodes.has(server.node)) return bad(`server ${server.node}`, "defined twice");
    nodes.add(server.node);
  }
  const settings = checkSettings(input.settings ?? {});
  if (!settings.ok) return settings;
  return ok({
    sites: sites.value,
    links: links.value,
    subnets: subnets.value,
    servers: servers.value,
    settings: settings.value,
  });
}

function checkList<T>(
  raw: unknown,
  where: string,
  check: (item: unknown, where: string) => Result<T>,
): Result<T[]> {
  if (!Array.isArray(raw)) return bad(where, "expected a list");
  const items: T[] = [];
  for (const [index, item] of raw.entries()) {
    const checked = check(item, `${where}[${index}]`);
    if (!checked.ok) return checked;
    items.push(checked.value);
  }
  return ok(items);
}

export function checkSite(raw: unknown, where = "site"): Result<Site> {
  if (!isRecord(raw)) return bad(where, "expected an object");
  if (!isSiteName(raw.name)) {
    return bad(where, "name must be a DNS label (letters, digits, inner hyphens, 1-63 characters)");
  }
  const tier = raw.tier ?? "peer";
  if (!tiers.includes(tier as Tier))
    return bad(`site ${raw.name}`, `tier must be one of ${tiers.join(", ")}`);
  return ok({ name: raw.name, tier: tier as Tier });
}

export function checkLink(raw: unknown, where: string, sites: ReadonlySet<string>): Result<SiteLink> {
  if (!isRecord(raw)) return bad(where, "expected an object");
  if (typeof raw.name !== "string" || !namePattern.test(raw.name))
    return bad(where, "name must be a DNS label");
  const at = `link ${raw.name}`;
  if (!Array.isArray(raw.sites) || raw.sites.length < 2) return bad(at, "joins two or more sites");
  const members: SiteName[] = [];
  for (const site of raw.sites) {
    if (!isSiteName(site) || !sites.has(siteKey(site))) return bad(at, `no such site: ${String(site)}`);
    if (members.some((member) => siteKey(member) === siteKey(site)))
      return bad(at, `site ${site} listed twice`);
    members.push(site);
  }
  if (!integerIn(raw.cost, 1, linkCostMax))
    return bad(at, `cost must be an integer from 1 to ${linkCostMax}`);
  const interval = raw.intervalMinutes ?? linkIntervalMinutesDefault;
  if (!integerIn(interval, 1, minutesPerWeek)) {
    return bad(at, `intervalMinutes must be an integer from 1 to ${minutesPerWeek}`);
  }
  const schedule = checkSchedule(raw.schedule ?? null, at);
  if (!schedule.ok) return schedule;
  for (const flag of ["notify", "compress"] as const) {
    if (raw[flag] !== undefined && typeof raw[flag] !== "boolean")
      return bad(at, `${flag} must be true or false`);
  }
  return ok({
    name: raw.name,
    sites: members,
    cost: raw.cost,
    intervalMinutes: interval,
    schedule: schedule.value,
    notify: raw.notify === true,
    compress: raw.compress !== false,
  });
}

function checkSchedule(raw: unknown, at: string): Result<ScheduleWindow[] | null> {
  if (raw === null) return ok(null);
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > scheduleWindowsMax) {
    return bad(
      at,
      `schedule must be a list of 1 to ${scheduleWindowsMax} windows, or absent for always open`,
    );
  }
  const windows: ScheduleWindow[] = [];
  for (const window of raw) {
    if (
      !isRecord(window) ||
      !integerIn(window.fromMinute, 0, minutesPerWeek - 1) ||
      !integerIn(window.toMinute, 1, minutesPerWeek) ||
      window.toMinute <= window.fromMinute
    ) {
      return bad(
        at,
        `each schedule window is {fromMinute, toMinute} with 0 <= from < to <= ${minutesPerWeek}`,
      );
    }
    windows.push({ fromMinute: window.fromMinute, toMinute: window.toMinute });
  }
  windows.sort((a, b) => a.fromMinute - b.fromMinute);
  return ok(windows);
}

export function checkSubnet(raw: unknown, where: string, sites: ReadonlySet<string>): Result<Subnet> {
  if (!isRecord(raw)) return bad(where, "expected an object");
  const cidr = parseCidr(raw.cidr);
  if (cidr === null) return bad(where, `not an IPv4 or IPv6 CIDR: ${String(raw.cidr)}`);
  if (!isSiteName(raw.site) || !sites.has(siteKey(raw.site))) {
    return bad(`subnet ${cidr.text}`, `no such site: ${String(raw.site)}`);
  }
  return ok({ cidr: cidr.text, site: raw.site });
}

export function checkServer(raw: unknown, where: string, sites: ReadonlySet<string>): Result<ServerConfig> {
  if (!isRecord(raw)) return bad(where, "expected an object");
  if (!isNodeId(raw.node)) return bad(where, "node must be a node id (lower-case letters, digits, hyphens)");
  const at = `server ${raw.node}`;
  if (!isSiteName(raw.site) || !sites.has(siteKey(raw.site)))
    return bad(at, `no such site: ${String(raw.site)}`);
  const addresses = raw.addresses ?? [];
  if (!Array.isArray(addresses) || addresses.length > addressesPerServerMax) {
    return bad(at, `addresses must be a list of at most ${addressesPerServerMax}`);
  }
  for (const address of addresses) {
    if (typeof address !== "string" || parseCidr(address) === null)
      return bad(at, `not an IP address: ${address}`);
  }
  if (!integerIn(raw.httpPort, 1, 65_535)) return bad(at, "httpPort must be a port number (1-65535)");
  const server = { node: raw.node, site: raw.site, addresses: addresses as string[], httpPort: raw.httpPort };
  const invocations = raw.invocations ?? [];
  if (!Array.isArray(invocations) || invocations.length > invocationsPerServerMax) {
    return bad(at, `invocations must be a list of at most ${invocationsPerServerMax}`);
  }
  for (const invocation of invocations) {
    if (!isInvocationId(invocation)) return bad(at, `not an invocation id: ${String(invocation)}`);
  }
  return ok(invocations.length === 0 ? server : { ...server, invocations: invocations as InvocationId[] });
}

function checkSettings(raw: unknown): Result<TopologySettings> {
  if (!isRecord(raw)) return bad("settings", "expected an object");
  const merged = { ...settingsDefaults, ...raw };
  if (!integerIn(merged.notifyDelayMs, 0, notifyDelayMsMax)) {
    return bad("settings", `notifyDelayMs must be an integer from 0 to ${notifyDelayMsMax}`);
  }
  if (!integerIn(merged.relayPullDelayMs, 0, relayPullDelayMsMax)) {
    return bad("settings", `relayPullDelayMs must be an integer from 0 to ${relayPullDelayMsMax}`);
  }
  const lifetime = tombstoneLifetimeDaysRange;
  if (!integerIn(merged.tombstoneLifetimeDays, lifetime.min, lifetime.max)) {
    return bad(
      "settings",
      `tombstoneLifetimeDays must be an integer from ${lifetime.min} to ${lifetime.max}`,
    );
  }
  if (!integerIn(merged.staleAfterFailures, 1, staleAfterFailuresMax)) {
    return bad("settings", `staleAfterFailures must be an integer from 1 to ${staleAfterFailuresMax}`);
  }
  const pull = pullIntervalMsRange;
  if (!integerIn(merged.intraSitePullIntervalMs, pull.min, pull.max)) {
    return bad("settings", `intraSitePullIntervalMs must be an integer from ${pull.min} to ${pull.max}`);
  }
  const unknown = Object.keys(raw).filter((key) => !(key in settingsDefaults));
  if (unknown.length > 0) return bad("settings", `unknown setting ${unknown[0]}`);
  return ok({
    notifyDelayMs: merged.notifyDelayMs,
    relayPullDelayMs: merged.relayPullDelayMs,
    tombstoneLifetimeDays: merged.tombstoneLifetimeDays,
    staleAfterFailures: merged.staleAfterFailures,
    intraSitePullIntervalMs: merged.intraSitePullIntervalMs,
  });
}

/** Whether a link's schedule is open at a minute of the week (0 = Monday 00:00 UTC). */
export function scheduleOpen(link: Pick<SiteLink, "schedule">, minuteOfWeek: number): boolean {
  if (link.schedule === null) return true;
  const minute = ((minuteOfWeek % minutesPerWeek) + minutesPerWeek) % minutesPerWeek;
  return link.schedule.some((window) => minute >= window.fromMinute && minute < window.toMinute);
}
