import { normalizeDn, parseDn } from "../directory/dn.ts";
import { configPartition } from "../directory/partition.ts";
import { urgentAttributesDefault } from "../directory/schema.ts";
import type { WriteRequest } from "../replica/originating.ts";
import type { ChangePage } from "./page.ts";

/**
 * Urgent changes are announced to partners at once instead of after the notification delay:
 * writes to the config partition (topology, settings: every node must recompute its partners
 * from the same data soon) and to the urgent attributes (schema.ts). A node that applies an
 * urgent change from a partner passes it on at once too.
 */
const urgentAttributes: ReadonlySet<string> = new Set(urgentAttributesDefault);
const configSuffix = `,${configPartition}`;

function inConfig(dn: string): boolean {
  const parsed = parseDn(dn);
  if (!parsed.ok) return false;
  const normal = normalizeDn(parsed.value);
  return normal === configPartition || normal.endsWith(configSuffix);
}

function urgentType(type: string): boolean {
  return urgentAttributes.has(type.toLowerCase());
}

export function isUrgentWrite(request: WriteRequest): boolean {
  if (inConfig(request.dn)) return true;
  switch (request.op) {
    case "add":
      return Object.keys(request.attributes).some(urgentType);
    case "modify":
      return request.changes.some((change) => urgentType(change.attribute));
    case "delete":
    case "modifyDn":
      return false;
  }
}

/** Whether a (validated) page carries an urgent change. */
export function isUrgentPage(page: ChangePage): boolean {
  return page.entries.some(
    (entry) => entry.partition === configPartition || entry.items.some((item) => urgentType(item.attribute)),
  );
}
