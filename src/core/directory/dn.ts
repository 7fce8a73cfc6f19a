import { assert } from "../assert.ts";
import type { Result } from "../result.ts";
import { fail, ok } from "../result.ts";
import { compareCodeUnits, decodeUtf8, hexByteAt, hexPair, normalizeValue } from "./values.ts";

/**
 * Distinguished names in the RFC 4514 string form. Parsing is strict about what the RFC
 * forbids and lenient only where section 3 allows it (spaces around `,`, `+` and `=`).
 * Every DN, RDN and AVA returned here is a fresh immutable value that the caller owns.
 */

/** Characters of DN input accepted by parseDn. */
export const dnLengthMax = 8192;
/** RDNs in one DN. */
export const dnDepthMax = 64;
/** Attribute-value assertions in one (multi-valued) RDN. */
export const rdnAvasMax = 8;
/** UTF-16 code units of one attribute value after unescaping. */
export const dnValueLengthMax = 1024;
/** Characters of one attribute type. */
export const attributeTypeLengthMax = 128;

/** One attribute-value assertion, such as `CN=Babs`. */
export interface Ava {
  /** The attribute type as written, kept for display. */
  readonly type: string;
  /** The attribute type lowercased, used for every comparison. */
  readonly typeNorm: string;
  /** The value with all escapes resolved. */
  readonly value: string;
  /** normalizeValue(value), used for every comparison. */
  readonly valueNorm: string;
}

/** One RDN; avas are sorted by typeNorm, then valueNorm, so equal RDNs list them in one order. */
export interface Rdn {
  readonly avas: readonly Ava[];
}

/** A DN; rdns[0] is the leftmost, most specific RDN. The root (empty) DN has no RDNs. */
export interface Dn {
  readonly rdns: readonly Rdn[];
}

const descrPattern = /^[A-Za-z][A-Za-z0-9-]*$/;
const numericOidPattern = /^(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+$/;
/** The characters an attribute type may hold, as a sticky run (see parseAttributeTypeAt). */
const attributeTypeRun = /[A-Za-z0-9.-]*/y;

/** True for a descr (`cn`, `x-name`) or a numericoid (`2.5.4.3`); options (`cn;lang-en`) are not. */
export function isAttributeType(text: string): boolean {
  if (text.length === 0 || text.length > attributeTypeLengthMax) return false;
  return descrPattern.test(text) || numericOidPattern.test(text);
}

/** Builds an AVA from an attribute type and an unescaped value, checking the type and the limits. */
export function makeAva(type: string, value: string): Result<Ava> {
  if (type.length > attributeTypeLengthMax) {
    return fail("limit-exceeded", `attribute type is longer than ${attributeTypeLengthMax} characters`);
  }
  if (!isAttributeType(type)) return fail("invalid-attribute", `'${type}' is not a valid attribute type`);
  if (value.length > dnValueLengthMax) {
    return fail("limit-exceeded", `attribute value is longer than ${dnValueLengthMax} characters`);
  }
  return ok(avaOf(type, value));
}

function avaOf(type: string, value: string): Ava {
  return { type, typeNorm: type.toLowerCase(), value, valueNorm: normalizeValue(value) };
}

function compareAvas(a: Ava, b: Ava): number {
  return compareCodeUnits(a.typeNorm, b.typeNorm) || compareCodeUnits(a.valueNorm, b.valueNorm);
}

/**
 * Builds an RDN, sorting a copy of the AVAs into canonical order. Passing no AVAs, more than
 * rdnAvasMax, or one attribute type twice is a programmer error: the parser rejects all three
 * before it gets here, and so must any other caller.
 */
export function makeRdn(avas: readonly Ava[]): Rdn {
  assert(avas.length > 0, "an RDN needs at least one AVA");
  assert(avas.length <= rdnAvasMax, `an RDN holds at most ${rdnAvasMax} AVAs`);
  const sorted = [...avas].sort(compareAvas);
  for (let index = 1; index < sorted.length; index++) {
    assert(sorted[index - 1]?.typeNorm !== sorted[index]?.typeNorm, "an RDN names each attribute type once");
  }
  return { avas: sorted };
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** Read position in the input; parse functions advance `offset` past what they consumed. */
interface Cursor {
  readonly text: string;
  offset: number;
}

function invalid(problem: string, offset: number): Result<never> {
  return fail("invalid-dn", `${problem} at offset ${offset}`);
}

function peek(cursor: Cursor): string {
  return cursor.text.charAt(cursor.offset);
}

function atEnd(cursor: Cursor): boolean {
  return cursor.offset >= cursor.text.length;
}

/** Skips the optional spaces RFC 4514 section 3 lets a parser tolerate around separators. */
function skipSpaces(cursor: Cursor): void {
  while (peek(cursor) === " ") cursor.offset++;
}

/**
 * Parses a DN such as `CN=Babs,DC=example,DC=net`. The empty string (or only spaces) is the
 * root DN. Fails with `invalid-dn` naming the problem and its offset, or `limit-exceeded`.
 */
export function parseDn(text: string): Result<Dn> {
  if (text.length > dnLengthMax) {
    return fail("limit-exceeded", `DN is ${text.length} characters long; at most ${dnLengthMax} are allowed`);
  }
  const cursor: Cursor = { text, offset: 0 };
  skipSpaces(cursor);
  if (atEnd(cursor)) return ok({ rdns: [] });
  const rdns: Rdn[] = [];
  // Each pass consumes one RDN, so the depth check bounds the loop.
  for (;;) {
    if (rdns.length === dnDepthMax) {
      return fail("limit-exceeded", `DN has more than ${dnDepthMax} RDNs (offset ${cursor.offset})`);
    }
    const rdn = parseRdnAt(cursor);
    if (!rdn.ok) return rdn;
    rdns.push(rdn.value);
    if (atEnd(cursor)) return ok({ rdns });
    assert(peek(cursor) === ",", "an RDN ends at a comma or at the end of input");
    const commaOffset = cursor.offset;
    cursor.offset++;
    skipSpaces(cursor);
    if (atEnd(cursor)) return invalid("trailing ',' with no RDN after it", commaOffset);
  }
}

/** Parses exactly one RDN such as `CN=Babs+UID=babs`; a `,` is an error. */
export function parseRdn(text: string): Result<Rdn> {
  if (text.length > dnLengthMax) {
    return fail(
      "limit-exceeded",
      `RDN is ${text.length} characters long; at most ${dnLengthMax} are allowed`,
    );
  }
  const cursor: Cursor = { text, offset: 0 };
  const rdn = parseRdnAt(cursor);
  if (!rdn.ok) return rdn;
  if (!atEnd(cursor)) return invalid("expected exactly one RDN but found ','", cursor.offset);
  return rdn;
}

/** Parses AVAs joined by `+`; stops at a `,` or at the end of input. */
function parseRdnAt(cursor: Cursor): Result<Rdn> {
  const avas: Ava[] = [];
  const typeOffsets = new Map<string, number>();
  // Each pass consumes one AVA, so the AVA limit bounds the loop.
  for (;;) {
    skipSpaces(cursor);
    const avaOffset = cursor.offset;
    if (avas.length === rdnAvasMax) {
      return fail("limit-exceeded", `RDN has more than ${rdnAvasMax} AVAs (offset ${avaOffset})`);
    }
    const ava = parseAvaAt(cursor);
    if (!ava.ok) return ava;
    const earlier = typeOffsets.get(ava.value.typeNorm);
    if (earlier !== undefined) {
      const problem = `attribute type '${ava.value.type}' at offset ${avaOffset} repeats the one at offset ${earlier}`;
      return fail("invalid-dn", `${problem} in the same RDN`);
    }
    typeOffsets.set(ava.value.typeNorm, avaOffset);
    avas.push(ava.value);
    if (peek(cursor) !== "+") return ok(makeRdn(avas));
    const plusOffset = cursor.offset;
    cursor.offset++;
    skipSpaces(cursor);
    if (atEnd(cursor) || peek(cursor) === ",")
      return invalid("trailing '+' with no AVA after it", plusOffset);
  }
}

/** Parses `type = value`; leaves the cursor on the `,` or `+` that follows, or at the end. */
function parseAvaAt(cursor: Cursor): Result<Ava> {
  const type = parseAttributeTypeAt(cursor);
  if (!type.ok) return type;
  skipSpaces(cursor);
  if (peek(cursor) !== "=") return invalid(`missing '=' after attribute type '${type.value}'`, cursor.offset);
  cursor.offset++;
  skipSpaces(cursor);
  const valueOffset = cursor.offset;
  const value = peek(cursor) === "#" ? parseHexValueAt(cursor) : parseStringValueAt(cursor);
  if (!value.ok) return value;
  if (value.value.length > dnValueLengthMax) {
    return fail(
      "limit-exceeded",
      `attribute value at offset ${valueOffset} is longer than ${dnValueLengthMax} characters`,
    );
  }
  assert(atEnd(cursor) || peek(cursor) === "," || peek(cursor) === "+", "a value ends at a separator");
  return ok(avaOf(type.value, value.value));
}

function parseAttributeTypeAt(cursor: Cursor): Result<string> {
  const start = cursor.offset;
  cursor.offset = start + matchedLength(attributeTypeRun, cursor.text, start);
  const type = cursor.text.slice(start, cursor.offset);
  if (type.length === 0) return missingAttributeType(cursor);
  if (type.length > attributeTypeLengthMax) {
    return fail(
      "limit-exceeded",
      `attribute type at offset ${start} is longer than ${attributeTypeLengthMax} characters`,
    );
  }
  if (!isAttributeType(type)) return invalid(`'${type}' is not a valid attribute type`, start);
  if (peek(cursor) === ";") return invalid(`attribute options are not allowed in a DN ('${type};')`, start);
  return ok(type);
}

function missingAttributeType(cursor: Cursor): Result<never> {
  if (atEnd(cursor)) return invalid("missing attribute type", cursor.offset);
  if (peek(cursor) === ",") return invalid("empty RDN before ','", cursor.offset);
  return invalid(`unexpected '${peek(cursor)}' where an attribute type should start`, cursor.offset);
}

/** Characters that a backslash may escape in a value (RFC 4514 `special` plus the backslash). */
const escapableCharacters = new Set(['"', "+", ",", ";", "<", ">", "\\", "=", "#", " "]);
/**
 * Characters a value may not contain unescaped; `,` and `+` end the value instead. An `=` may
 * (RFC 4514 `LUTF1`, `SUTF1`, `TUTF1` include %x3D: `cn=a=b` is the value `a=b`, as OpenLDAP
 * reads it); formatting escapes it all the same (formatEscapedCharacters).
 */
const forbiddenInValue = new Set(['"', ";", "<", ">", "\u0000"]);

/** An unescaped value being built; hex-escaped bytes wait in `bytes` until a UTF-8 sequence ends. */
interface ValueBuilder {
  value: string;
  /** Length of `value` up to its last character that is not an unescaped trailing space. */
  significantLength: number;
  bytes: number[];
  bytesOffset: number;
}

/**
 * A value's leading run of characters other than a separator, an escape or a forbidden printable
 * one (a NUL is looked for in the run afterwards). Most values are nothing else, and take one
 * slice instead of a character-by-character build.
 */
const plainValueRun = /[^,+\\";<>]*/y;

/** The length of `sticky`'s match at `offset` (its pattern matches the empty string too). */
function matchedLength(sticky: RegExp, text: string, offset: number): number {
  sticky.lastIndex = offset;
  return sticky.exec(text)?.[0].length ?? 0;
}

/** Parses a string value up to the next unescaped `,` or `+`, dropping unescaped trailing spaces. */
function parseStringValueAt(cursor: Cursor): Result<string> {
  const start = cursor.offset;
  const end = start + matchedLength(plainValueRun, cursor.text, start);
  const next = cursor.text.charAt(end);
  if ((next === "" || next === "," || next === "+") && !cursor.text.slice(start, end).includes("\u0000")) {
    cursor.offset = end;
    let significant = end;
    while (significant > start && cursor.text.charAt(significant - 1) === " ") significant--;
    return ok(cursor.text.slice(start, significant));
  }
  const builder: ValueBuilder = { value: "", significantLength: 0, bytes: [], bytesOffset: 0 };
  while (!atEnd(cursor) && peek(cursor) !== "," && peek(cursor) !== "+") {
    const character = peek(cursor);
    if (character === "\\") {
      const escaped = parseEscapeAt(cursor, builder);
      if (!escaped.ok) return escaped;
      continue;
    }
    const flushed = flushBytes(builder);
    if (!flushed.ok) return flushed;
    if (forbiddenInValue.has(character)) {
      const shown = character === "\u0000" ? "NUL" : `'${character}'`;
      return invalid(`unescaped ${shown} in attribute value (escape it with a backslash)`, cursor.offset);
    }
    builder.value += character;
    if (character !== " ") builder.significantLength = builder.value.length;
    cursor.offset++;
  }
  const flushed = flushBytes(builder);
  if (!flushed.ok) return flushed;
  return ok(builder.value.slice(0, builder.significantLength));
}

/** Consumes `\c` for a special character c, or `\XX` for one byte of a UTF-8 sequence. */
function parseEscapeAt(cursor: Cursor, builder: ValueBuilder): Result<null> {
  const offset = cursor.offset;
  if (offset + 1 >= cursor.text.length) return invalid("dangling backslash at the end of the value", offset);
  const escaped = cursor.text.charAt(offset + 1);
  if (escapableCharacters.has(escaped)) {
    const flushed = flushBytes(builder);
    if (!flushed.ok) return flushed;
    builder.value += escaped;
    builder.significantLength = builder.value.length;
    cursor.offset += 2;
    return ok(null);
  }
  const byte = hexByteAt(cursor.text, offset + 1);
  if (byte === undefined) {
    return invalid("backslash must be followed by a special character or two hex digits", offset);
  }
  if (builder.bytes.length === 0) builder.bytesOffset = offset;
  builder.bytes.push(byte);
  cursor.offset += 3;
  return ok(null);
}

function flushBytes(builder: ValueBuilder): Result<null> {
  if (builder.bytes.length === 0) return ok(null);
  const decoded = decodeUtf8(builder.bytes);
  if (decoded === undefined) return invalid("hex escapes do not form valid UTF-8", builder.bytesOffset);
  builder.value += decoded;
  builder.significantLength = builder.value.length;
  builder.bytes = [];
  return ok(null);
}

/** Parses `#` followed by hex pairs: a BER-encoded string, whose content becomes the value. */
function parseHexValueAt(cursor: Cursor): Result<string> {
  const start = cursor.offset;
  cursor.offset++;
  const bytes: number[] = [];
  for (let byte = hexByteAt(cursor.text, cursor.offset); byte !== undefined; ) {
    bytes.push(byte);
    cursor.offset += 2;
    byte = hexByteAt(cursor.text, cursor.offset);
  }
  if (bytes.length === 0) return invalid("'#' must be followed by hex pairs", start);
  skipSpaces(cursor);
  if (!atEnd(cursor) && peek(cursor) !== "," && peek(cursor) !== "+") {
    return invalid("hex-encoded value contains something other than hex pairs", cursor.offset);
  }
  return decodeBerString(bytes, start);
}

/** BER universal tags of the string types a `#` value may carry. */
const berOctetString = 0x04;
const berUtf8String = 0x0c;
const berPrintableString = 0x13;
const berIa5String = 0x16;
/** Length octets after the 0x8n prefix; four cover any value that fits in a DN. */
const berLengthOctetsMax = 4;
const printableStringPattern = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** Decodes one BER string element (tag, definite length, content) that spans all of `bytes`. */
function decodeBerString(bytes: readonly number[], offset: number): Result<string> {
  const tag = bytes[0] ?? 0;
  if (tag !== berOctetString && tag !== berUtf8String && tag !== berPrintableString && tag !== berIa5String) {
    return invalid(`hex value has BER tag 0x${hexPair(tag)}, which is not a supported string type`, offset);
  }
  const header = decodeBerLength(bytes, offset);
  if (!header.ok) return header;
  const { length, contentStart } = header.value;
  if (contentStart + length !== bytes.length) {
    return invalid(
      `hex value's BER length ${length} does not match its ${bytes.length - contentStart} content bytes`,
      offset,
    );
  }
  const content = bytes.slice(contentStart);
  const text = decodeUtf8(content);
  if (text === undefined) return invalid("hex value's content is not valid UTF-8", offset);
  if (tag === berIa5String && content.some((byte) => byte >= 0x80)) {
    return invalid("hex value's IA5String content is not ASCII", offset);
  }
  if (tag === berPrintableString && !printableStringPattern.test(text)) {
    return invalid("hex value's PrintableString content has characters outside its set", offset);
  }
  return ok(text);
}

function decodeBerLength(
  bytes: readonly number[],
  offset: number,
): Result<{ readonly length: number; readonly contentStart: number }> {
  const first = bytes[1];
  if (first === undefined) return invalid("hex value's BER element has no length", offset);
  if (first < 0x80) return ok({ length: first, contentStart: 2 });
  if (first === 0x80) return invalid("hex value uses a BER indefinite length", offset);
  const octets = first & 0x7f;
  if (octets > berLengthOctetsMax || 2 + octets > bytes.length) {
    return invalid("hex value's BER length is truncated or too large", offset);
  }
  let length = 0;
  for (let index = 2; index < 2 + octets; index++) length = length * 256 + (bytes[index] ?? 0);
  return ok({ length, contentStart: 2 + octets });
}

// ---------------------------------------------------------------------------------------------
// Formatting and comparison

/** Characters always escaped with a backslash when formatting. */
const formatEscapedCharacters = new Set(['"', "+", ",", ";", "<", ">", "\\", "="]);

/**
 * Escapes a value for the RFC 4514 string form. Control characters become `\XX` so that a
 * formatted DN is printable on one line; other characters, non-ASCII included, stay as they are.
 */
export function escapeValue(value: string): string {
  let out = "";
  const last = value.length - 1;
  for (let index = 0; index < value.length; index++) {
    const character = value.charAt(index);
    const code = value.charCodeAt(index);
    if (code < 0x20 || code === 0x7f) {
      out += `\\${hexPair(code)}`;
    } else if (formatEscapedCharacters.has(character)) {
      out += `\\${character}`;
    } else if (
      (index === 0 && (character === "#" || character === " ")) ||
      (index === last && character === " ")
    ) {
      out += `\\${character}`;
    } else {
      out += character;
    }
  }
  return out;
}

/** The RFC 4514 string form of one RDN, with types as written and AVAs in canonical order. */
export function formatRdn(rdn: Rdn): string {
  return rdn.avas.map((ava) => `${ava.type}=${escapeValue(ava.value)}`).join("+");
}

/** The RFC 4514 string form of a DN; parseDn gives back an equal DN. */
export function formatDn(dn: Dn): string {
  return dn.rdns.map(formatRdn).join(",");
}

/** The canonical key of an RDN: equal for RDNs that name the same thing. */
export function normalizeRdn(rdn: Rdn): string {
  return rdn.avas.map((ava) => `${ava.typeNorm}=${escapeValue(ava.valueNorm)}`).join("+");
}

/**
 * The canonical key of a DN: types and values case-insensitive, values whitespace-insensitive,
 * multi-valued RDNs order-insensitive. Two DNs name the same entry iff their keys are equal.
 */
export function normalizeDn(dn: Dn): string {
  return dn.rdns.map(normalizeRdn).join(",");
}

export function rdnEquals(a: Rdn, b: Rdn): boolean {
  if (a.avas.length !== b.avas.length) return false;
  return a.avas.every((ava, index) => {
    const other = b.avas[index];
    return other !== undefined && ava.typeNorm === other.typeNorm && ava.valueNorm === other.valueNorm;
  });
}

/** Same answer as comparing normalizeDn keys, without building the strings. */
export function dnEquals(a: Dn, b: Dn): boolean {
  return a.rdns.length === b.rdns.length && dnIsSuffixOf(a, b);
}

/** True when `dn` is `suffix` or lies below it; the root DN is a suffix of every DN. */
export function dnIsSuffixOf(suffix: Dn, dn: Dn): boolean {
  const skipped = dn.rdns.length - suffix.rdns.length;
  if (skipped < 0) return false;
  return suffix.rdns.every((rdn, index) => {
    const other = dn.rdns[skipped + index];
    return other !== undefined && rdnEquals(rdn, other);
  });
}

/** The DN one level up. Asking for the parent of the root DN is a programmer error. */
export function dnParent(dn: Dn): Dn {
  assert(dn.rdns.length > 0, "the root DN has no parent");
  return { rdns: dn.rdns.slice(1) };
}

/**
 * The DN of `rdn` directly below `parent`. It does not check dnDepthMax: callers that build
 * names from requests (add, move) compare the depth against the limit themselves.
 */
export function dnChild(rdn: Rdn, parent: Dn): Dn {
  return { rdns: [rdn, ...parent.rdns] };
}
