import { dnParent, escapeValue, normalizeDn, parseDn } from "../directory/dn.ts";
import { dnsPartition } from "../directory/partition.ts";
import { utf8Length } from "../directory/schema.ts";
import { isNodeId } from "../ids.ts";
import type { EntryView } from "../replica/read.ts";
import { formatAddress, parseAddress } from "../topology/address.ts";
import {
  canonicalName,
  type DnsRecord,
  isAtOrBelow,
  isServableName,
  parentName,
  type RecordType,
  recordTypes,
  type SoaRecord,
  ttlSecondsMax,
  type Zone,
  type ZoneSet,
} from "./records.ts";

/**
 * The locator's zones as directory entries in the `dns` partition (docs/locator.md):
 *
 *   dc=<zone>,cn=dns                objectClass plexusDnsZone: the SOA fields
 *   cn=<any>,dc=<zone>,cn=dns       objectClass plexusDnsRecord: one resource record
 *
 * Records are one entry each (not one multi-valued entry per name) so that nodes registering
 * records at the same name concurrently never overwrite each other's values. `compileZones`
 * turns the entries into lookup tables; a record that fails its checks is left out and named
 * in `problems`, the rest are served.
 */
export const dnsClasses = { zone: "plexusDnsZone", record: "plexusDnsRecord" } as const;

export const dnsAttributes = {
  zoneName: "dc",
  recordId: "cn",
  ttl: "plexusDnsTtl",
  soaPrimary: "plexusDnsSoaPrimary",
  soaMailbox: "plexusDnsSoaMailbox",
  soaSerial: "plexusDnsSoaSerial",
  soaRefresh: "plexusDnsSoaRefresh",
  soaRetry: "plexusDnsSoaRetry",
  soaExpire: "plexusDnsSoaExpire",
  soaMinimum: "plexusDnsSoaMinimum",
  name: "plexusDnsName",
  type: "plexusDnsType",
  data: "plexusDnsData",
  node: "plexusDnsNode",
  refreshedAt: "plexusDnsRefreshedAt",
} as const;

/** SOA values of a zone entry that leaves them out (seconds; RFC 1912-style small-zone values). */
export const zoneDefaults = {
  ttlSeconds: 300,
  serial: 1,
  refreshSeconds: 900,
  retrySeconds: 300,
  expireSeconds: 604_800,
  /** Negative answers are cached min(SOA TTL, this) seconds (RFC 2308). */
  minimumSeconds: 60,
} as const;

/** TXT data longer than this is refused (the wire splits it into 255-byte strings). */
export const txtBytesMax = 4_000;
/** Records compiled per search of the dns partition; more are left out (and reported). */
export const dnsEntriesMax = 100_000;

/** The DN of a zone's entry. */
export function zoneDn(zone: string): string {
  return `${dnsAttributes.zoneName}=${escapeValue(canonicalName(zone))},${dnsPartition}`;
}

/** The entries a zone is made of: what the runtime asks the replica for. */
export const dnsEntriesFilter = `(|(objectClass=${dnsClasses.zone})(objectClass=${dnsClasses.record}))`;

export interface CompiledZones {
  readonly set: ZoneSet;
  readonly problems: readonly string[];
  /** Record entries that parsed, with their entry DN: registration and scavenging read these. */
  readonly records: readonly RecordEntry[];
}

export interface RecordEntry {
  readonly dn: string;
  readonly id: string;
  readonly zone: string;
  /** As written in the entry (relative, "@" or absolute with a trailing dot). */
  readonly nameText: string;
  readonly type: RecordType;
  readonly data: string;
  readonly ttlText: string | undefined;
  readonly node: string | undefined;
  /** Milliseconds since the epoch of the last refresh; undefined for operators' records. */
  readonly refreshedAt: number | undefined;
  readonly record: DnsRecord | null;
}

function first(entry: EntryView, type: string): string | undefined {
  const lower = type.toLowerCase();
  for (const [key, values] of Object.entries(entry.attributes))
    if (key.toLowerCase() === lower) return values[0];
  return undefined;
}

function hasClass(entry: EntryView, objectClass: string): boolean {
  const lower = objectClass.toLowerCase();
  for (const [key, values] of Object.entries(entry.attributes))
    if (key.toLowerCase() === "objectclass") return values.some((value) => value.toLowerCase() === lower);
  return false;
}

function integerIn(text: string | undefined, fallback: number, min: number, max: number): number | null {
  if (text === undefined) return fallback;
  if (!/^[0-9]{1,10}$/.test(text)) return null;
  const value = Number(text);
  return value >= min && value <= max ? value : null;
}

/** A name as written in an entry, resolved against the zone: "@", relative, or absolute ("x."). */
export function resolveName(text: string, apex: string): string | null {
  const trimmed = text.trim();
  if (trimmed === "" || trimmed === ".") return null;
  const name =
    trimmed === "@"
      ? apex
      : trimmed.endsWith(".")
        ? canonicalName(trimmed)
        : canonicalName(apex === "" ? trimmed : `${trimmed}.${apex}`);
  return isServableName(name) ? name : null;
}

function compileSoa(entry: EntryView, apex: string): SoaRecord | string {
  const ttl = integerIn(first(entry, dnsAttributes.ttl), zoneDefaults.ttlSeconds, 0, ttlSecondsMax);
  const values = {
    serial: integerIn(first(entry, dnsAttributes.soaSerial), zoneDefaults.serial, 0, 4_294_967_295),
    refresh: integerIn(first(entry, dnsAttributes.soaRefresh), zoneDefaults.refreshSeconds, 0, ttlSecondsMax),
    retry: integerIn(first(entry, dnsAttributes.soaRetry), zoneDefaults.retrySeconds, 0, ttlSecondsMax),
    expire: integerIn(first(entry, dnsAttributes.soaExpire), zoneDefaults.expireSeconds, 0, ttlSecondsMax),
    minimum: integerIn(first(entry, dnsAttributes.soaMinimum), zoneDefaults.minimumSeconds, 0, ttlSecondsMax),
  };
  if (ttl === null) return `zone ${apex}: ${dnsAttributes.ttl} must be 0..${ttlSecondsMax}`;
  for (const [key, value] of Object.entries(values))
    if (value === null) return `zone ${apex}: bad SOA ${key}`;
  const mname = resolveName(first(entry, dnsAttributes.soaPrimary) ?? `${apex}.`, apex);
  const rname = resolveName(first(entry, dnsAttributes.soaMailbox) ?? `hostmaster.${apex}.`, apex);
  if (mname === null || rname === null) return `zone ${apex}: bad SOA primary or mailbox name`;
  return {
    type: "SOA",
    name: apex,
    ttl,
    mname,
    rname,
    serial: values.serial as number,
    refresh: values.refresh as number,
    retry: values.retry as number,
    expire: values.expire as number,
    minimum: values.minimum as number,
  };
}

/** Parses one record's presentation data (A, AAAA, SRV "prio weight port target", names, text). */
export function parseRecordData(
  type: RecordType,
  data: string,
  name: string,
  ttl: number,
  apex: string,
): DnsRecord | string {
  const text = data.trim();
  switch (type) {
    case "A":
    case "AAAA": {
      const bytes = parseAddress(text);
      const wanted = type === "A" ? 4 : 16;
      if (bytes === null || bytes.length !== wanted)
        return `${type} data must be an IPv${wanted === 4 ? 4 : 6} address`;
      return { type, name, ttl, address: formatAddress(bytes) };
    }
    case "SRV": {
      const match = /^([0-9]{1,5})\s+([0-9]{1,5})\s+([0-9]{1,5})\s+(\S+)$/.exec(text);
      const numbers = match?.slice(1, 4).map(Number) ?? [];
      // RFC 2782: a target of "." (the root) says the service is decidedly not available here.
      const target = match?.[4] === undefined ? null : match[4] === "." ? "" : resolveName(match[4], apex);
      if (match === null || numbers.some((value) => value > 65_535) || target === null)
        return "SRV data must be 'priority weight port target' (numbers 0-65535)";
      const [priority, weight, port] = numbers as [number, number, number];
      return { type, name, ttl, priority, weight, port, target };
    }
    case "CNAME":
    case "NS": {
      const target = resolveName(text, apex);
      if (target === null) return `${type} data must be a domain name`;
      return { type, name, ttl, target };
    }
    case "TXT":
      if (utf8Length(text) > txtBytesMax) return `TXT data is longer than ${txtBytesMax} bytes`;
      return { type, name, ttl, text: data };
    case "SOA":
      return "SOA comes from the zone entry, not from a record entry";
  }
}

function parseRecordEntry(entry: EntryView, zone: Zone | undefined, zoneName: string): RecordEntry | string {
  const typeText = (first(entry, dnsAttributes.type) ?? "").toUpperCase();
  const type = recordTypes.find((known) => known === typeText);
  const nameText = first(entry, dnsAttributes.name) ?? "";
  const data = first(entry, dnsAttributes.data) ?? "";
  const ttlText = first(entry, dnsAttributes.ttl);
  const refreshedText = first(entry, dnsAttributes.refreshedAt);
  const nodeText = first(entry, dnsAttributes.node);
  const refreshedAt =
    refreshedText !== undefined && /^[0-9]{1,15}$/.test(refreshedText) ? Number(refreshedText) : undefined;
  const base = {
    dn: entry.dn,
    id: first(entry, dnsAttributes.recordId) ?? "",
    zone: zoneName,
    nameText,
    data,
    ttlText,
    node: nodeText,
    refreshedAt,
  };
  if (type === undefined)
    return `${entry.dn}: ${dnsAttributes.type} must be one of ${recordTypes.join(", ")}`;
  if (zone === undefined) return { ...base, type, record: null };
  const name = resolveName(nameText, zone.apex);
  if (name === null || !isAtOrBelow(name, zone.apex))
    return `${entry.dn}: ${dnsAttributes.name} must be a name in zone ${zone.apex}`;
  const ttl = integerIn(ttlText, zone.soa.ttl, 0, ttlSecondsMax);
  if (ttl === null) return `${entry.dn}: ${dnsAttributes.ttl} must be 0..${ttlSecondsMax}`;
  const parsed = parseRecordData(type, data, name, ttl, zone.apex);
  if (typeof parsed === "string") return `${entry.dn}: ${parsed}`;
  const record = nodeText !== undefined && isNodeId(nodeText) ? { ...parsed, node: nodeText } : parsed;
  return { ...base, type, record };
}

function parentKey(dn: string): string | null {
  const parsed = parseDn(dn);
  if (!parsed.ok || parsed.value.rdns.length === 0) return null;
  return normalizeDn(dnParent(parsed.value));
}

function dnKey(dn: string): string | null {
  const parsed = parseDn(dn);
  return parsed.ok ? normalizeDn(parsed.value) : null;
}

/** Compiles the dns partition's entries (any order) into zones. Deterministic for a set of entries. */
export function compileZones(entries: readonly EntryView[]): CompiledZones {
  const problems: string[] = [];
  const zonesByDn = new Map<string, { apex: string; soa: SoaRecord }>();
  for (const entry of entries) {
    if (!hasClass(entry, dnsClasses.zone)) continue;
    const apex = canonicalName(first(entry, dnsAttributes.zoneName) ?? "");
    const key = dnKey(entry.dn);
    if (apex === "" || !isServableName(apex) || key === null) {
      problems.push(`${entry.dn}: ${dnsAttributes.zoneName} must be a domain name`);
      continue;
    }
    const soa = compileSoa(entry, apex);
    if (typeof soa === "string") problems.push(soa);
    else zonesByDn.set(key, { apex, soa });
  }
  const building = new Map<string, { soa: SoaRecord; names: Map<string, DnsRecord[]> }>();
  for (const { apex, soa } of zonesByDn.values())
    if (!building.has(apex)) building.set(apex, { soa, names: new Map([[apex, [soa]]]) });
  const records: RecordEntry[] = [];
  for (const entry of entries) {
    if (!hasClass(entry, dnsClasses.record)) continue;
    const key = parentKey(entry.dn);
    const zone = key === null ? undefined : zonesByDn.get(key);
    const target = zone === undefined ? undefined : building.get(zone.apex);
    const shell: Zone | undefined =
      zone === undefined
        ? undefined
        : { apex: zone.apex, soa: zone.soa, names: new Map(), nonTerminals: new Set() };
    const parsed = parseRecordEntry(entry, shell, zone?.apex ?? "");
    if (typeof parsed === "string") {
      problems.push(parsed);
      continue;
    }
    if (zone === undefined) problems.push(`${entry.dn}: not directly below a zone entry`);
    records.push(parsed);
    if (parsed.record === null || target === undefined) continue;
    const list = target.names.get(parsed.record.name);
    if (list === undefined) target.names.set(parsed.record.name, [parsed.record]);
    else list.push(parsed.record);
  }
  const zones = new Map<string, Zone>();
  for (const [apex, built] of building) zones.set(apex, finishZone(apex, built.soa, built.names, problems));
  return { set: { zones }, problems, records };
}

const typeOrder = new Map(recordTypes.map((type, index) => [type, index]));

function recordKey(record: DnsRecord): string {
  return JSON.stringify(record);
}

/** Sorts each name's records, drops duplicates and CNAMEs that share a name with other data. */
function finishZone(apex: string, soa: SoaRecord, names: Map<string, DnsRecord[]>, problems: string[]): Zone {
  const finished = new Map<string, readonly DnsRecord[]>();
  const nonTerminals = new Set<string>();
  for (const [name, list] of names) {
    const unique = new Map<string, DnsRecord>();
    for (const record of withRrsetTtls(list)) {
      const { node: _node, ttl: _ttl, ...data } = record;
      const key = JSON.stringify(data);
      if (!unique.has(key)) unique.set(key, record);
    }
    let kept = [...unique.values()].sort(
      (a, b) =>
        (typeOrder.get(a.type) ?? 0) - (typeOrder.get(b.type) ?? 0) || (recordKey(a) < recordKey(b) ? -1 : 1),
    );
    const hasCname = kept.some((record) => record.type === "CNAME");
    if (hasCname && (kept.length > 1 || name === apex)) {
      problems.push(`${name}: a CNAME cannot share its name with other data; the CNAME is not served`);
      kept = kept.filter((record) => record.type !== "CNAME");
    }
    if (kept.length === 0) continue;
    finished.set(name, kept);
    for (let above = parentName(name); above !== apex && isAtOrBelow(above, apex); above = parentName(above))
      nonTerminals.add(above);
  }
  for (const name of finished.keys()) nonTerminals.delete(name);
  return { apex, soa, names: finished, nonTerminals };
}

/**
 * The records of one name with one TTL per type: the lowest of that type's records. An RRset's
 * records must share their TTL (RFC 2181 section 5.2, which tells clients to take the lowest
 * when they do not); here they come from separate entries, written by nodes with their own
 * --dns-ttl or by an operator with the zone's default, and would otherwise differ.
 */
function withRrsetTtls(records: readonly DnsRecord[]): DnsRecord[] {
  const lowest = new Map<RecordType, number>();
  for (const record of records)
    lowest.set(record.type, Math.min(lowest.get(record.type) ?? record.ttl, record.ttl));
  return records.map((record) => {
    const ttl = lowest.get(record.type) ?? record.ttl;
    return ttl === record.ttl ? record : { ...record, ttl };
  });
}
