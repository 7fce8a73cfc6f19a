import type { Guid, InvocationId, Usn } from "../core/ids.ts";
import type { Item, ItemValue } from "../core/replication/items.ts";
import type { ChangePage, EntryChange } from "../core/replication/page.ts";
import type { Stamp } from "../core/replication/stamp.ts";
import { fail, ok, type Result } from "../core/result.ts";

/**
 * The compact wire form of a change page ("compact-1"), negotiated per request between nodes
 * (`plexus-page-encoding`, see peer-client.ts). In the plain JSON form every item repeats its
 * whole stamp, with the 32-character invocation id, and every key name: a new 7-attribute entry
 * is ≈ 2 KB, of which ≈ 120 bytes are values. Here a page lists its invocation ids and
 * partitions once, an entry lists its distinct stamps once, and items are arrays that point
 * into those tables: ≈ 4 × fewer bytes to stringify, sign, send, verify and parse, which under
 * load is most of a partner's transport work.
 *
 * Decoding checks only the shape it needs to rebuild the plain form (arrays, indices in range);
 * the result is then validated like any page (validatePage), so a hostile compact page is
 * refused for the same reasons, with the same errors, as a hostile plain one.
 */
export const compactPageEncoding = "compact-1";
/** Answers between nodes of at least this many bytes are gzipped when the caller asks (pulls across sites). */
export const gzipBytesMin = 1024;
/** A request header: the page encodings the caller reads besides plain JSON. */
export const pageEncodingHeader = "plexus-page-encoding";

/** [version, time, invocation index, usn] */
type WireStamp = [number, number, number, number];
/**
 * [attribute, key, stamp index, "v", type, values] | [.., "n", rdn, parent] | [.., "d"]
 * | [.., "l", type, value, present]
 */
type WireItem = unknown[];
/** [guid, partition index, origin invocation index, origin usn, stamps, items] */
type WireEntry = [string, number, number, number, WireStamp[], WireItem[]];

export interface CompactPage extends Omit<ChangePage, "entries"> {
  readonly encoding: typeof compactPageEncoding;
  readonly invocations: readonly string[];
  readonly partitions: readonly string[];
  readonly entries: readonly WireEntry[];
}

/** Indexes of distinct strings, in order of first use. */
class Table {
  readonly list: string[] = [];
  private readonly index = new Map<string, number>();

  of(text: string): number {
    let at = this.index.get(text);
    if (at === undefined) {
      at = this.list.length;
      this.list.push(text);
      this.index.set(text, at);
    }
    return at;
  }
}

export function encodePage(page: ChangePage): CompactPage {
  const invocations = new Table();
  const partitions = new Table();
  const entries = page.entries.map((entry): WireEntry => {
    const stamps: WireStamp[] = [];
    // Items written together carry equal stamps, read back from the store as distinct objects.
    const stampIndex = new Map<string, number>();
    const stampOf = (stamp: Stamp): number => {
      const key = `${stamp.version}/${stamp.time}/${stamp.invocation}/${stamp.usn}`;
      let at = stampIndex.get(key);
      if (at === undefined) {
        at = stamps.length;
        stamps.push([stamp.version, stamp.time, invocations.of(stamp.invocation), stamp.usn]);
        stampIndex.set(key, at);
      }
      return at;
    };
    const items = entry.items.map((item) => encodeItem(item, stampOf(item.stamp)));
    return [
      entry.guid,
      partitions.of(entry.partition),
      invocations.of(entry.origin.invocation),
      entry.origin.usn,
      stamps,
      items,
    ];
  });
  const { entries: _plain, ...header } = page;
  return {
    ...header,
    encoding: compactPageEncoding,
    invocations: invocations.list,
    partitions: partitions.list,
    entries,
  };
}

function encodeItem(item: Item, stamp: number): WireItem {
  const value = item.value;
  switch (value.kind) {
    case "values":
      return [item.attribute, item.key, stamp, "v", value.type, value.values];
    case "name":
      return [item.attribute, item.key, stamp, "n", value.rdn, value.parent];
    case "deleted":
      return [item.attribute, item.key, stamp, "d"];
    case "link":
      return [item.attribute, item.key, stamp, "l", value.type, value.value, value.present];
    default:
      return value satisfies never;
  }
}

/** True when `value` claims to be a compact page (whatever else is wrong with it). */
export function isCompactPage(value: unknown): boolean {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { encoding?: unknown }).encoding === compactPageEncoding
  );
}

/**
 * The plain page a compact one stands for. Fails on a shape it cannot rebuild; every other
 * check is validatePage's, on the result.
 */
export function decodePage(value: unknown): Result<unknown> {
  if (!isRecord(value)) return bad("must be an object");
  const { invocations, partitions, entries, encoding: _encoding, ...header } = value;
  if (!isStringList(invocations)) return bad("invocations must be a list of strings");
  if (!isStringList(partitions)) return bad("partitions must be a list of strings");
  if (!Array.isArray(entries)) return bad("entries must be a list");
  const plain: EntryChange[] = [];
  for (const [index, entry] of entries.entries()) {
    const decoded = decodeEntry(entry, invocations, partitions);
    if (!decoded.ok) return bad(`entries[${index}]: ${decoded.error.message}`);
    plain.push(decoded.value);
  }
  return ok({ ...header, entries: plain });
}

function decodeEntry(
  value: unknown,
  invocations: readonly string[],
  partitions: readonly string[],
): Result<EntryChange> {
  if (!Array.isArray(value) || value.length !== 6) return bad("must be a list of 6");
  const [guid, partition, originInvocation, originUsn, wireStamps, wireItems] = value as unknown[];
  const partitionText = at(partitions, partition);
  const origin = at(invocations, originInvocation);
  if (partitionText === undefined) return bad("partition index out of range");
  if (origin === undefined) return bad("origin invocation index out of range");
  if (!Array.isArray(wireStamps) || !Array.isArray(wireItems)) return bad("stamps and items must be lists");
  const stamps: Stamp[] = [];
  for (const stamp of wireStamps) {
    if (!Array.isArray(stamp) || stamp.length !== 4) return bad("a stamp must be a list of 4");
    const invocation = at(invocations, stamp[2]);
    if (invocation === undefined) return bad("stamp invocation index out of range");
    stamps.push({ version: stamp[0], time: stamp[1], invocation: invocation as InvocationId, usn: stamp[3] });
  }
  const items: Item[] = [];
  for (const item of wireItems) {
    const decoded = decodeItem(item, stamps);
    if (decoded === undefined) return bad("malformed item");
    items.push(decoded);
  }
  return ok({
    guid: guid as Guid,
    partition: partitionText,
    origin: { invocation: origin as InvocationId, usn: originUsn as Usn },
    items,
  });
}

function decodeItem(value: unknown, stamps: readonly Stamp[]): Item | undefined {
  if (!Array.isArray(value) || value.length < 4) return undefined;
  const stamp = at(stamps, value[2]);
  if (stamp === undefined) return undefined;
  const itemValue = decodeValue(value);
  if (itemValue === undefined) return undefined;
  return { attribute: value[0], key: value[1], value: itemValue, stamp };
}

function decodeValue(value: readonly unknown[]): ItemValue | undefined {
  switch (value[3]) {
    case "v":
      return value.length === 6
        ? ({ kind: "values", type: value[4], values: value[5] } as ItemValue)
        : undefined;
    case "n":
      return value.length === 6
        ? ({ kind: "name", rdn: value[4], parent: value[5] } as ItemValue)
        : undefined;
    case "d":
      return value.length === 4 ? { kind: "deleted" } : undefined;
    case "l":
      return value.length === 7
        ? ({ kind: "link", type: value[4], value: value[5], present: value[6] } as ItemValue)
        : undefined;
    default:
      return undefined;
  }
}

function at<T>(list: readonly T[], index: unknown): T | undefined {
  return typeof index === "number" && Number.isInteger(index) && index >= 0 ? list[index] : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}

function bad(problem: string): Result<never> {
  return fail("invalid-page", `compact page: ${problem}`);
}

/** A node's answer with its page (if it carries one) in compact form. */
export function compactAnswer(body: unknown): unknown {
  if (!isRecord(body) || body.kind !== "page" || !isRecord(body.page)) return body;
  return { ...body, page: encodePage(body.page as unknown as ChangePage) };
}

/** A node's answer with its compact page (if it carries one) in plain form. */
export function plainAnswer(body: unknown): Result<unknown> {
  if (!isRecord(body) || body.kind !== "page" || !isCompactPage(body.page)) return ok(body);
  const page = decodePage(body.page);
  return page.ok ? ok({ ...body, page: page.value }) : page;
}
