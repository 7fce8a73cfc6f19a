import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { request } from "undici";
import type { NodeId } from "../core/ids.ts";
import { type ClusterSecret, clusterSecret, signedHeaders } from "./auth.ts";
import { silentLogger } from "./log.ts";
import { PeerClient, peerPaths } from "./peer-client.ts";
import { type PeerAnswer, registerPeerRoutes } from "./peer-server.ts";

/**
 * The transport between nodes on loopback, without a node: a fastify server with the peer
 * routes and a scripted handler, and the undici client. Compression, signed answers, dead and
 * silent partners, and the bound on requests in flight.
 */
const secret = clusterSecret("transport test cluster secret") as ClusterSecret;
const self = "client-node" as NodeId;
const bigBody = { kind: "page", id: 1, filler: "plexus ".repeat(20_000) };

function listening(server: Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    );
  });
}

describe("transport between nodes", { timeout: 30_000 }, () => {
  let app: FastifyInstance;
  let url = "";
  let received: { from: NodeId; body: unknown }[] = [];
  let answer: PeerAnswer = { status: 204 };
  let delayMs = 0;
  const silent = createServer(() => {
    // Never answers: the client's timeout must end the exchange.
  });
  const unsigned = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify(bigBody));
  });
  let silentUrl = "";
  let unsignedUrl = "";

  before(async () => {
    app = Fastify({ logger: false });
    registerPeerRoutes(
      app,
      secret,
      {
        message: (from, body) => {
          received.push({ from, body });
          return answer;
        },
        join: async () => {
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          return { status: 204 };
        },
        utd: () => ({ status: 200, body: { utd: {} } }),
      },
      silentLogger,
    );
    url = await app.listen({ host: "127.0.0.1", port: 0 });
    silentUrl = await listening(silent);
    unsignedUrl = await listening(unsigned);
  });

  after(async () => {
    await app.close();
    silent.closeAllConnections();
    silent.close();
    unsigned.close();
  });

  it("carries a message and its answer, gzipped when asked, and says who sent it", async () => {
    const client = new PeerClient({ self, secret, inFlightMax: 4 });
    received = [];
    answer = { status: 200, body: bigBody };
    for (const compress of [false, true]) {
      const reply = await client.post(url, peerPaths.messages, { kind: "notify" }, 5_000, compress);
      assert.ok(reply.ok, JSON.stringify(reply));
      assert.deepEqual(reply.body, bigBody);
    }
    assert.deepEqual(received, [
      { from: self, body: { kind: "notify" } },
      { from: self, body: { kind: "notify" } },
    ]);
    await client.close();
  });

  it("compresses only when asked: the gzipped answer is far smaller on the wire", async () => {
    answer = { status: 200, body: bigBody };
    const sizes: number[] = [];
    for (const encoding of ["identity", "gzip"]) {
      const client = new PeerClient({ self, secret, inFlightMax: 1 });
      // The client checks the signature over the bytes as sent; a raw fetch shows their size.
      const reply = await client.post(
        url,
        peerPaths.messages,
        { kind: "notify" },
        5_000,
        encoding === "gzip",
      );
      assert.ok(reply.ok);
      await client.close();
      const raw = await rawSize(url, encoding);
      sizes.push(raw);
    }
    const [plain = 0, gzipped = 0] = sizes;
    assert.ok(gzipped * 10 < plain, `gzip ${gzipped} bytes against ${plain}`);
  });

  it("refuses an answer that is not signed for its request", async () => {
    const client = new PeerClient({ self, secret, inFlightMax: 1 });
    const reply = await client.post(unsignedUrl, peerPaths.messages, { kind: "notify" }, 5_000);
    assert.ok(!reply.ok);
    assert.match(reply.reason, /unsigned or badly signed answer/);
    await client.close();
  });

  it("a dead partner fails at once, a silent one at its timeout, and neither holds up another", async () => {
    const client = new PeerClient({ self, secret, inFlightMax: 4 });
    answer = { status: 204 };
    const started = performance.now();
    const [dead, quiet, healthy] = await Promise.all([
      client.post("http://127.0.0.1:1", peerPaths.messages, { kind: "notify" }, 2_000),
      client.post(silentUrl, peerPaths.messages, { kind: "notify" }, 300),
      (async () => {
        const reply = await client.post(url, peerPaths.messages, { kind: "notify" }, 2_000);
        return { reply, at: performance.now() - started };
      })(),
    ]);
    assert.ok(!dead.ok);
    assert.ok(!quiet.ok);
    assert.ok(healthy.reply.ok);
    assert.ok(healthy.at < 250, `the healthy partner answered after ${healthy.at} ms`);
    assert.ok(performance.now() - started < 2_000, "the silent partner cost its own timeout only");
    await client.close();
  });

  it("keeps at most inFlightMax requests in flight; the rest wait their turn", async () => {
    const client = new PeerClient({ self, secret, inFlightMax: 2 });
    delayMs = 200;
    const replies = Array.from({ length: 5 }, () => client.post(url, peerPaths.join, {}, 5_000));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(client.active, 2);
    assert.equal(client.queued, 3);
    for (const reply of await Promise.all(replies)) assert.ok(reply.ok);
    assert.equal(client.active, 0);
    delayMs = 0;
    await client.close();
  });
});

/** The size on the wire of a signed request's answer, with the given accept-encoding. */
async function rawSize(url: string, encoding: string): Promise<number> {
  const body = Buffer.from(JSON.stringify({ kind: "notify" }));
  const signed = signedHeaders(
    secret,
    { method: "POST", path: peerPaths.messages, node: self, body },
    Date.now(),
  );
  const response = await request(`${url}${peerPaths.messages}`, {
    method: "POST",
    body,
    headers: {
      "content-type": "application/json",
      "accept-encoding": encoding,
      ...signed,
    },
  });
  return Buffer.from(await response.body.arrayBuffer()).length;
}
