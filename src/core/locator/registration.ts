import { escapeValue } from "../directory/dn.ts";
import type { Guid, NodeId } from "../ids.ts";
import type { WriteRequest } from "../replica/originating.ts";
import type { EntryView } from "../replica/read.ts";
import { type SiteName, siteKey, type TopologyConfig } from "../topology/model.ts";
import type { Health } from "./answer.ts";
import { coveringSites, sitesServedBy } from "./coverage.ts";
import { canonicalName, type RecordType } from "./records.ts";
import { dnsAttributes, dnsClasses, type RecordEntry, zoneDn } from "./zone.ts";

/**
 * What a node keeps in the locator zone about itself, and the writes that get it there: its
 * records are wanted from the topology and its own endpoint (a pure function), compared with
 * the records the replica holds, and the difference becomes writes — adds, changes, refreshes
 * of the timestamp, deletes of what it no longer wants. Scavenging decides which other nodes'
 * records have gone stale. Time arrives as an argument.
 */
export interface LocatorSettings {
  /** The zone this node registers in (canonical). */
  readonly zone: string;
  /** RFC 2782 priority and weight of this node's SRV records. */
  readonly priority: number;
  readonly weight: number;
  readonly ttlSeconds: number;
  /** A record older than this is refreshed (its timestamp rewritten). */
  readonly refreshMs: number;
  /** Another node's record not refreshed for this long is deleted. */
  readonly scavengeAfterMs: number;
}

export const locatorSettingsDefault: LocatorSettings = {
  zone: "plexus.test",
  priority: 0,
  weight: 100,
  ttlSeconds: 60,
  refreshMs: 10 * 60_000,
  scavengeAfterMs: 60 * 60_000,
};

/**
 * Records of a node that the topology no longer lists are deleted once they are this old: the
 * grace covers a record that replicated to a node before the server entry it belongs to.
 */
export const decommissionedGraceMs = 60_000;
/** Writes one registration or scavenging pass issues at most; the rest wait for the next pass. */
export const registrationWritesMax = 256;

export interface NodeEndpoint {
  readonly node: NodeId;
  readonly site: SiteName;
  readonly address: string;
  readonly httpPort: number;
  /** Null while the node serves no LDAP: `_ldap._tcp` records are registered only with a port. */
  readonly ldapPort: number | null;
}

export interface WantedRecord {
  /** The record entry's cn: node, type and name, so that each node writes only its own entries. */
  readonly id: string;
  /** Relative to the zone ("@" for the apex). */
  readonly name: string;
  readonly type: RecordType;
  readonly data: string;
}

function wanted(node: NodeId, type: RecordType, name: string, data: string): WantedRecord {
  return { id: `${node} ${type} ${name}`, name, type, data };
}

/**
 * The records `self` registers: host address, NS, and SRV records, generic and per site served
 * (see coverage.ts; `registered` says which nodes' records the zone holds already).
 */
export function wantedRecords(
  config: Pick<TopologyConfig, "sites" | "links" | "servers">,
  self: NodeEndpoint,
  settings: LocatorSettings,
  registered: (node: string) => boolean = () => true,
): WantedRecord[] {
  // A node the topology no longer lists is decommissioned: it withdraws its records rather
  // than registering them again after every other node scavenged them.
  if (!config.servers.some((server) => server.node === self.node)) return [];
  const host = `${self.node}.${canonicalName(settings.zone)}.`;
  const records = [
    wanted(self.node, self.address.includes(":") ? "AAAA" : "A", self.node, self.address),
    wanted(self.node, "NS", "@", host),
  ];
  const services: Array<{ service: string; port: number }> = [
    { service: "_plexus._tcp", port: self.httpPort },
  ];
  if (self.ldapPort !== null) services.push({ service: "_ldap._tcp", port: self.ldapPort });
  const sites = sitesServedBy(coveringSites(config, registered), config, self.site);
  for (const { service, port } of services) {
    const data = `${settings.priority} ${settings.weight} ${port} ${host}`;
    records.push(wanted(self.node, "SRV", service, data));
    for (const site of sites)
      records.push(wanted(self.node, "SRV", `${service}.${siteKey(site)}._sites`, data));
  }
  return records;
}

function recordAdd(
  zone: string,
  record: WantedRecord,
  self: NodeId,
  ttl: number,
  nowMs: number,
): WriteRequest {
  return {
    op: "add",
    dn: `${dnsAttributes.recordId}=${escapeValue(record.id)},${zoneDn(zone)}`,
    attributes: {
      objectClass: ["top", dnsClasses.record],
      [dnsAttributes.recordId]: [record.id],
      [dnsAttributes.name]: [record.name],
      [dnsAttributes.type]: [record.type],
      [dnsAttributes.data]: [record.data],
      [dnsAttributes.ttl]: [String(ttl)],
      [dnsAttributes.node]: [self],
      [dnsAttributes.refreshedAt]: [String(nowMs)],
    },
  };
}

function replace(dn: string, values: Readonly<Record<string, string>>): WriteRequest {
  return {
    op: "modify",
    dn,
    changes: Object.entries(values).map(([attribute, value]) => ({
      operation: "replace" as const,
      attribute,
      values: [value],
    })),
  };
}

/**
 * The writes that make the replica hold exactly `wantedList` for `self` in the settings' zone:
 * the zone entry when missing, adds, changes (with a fresh timestamp), refreshes of records
 * older than refreshMs, and deletes of its own records it no longer wants (in any zone).
 */
export function registrationWrites(
  existing: readonly RecordEntry[],
  zoneExists: boolean,
  wantedList: readonly WantedRecord[],
  self: NodeId,
  settings: LocatorSettings,
  nowMs: number,
): WriteRequest[] {
  const zone = canonicalName(settings.zone);
  const writes: WriteRequest[] = [];
  if (!zoneExists)
    writes.push({
      op: "add",
      dn: zoneDn(zone),
      attributes: { objectClass: ["top", dnsClasses.zone], [dnsAttributes.zoneName]: [zone] },
    });
  const mine = existing.filter((record) => record.node === self);
  const byId = ownRecordsIn(mine, self, zone);
  const wantedIds = new Set<string>();
  for (const record of wantedList) {
    wantedIds.add(record.id.toLowerCase());
    const have = byId.get(record.id.toLowerCase());
    if (have === undefined) {
      writes.push(recordAdd(zone, record, self, settings.ttlSeconds, nowMs));
      continue;
    }
    const changed =
      have.nameText !== record.name ||
      have.type !== record.type ||
      have.data !== record.data ||
      have.ttlText !== String(settings.ttlSeconds);
    const due = have.refreshedAt === undefined || nowMs - have.refreshedAt >= settings.refreshMs;
    if (changed)
      writes.push(
        replace(have.dn, {
          [dnsAttributes.name]: record.name,
          [dnsAttributes.type]: record.type,
          [dnsAttributes.data]: record.data,
          [dnsAttributes.ttl]: String(settings.ttlSeconds),
          [dnsAttributes.refreshedAt]: String(nowMs),
        }),
      );
    else if (due) writes.push(replace(have.dn, { [dnsAttributes.refreshedAt]: String(nowMs) }));
  }
  for (const record of mine)
    if (record.zone !== zone || !wantedIds.has(record.id.toLowerCase()))
      writes.push({ op: "delete", dn: record.dn });
  return writes.slice(0, registrationWritesMax);
}

/**
 * The entries of `self`'s wanted records that the replica does not hold, as its registration
 * pass will write them: the node answers them in the meantime, so that its own answers never
 * lack it. They go missing when other nodes' deletes arrive: after a cut longer than the
 * scavenging age, each side scavenged the other's records, and with the heal those deletes
 * win over the owners' refreshes, on every node. Nothing while the zone itself is missing.
 */
export function missingOwnEntries(
  existing: readonly RecordEntry[],
  zoneExists: boolean,
  wantedList: readonly WantedRecord[],
  self: NodeId,
  settings: LocatorSettings,
  nowMs: number,
): EntryView[] {
  if (!zoneExists) return [];
  const zone = canonicalName(settings.zone);
  const held = ownRecordsIn(existing, self, zone);
  const missing: EntryView[] = [];
  for (const record of wantedList) {
    if (held.has(record.id.toLowerCase())) continue;
    const add = recordAdd(zone, record, self, settings.ttlSeconds, nowMs);
    // Never written, so no guid: compileZones does not read it.
    if (add.op === "add") missing.push({ dn: add.dn, guid: "" as Guid, attributes: add.attributes });
  }
  return missing;
}

/** `self`'s records in `zone`, by their id (case-insensitive). */
function ownRecordsIn(
  existing: readonly RecordEntry[],
  self: NodeId,
  zone: string,
): Map<string, RecordEntry> {
  return new Map(
    existing
      .filter((record) => record.node === self && record.zone === zone)
      .map((record) => [record.id.toLowerCase(), record]),
  );
}

export type ScavengeReason = "decommissioned" | "stale";

export interface Scavenged {
  readonly dn: string;
  readonly node: string;
  readonly reason: ScavengeReason;
}

/**
 * Other nodes' registered records to delete: those of a node the topology no longer lists
 * (after decommissionedGraceMs), and those not refreshed for scavengeAfterMs. Records without
 * a node or a timestamp are operators' and never scavenged.
 */
export function scavenge(
  existing: readonly RecordEntry[],
  config: Pick<TopologyConfig, "servers">,
  self: NodeId,
  settings: LocatorSettings,
  nowMs: number,
): Scavenged[] {
  const listed = new Set<string>(config.servers.map((server) => server.node));
  const found: Scavenged[] = [];
  for (const record of existing) {
    if (record.node === undefined || record.node === self || record.refreshedAt === undefined) continue;
    const age = nowMs - record.refreshedAt;
    if (!listed.has(record.node) && age >= decommissionedGraceMs)
      found.push({ dn: record.dn, node: record.node, reason: "decommissioned" });
    else if (age >= settings.scavengeAfterMs)
      found.push({ dn: record.dn, node: record.node, reason: "stale" });
    if (found.length === registrationWritesMax) break;
  }
  return found;
}

/** Partners whose pulls failed `threshold` times in a row: their SRV records move back in answers. */
export function healthOf(
  partners: readonly { readonly partner: NodeId; readonly consecutiveFailures: number }[],
  threshold: number,
): Health {
  return {
    unhealthy: new Set(
      partners.filter((status) => status.consecutiveFailures >= threshold).map((status) => status.partner),
    ),
  };
}
