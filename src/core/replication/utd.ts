import type { InvocationId, Usn } from "../ids.ts";
import type { Stamp } from "./stamp.ts";

/**
 * An up-to-dateness vector: for each originating invocation id, the highest originating USN
 * whose changes this replica has applied (or superseded). Plain immutable record so that it
 * serialises as JSON without conversion.
 */
export type UtdVector = Readonly<Record<InvocationId, Usn>>;

export const emptyUtd: UtdVector = Object.freeze({});

export function utdGet(utd: UtdVector, invocation: InvocationId): Usn {
  return utd[invocation] ?? (0 as Usn);
}

/** True when the vector says the write identified by the stamp is already applied. */
export function utdCovers(utd: UtdVector, stamp: Pick<Stamp, "invocation" | "usn">): boolean {
  return utdGet(utd, stamp.invocation) >= stamp.usn;
}

/** True when `utd` covers every entry of `other`. */
export function utdCoversVector(utd: UtdVector, other: UtdVector): boolean {
  for (const [invocation, value] of Object.entries(other) as [InvocationId, Usn][]) {
    if (utdGet(utd, invocation) < value) return false;
  }
  return true;
}

export function utdEquals(a: UtdVector, b: UtdVector): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => a[key as InvocationId] === b[key as InvocationId]);
}

/**
 * Element-wise maximum. Returns `a` itself when `b` adds nothing (the common case on a busy
 * replica, and free of allocation), otherwise a new vector with sorted keys.
 */
export function utdMerge(a: UtdVector, b: UtdVector): UtdVector {
  let grows = false;
  for (const key of Object.keys(b)) {
    const invocation = key as InvocationId;
    if (utdGet(b, invocation) > utdGet(a, invocation)) {
      grows = true;
      break;
    }
  }
  if (!grows) return a;
  const merged: Record<string, Usn> = { ...a };
  for (const key of Object.keys(b)) {
    const invocation = key as InvocationId;
    merged[key] = Math.max(utdGet(a, invocation), utdGet(b, invocation)) as Usn;
  }
  return utdSorted(merged);
}

/** The vector with one entry set; `utd` itself when that entry already has the value. */
export function utdWith(utd: UtdVector, invocation: InvocationId, value: Usn): UtdVector {
  const current = utd[invocation];
  if (current === value) return utd;
  // Replacing an existing key keeps the key order, so only a new key needs sorting.
  if (current !== undefined) return { ...utd, [invocation]: value };
  return utdSorted({ ...utd, [invocation]: value });
}

export function utdSorted(utd: UtdVector): UtdVector {
  const sorted: Record<string, Usn> = {};
  for (const key of Object.keys(utd).sort()) sorted[key] = utd[key as InvocationId] as Usn;
  return sorted;
}
