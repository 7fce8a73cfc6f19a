/**
 * Schema-lite: Plexus does not enforce object classes, but it knows which attributes are
 * link-valued (merged per value), and it bounds every entry.
 */

/** Attributes whose values are DNs merged value by value, like Active Directory's linked values. */
export const linkAttributesDefault: readonly string[] = ["member", "uniquemember", "manager", "seealso"];

/**
 * Attributes whose changes replicate urgently (notification without the batching delay), as
 * Active Directory does for account lockout and password changes: a user locked out on one
 * server must not be let in by another a minute later. Changes to the config partition are
 * urgent too (see replication/urgent.ts).
 */
export const urgentAttributesDefault: readonly string[] = [
  "userpassword",
  "unicodepwd",
  "lockouttime",
  "pwdaccountlockedtime",
  "pwdfailuretime",
  "pwdchangedtime",
];

/**
 * Operational attributes: each node computes them from the entry's own row when it is read (a
 * GUID, USNs, conflict marks). A client cannot write them: a stored copy would shadow the
 * computed value in reads and filters (a search by the real entryGUID would miss the entry), and
 * the USNs are each replica's own, so no single written value could be right everywhere.
 */
export const operationalAttributeTypes: readonly string[] = [
  "entryGUID",
  "entryUUID",
  "usnCreated",
  "usnChanged",
  "plexusConflict",
  "plexusPlacement",
];

const operationalTypeNorms: ReadonlySet<string> = new Set(
  operationalAttributeTypes.map((type) => type.toLowerCase()),
);

export function isOperationalAttribute(typeNorm: string): boolean {
  return operationalTypeNorms.has(typeNorm);
}

/** The canonical spelling of a few well-known attribute types, for output. */
const canonicalTypes: ReadonlyMap<string, string> = new Map(
  ["objectClass", "member", "uniqueMember", "manager", "seeAlso"].map((type) => [type.toLowerCase(), type]),
);

export function canonicalType(typeNorm: string, asWritten: string): string {
  return canonicalTypes.get(typeNorm) ?? asWritten;
}

export const valueBytesMax = 256 * 1024;
export const valuesPerAttributeMax = 10_000;
export const attributesPerEntryMax = 256;
export const entryBytesMax = 4 * 1024 * 1024;
/** Values of one attribute in one modification or add request. */
export const modificationsPerRequestMax = 256;
/** Entries one subtree delete may remove in one transaction. */
export const subtreeDeleteEntriesMax = 100_000;

export interface Schema {
  readonly linkAttributes: ReadonlySet<string>;
}

export function makeSchema(linkAttributes: readonly string[] = linkAttributesDefault): Schema {
  return { linkAttributes: new Set(linkAttributes.map((type) => type.toLowerCase())) };
}

export function isLinkAttribute(schema: Schema, typeNorm: string): boolean {
  return schema.linkAttributes.has(typeNorm);
}

export function utf8Length(text: string): number {
  // Exact UTF-8 length without allocating (TextEncoder would copy the string).
  let bytes = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      bytes += 4;
      index++;
    } else bytes += 3;
  }
  return bytes;
}
