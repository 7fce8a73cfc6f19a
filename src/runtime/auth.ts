import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { isNodeId, type NodeId } from "../core/ids.ts";

/**
 * Authentication between nodes: every replication request and every answer carries an
 * HMAC-SHA256, keyed by the cluster secret, over what it means — the request's method, path,
 * sender, timestamp and body; the answer's status, the request's signature (so an answer
 * cannot be replayed to another request) and body. A request whose timestamp is more than
 * `replayWindowMs` away from the receiver's clock is refused, so a captured request stops
 * working quickly (and replaying a pull within the window only repeats an idempotent read).
 */
export const replayWindowMs = 30_000;
/** A shorter secret is too easy to guess offline from one captured request. */
export const clusterSecretBytesMin = 16;

export const peerHeaders = {
  node: "plexus-node",
  timestamp: "plexus-timestamp",
  signature: "plexus-signature",
} as const;

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
    "plexus-request-v1",
    request.method.toUpperCase(),
    request.path,
    request.node,
    String(request.timestampMs),
    digest(request.body),
  ].join("\n");
  return mac(secret, text);
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
  | { readonly ok: true; readonly node: NodeId; readonly signature: string }
  | { readonly ok: false; readonly reason: string };

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
  if (typeof node !== "string" || typeof timestamp !== "string" || typeof signature !== "string")
    return { ok: false, reason: "unsigned request" };
  if (!isNodeId(node)) return { ok: false, reason: "the sender is not a node id" };
  if (!/^[0-9]{1,16}$/.test(timestamp)) return { ok: false, reason: "malformed timestamp" };
  const timestampMs = Number(timestamp);
  if (Math.abs(nowMs - timestampMs) > replayWindowMs)
    return { ok: false, reason: `timestamp outside the ${replayWindowMs} ms replay window` };
  const expected = signRequest(secret, { method, path, node, timestampMs, body });
  if (!sameSignature(expected, signature)) return { ok: false, reason: "bad signature" };
  return { ok: true, node, signature };
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
