import { isUtf8 } from "node:buffer";

/**
 * How the node reads a JSON body (the `application/json` parser of the client API, api.ts).
 * `JSON.parse` alone would take `{"dn":"a","dn":"b"}` and silently keep the last `dn` — other
 * JSON readers keep the first, or refuse — so a body whose sender meant one thing would be read
 * as another: a key given twice in one object is refused, naming it and where it is. A
 * `__proto__` key (and `constructor` holding `prototype`) names no field, attribute or value,
 * and is refused outright, so that it can never reach an object's prototype; fastify's own
 * parser refused it too, but as "not valid JSON", which it is.
 */

const quote = 0x22;
const backslash = 0x5c;
const openObject = 0x7b;
const closeObject = 0x7d;
const openList = 0x5b;
const closeList = 0x5d;
const comma = 0x2c;
/** Characters of a key shown in a message; the rest is elided. */
const keyShownMax = 64;
/** Levels of a path shown in a message (the outermost and the innermost ones). */
const pathShownMax = 8;

/** An object or a list being scanned: its keys so far (null for a list), where it sits in its parent. */
interface Frame {
  readonly keys: Set<string> | null;
  /** The key (in an object) or index (in a list) this value has in its parent; null at the top. */
  readonly at: string | number | null;
  /** In an object: whether the next string is a key. */
  expectKey: boolean;
  /** In a list: the index of the current item. */
  index: number;
  /** In an object: its latest key. */
  key: string | null;
}

/** A body the parser refuses: fastify's error handler answers it as `400 invalid-request` with this message. */
export class JsonBodyError extends Error {
  readonly statusCode = 400;
}

/**
 * The body's bytes as text, or a JsonBodyError when they are not UTF-8 (RFC 8259 §8.1). Decoding
 * them anyway, as fastify's string parser does, turns each bad byte into U+FFFD: a DN or value
 * stored as something other than what was sent, where the same bytes percent-encoded in a path
 * are refused.
 */
export function decodeJsonBody(bytes: Buffer): string {
  if (!isUtf8(bytes))
    throw new JsonBodyError(
      "the body is not UTF-8: a byte of it starts no UTF-8 character, or a character is cut short; send JSON as UTF-8",
    );
  return bytes.toString("utf8");
}

/**
 * The body's value, or a JsonBodyError saying why it is refused: empty, not JSON, a key given
 * twice in one object, a `__proto__` key. A leading byte order mark is skipped, as fastify's
 * parser did.
 */
export function parseJsonBody(text: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === "")
    throw new JsonBodyError("the body is empty, but its content-type is application/json: send a JSON value");
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (error) {
    throw new JsonBodyError(`the body is not valid JSON: ${(error as Error).message}`);
  }
  // Only an object can hold a key: a body without one has nothing to scan.
  if (typeof value === "object" && value !== null) {
    const wrong = keyProblem(body);
    if (wrong !== null) throw new JsonBodyError(wrong);
  }
  return value;
}

/**
 * What is wrong with the keys of `text`, well-formed JSON, or null: the first key its object
 * already has, or a `__proto__` key, or `constructor` holding `prototype`. One pass over the
 * text, without recursion (a body may nest deep: the depth is checked later, on the value).
 */
export function keyProblem(text: string): string | null {
  const stack: Frame[] = [];
  const length = text.length;
  let offset = 0;
  while (offset < length) {
    const code = text.charCodeAt(offset);
    if (code === quote) {
      const end = stringEnd(text, offset);
      const top = stack.at(-1);
      if (top !== undefined && top.keys !== null && top.expectKey) {
        const raw = text.slice(offset + 1, end);
        const key = raw.includes("\\") ? (JSON.parse(text.slice(offset, end + 1)) as string) : raw;
        const wrong = checkKey(stack, top, key);
        if (wrong !== null) return wrong;
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      offset = end + 1;
      continue;
    }
    if (code === openObject || code === openList) {
      const top = stack.at(-1);
      const at = top === undefined ? null : top.keys === null ? top.index : top.key;
      stack.push({ keys: code === openObject ? new Set() : null, at, expectKey: true, index: 0, key: null });
    } else if (code === closeObject || code === closeList) {
      stack.pop();
    } else if (code === comma) {
      const top = stack.at(-1);
      if (top !== undefined) {
        if (top.keys === null) top.index++;
        else top.expectKey = true;
      }
    }
    offset++;
  }
  return null;
}

function checkKey(stack: readonly Frame[], top: Frame, key: string): string | null {
  const where = pathOf(stack);
  if (key === "__proto__")
    return `the body holds the key "__proto__" (${where}): it names no field, attribute or value, and is refused so that it never reaches an object's prototype`;
  if (key === "prototype" && top.at === "constructor")
    return `the body holds "constructor": {"prototype": …} (${where}): refused, so that it never reaches an object's prototype`;
  if (top.keys?.has(key) === true)
    return `the body gives the key ${shown(key)} more than once in one object (${where}): JSON readers differ on which one counts (JSON.parse keeps the last), so send each key once`;
  return null;
}

/** The index of the quote that ends the string starting at `start` (a quote), in well-formed JSON. */
function stringEnd(text: string, start: number): number {
  let from = start + 1;
  for (;;) {
    const end = text.indexOf('"', from);
    // Escaped when an odd number of backslashes stands before it.
    let backslashes = 0;
    while (text.charCodeAt(end - 1 - backslashes) === backslash) backslashes++;
    if (backslashes % 2 === 0) return end;
    from = end + 1;
  }
}

/** Where the innermost object of `stack` is, as `operations[2].attributes`, or "at the top level". */
function pathOf(stack: readonly Frame[]): string {
  const steps = stack.slice(1).map((frame) => frame.at);
  if (steps.length === 0) return "at the top level";
  const shownSteps =
    steps.length <= pathShownMax
      ? steps
      : [...steps.slice(0, pathShownMax / 2), "…", ...steps.slice(-pathShownMax / 2)];
  const path = shownSteps
    .map((step, index) => {
      if (typeof step === "number") return `[${step}]`;
      const name = step === "…" || /^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(step ?? "") ? step : shown(step ?? "");
      return index === 0 ? name : `.${name}`;
    })
    .join("");
  return `in ${path}`;
}

/** A key as JSON, shortened past keyShownMax characters. */
function shown(key: string): string {
  return JSON.stringify(key.length > keyShownMax ? `${key.slice(0, keyShownMax)}…` : key);
}
