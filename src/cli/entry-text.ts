import { parseWriteConcern } from "../core/node/write-concern.ts";
import type { Attributes, Change, EntryView } from "./remote.ts";

/**
 * The entry commands' text: what a person types (`cn=alice`, `--add mail=a@example.com`) into
 * the API's shapes, and the node's answers into readable text. Entries print as LDIF
 * (RFC 2849): `type: value` lines, `type:: base64` for a value LDIF cannot carry as it is.
 */

/** An attribute type as LDAP names them: a descriptor or a numeric OID, with options (`;lang-en`). */
const attributeTypePattern = /^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*$/;

export function isAttributeType(text: string): boolean {
  return attributeTypePattern.test(text);
}

/** `type=value` split at the first `=`; `allowBare` accepts a lone `type` (value null). */
export function parseAssignment(text: string, allowBare = false): { type: string; value: string | null } {
  const at = text.indexOf("=");
  if (at < 0 && !allowBare) throw new Error(`'${text}' is not type=value`);
  const type = at < 0 ? text : text.slice(0, at);
  if (!isAttributeType(type))
    throw new Error(`'${type}' is not an attribute type (letters, digits and '-', starting with a letter)`);
  return { type, value: at < 0 ? null : text.slice(at + 1) };
}

/** `objectClass=person cn=alice cn=Alice`: repeated types collect their values in order. */
export function parseAttributes(assignments: readonly string[]): Attributes {
  const attributes: Attributes = {};
  for (const text of assignments) {
    const { type, value } = parseAssignment(text);
    const key = Object.keys(attributes).find((known) => known.toLowerCase() === type.toLowerCase()) ?? type;
    attributes[key] = [...(attributes[key] ?? []), value ?? ""];
  }
  return attributes;
}

export type ChangeFlag = "add" | "delete" | "replace";

/**
 * Modify flags in the order given into API changes. Consecutive flags with the same operation
 * and type make one change with several values; `--delete type` (no value) removes the whole
 * attribute and `--replace type` (no value) empties it.
 */
export function parseChanges(flags: readonly { operation: ChangeFlag; text: string }[]): Change[] {
  const changes: { operation: ChangeFlag; attribute: string; values?: string[] }[] = [];
  for (const { operation, text } of flags) {
    const { type, value } = parseAssignment(text, operation !== "add");
    const last = changes.at(-1);
    if (
      last !== undefined &&
      last.operation === operation &&
      last.attribute.toLowerCase() === type.toLowerCase() &&
      value !== null &&
      last.values !== undefined
    ) {
      last.values.push(value);
    } else if (value === null) {
      changes.push(
        operation === "replace" ? { operation, attribute: type, values: [] } : { operation, attribute: type },
      );
    } else {
      changes.push({ operation, attribute: type, values: [value] });
    }
  }
  return changes;
}

/** The first RDN of a DN (`cn=a\,b` stays whole): a move without --new-rdn keeps it. */
export function firstRdn(dn: string): string {
  for (let index = 0; index < dn.length; index++) {
    const char = dn[index];
    if (char === "\\") index++;
    else if (char === "," || char === ";") return dn.slice(0, index).trim();
  }
  return dn.trim();
}

/** RFC 2849 SAFE-STRING: printable ASCII, not starting with space, ':' or '<', not ending with space. */
function isSafeValue(value: string): boolean {
  if (value === "") return true;
  if (/^[ :<]/.test(value) || value.endsWith(" ")) return false;
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    if (code === 0 || code === 10 || code === 13 || code > 127) return false;
  }
  return true;
}

export function ldifLine(type: string, value: string): string {
  return isSafeValue(value)
    ? `${type}: ${value}`
    : `${type}:: ${Buffer.from(value, "utf8").toString("base64")}`;
}

/** One entry as an LDIF record (no trailing blank line). */
export function formatEntry(entry: EntryView): string {
  const lines = [ldifLine("dn", entry.dn)];
  for (const [type, values] of Object.entries(entry.attributes))
    for (const value of values) lines.push(ldifLine(type, value));
  return lines.join("\n");
}

export function formatEntries(entries: readonly EntryView[], truncated: boolean): string {
  const records = entries.map((entry) => `${formatEntry(entry)}\n\n`).join("");
  return `${records}${formatEntryCount(entries.length, truncated)}`;
}

/** The line that ends a search's entries: how many, and whether the size limit cut them short. */
export function formatEntryCount(count: number, truncated: boolean): string {
  const counted = `# ${count} ${count === 1 ? "entry" : "entries"}`;
  return `${counted}${truncated ? " (truncated: the size limit was reached)" : ""}\n`;
}

interface Reached {
  readonly requested?: unknown;
  readonly met?: unknown;
  readonly nodes?: unknown;
  readonly sites?: unknown;
}

function list(value: unknown): string {
  return Array.isArray(value) && value.length > 0 ? value.join(", ") : "none";
}

/**
 * What a write concern reached, in one line: `write concern site: met on e1, e2 (sites east)`,
 * or when it fell short, where the write is and what was missing:
 * `write concern sites=3: NOT met: reached only e1, e2 (sites east); missing 2 more sites`.
 */
export function formatReached(reached: Reached): string {
  const requested = String(reached.requested);
  const where = `${list(reached.nodes)} (sites ${list(reached.sites)})`;
  if (reached.met === true) return `write concern ${requested}: met on ${where}`;
  return `write concern ${requested}: NOT met: reached only ${where}; missing ${missing(requested, reached)}`;
}

/** What an unmet write concern still lacked, from the concern and the nodes and sites reached. */
function missing(requested: string, reached: Reached): string {
  const parsed = parseWriteConcern(requested);
  const concern = parsed.ok ? parsed.value.concern : undefined;
  const sitesReached = Array.isArray(reached.sites) ? reached.sites.length : 0;
  switch (concern?.kind) {
    case "site":
      // The answering node comes first in `nodes`.
      return `another node of ${Array.isArray(reached.nodes) ? String(reached.nodes[0]) : "this node"}'s site`;
    case "sites": {
      const short = Math.max(concern.count - sitesReached, 1);
      return `${short} more ${short === 1 ? "site" : "sites"}`;
    }
    case "all":
      return "the servers not listed";
    default:
      return `what ${requested} asks for`;
  }
}

/** A write's answer: `added cn=alice,… (usn 42, 1 entry)` and its write concern when one was asked. */
export function formatOutcome(verb: string, answer: Record<string, unknown>): string {
  const changed = typeof answer.changed === "number" ? answer.changed : 0;
  const lines = [
    `${verb} ${String(answer.dn)} (usn ${String(answer.usn)}, ${changed} ${changed === 1 ? "entry" : "entries"})`,
  ];
  const reached = answer.writeConcern as Reached | undefined;
  if (reached !== undefined && reached.requested !== "local") lines.push(formatReached(reached));
  return `${lines.join("\n")}\n`;
}
