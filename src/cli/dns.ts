import { isIP } from "node:net";
import { canonicalName, isServableName } from "../core/locator/records.ts";
import { locatorSettingsDefault } from "../core/locator/registration.ts";
import { dnsQueriesPerSecondPerSourceDefault } from "../edge/dns/rate-limit.ts";
import type { LocatorOptions } from "../runtime/locator.ts";

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
  --dns-scavenge-seconds S  delete other nodes' records not refreshed for this long
                      (default ${locatorSettingsDefault.scavengeAfterMs / 1000}; more than the refresh age)
  --dns-rate N        DNS queries a second per source address (default
                      ${dnsQueriesPerSecondPerSourceDefault}); 0: no limit
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
  if (address === "off") return undefined;
  const bound = typeof address === "string" ? parseHostPort(address) : null;
  if (bound === null)
    throw new Error("--dns must be HOST:PORT (an IP address; port 0 picks a free one) or off");
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
