import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { type InProcessNode, startInProcessNode } from "../../../test/support/in-process-node.ts";
import type { NodeId } from "../../core/ids.ts";
import { signedHeaders } from "../../runtime/auth.ts";
import { peerPaths } from "../../runtime/peer-client.ts";

/**
 * Bad input everywhere: a node in this process (first of its directory, port 0 on loopback)
 * takes seeded random requests on every client route — random methods, DNs, query strings,
 * headers and JSON bodies — and must answer each with a problem document or a success, never
 * a 500 (503 and 504 are answers: session behind, write concern not met), and keep serving.
 */
const base = "dc=example,dc=com";
const seed = 5150;

describe("the client API under random input", { timeout: 60_000 }, () => {
  let node: InProcessNode;

  before(async () => {
    node = await startInProcessNode("fuzz", "east");
  });

  after(async () => {
    await node.close();
  });

  it("never fails with a 500, and answers every error as problem+json", async () => {
    const dn = fc.oneof(
      fc.constantFrom(base, `cn=x,${base}`, "cn=LostAndFound,dc=example,dc=com", "cn=config", ""),
      fc.string({ maxLength: 40 }).map((text) => `cn=${text},${base}`),
      fc.string({ maxLength: 40 }),
    );
    const json = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.record({
        dn,
        attributes: fc.dictionary(
          fc.string({ maxLength: 8 }),
          fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }),
        ),
      }),
      fc.record({
        changes: fc.array(
          fc.record({
            operation: fc.constantFrom("add", "delete", "replace", "x"),
            attribute: fc.oneof(
              fc.constantFrom("cn", "sn", "objectClass", "member"),
              fc.string({ maxLength: 8 }),
            ),
            values: fc.array(fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), { maxLength: 3 }),
          }),
          { maxLength: 3 },
        ),
      }),
      fc.record({
        base: dn,
        scope: fc.constantFrom("base", "one", "sub", "none"),
        filter: fc.oneof(
          fc.constantFrom("(cn=*)", "(&(cn=a)(|(sn=b)))", "(!(cn=x))"),
          fc.string({ maxLength: 30 }),
        ),
        sizeLimit: fc.oneof(fc.integer({ min: -5, max: 200_000 }), fc.double()),
        pageSize: fc.integer({ min: -1, max: 5000 }),
        cursor: fc.string({ maxLength: 20 }),
      }),
      fc.record({
        newRdn: fc.oneof(fc.string({ maxLength: 20 }), fc.integer()),
        newParent: dn,
        deleteOldRdn: fc.jsonValue({ maxDepth: 0 }),
      }),
    );
    const request = fc.record({
      route: fc.constantFrom("entries", "entry", "rename", "search", "conflicts", "watch", "other"),
      method: fc.constantFrom("GET", "POST", "PATCH", "DELETE", "PUT"),
      dn,
      query: fc.constantFrom(
        "",
        "?attributes=cn,sn",
        "?subtree=true",
        "?subtree=x",
        "?after=zz",
        "?limit=-1",
        "?after=1",
      ),
      body: fc.option(json, { nil: undefined }),
      raw: fc.option(fc.string({ maxLength: 50 }), { nil: undefined }),
      session: fc.option(fc.oneof(fc.string({ maxLength: 30 }), fc.base64String({ maxLength: 40 })), {
        nil: undefined,
      }),
      concern: fc.option(
        fc.constantFrom("local", "site", "sites=2; timeout=50", "all; timeout=1", "x", "sites=0"),
        {
          nil: undefined,
        },
      ),
    });
    await fc.assert(
      fc.asyncProperty(request, async (input) => {
        const path = {
          entries: "/v1/entries",
          entry: `/v1/entries/${encodeURIComponent(input.dn)}`,
          rename: `/v1/entries/${encodeURIComponent(input.dn)}/rename`,
          search: "/v1/search",
          conflicts: "/v1/conflicts",
          watch: "/v1/watch",
          other: "/v1/../v1/%zz",
        }[input.route];
        // An open watch stream never ends by itself: only its answer's status is looked at.
        const abort = new AbortController();
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (input.session !== undefined) headers["plexus-session"] = input.session;
        if (input.concern !== undefined) headers["plexus-write-concern"] = input.concern;
        const body = input.method === "GET" ? undefined : (input.raw ?? JSON.stringify(input.body ?? null));
        const response = await fetch(`${node.url}${path}${input.query}`, {
          method: input.method,
          headers,
          ...(body === undefined ? {} : { body }),
          signal: AbortSignal.any([abort.signal, AbortSignal.timeout(10_000)]),
        });
        const type = response.headers.get("content-type") ?? "";
        if (type.startsWith("text/event-stream")) abort.abort();
        else await response.text();
        assert.ok(
          response.status < 500 || response.status === 503 || response.status === 504,
          `${response.status} for ${JSON.stringify(input)}`,
        );
        if (response.status >= 400) assert.match(type, /^application\/problem\+json/, JSON.stringify(input));
      }),
      { numRuns: 400, seed },
    );
    const status = await fetch(`${node.url}/v1/status`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(status.status, 200, "the node still serves");
  });

  it("takes any signed peer message without a 500: the core checks what a peer sends", async () => {
    const message = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.record({
        kind: fc.constantFrom(
          "pull",
          "page",
          "refused",
          "notify",
          "lingering-check",
          "lingering-answer",
          "x",
        ),
        id: fc.oneof(fc.nat(), fc.integer({ min: -3, max: 3 }), fc.string({ maxLength: 3 })),
        request: fc.jsonValue({ maxDepth: 3 }),
        page: fc.jsonValue({ maxDepth: 3 }),
        guids: fc.array(fc.stringMatching(/^[0-9a-f]{32}$/), { maxLength: 3 }),
        answer: fc.jsonValue({ maxDepth: 3 }),
        code: fc.string({ maxLength: 10 }),
        message: fc.string({ maxLength: 10 }),
      }),
    );
    const exchange = fc.record({
      path: fc.constantFrom(peerPaths.messages, peerPaths.utd, peerPaths.join),
      from: fc.constantFrom("peer-a", "peer-b"),
      body: message,
    });
    await fc.assert(
      fc.asyncProperty(exchange, async ({ path, from, body }) => {
        const payload = Buffer.from(JSON.stringify(body));
        const signed = signedHeaders(
          node.secret,
          { method: "POST", path, node: from as NodeId, body: payload },
          Date.now(),
        );
        const response = await fetch(`${node.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", ...signed },
          body: payload,
          signal: AbortSignal.timeout(10_000),
        });
        await response.text();
        assert.ok(
          [200, 204, 400].includes(response.status),
          `${response.status} for ${JSON.stringify(body)}`,
        );
      }),
      { numRuns: 300, seed },
    );
    const status = await fetch(`${node.url}/v1/status`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(status.status, 200, "the node still serves");
  });
});
