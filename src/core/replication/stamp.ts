import type { InvocationId, Millis, Usn } from "../ids.ts";

/**
 * Replication metadata of one item (an attribute, one value of a link-valued attribute, an
 * entry's name, or its deletion). Stamps are identical on every replica that holds the item;
 * the local USN at which a replica stored the item is kept beside it, not in it.
 */
export interface Stamp {
  /** 1 for the first write of the item; every later originating write adds one to what it saw. */
  readonly version: number;
  /** The originating node's clock when the write was made. Only a tie-breaker. */
  readonly time: Millis;
  /** The database instance that made the write. */
  readonly invocation: InvocationId;
  /** The originating node's USN for the write. Identifies the write together with `invocation`. */
  readonly usn: Usn;
}

/**
 * No item is written 2^40 times; a larger version in a page is hostile or corrupt. The bound
 * keeps `version + 1` a safe integer for every write that follows.
 */
export const stampVersionMax = 2 ** 40;

/** Planted defects the simulator asks for (canary bugs); production never sets these. */
export interface StampCanaries {
  /** Compare the originating time before the version: lets a skewed clock beat a causal write. */
  compareTimeFirst?: boolean;
}

/**
 * The merge order: higher version, then later originating time, then higher invocation id,
 * then higher originating USN. A write made after observing another has a higher version, so
 * it wins whatever the clocks say; concurrent writes are ordered the same way everywhere.
 * Returns a negative number when `a` loses to `b`, 0 for the same write, positive when `a` wins.
 */
export function compareStamps(a: Stamp, b: Stamp, canaries?: StampCanaries): number {
  if (canaries?.compareTimeFirst === true && a.time !== b.time) return a.time - b.time;
  if (a.version !== b.version) return a.version - b.version;
  if (a.time !== b.time) return a.time - b.time;
  if (a.invocation !== b.invocation) return a.invocation < b.invocation ? -1 : 1;
  return a.usn - b.usn;
}

export function stampsEqual(a: Stamp, b: Stamp): boolean {
  return a.version === b.version && a.time === b.time && a.invocation === b.invocation && a.usn === b.usn;
}

export function formatStamp(stamp: Stamp): string {
  return `v${stamp.version}@${stamp.time}/${stamp.invocation.slice(0, 8)}:${stamp.usn}`;
}
