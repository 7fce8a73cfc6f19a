/**
 * Matching rules for attribute values, shared by DN naming and search filters, plus the small
 * byte-level helpers (hex pairs, UTF-8) that both string grammars need for their escapes.
 * Everything here is pure: the same input always gives the same output on every node, which
 * matters because replicas compare normalized values to decide whether two names collide.
 */

const whitespaceRun = /\s+/g;
const leadingWhitespace = /^\s+/;
const trailingWhitespace = /\s+$/;
const decimalInteger = /^-?[0-9]+$/;

/**
 * caseIgnoreMatch-style normal form: NFC, outer whitespace trimmed, inner whitespace runs
 * collapsed to one space, lowercased. Lowercasing can (rarely) yield a sequence that NFC would
 * compose differently, so NFC runs again at the end to keep the function idempotent.
 */
export function normalizeValue(value: string): string {
  return value.normalize("NFC").trim().replace(whitespaceRun, " ").toLowerCase().normalize("NFC");
}

/** Where a piece sits in a substring assertion; it decides which outer edge gets trimmed. */
export type SubstringPosition = "initial" | "any" | "final";

/**
 * Normal form for one piece of a substring assertion. A normalized value has no outer
 * whitespace, so the initial piece loses its leading whitespace and the final piece its
 * trailing whitespace; whitespace at the inner edges of a piece is significant (it separates
 * words) and is only collapsed to one space, as inside a value.
 */
export function normalizeSubstringPiece(piece: string, position: SubstringPosition): string {
  let text = piece.normalize("NFC");
  if (position === "initial") text = text.replace(leadingWhitespace, "");
  if (position === "final") text = text.replace(trailingWhitespace, "");
  return text.replace(whitespaceRun, " ").toLowerCase().normalize("NFC");
}

/**
 * Ordering for `>=` and `<=` filters. Two decimal integers (outer whitespace ignored) compare
 * numerically, through BigInt so that numbers beyond 2^53 keep their order; anything else
 * compares the normalized strings by UTF-16 code unit. Returns negative, zero or positive.
 */
export function compareOrdering(a: string, b: string): number {
  const aTrimmed = a.trim();
  const bTrimmed = b.trim();
  if (decimalInteger.test(aTrimmed) && decimalInteger.test(bTrimmed)) {
    const difference = BigInt(aTrimmed) - BigInt(bTrimmed);
    return difference < 0n ? -1 : difference > 0n ? 1 : 0;
  }
  return compareCodeUnits(normalizeValue(a), normalizeValue(b));
}

/** Plain code-unit order, locale-independent so every replica sorts the same way. */
export function compareCodeUnits(a: string, b: string): number {
  if (a < b) return -1;
  if (a > b) return 1;
  return 0;
}

/** The value of one hex digit character code, or -1 when it is not a hex digit. */
function hexDigitValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/** The byte written as two hex digits at `offset` of `text`, or undefined when there are none. */
export function hexByteAt(text: string, offset: number): number | undefined {
  if (offset + 2 > text.length) return undefined;
  const high = hexDigitValue(text.charCodeAt(offset));
  const low = hexDigitValue(text.charCodeAt(offset + 1));
  if (high < 0 || low < 0) return undefined;
  return high * 16 + low;
}

/** Two uppercase hex digits for a byte-sized code (callers only pass codes below 0x100). */
export function hexPair(code: number): string {
  return code.toString(16).toUpperCase().padStart(2, "0");
}

/** Smallest code point each UTF-8 sequence width may carry; anything smaller is overlong. */
const utf8MinimumCodePointByWidth = [0, 0, 0x80, 0x800, 0x10000] as const;

/** Sequence width announced by a UTF-8 lead byte, or 0 for a byte that cannot start one. */
function utf8SequenceWidth(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * Strict UTF-8 decoding: overlong forms, surrogates, code points above U+10FFFF, stray
 * continuation bytes and truncated sequences all give undefined. Hand-written rather than
 * TextDecoder so that an invalid sequence is a plain value instead of a thrown TypeError.
 */
export function decodeUtf8(bytes: readonly number[]): string | undefined {
  let out = "";
  let index = 0;
  while (index < bytes.length) {
    const lead = bytes[index] ?? 0;
    const width = utf8SequenceWidth(lead);
    if (width === 0 || index + width > bytes.length) return undefined;
    let codePoint = width === 1 ? lead : lead & (0xff >> (width + 1));
    for (let k = 1; k < width; k++) {
      const next = bytes[index + k] ?? 0;
      if ((next & 0xc0) !== 0x80) return undefined;
      codePoint = (codePoint << 6) | (next & 0x3f);
    }
    const minimum = utf8MinimumCodePointByWidth[width] ?? 0;
    if (codePoint < minimum || codePoint > 0x10ffff) return undefined;
    if (codePoint >= 0xd800 && codePoint <= 0xdfff) return undefined;
    out += String.fromCodePoint(codePoint);
    index += width;
  }
  return out;
}
