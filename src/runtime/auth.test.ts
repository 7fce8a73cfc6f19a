import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeId } from "../core/ids.ts";
import {
  type ClusterSecret,
  clusterSecret,
  replayWindowMs,
  signRequest,
  signResponse,
  verifyRequest,
  verifyResponse,
} from "./auth.ts";

const secret = clusterSecret("0123456789abcdef0123456789abcdef") as ClusterSecret;
const body = Buffer.from('{"kind":"notify"}');
const now = 1_790_000_000_000;

function headers(
  overrides: Partial<{ node: string; timestampMs: number; key: ClusterSecret; path: string }> = {},
) {
  const node = (overrides.node ?? "n1") as NodeId;
  const timestampMs = overrides.timestampMs ?? now;
  return {
    "plexus-node": node,
    "plexus-timestamp": String(timestampMs),
    "plexus-signature": signRequest(overrides.key ?? secret, {
      method: "POST",
      path: overrides.path ?? "/peer/v1/messages",
      node,
      timestampMs,
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
