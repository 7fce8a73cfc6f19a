import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import Fastify from "fastify";
import { type InProcessNode, startInProcessNode } from "../../../test/support/in-process-node.ts";
import { registerLocateRoute } from "./locate.ts";

/** GET /v1/locate on a node in this process: the caller's own address, the override, bad input. */
describe("GET /v1/locate", { timeout: 30_000 }, () => {
  let node: InProcessNode;
  let url: string;

  before(async () => {
    node = await startInProcessNode("e1", "east", {
      topology: {
        sites: [{ name: "east" }, { name: "west" }, { name: "north" }],
        links: [
          { name: "ew", sites: ["east", "west"], cost: 10 },
          { name: "wn", sites: ["west", "north"], cost: 10 },
        ],
        subnets: [
          { cidr: "127.0.0.0/8", site: "east" },
          { cidr: "10.2.0.0/16", site: "west" },
        ],
      },
    });
    url = node.url;
  });

  after(async () => {
    await node.close();
  });

  const get = async (query: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const response = await fetch(`${url}/v1/locate${query}`, { signal: AbortSignal.timeout(5_000) });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  it("places the caller by the address it connects from", async () => {
    const { status, body } = await get("");
    assert.equal(status, 200);
    assert.equal(body.address, "127.0.0.1");
    assert.equal(body.clientSite, "east");
    assert.equal(body.node, "e1");
    assert.equal(body.nodeSite, "east");
    assert.equal(body.inClientSite, true);
    assert.deepEqual(body.closestSites, [
      { site: "west", cost: 10, servers: 0 },
      { site: "north", cost: 20, servers: 0 },
    ]);
  });

  it("answers for ?address= instead (a proxy, a test)", async () => {
    const { body } = await get("?address=10.2.3.4");
    assert.equal(body.clientSite, "west");
    assert.equal(body.inClientSite, false);
    assert.deepEqual(
      (body.closestSites as { site: string }[]).map((site) => site.site),
      ["east", "north"],
    );
    const nowhere = await get("?address=10.9.9.9");
    assert.equal(nowhere.status, 200);
    assert.equal(nowhere.body.clientSite, null);
  });

  it("refuses unknown parameters and anything but one IP address with a problem document", async () => {
    for (const query of [
      "?site=east",
      `?address=${"1".repeat(100)}`,
      "?address=1&address=2",
      "?address=notanip",
      "?address=10.1.2.300",
      "?address=10.1.0.0%2F16",
    ]) {
      const { status, body } = await get(query);
      assert.equal(status, 400, query);
      assert.equal(body.code, "invalid-request");
    }
  });
});

/** The route on its own (registerLocateRoute), before the node has a topology. */
describe("GET /v1/locate without a topology", () => {
  it("answers 503 not-ready with Retry-After, as every retryable problem", async () => {
    const app = Fastify();
    registerLocateRoute(app, () => null);
    try {
      const answer = await app.inject({ method: "GET", url: "/v1/locate" });
      assert.equal(answer.statusCode, 503);
      assert.equal((answer.json() as { code: string }).code, "not-ready");
      assert.equal(answer.headers["retry-after"], "1");
    } finally {
      await app.close();
    }
  });
});
