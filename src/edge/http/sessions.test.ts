import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../../test/support/in-process-node.ts";
import { decodeSession, isProblem, sessionHeader } from "./api.ts";

/**
 * The session token an answer carries (docs/api.md, Session tokens) when the request is refused
 * before the node read the token it sent — an unknown or repeated parameter, a content coding,
 * a path that does not decode: the token handed back unchanged, as a read hands it back, never
 * an empty one that would tell a client keeping the latest token that it has written nothing.
 */
const base = "dc=example,dc=com";
const requestTimeoutMs = 10_000;

describe("the session token of a refused request", { timeout: 60_000 }, () => {
  let node: InProcessNode;
  /** A token holding a write made through this node. */
  let token: string;

  before(async () => {
    node = await startInProcessNode("sessions", "east");
    const created = await fetch(`${node.url}/v1/entries`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        dn: `cn=written,${base}`,
        attributes: { objectClass: ["person"], cn: ["written"], sn: ["s"] },
      }),
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    assert.equal(created.status, 201, await created.text());
    token = created.headers.get(sessionHeader) ?? "";
    const held = decodeSession(token);
    assert.ok(!isProblem(held) && Object.keys(held).length === 1, `a write's token holds it: ${token}`);
  });

  after(async () => {
    await node.close();
  });

  const answer = async (
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: string,
  ): Promise<{ status: number; code: unknown; token: string | null }> => {
    const response = await fetch(`${node.url}${path}`, {
      method,
      headers: { [sessionHeader]: token, ...headers },
      ...(body === undefined ? {} : { body }),
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    const problem = (await response.json()) as { code?: unknown };
    return { status: response.status, code: problem.code, token: response.headers.get(sessionHeader) };
  };
  const entry = `/v1/entries/${encodeURIComponent(`cn=written,${base}`)}`;

  it("hands back the token sent, unchanged, whatever refused the request first", async () => {
    const refusals = [
      await answer("GET", `${entry}?atributes=cn`),
      await answer("GET", `${entry}?attributes=cn&attributes=sn`),
      await answer("GET", "/v1/conflicts?limit=5&limit=6"),
      await answer(
        "POST",
        "/v1/search",
        { "content-type": "application/json", "content-encoding": "gzip" },
        "{}",
      ),
      await answer("GET", "/v1/entries/%FF"),
      await answer("GET", "/v1/entries/cn%3D%E0%A4"),
    ];
    for (const refused of refusals) {
      assert.ok(refused.status === 400 || refused.status === 415, JSON.stringify(refused));
      assert.equal(refused.token, token, `${JSON.stringify(refused)}: the token sent, not another`);
    }
    // As the requests the node read the token of do.
    assert.equal((await answer("GET", entry)).token, token);
    assert.equal((await answer("GET", "/v1/nothing")).token, token);
  });

  it("hands back the empty token when the one sent is no token, or none was sent", async () => {
    const malformed = await answer("GET", `${entry}?atributes=cn`, { [sessionHeader]: "not a token" });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.token, "e30", "a token the node cannot read is not handed back");
    const response = await fetch(`${node.url}/v1/entries/%FF`, {
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    assert.equal(response.status, 400);
    assert.equal(response.headers.get(sessionHeader), "e30");
    await response.body?.cancel();
  });
});
