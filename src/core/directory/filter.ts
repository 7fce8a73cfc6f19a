import { assert, unreachable } from "../assert.ts";
import type { Result } from "../result.ts";
import { fail, ok } from "../result.ts";
import { attributeTypeLengthMax, isAttributeType, normalizeDn, parseDn } from "./dn.ts";
import type { SubstringPosition } from "./values.ts";
import {
  compareOrdering,
  decodeUtf8,
  hexByteAt,
  hexPair,
  normalizeSubstringPiece,
  normalizeValue,
} from "./values.ts";

/**
 * Search filters in the RFC 4515 string form, and their evaluation against an entry.
 * Extensible match and attribute options are not supported and are rejected when parsed.
 */

/** Characters of filter input accepted by parseFilter. */
export const filterLengthMax = 16384;
/** Nesting levels: `(cn=a)` is one level, `(&(cn=a))` two. */
export const filterDepthMax = 32;
/** Filter nodes in one filter, counting `&`, `|`, `!` and every item. */
export const filterItemsMax = 512;

/**
 * A parsed filter. `attribute` is the lowercased attribute type and values are unescaped.
 * A substring filter has at least one non-empty piece; `any` pieces are never empty.
 */
export type Filter =
  | { readonly type: "and"; readonly filters: readonly Filter[] }
  | { readonly type: "or"; readonly filters: readonly Filter[] }
  | { readonly type: "not"; readonly filter: Filter }
  | {
      readonly type: "equality" | "greaterOrEqual" | "lessOrEqual" | "approx";
      readonly attribute: string;
      readonly value: string;
    }
  | { readonly type: "present"; readonly attribute: string }
  | {
      readonly type: "substring";
      readonly attribute: string;
      readonly initial?: string;
      readonly any: readonly string[];
      readonly final?: string;
    };

// ---------------------------------------------------------------------------------------------
// Parsing

/** Read position in the input; `end` excludes trailing whitespace, `nodes` counts filter nodes. */
interface Cursor {
  readonly text: string;
  readonly end: number;
  offset: number;
  nodes: number;
}

const whitespaceCharacter = /^\s$/;
const attributeTypeCharacter = /^[A-Za-z0-9.-]$/;

function invalid(problem: string, offset: number): Result<never> {
  return fail("invalid-filter", `${problem} at offset ${offset}`);
}

function peek(cursor: Cursor): string {
  return cursor.offset < cursor.end ? cursor.text.charAt(cursor.offset) : "";
}

/**
 * Parses a filter such as `(&(objectClass=person)(cn=Babs*))`. Whitespace around the whole
 * filter is ignored, and a single item may come without its parentheses (`cn=Babs`). Fails with
 * `invalid-filter` naming the problem and its offset, or `limit-exceeded`.
 */
export function parseFilter(text: string): Result<Filter> {
  if (text.length > filterLengthMax) {
    return fail(
      "limit-exceeded",
      `filter is ${text.length} characters long; at most ${filterLengthMax} are allowed`,
    );
  }
  let start = 0;
  let end = text.length;
  while (start < end && whitespaceCharacter.test(text.charAt(start))) start++;
  while (end > start && whitespaceCharacter.test(text.charAt(end - 1))) end--;
  if (start === end) return invalid("empty filter", start);
  const cursor: Cursor = { text, end, offset: start, nodes: 0 };
  const first = peek(cursor);
  // ldapsearch takes one item without its parentheses, not an and, or or not: say how to fix it.
  if (first === "&" || first === "|" || first === "!") {
    return invalid(
      `'${first}' starts a filter that needs its own parentheses: write (${text.slice(start, end)})`,
      start,
    );
  }
  const filter = first === "(" ? parseParenthesizedAt(cursor, 1) : parseBareItemAt(cursor);
  if (!filter.ok) return filter;
  if (cursor.offset < end) {
    return invalid(`unexpected '${peek(cursor)}' after the end of the filter`, cursor.offset);
  }
  return filter;
}

function countNode(cursor: Cursor): Result<null> {
  cursor.nodes++;
  if (cursor.nodes > filterItemsMax) {
    return fail("limit-exceeded", `filter has more than ${filterItemsMax} items (offset ${cursor.offset})`);
  }
  return ok(null);
}

function parseBareItemAt(cursor: Cursor): Result<Filter> {
  const counted = countNode(cursor);
  if (!counted.ok) return counted;
  return parseItemAt(cursor);
}

/** Parses `( filtercomp )` at nesting level `depth`, the cursor on the `(`. */
function parseParenthesizedAt(cursor: Cursor, depth: number): Result<Filter> {
  const open = cursor.offset;
  if (depth > filterDepthMax) {
    return fail("limit-exceeded", `filter nests deeper than ${filterDepthMax} levels (offset ${open})`);
  }
  const counted = countNode(cursor);
  if (!counted.ok) return counted;
  cursor.offset++;
  const operator = peek(cursor);
  let filter: Result<Filter>;
  if (operator === "&" || operator === "|") filter = parseListAt(cursor, depth);
  else if (operator === "!") filter = parseNotAt(cursor, depth);
  else filter = parseItemAt(cursor);
  if (!filter.ok) return filter;
  if (peek(cursor) !== ")") return unclosed(cursor, open);
  cursor.offset++;
  return filter;
}

/** Names both offsets: where ')' was expected and the '(' it should close. */
function unclosed(cursor: Cursor, open: number): Result<never> {
  const found = cursor.offset >= cursor.end ? "the end of the filter" : `'${peek(cursor)}'`;
  return fail(
    "invalid-filter",
    `expected ')' at offset ${cursor.offset} to close the '(' at offset ${open}, found ${found}`,
  );
}

/** Parses `&` or `|` and its operands; zero operands are RFC 4526 absolute true and false. */
function parseListAt(cursor: Cursor, depth: number): Result<Filter> {
  const type = peek(cursor) === "&" ? "and" : "or";
  cursor.offset++;
  const filters: Filter[] = [];
  // Each pass consumes one operand and countNode bounds their number.
  while (peek(cursor) === "(") {
    const operand = parseParenthesizedAt(cursor, depth + 1);
    if (!operand.ok) return operand;
    filters.push(operand.value);
  }
  return ok({ type, filters });
}

function parseNotAt(cursor: Cursor, depth: number): Result<Filter> {
  cursor.offset++;
  if (peek(cursor) !== "(") return invalid("'!' must be followed by a parenthesised filter", cursor.offset);
  const operand = parseParenthesizedAt(cursor, depth + 1);
  if (!operand.ok) return operand;
  return ok({ type: "not", filter: operand.value });
}

type ItemOperator = "equality" | "approx" | "greaterOrEqual" | "lessOrEqual";

const twoCharacterOperators: ReadonlyMap<string, ItemOperator> = new Map([
  ["~=", "approx"],
  [">=", "greaterOrEqual"],
  ["<=", "lessOrEqual"],
]);

/** Parses `attr op value`, leaving the cursor on the `)` or end that follows the value. */
function parseItemAt(cursor: Cursor): Result<Filter> {
  const attribute = parseAttributeAt(cursor);
  if (!attribute.ok) return attribute;
  const operatorOffset = cursor.offset;
  let operator: ItemOperator | undefined;
  if (peek(cursor) === "=") {
    operator = "equality";
    cursor.offset++;
  } else {
    operator = twoCharacterOperators.get(cursor.text.slice(cursor.offset, cursor.offset + 2));
    if (operator === undefined) {
      return invalid(`expected '=', '~=', '>=' or '<=' after attribute '${attribute.value}'`, operatorOffset);
    }
    cursor.offset += 2;
  }
  const segments = parseValueSegmentsAt(cursor, operator === "equality");
  if (!segments.ok) return segments;
  if (operator !== "equality")
    return ok({ type: operator, attribute: attribute.value, value: segments.value[0] ?? "" });
  return ok(equalsItem(attribute.value, segments.value));
}

function parseAttributeAt(cursor: Cursor): Result<string> {
  const start = cursor.offset;
  while (attributeTypeCharacter.test(peek(cursor))) cursor.offset++;
  const attribute = cursor.text.slice(start, cursor.offset);
  if (peek(cursor) === ":") return invalid("extensible match filters are not supported", cursor.offset);
  if (attribute.length === 0) return invalid("missing attribute type", start);
  if (attribute.length > attributeTypeLengthMax) {
    return fail(
      "limit-exceeded",
      `attribute type at offset ${start} is longer than ${attributeTypeLengthMax} characters`,
    );
  }
  if (!isAttributeType(attribute)) return invalid(`'${attribute}' is not a valid attribute type`, start);
  if (peek(cursor) === ";") return invalid(`attribute options are not supported ('${attribute};')`, start);
  return ok(attribute.toLowerCase());
}

/** Turns the `*`-separated segments after `=` into an equality, presence or substring item. */
function equalsItem(attribute: string, segments: readonly string[]): Filter {
  const first = segments[0] ?? "";
  if (segments.length === 1) return { type: "equality", attribute, value: first };
  const last = segments[segments.length - 1] ?? "";
  // Empty pieces (from `**`) match everywhere, so dropping them keeps the meaning; with no
  // piece left, as in `cn=*` or `cn=**`, what remains is a presence test.
  if (segments.every((segment) => segment === "")) return { type: "present", attribute };
  const any = segments.slice(1, -1).filter((piece) => piece !== "");
  return {
    type: "substring",
    attribute,
    ...(first === "" ? {} : { initial: first }),
    any,
    ...(last === "" ? {} : { final: last }),
  };
}

/** An unescaped segment being built; `\XX` bytes wait in `bytes` until a UTF-8 sequence ends. */
interface SegmentBuilder {
  segment: string;
  bytes: number[];
  bytesOffset: number;
}

/**
 * Reads an assertion value up to the closing `)` (or the end, for a bare item), splitting it at
 * unescaped `*` when `starsSplit`; otherwise an unescaped `*` is an error.
 */
function parseValueSegmentsAt(cursor: Cursor, starsSplit: boolean): Result<readonly string[]> {
  const segments: string[] = [];
  const builder: SegmentBuilder = { segment: "", bytes: [], bytesOffset: 0 };
  while (cursor.offset < cursor.end && peek(cursor) !== ")") {
    const character = peek(cursor);
    if (character === "\\") {
      const byte = hexByteAt(cursor.text, cursor.offset + 1);
      if (byte === undefined || cursor.offset + 3 > cursor.end) {
        return invalid("backslash must be followed by two hex digits", cursor.offset);
      }
      if (builder.bytes.length === 0) builder.bytesOffset = cursor.offset;
      builder.bytes.push(byte);
      cursor.offset += 3;
      continue;
    }
    const flushed = flushBytes(builder);
    if (!flushed.ok) return flushed;
    if (character === "*" && starsSplit) {
      segments.push(builder.segment);
      builder.segment = "";
    } else if (character === "*" || character === "(" || character === "\u0000") {
      const shown = character === "\u0000" ? "NUL" : `'${character}'`;
      return invalid(`unescaped ${shown} in assertion value (write it as a \\XX escape)`, cursor.offset);
    } else {
      builder.segment += character;
    }
    cursor.offset++;
  }
  const flushed = flushBytes(builder);
  if (!flushed.ok) return flushed;
  segments.push(builder.segment);
  return ok(segments);
}

function flushBytes(builder: SegmentBuilder): Result<null> {
  if (builder.bytes.length === 0) return ok(null);
  const decoded = decodeUtf8(builder.bytes);
  if (decoded === undefined) return invalid("hex escapes do not form valid UTF-8", builder.bytesOffset);
  builder.segment += decoded;
  builder.bytes = [];
  return ok(null);
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** Escapes `*`, `(`, `)`, `\`, NUL and other control characters as `\XX`; the rest stays. */
function escapeAssertionValue(value: string): string {
  let out = "";
  for (let index = 0; index < value.length; index++) {
    const character = value.charAt(index);
    const code = value.charCodeAt(index);
    const special = character === "*" || character === "(" || character === ")" || character === "\\";
    out += special || code < 0x20 || code === 0x7f ? `\\${hexPair(code)}` : character;
  }
  return out;
}

/**
 * The RFC 4515 string form; parseFilter gives back an equal filter. A filter deeper than
 * filterDepthMax cannot come from parseFilter, so formatting one is a programmer error.
 */
export function formatFilter(filter: Filter): string {
  return formatAt(filter, 1);
}

function formatAt(filter: Filter, depth: number): string {
  assert(depth <= filterDepthMax, `filter nests deeper than ${filterDepthMax} levels`);
  switch (filter.type) {
    case "and":
      return `(&${filter.filters.map((operand) => formatAt(operand, depth + 1)).join("")})`;
    case "or":
      return `(|${filter.filters.map((operand) => formatAt(operand, depth + 1)).join("")})`;
    case "not":
      return `(!${formatAt(filter.filter, depth + 1)})`;
    case "equality":
      return `(${filter.attribute}=${escapeAssertionValue(filter.value)})`;
    case "approx":
      return `(${filter.attribute}~=${escapeAssertionValue(filter.value)})`;
    case "greaterOrEqual":
      return `(${filter.attribute}>=${escapeAssertionValue(filter.value)})`;
    case "lessOrEqual":
      return `(${filter.attribute}<=${escapeAssertionValue(filter.value)})`;
    case "present":
      return `(${filter.attribute}=*)`;
    case "substring":
      return `(${filter.attribute}=${formatSubstringPieces(filter)})`;
    default:
      return unreachable(filter, "filter type");
  }
}

function formatSubstringPieces(filter: Extract<Filter, { type: "substring" }>): string {
  const middle = filter.any.map((piece) => `${escapeAssertionValue(piece)}*`).join("");
  return `${escapeAssertionValue(filter.initial ?? "")}*${middle}${escapeAssertionValue(filter.final ?? "")}`;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/** Lowercased attribute type to the entry's values of it; empty when the entry has none. */
export type FilterValues = (attributeNorm: string) => readonly string[];

/** True for a lowercased attribute type whose values are DNs (distinguishedNameMatch). */
export type DnValued = (attributeNorm: string) => boolean;

const noAttributeIsDnValued: DnValued = () => false;

/**
 * True when the entry matches. `values(attribute)` returns the entry's values of a lowercased
 * attribute type, or an empty array when the entry has none; it is called once per item
 * visited. Absent attributes make items false (two-valued logic, no Undefined).
 * Equality and approx compare values with caseIgnoreMatch, except on the attributes
 * `dnValued` names (default none), whose values and assertion compare as DNs
 * (distinguishedNameMatch, RFC 4517 4.2.15): `cn=Bob, ou=People` equals `CN=bob,OU=people`. An
 * assertion that is not a DN matches no value there (Undefined, false in two-valued logic).
 * A filter deeper than filterDepthMax is a programmer error, as in formatFilter.
 */
export function matchesFilter(
  filter: Filter,
  values: FilterValues,
  dnValued: DnValued = noAttributeIsDnValued,
): boolean {
  return matchesAt(filter, values, dnValued, 1);
}

function matchesAt(filter: Filter, values: FilterValues, dnValued: DnValued, depth: number): boolean {
  assert(depth <= filterDepthMax, `filter nests deeper than ${filterDepthMax} levels`);
  switch (filter.type) {
    case "and":
      return filter.filters.every((operand) => matchesAt(operand, values, dnValued, depth + 1));
    case "or":
      return filter.filters.some((operand) => matchesAt(operand, values, dnValued, depth + 1));
    case "not":
      return !matchesAt(filter.filter, values, dnValued, depth + 1);
    case "present":
      return values(filter.attribute).length > 0;
    case "equality":
    case "approx": {
      const dn = dnValued(filter.attribute);
      const asserted = equalityKey(filter.value, dn);
      if (asserted === undefined) return false;
      return values(filter.attribute).some((value) => equalityKey(value, dn) === asserted);
    }
    case "greaterOrEqual":
      return values(filter.attribute).some((value) => compareOrdering(value, filter.value) >= 0);
    case "lessOrEqual":
      return values(filter.attribute).some((value) => compareOrdering(value, filter.value) <= 0);
    case "substring":
      return matchesSubstring(filter, values(filter.attribute));
    default:
      return unreachable(filter, "filter type");
  }
}

/** The value's equality key: its normalized DN when `dn`, undefined if it is no DN; else caseIgnore. */
function equalityKey(value: string, dn: boolean): string | undefined {
  if (!dn) return normalizeValue(value);
  const parsed = parseDn(value);
  return parsed.ok ? normalizeDn(parsed.value) : undefined;
}

function matchesSubstring(
  filter: Extract<Filter, { type: "substring" }>,
  values: readonly string[],
): boolean {
  const piece = (text: string | undefined, position: SubstringPosition) =>
    text === undefined ? undefined : normalizeSubstringPiece(text, position);
  const initial = piece(filter.initial, "initial");
  const any = filter.any.map((text) => normalizeSubstringPiece(text, "any"));
  const final = piece(filter.final, "final");
  return values.some((value) => substringMatches(normalizeValue(value), initial, any, final));
}

/**
 * Greedy left-to-right search: taking the earliest position for each piece leaves the most room
 * for the rest, so it finds a match whenever one exists. Pieces never overlap.
 */
function substringMatches(
  value: string,
  initial: string | undefined,
  any: readonly string[],
  final: string | undefined,
): boolean {
  let position = 0;
  if (initial !== undefined) {
    if (!value.startsWith(initial)) return false;
    position = initial.length;
  }
  for (const piece of any) {
    const found = value.indexOf(piece, position);
    if (found < 0) return false;
    position = found + piece.length;
  }
  if (final === undefined) return true;
  return value.length - final.length >= position && value.endsWith(final);
}
