import { isSafeString, type LdifAttributes, type LdifRecord } from "./record.ts";

/**
 * The LDIF writer (RFC 2849): `version: 1` first, records separated by a blank line, values
 * that are not SAFE-STRING in base64 (`::`), lines folded at 76 characters. Every line it
 * writes is ASCII, so folding by characters never splits a character.
 */

/** Physical lines longer than this are folded (RFC 2849 recommends 76). */
export const foldColumns = 76;

export const ldifHeader = "version: 1\n";

/** `type: value`, or `type:: base64` when the value is not SAFE-STRING. */
export function attrValueLine(type: string, value: string): string {
  if (isSafeString(value)) return value === "" ? `${type}:` : `${type}: ${value}`;
  return `${type}:: ${Buffer.from(value, "utf8").toString("base64")}`;
}

/**
 * A logical line as physical lines: the first at most `foldColumns` long, the rest a space and
 * at most one less. No physical line ends with a space where a character before it can end it
 * instead: an editor or a whitespace fix that strips trailing spaces would change the value
 * (the reason values with a trailing space are written in base64).
 */
export function fold(line: string): string {
  if (line.length <= foldColumns) return line;
  const parts: string[] = [];
  let offset = 0;
  while (offset < line.length) {
    const width = offset === 0 ? foldColumns : foldColumns - 1;
    let end = Math.min(offset + width, line.length);
    if (end < line.length) {
      let before = end;
      while (before > offset + 1 && line.charAt(before - 1) === " ") before--;
      if (line.charAt(before - 1) !== " ") end = before;
    }
    parts.push(offset === 0 ? line.slice(0, end) : ` ${line.slice(offset, end)}`);
    offset = end;
  }
  return parts.join("\n");
}

/**
 * Types an LDIF reader takes for the record's own syntax wherever they stand (a record's `dn:`,
 * its `changetype:`, a `control:` line): an attribute of that name cannot be written so that it
 * reads back as itself, by this parser or others.
 */
const reservedTypes: ReadonlySet<string> = new Set(["dn", "changetype", "control"]);

/** The first attribute type of `attributes` that LDIF cannot hold (see reservedTypes), or null. */
export function unwritableAttribute(attributes: LdifAttributes): string | null {
  return Object.keys(attributes).find((type) => reservedTypes.has(type.toLowerCase())) ?? null;
}

function attributeLines(attributes: LdifAttributes): string[] {
  const unwritable = unwritableAttribute(attributes);
  // Callers check first: written, the record would read back as another record or as none.
  if (unwritable !== null) throw new Error(`an attribute named '${unwritable}' cannot be written in LDIF`);
  const lines: string[] = [];
  for (const [type, values] of Object.entries(attributes))
    for (const value of values) lines.push(attrValueLine(type, value));
  return lines;
}

function logicalLines(record: LdifRecord): string[] {
  const dn = attrValueLine("dn", record.dn);
  switch (record.kind) {
    case "content":
      return [dn, ...attributeLines(record.attributes)];
    case "add":
      return [dn, "changetype: add", ...attributeLines(record.attributes)];
    case "delete":
      return [dn, "changetype: delete"];
    case "modify":
      return [
        dn,
        "changetype: modify",
        ...record.changes.flatMap((change) => [
          `${change.operation}: ${change.attribute}`,
          ...change.values.map((value) => attrValueLine(change.attribute, value)),
          "-",
        ]),
      ];
    case "modrdn":
      return [
        dn,
        "changetype: modrdn",
        attrValueLine("newrdn", record.newRdn),
        `deleteoldrdn: ${record.deleteOldRdn ? 1 : 0}`,
        ...(record.newSuperior === undefined ? [] : [attrValueLine("newsuperior", record.newSuperior)]),
      ];
    default: {
      const never: never = record;
      throw new Error(`unknown record ${JSON.stringify(never)}`);
    }
  }
}

/** One record and the blank line after it. */
export function formatRecord(record: LdifRecord): string {
  return `${logicalLines(record).map(fold).join("\n")}\n\n`;
}

/** A whole file: the version line, a blank line, then every record. */
export function formatLdif(records: Iterable<LdifRecord>): string {
  let text = `${ldifHeader}\n`;
  for (const record of records) text += formatRecord(record);
  return text;
}
