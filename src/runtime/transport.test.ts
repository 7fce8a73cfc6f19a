import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import Fastify, { type FastifyInstance } from "fastify";
import { request } from "undici";
import { makeDirectory } from "../../test/support/replicas.ts";
import type { NodeId } from "../core/ids.ts";
import { unwrap } from "../core/result.ts";
import { type ClusterSecret, clusterSecret, peerHeaders, signedHeaders, signResponse } from "./auth.ts";
import { silentLogger } from "./log.ts";
import { compactPageEncoding, isCompactPage, pageEncodingHeader } from "./page-wire.ts";
import { PeerClient, peerPaths, peerResponseBytesMax } from "./peer-client.ts";
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
  // Answers at once, then sends a byte of body every 50 ms without end: only a bound on the
  // whole exchange stops it (undici's bodyTimeout is per chunk).
  const trickle = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    const timer = setInterval(() => response.write(" "), 50);
    response.on("close", () => clearInterval(timer));
  });
  let trickleUrl = "";
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
    trickleUrl = await listening(trickle);
  });

  after(async () => {
    await app.close();
    silent.closeAllConnections();
    silent.close();
    unsigned.close();
    trickle.closeAllConnections();
    trickle.close();
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

  it("sends a page compact to a caller that reads it, plain to one that does not; the client rebuilds it", async () => {
    const [source, destination] = makeDirectory(["node-a", "node-b"]);
    assert.ok(source !== undefined && destination !== undefined);
    for (let index = 0; index < 20; index++)
      unwrap(
        source.replica.writeOne({
          op: "add",
          dn: `uid=user${index},dc=example,dc=com`,
          attributes: { objectClass: ["person"], sn: [`S${index}`] },
        }),
      );
    const page = unwrap(source.replica.getChanges(destination.replica.changeRequest(source.name)));
    const message = { kind: "page", id: 3, page };
    answer = { status: 200, body: message };
    const client = new PeerClient({ self, secret, inFlightMax: 1 });
    const reply = await client.post(url, peerPaths.messages, { kind: "notify" }, 5_000);
    await client.close();
    assert.ok(reply.ok, JSON.stringify(reply));
    assert.deepEqual(reply.body, JSON.parse(JSON.stringify(message)));
    const plain = JSON.parse((await rawAnswer(url, "identity")).toString("utf8")) as { page: unknown };
    assert.deepEqual(plain, JSON.parse(JSON.stringify(message)));
    const compact = await rawAnswer(url, "identity", { [pageEncodingHeader]: compactPageEncoding });
    assert.ok(isCompactPage((JSON.parse(compact.toString("utf8")) as { page: unknown }).page));
    assert.ok(
      reply.bytes === compact.length,
      `the client read ${reply.bytes} bytes, compact is ${compact.length}`,
    );
    assert.ok(compact.length * 3 < JSON.stringify(plain).length, `compact ${compact.length} bytes`);
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

  it("bounds the whole exchange, a body that never ends included", async () => {
    const client = new PeerClient({ self, secret, inFlightMax: 1 });
    const started = performance.now();
    const reply = await client.post(trickleUrl, peerPaths.messages, { kind: "notify" }, 400);
    const elapsed = performance.now() - started;
    assert.ok(!reply.ok);
    assert.match(reply.reason, /no answer in 400 ms/);
    assert.ok(elapsed < 1_500, `the exchange ended after ${elapsed} ms`);
    // The slot came back: the next exchange runs.
    answer = { status: 204 };
    assert.ok((await client.post(url, peerPaths.messages, { kind: "notify" }, 2_000)).ok);
    await client.close();
  });

  it("refuses a signed gzip answer that inflates past peerResponseBytesMax", async () => {
    // Zeros past the bound, in about a thousandth of their size: a broken or hostile partner's answer.
    const bomb = gzipSync(Buffer.alloc(peerResponseBytesMax + 32 * 1024 * 1024), { level: 9 });
    const server = createServer((request, response) => {
      const requestSignature = request.headers[peerHeaders.signature];
      response.writeHead(200, {
        "content-type": "application/json",
        "content-encoding": "gzip",
        [peerHeaders.signature]: signResponse(secret, 200, String(requestSignature), bomb),
      });
      response.end(bomb);
    });
    const bombUrl = await listening(server);
    const client = new PeerClient({ self, secret, inFlightMax: 1 });
    try {
      const reply = await client.post(bombUrl, peerPaths.messages, { kind: "notify" }, 10_000, true);
      assert.ok(!reply.ok, "refused");
      assert.match(reply.reason, /larger than/i);
      // The slot came back: the next exchange runs.
      answer = { status: 204 };
      assert.ok((await client.post(url, peerPaths.messages, { kind: "notify" }, 2_000)).ok);
    } finally {
      await client.close();
      server.closeAllConnections();
      server.close();
    }
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
async function rawSize(url: string, encoding: string, headers: Record<string, string> = {}): Promise<number> {
  return (await rawAnswer(url, encoding, headers)).length;
}

/** The answer's bytes as sent, to a signed request made without PeerClient. */
async function rawAnswer(
  url: string,
  encoding: string,
  headers: Record<string, string> = {},
): Promise<Buffer> {
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
      ...headers,
      ...signed,
    },
  });
  return Buffer.from(await response.body.arrayBuffer());
}
