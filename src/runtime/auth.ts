import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { isNodeId, type NodeId } from "../core/ids.ts";

/**
 * Authentication between nodes: every replication request and every answer carries an
 * HMAC-SHA256, keyed by the cluster secret, over what it means — the request's method, path,
 * sender, timestamp, a random nonce and body; the answer's status, the request's signature (so an answer
 * cannot be replayed to another request) and body. A request whose timestamp is more than
 * `replayWindowMs` away from the receiver's clock is refused, so a captured request stops
 * working quickly; within the window, a `ReplayGuard` refuses a signature it has already
 * accepted (a replayed join could otherwise put back a node's old address).
 */
export const replayWindowMs = 30_000;
/** A shorter secret is too easy to guess offline from one captured request. */
export const clusterSecretBytesMin = 16;

export const peerHeaders = {
  node: "plexus-node",
  timestamp: "plexus-timestamp",
  signature: "plexus-signature",
  nonce: "plexus-nonce",
} as const;

/** Bytes of randomness per request: two requests never share a signature, even in one millisecond. */
const nonceBytes = 16;

export function newNonce(): string {
  return randomBytes(nonceBytes).toString("hex");
}

export type ClusterSecret = Buffer & { readonly __brand: "ClusterSecret" };

export function clusterSecret(text: string): ClusterSecret | string {
  const trimmed = text.trim();
  if (Buffer.byteLength(trimmed) < clusterSecretBytesMin)
    return `the cluster secret must hold at least ${clusterSecretBytesMin} bytes`;
  return Buffer.from(trimmed, "utf8") as ClusterSecret;
}

export interface SignedRequest {
  readonly method: string;
  readonly path: string;
  readonly node: NodeId;
  readonly timestampMs: number;
  readonly nonce: string;
  readonly body: Uint8Array;
}

function digest(body: Uint8Array): string {
  return createHash("sha256").update(body).digest("hex");
}

function mac(secret: ClusterSecret, text: string): string {
  return createHmac("sha256", secret).update(text).digest("hex");
}

export function signRequest(secret: ClusterSecret, request: SignedRequest): string {
  const text = [
    "plexus-request-v2",
    request.method.toUpperCase(),
    request.path,
    request.node,
    String(request.timestampMs),
    request.nonce,
    digest(request.body),
  ].join("\n");
  return mac(secret, text);
}

/** The headers that sign a request: sender, timestamp, a fresh nonce and the signature. */
export function signedHeaders(
  secret: ClusterSecret,
  request: Omit<SignedRequest, "nonce" | "timestampMs">,
  nowMs: number,
): Readonly<Record<(typeof peerHeaders)[keyof typeof peerHeaders], string>> {
  const nonce = newNonce();
  const signature = signRequest(secret, { ...request, timestampMs: nowMs, nonce });
  return {
    [peerHeaders.node]: request.node,
    [peerHeaders.timestamp]: String(nowMs),
    [peerHeaders.nonce]: nonce,
    [peerHeaders.signature]: signature,
  };
}

export function signResponse(
  secret: ClusterSecret,
  status: number,
  requestSignature: string,
  body: Uint8Array,
): string {
  return mac(secret, ["plexus-response-v1", String(status), requestSignature, digest(body)].join("\n"));
}

function sameSignature(expected: string, given: string): boolean {
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(given, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

export type Verified =
  | { readonly ok: true; readonly node: NodeId; readonly signature: string; readonly timestampMs: number }
  | { readonly ok: false; readonly reason: string };

const noncePattern = new RegExp(`^[0-9a-f]{${nonceBytes * 2}}$`);

/** Checks a request's headers against its method, path and raw body. */
export function verifyRequest(
  secret: ClusterSecret,
  method: string,
  path: string,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  body: Uint8Array,
  nowMs: number,
): Verified {
  const node = headers[peerHeaders.node];
  const timestamp = headers[peerHeaders.timestamp];
  const signature = headers[peerHeaders.signature];
  const nonce = headers[peerHeaders.nonce];
  if (
    typeof node !== "string" ||
    typeof timestamp !== "string" ||
    typeof signature !== "string" ||
    typeof nonce !== "string"
  )
    return { ok: false, reason: "unsigned request" };
  if (!noncePattern.test(nonce)) return { ok: false, reason: "malformed nonce" };
  if (!isNodeId(node)) return { ok: false, reason: "the sender is not a node id" };
  if (!/^[0-9]{1,16}$/.test(timestamp)) return { ok: false, reason: "malformed timestamp" };
  const timestampMs = Number(timestamp);
  if (Math.abs(nowMs - timestampMs) > replayWindowMs)
    return { ok: false, reason: `timestamp outside the ${replayWindowMs} ms replay window` };
  const expected = signRequest(secret, { method, path, node, timestampMs, nonce, body });
  if (!sameSignature(expected, signature)) return { ok: false, reason: "bad signature" };
  return { ok: true, node, signature, timestampMs };
}

export function verifyResponse(
  secret: ClusterSecret,
  status: number,
  requestSignature: string,
  signature: string | undefined,
  body: Uint8Array,
): boolean {
  if (signature === undefined) return false;
  return sameSignature(signResponse(secret, status, requestSignature, body), signature);
}

/**
 * Remembers the signatures of accepted requests while their timestamps are inside the replay
 * window, so that each signed request is accepted once. Bounded by `replayGuardEntriesMax`
 * (minutes of a node's usual few hundred requests a second); past it the oldest is forgotten
 * first, so under an extreme request rate the oldest requests of the window become replayable
 * again rather than refusing partners' requests.
 */
export const replayGuardEntriesMax = 200_000;

export class ReplayGuard {
  /** Signature → the time after which its timestamp is outside the window (insertion order). */
  private readonly seen = new Map<string, number>();

  /** False when this signature was accepted before, within the window. */
  accept(signature: string, timestampMs: number, nowMs: number): boolean {
    this.forget(nowMs);
    if (this.seen.has(signature)) return false;
    if (this.seen.size >= replayGuardEntriesMax) {
      const oldest = this.seen.keys().next();
      if (oldest.done !== true) this.seen.delete(oldest.value);
    }
    this.seen.set(signature, timestampMs + replayWindowMs);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  private forget(nowMs: number): void {
    // Entries arrive roughly in timestamp order; one with an early expiry behind a later one
    // waits for it, which only keeps it longer than needed, never shorter.
    for (const [signature, expiresAt] of this.seen) {
      if (expiresAt >= nowMs) break;
      this.seen.delete(signature);
    }
  }
}
