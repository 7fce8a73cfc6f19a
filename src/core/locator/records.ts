import type { NodeId } from "../ids.ts";

/**
 * DNS data as the locator's core sees it: names in canonical form (lower case, no trailing
 * dot, "" for the root), records typed per RR type, zones compiled for lookup. The DNS edge
 * translates these to and from wire packets; nothing here knows about packets.
 */
export type RecordType = "A" | "AAAA" | "SRV" | "CNAME" | "NS" | "TXT" | "SOA";
export const recordTypes: readonly RecordType[] = ["A", "AAAA", "SRV", "CNAME", "NS", "TXT", "SOA"];

interface RecordBase {
  /** Canonical owner name. */
  readonly name: string;
  readonly ttl: number;
  /** The node that registered the record (registered records only): answers use its health. */
  readonly node?: NodeId;
}

export interface SoaData {
  readonly mname: string;
  readonly rname: string;
  readonly serial: number;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  readonly minimum: number;
}

export type DnsRecord = RecordBase &
  (
    | { readonly type: "A" | "AAAA"; readonly address: string }
    | {
        readonly type: "SRV";
        readonly priority: number;
        readonly weight: number;
        readonly port: number;
        readonly target: string;
      }
    | { readonly type: "CNAME" | "NS"; readonly target: string }
    | { readonly type: "TXT"; readonly text: string }
    | ({ readonly type: "SOA" } & SoaData)
  );

export type SrvRecord = Extract<DnsRecord, { type: "SRV" }>;
export type SoaRecord = Extract<DnsRecord, { type: "SOA" }>;

export interface Zone {
  /** The zone's apex, canonical. */
  readonly apex: string;
  readonly soa: SoaRecord;
  /** Records by canonical owner name (every type at that name, in a stable order). */
  readonly names: ReadonlyMap<string, readonly DnsRecord[]>;
  /** Names that own no record but have descendants that do (empty non-terminals): NODATA, not NXDOMAIN. */
  readonly nonTerminals: ReadonlySet<string>;
}

export interface ZoneSet {
  /** Zones by canonical apex. */
  readonly zones: ReadonlyMap<string, Zone>;
}

export const emptyZoneSet: ZoneSet = { zones: new Map() };

/** A DNS name's length limit on the wire (RFC 1035), and a label's. */
export const nameBytesMax = 255;
export const labelBytesMax = 63;
/** Largest TTL accepted (RFC 2181: 2^31 - 1 seconds). */
export const ttlSecondsMax = 2_147_483_647;

/** Lower case, no trailing dot; "." and "" are the root (""). */
export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/**
 * Whether a canonical name is a name the locator serves: labels of 1-63 printable ASCII
 * characters other than dot and space, 255 bytes in all. Underscore labels (`_ldap`) are
 * allowed, as SRV owner names need them.
 */
export function isServableName(name: string): boolean {
  if (name === "") return true;
  if (name.length + 2 > nameBytesMax) return false;
  for (const label of name.split(".")) {
    if (label.length === 0 || label.length > labelBytesMax) return false;
    if (!/^[\x21-\x7e]+$/.test(label)) return false;
  }
  return true;
}

/** The parent of a canonical name ("" for a single label). */
export function parentName(name: string): string {
  const dot = name.indexOf(".");
  return dot < 0 ? "" : name.slice(dot + 1);
}

/** Whether `name` is `apex` or below it (both canonical). */
export function isAtOrBelow(name: string, apex: string): boolean {
  return apex === "" || name === apex || name.endsWith(`.${apex}`);
}

/** The zone that holds `name`: the one with the longest apex at or above it. */
export function zoneOf(set: ZoneSet, name: string): Zone | undefined {
  let probe = name;
  for (;;) {
    const zone = set.zones.get(probe);
    if (zone !== undefined) return zone;
    if (probe === "") return undefined;
    probe = parentName(probe);
  }
}
