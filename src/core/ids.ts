/**
 * Branded identifiers. A plain string or number cannot be passed where an id is expected
 * without going through a parser or constructor that checks its form.
 */
export type Guid = string & { readonly __brand: "Guid" };
export type InvocationId = string & { readonly __brand: "InvocationId" };
export type NodeId = string & { readonly __brand: "NodeId" };
/** A node-local update sequence number. Safe-integer range; 0 means "nothing yet". */
export type Usn = number & { readonly __brand: "Usn" };
/** Milliseconds since the Unix epoch, as read from a Clock port. */
export type Millis = number & { readonly __brand: "Millis" };

const hex32 = /^[0-9a-f]{32}$/;
const nodeIdPattern = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function isGuid(value: unknown): value is Guid {
  return typeof value === "string" && hex32.test(value);
}

export function isInvocationId(value: unknown): value is InvocationId {
  return typeof value === "string" && hex32.test(value);
}

/** Node ids are DNS-label-like (they become DNS names in the locator). */
export function isNodeId(value: unknown): value is NodeId {
  return typeof value === "string" && nodeIdPattern.test(value);
}

export function isUsn(value: unknown): value is Usn {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

export function isMillis(value: unknown): value is Millis {
  return typeof value === "number" && Number.isSafeInteger(value);
}

export const usnZero = 0 as Usn;

export function usn(value: number): Usn {
  if (!isUsn(value)) throw new TypeError(`not a USN: ${value}`);
  return value;
}

export function nodeId(value: string): NodeId {
  if (!isNodeId(value)) throw new TypeError(`not a node id (lowercase letters, digits, '-'): ${value}`);
  return value;
}

/** Turns 16 random bytes into the canonical 32-hex-digit form used for GUIDs and invocation ids. */
export function hexFromBytes(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}
