import type { Guid } from "../ids.ts";
import type { EntryView } from "../replica/read.ts";
import { dnsAttributes, dnsClasses, zoneDn } from "./zone.ts";

/**
 * Zone data as the dns partition holds it, for tests: a zone entry and record entries built
 * from short `name TYPE data` lines (an optional `node=<id>` suffix marks a registered record).
 */
export function zoneEntry(zone: string, soa: Readonly<Record<string, string>> = {}): EntryView {
  return {
    dn: zoneDn(zone),
    guid: `zone-${zone}` as Guid,
    attributes: { objectClass: ["top", dnsClasses.zone], dc: [zone], ...wrap(soa) },
  };
}

function wrap(values: Readonly<Record<string, string>>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(values).map(([key, value]) => [key, [value]]));
}

/** `line`: `<name> <TYPE> <data...> [node=<id>]`, e.g. `_plexus._tcp SRV 0 100 80 n1 node=n1`. */
export function recordEntry(zone: string, id: string, line: string): EntryView {
  const parts = line.split(" ");
  const node = parts.at(-1)?.startsWith("node=") ? (parts.pop() as string).slice(5) : undefined;
  const [name, type, ...data] = parts;
  return {
    dn: `cn=${id},${zoneDn(zone)}`,
    guid: `record-${zone}-${id}` as Guid,
    attributes: {
      objectClass: ["top", dnsClasses.record],
      cn: [id],
      [dnsAttributes.name]: [name ?? ""],
      [dnsAttributes.type]: [type ?? ""],
      [dnsAttributes.data]: [data.join(" ")],
      ...(node === undefined ? {} : { [dnsAttributes.node]: [node] }),
    },
  };
}

/** A zone and its records, one record entry per line. */
export function zoneWith(
  zone: string,
  lines: readonly string[],
  soa: Readonly<Record<string, string>> = {},
): EntryView[] {
  return [zoneEntry(zone, soa), ...lines.map((line, index) => recordEntry(zone, `r${index}`, line))];
}
