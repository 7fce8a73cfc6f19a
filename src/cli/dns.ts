import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { escapeValue } from "../core/directory/dn.ts";
import { derivedGuid } from "../core/directory/partition.ts";
import {
  canonicalName,
  type DnsRecord,
  isAtOrBelow,
  isServableName,
  type RecordType,
  recordTypes,
  ttlSecondsMax,
} from "../core/locator/records.ts";
import { locatorSettingsDefault } from "../core/locator/registration.ts";
import {
  dnsAttributes,
  dnsClasses,
  dnsEntriesMax,
  parseRecordData,
  resolveName,
  zoneDn,
} from "../core/locator/zone.ts";
import { dnsQueriesPerSecondPerSourceDefault } from "../edge/dns/rate-limit.ts";
import type { LocatorOptions } from "../runtime/locator.ts";
import {
  type Environment,
  exitUsage,
  integerFlag,
  nodeUrl,
  type Output,
  reportFailures,
  UsageError,
  usageErrorText,
} from "./cli-support.ts";
import { connect, type EntryView, type NodeApi } from "./remote.ts";

/**
 * The locator's flags of `plexus start` (DNS address, zone, SRV priority and weight, record
 * TTL, refresh and scavenging ages, per-source rate), parsed and checked here so that start.ts
 * only passes them along.
 */
export const dnsStartFlags = {
  dns: { type: "string" },
  zone: { type: "string" },
  "dns-priority": { type: "string" },
  "dns-weight": { type: "string" },
  "dns-ttl": { type: "string" },
  "dns-refresh-seconds": { type: "string" },
  "dns-scavenge-seconds": { type: "string" },
  "dns-rate": { type: "string" },
} as const;

/** The same settings' names in a config file. */
export const dnsConfigKeys = [
  "dns",
  "zone",
  "dnsPriority",
  "dnsWeight",
  "dnsTtl",
  "dnsRefreshSeconds",
  "dnsScavengeSeconds",
  "dnsRate",
] as const;

export const dnsStartUsage = `  --dns HOST:PORT     the locator's authoritative DNS server, UDP and TCP on one port
                      (default HOST of --host, port 0: a free one, logged as dns-serving
                      and shown in GET /v1/status under dns.address); 'off': no DNS
  --zone NAME         the locator zone this node registers in (default ${locatorSettingsDefault.zone})
  --dns-priority N    SRV priority of this node's records, 0-65535 (default ${locatorSettingsDefault.priority})
  --dns-weight N      SRV weight of this node's records, 0-65535 (default ${locatorSettingsDefault.weight})
  --dns-ttl S         TTL of this node's records in seconds (default ${locatorSettingsDefault.ttlSeconds})
  --dns-refresh-seconds S   rewrite this node's records' timestamp when older (default ${locatorSettingsDefault.refreshMs / 1000})
  --dns-scavenge-seconds S  delete other nodes' records not refreshed for this long, more
                      than the refresh age (default ${locatorSettingsDefault.scavengeAfterMs / 1000}, or twice --dns-refresh-seconds
                      when that is more)
  --dns-rate N        DNS queries a second per source address, burst twice that
                      (default ${dnsQueriesPerSecondPerSourceDefault}); 0: no limit
`;

type Values = Partial<Record<keyof typeof dnsStartFlags, string>>;
type Raw = Record<string, unknown>;

const secondsMax = 365 * 24 * 60 * 60;
const rateMax = 10_000_000;

function integer(flag: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const number = typeof value === "string" && /^[0-9]{1,10}$/.test(value) ? Number(value) : value;
  if (typeof number !== "number" || !Number.isInteger(number) || number < min || number > max)
    throw new Error(`--${flag} must be an integer from ${min} to ${max}`);
  return number;
}

/** `HOST:PORT` or `[IPv6]:PORT`; null when not one. */
export function parseHostPort(text: string): { host: string; port: number } | null {
  const match = /^\[([0-9a-fA-F:.]+)\]:([0-9]{1,5})$/.exec(text) ?? /^([0-9.]+):([0-9]{1,5})$/.exec(text);
  if (match === null) return null;
  const host = match[1] as string;
  const port = Number(match[2]);
  if (isIP(host) === 0 || port > 65_535) return null;
  return { host, port };
}

/** The locator options from flags (which win) and config file fields; undefined when DNS is off. */
export function dnsStartOptions(values: Values, file: Raw, host: string): LocatorOptions | undefined {
  const address = values.dns ?? file.dns ?? `${host.includes(":") ? `[${host}]` : host}:0`;
  const off = address === "off";
  const bound = off ? { host, port: 0 } : typeof address === "string" ? parseHostPort(address) : null;
  if (bound === null)
    throw new Error("--dns must be HOST:PORT (an IP address; port 0 picks a free one) or off");
  // The other settings are checked with DNS off too: a config file keeps them while --dns off
  // turns the server off for a while, and a wrong one should not wait until it is turned on.
  const options = locatorOptions(values, file, bound);
  return off ? undefined : options;
}

function locatorOptions(values: Values, file: Raw, bound: { host: string; port: number }): LocatorOptions {
  const zoneText = values.zone ?? file.zone ?? locatorSettingsDefault.zone;
  const zone = typeof zoneText === "string" ? canonicalName(zoneText) : "";
  if (zone === "" || !isServableName(zone) || !/^[a-z0-9._-]+$/.test(zone))
    throw new Error("--zone must be a domain name (letters, digits, '-', '_', dots)");
  const refreshSeconds = integer(
    "dns-refresh-seconds",
    values["dns-refresh-seconds"] ?? file.dnsRefreshSeconds,
    locatorSettingsDefault.refreshMs / 1000,
    1,
    secondsMax,
  );
  const scavengeSeconds = integer(
    "dns-scavenge-seconds",
    values["dns-scavenge-seconds"] ?? file.dnsScavengeSeconds,
    Math.max(locatorSettingsDefault.scavengeAfterMs / 1000, refreshSeconds * 2),
    1,
    secondsMax,
  );
  if (scavengeSeconds <= refreshSeconds)
    throw new Error("--dns-scavenge-seconds must be more than --dns-refresh-seconds (or live records go)");
  return {
    host: bound.host,
    port: bound.port,
    settings: {
      zone,
      priority: integer(
        "dns-priority",
        values["dns-priority"] ?? file.dnsPriority,
        locatorSettingsDefault.priority,
        0,
        65_535,
      ),
      weight: integer(
        "dns-weight",
        values["dns-weight"] ?? file.dnsWeight,
        locatorSettingsDefault.weight,
        0,
        65_535,
      ),
      ttlSeconds: integer(
        "dns-ttl",
        values["dns-ttl"] ?? file.dnsTtl,
        locatorSettingsDefault.ttlSeconds,
        0,
        secondsMax,
      ),
      refreshMs: refreshSeconds * 1000,
      scavengeAfterMs: scavengeSeconds * 1000,
    },
    queriesPerSecondPerSource: integer(
      "dns-rate",
      values["dns-rate"] ?? file.dnsRate,
      dnsQueriesPerSecondPerSourceDefault,
      0,
      rateMax,
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// plexus dns list | add | delete: operators' records in the locator zone, over the client API

export const dnsUsage = `usage: plexus dns list [--zone NAME] [--url URL] [--json]
       plexus dns add NAME TYPE DATA... [--zone NAME] [--ttl S] [--id ID] [--url URL]
       plexus dns delete ID [--zone NAME] [--url URL]

The locator zone's records are entries of the dns partition (docs/locator.md): one entry per
record under dc=<zone>,cn=dns, replicated like any entry and answered by every node's DNS
server once replicated.
  list     the zone's records: name, TTL, type, data, and for registered ones the node and
           the age of their last refresh
  add      one record; NAME is relative to the zone ("@" for the apex) or absolute with a
           trailing dot; TYPE is A, AAAA, SRV ("priority weight port target"), CNAME, NS or TXT;
           checked here as the DNS server would, before it is sent
  delete   the record entry with that id (the cn list prints)
  --zone NAME   the zone (default ${locatorSettingsDefault.zone})
  --ttl S       the record's TTL in seconds (default: the zone's)
  --id ID       the record entry's cn (default: derived from name, type and data)
  --url URL     the node to ask (default: $PLEXUS_URL)
`;

const dnsCommandOptions = {
  zone: { type: "string" },
  ttl: { type: "string" },
  id: { type: "string" },
  url: { type: "string" },
  json: { type: "boolean" },
} as const;

function zoneFlag(text: string | undefined): string {
  const zone = canonicalName(text ?? locatorSettingsDefault.zone);
  if (zone === "" || !isServableName(zone))
    throw new UsageError(`--zone must be a domain name, not '${text}'`);
  return zone;
}

function attribute(entry: { attributes: Record<string, string[]> }, type: string): string {
  const key = Object.keys(entry.attributes).find((name) => name.toLowerCase() === type.toLowerCase());
  return key === undefined ? "" : (entry.attributes[key]?.[0] ?? "");
}

/** The zone's record entries, as the node holds them. */
async function recordEntries(api: NodeApi, zone: string): Promise<EntryView[]> {
  const found = await api.search(
    {
      base: zoneDn(zone),
      scope: "one",
      filter: `(objectClass=${dnsClasses.record})`,
      sizeLimit: dnsEntriesMax,
    },
    {},
  );
  return found.body.entries;
}

async function dnsList(args: string[], env: Environment, stdout: Output): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: dnsCommandOptions, allowPositionals: true });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const zone = zoneFlag(values.zone);
  const entries = await recordEntries(connect(nodeUrl(values.url, env)), zone);
  if (values.json === true) {
    stdout.write(`${JSON.stringify(entries)}\n`);
    return 0;
  }
  const now = Date.now();
  for (const entry of entries) {
    const refreshed = Number(attribute(entry, dnsAttributes.refreshedAt));
    const node = attribute(entry, dnsAttributes.node);
    const registered =
      node === "" ? "" : `  ; node ${node}, refreshed ${Math.round((now - refreshed) / 1000)} s ago`;
    const ttl = attribute(entry, dnsAttributes.ttl) || "-";
    stdout.write(
      `${attribute(entry, dnsAttributes.name)}\t${ttl}\t${attribute(entry, dnsAttributes.type)}\t${attribute(entry, dnsAttributes.data)}\t; id ${attribute(entry, dnsAttributes.recordId)}${registered}\n`,
    );
  }
  return 0;
}

async function dnsAdd(args: string[], env: Environment, stdout: Output): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: dnsCommandOptions, allowPositionals: true });
  const [name, typeText, ...dataParts] = positionals;
  if (name === undefined || typeText === undefined || dataParts.length === 0)
    throw new UsageError("give NAME TYPE DATA");
  const zone = zoneFlag(values.zone);
  const type = recordTypes.find((known) => known === typeText.toUpperCase() && known !== "SOA");
  if (type === undefined)
    throw new UsageError(`TYPE must be one of A, AAAA, SRV, CNAME, NS, TXT, not '${typeText}'`);
  const data = dataParts.join(" ");
  const ttl = integerFlag(values.ttl, "--ttl", 0, ttlSecondsMax);
  const owner = resolveName(name, zone);
  if (owner === null || !isAtOrBelow(owner, zone))
    throw new UsageError(`NAME '${name}' is not a name in zone ${zone}`);
  const checked = parseRecordData(type, data, owner, ttl ?? 0, zone);
  if (typeof checked === "string") throw new UsageError(checked);
  const id = values.id ?? `${name} ${type} ${derivedGuid(data).slice(0, 8)}`;
  const api = connect(nodeUrl(values.url, env));
  const clash = cnameClash(checked, zone, await recordEntries(api, zone));
  if (clash !== null) throw new UsageError(clash);
  await api.add(
    `${dnsAttributes.recordId}=${escapeValue(id)},${zoneDn(zone)}`,
    {
      objectClass: ["top", dnsClasses.record],
      [dnsAttributes.recordId]: [id],
      [dnsAttributes.name]: [name],
      [dnsAttributes.type]: [type],
      [dnsAttributes.data]: [data],
      ...(ttl === undefined ? {} : { [dnsAttributes.ttl]: [String(ttl)] }),
    },
    {},
  );
  stdout.write(`added ${id}\n`);
  return 0;
}

/**
 * The CNAME rule the DNS server applies when it compiles the zone (zone.ts, finishZone): a CNAME
 * is the only data at its name (RFC 1034 section 3.6.2) and never at the apex. A record that
 * breaks it would be stored and then not served, so it is refused before it is sent; the
 * server ignores records it cannot parse and identical copies, and so does this. Another node
 * can still take a clashing record meanwhile: the server then drops the CNAME and logs why.
 */
export function cnameClash(record: DnsRecord, zone: string, entries: readonly EntryView[]): string | null {
  if (record.type === "CNAME" && record.name === zone)
    return `a CNAME cannot be at the zone apex ${zone}, which holds the zone's SOA and NS data`;
  for (const entry of entries) {
    const other = recordOf(entry, zone);
    if (other === null || other.name !== record.name) continue;
    if (record.type !== "CNAME" && other.type !== "CNAME") continue;
    if (record.type === "CNAME" && other.type === "CNAME" && record.target === other.target) continue;
    return record.type === "CNAME"
      ? `${record.name} already has ${other.type} data (id ${attribute(entry, dnsAttributes.recordId)}): a CNAME cannot share its name with other data`
      : `${record.name} has a CNAME (id ${attribute(entry, dnsAttributes.recordId)}): no other data can share its name`;
  }
  return null;
}

/** A record entry as the DNS server reads it, or null when the server would ignore it. */
function recordOf(entry: EntryView, zone: string): DnsRecord | null {
  const typeText = attribute(entry, dnsAttributes.type).toUpperCase();
  const type = recordTypes.find((known): known is RecordType => known === typeText);
  const name = resolveName(attribute(entry, dnsAttributes.name), zone);
  if (type === undefined || name === null) return null;
  const parsed = parseRecordData(type, attribute(entry, dnsAttributes.data), name, 0, zone);
  return typeof parsed === "string" ? null : parsed;
}

async function dnsDelete(args: string[], env: Environment, stdout: Output): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: dnsCommandOptions, allowPositionals: true });
  const [id, ...extra] = positionals;
  if (id === undefined || extra.length > 0) throw new UsageError("give exactly one record id");
  const zone = zoneFlag(values.zone);
  await connect(nodeUrl(values.url, env)).delete(
    `${dnsAttributes.recordId}=${escapeValue(id)},${zoneDn(zone)}`,
    false,
    {},
  );
  stdout.write(`deleted ${id}\n`);
  return 0;
}

/** `plexus dns …`; resolves with the exit code (see cli-support.ts). */
export function dnsCommand(
  args: readonly string[],
  stdout: Output,
  stderr: Output,
  env: Environment = process.env,
): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || rest.includes("--help")) {
    stdout.write(dnsUsage);
    return Promise.resolve(0);
  }
  const runners: Record<string, (rest: string[], env: Environment, stdout: Output) => Promise<number>> = {
    list: dnsList,
    add: dnsAdd,
    delete: dnsDelete,
  };
  const runner = runners[sub];
  if (runner === undefined) {
    stderr.write(usageErrorText("dns", `unknown subcommand '${sub}'`, dnsUsage));
    return Promise.resolve(exitUsage);
  }
  return reportFailures(`dns ${sub}`, dnsUsage, stderr, () => runner(rest, env, stdout));
}
