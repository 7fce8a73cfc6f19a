import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeId } from "../core/ids.ts";
import {
  type ClusterSecret,
  clusterSecret,
  ReplayGuard,
  replayWindowMs,
  signedHeaders,
  signRequest,
  signResponse,
  verifyRequest,
  verifyResponse,
} from "./auth.ts";

const secret = clusterSecret("0123456789abcdef0123456789abcdef") as ClusterSecret;
const body = Buffer.from('{"kind":"notify"}');
const now = 1_790_000_000_000;
const nonce = "0123456789abcdef0123456789abcdef";

function headers(
  overrides: Partial<{ node: string; timestampMs: number; key: ClusterSecret; path: string }> = {},
) {
  const node = (overrides.node ?? "n1") as NodeId;
  const timestampMs = overrides.timestampMs ?? now;
  return {
    "plexus-node": node,
    "plexus-timestamp": String(timestampMs),
    "plexus-nonce": nonce,
    "plexus-signature": signRequest(overrides.key ?? secret, {
      method: "POST",
      path: overrides.path ?? "/peer/v1/messages",
      node,
      timestampMs,
      nonce,
      body,
    }),
  };
}

describe("peer authentication", () => {
  it("accepts a request signed with the cluster secret and names its sender", () => {
    const verified = verifyRequest(secret, "POST", "/peer/v1/messages", headers(), body, now + 1_000);
    assert.ok(verified.ok);
    assert.equal(verified.node, "n1");
  });

  it("refuses every change to what was signed, and a timestamp outside the window", () => {
    const refuse = (reason: RegExp, ...args: Parameters<typeof verifyRequest>) => {
      const verified = verifyRequest(...args);
      assert.ok(!verified.ok);
      assert.match(verified.reason, reason);
    };
    refuse(/unsigned/, secret, "POST", "/peer/v1/messages", {}, body, now);
    refuse(/bad signature/, secret, "POST", "/peer/v1/join", headers(), body, now);
    refuse(/bad signature/, secret, "PUT", "/peer/v1/messages", headers(), body, now);
    refuse(/bad signature/, secret, "POST", "/peer/v1/messages", headers(), Buffer.from("{}"), now);
    refuse(
      /bad signature/,
      secret,
      "POST",
      "/peer/v1/messages",
      { ...headers(), "plexus-node": "n2" },
      body,
      now,
    );
    const other = clusterSecret("another secret of enough length") as ClusterSecret;
    refuse(/bad signature/, secret, "POST", "/peer/v1/messages", headers({ key: other }), body, now);
    refuse(/replay window/, secret, "POST", "/peer/v1/messages", headers(), body, now + replayWindowMs + 1);
    refuse(/replay window/, secret, "POST", "/peer/v1/messages", headers(), body, now - replayWindowMs - 1);
    refuse(/node id/, secret, "POST", "/peer/v1/messages", { ...headers(), "plexus-node": "N 1" }, body, now);
    refuse(
      /timestamp/,
      secret,
      "POST",
      "/peer/v1/messages",
      { ...headers(), "plexus-timestamp": "soon" },
      body,
      now,
    );
    refuse(
      /bad signature/,
      secret,
      "POST",
      "/peer/v1/messages",
      { ...headers(), "plexus-nonce": "f".repeat(32) },
      body,
      now,
    );
    refuse(
      /malformed nonce/,
      secret,
      "POST",
      "/peer/v1/messages",
      { ...headers(), "plexus-nonce": "x" },
      body,
      now,
    );
    const { "plexus-nonce": _, ...withoutNonce } = headers();
    refuse(/unsigned/, secret, "POST", "/peer/v1/messages", withoutNonce, body, now);
  });

  it("signs every request differently, even the same body in the same millisecond", () => {
    const request = { method: "POST", path: "/peer/v1/utd", node: "n1" as NodeId, body: Buffer.alloc(0) };
    const first = signedHeaders(secret, request, now);
    const second = signedHeaders(secret, request, now);
    assert.notEqual(first["plexus-signature"], second["plexus-signature"]);
    assert.ok(verifyRequest(secret, "POST", "/peer/v1/utd", first, Buffer.alloc(0), now).ok);
  });

  it("accepts each signature once while it is inside the window, and forgets it after", () => {
    const guard = new ReplayGuard();
    assert.equal(guard.accept("a", now, now), true);
    assert.equal(guard.accept("a", now, now + 1_000), false);
    assert.equal(guard.accept("b", now + 10, now + 1_000), true);
    assert.equal(guard.accept("a", now, now + replayWindowMs + 1), true, "forgotten once outside the window");
    assert.equal(guard.size, 2, "the first a is forgotten; b (10 ms younger) and the new a are remembered");
    assert.equal(guard.accept("b", now + 10, now + replayWindowMs + 5), false);
  });

  it("binds an answer to its request and its body", () => {
    const requestSignature = headers()["plexus-signature"];
    const answer = Buffer.from('{"kind":"page"}');
    const signature = signResponse(secret, 200, requestSignature, answer);
    assert.ok(verifyResponse(secret, 200, requestSignature, signature, answer));
    assert.ok(!verifyResponse(secret, 204, requestSignature, signature, answer));
    assert.ok(!verifyResponse(secret, 200, "another request", signature, answer));
    assert.ok(!verifyResponse(secret, 200, requestSignature, signature, Buffer.from("{}")));
    assert.ok(!verifyResponse(secret, 200, requestSignature, undefined, answer));
  });

  it("refuses a short cluster secret", () => {
    assert.equal(typeof clusterSecret("short"), "string");
  });
});
