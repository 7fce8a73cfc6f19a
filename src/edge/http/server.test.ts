import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { httpServerOptions, requestReceiveMsMax } from "./server.ts";

/**
 * What the HTTP server itself refuses before a route runs: here, a request whose body never
 * arrives in full. The node's server options bound the time a request may take to arrive; a
 * server built with them (the bound shortened, so that the test need not wait two minutes)
 * answers `408 request-timeout` as a problem document and closes the connection.
 */
const shortReceiveMs = 200;
/** How often Node looks for requests past their time; its default is 30 s. */
const checkingIntervalMs = 50;
const answerWaitMs = 5_000;

describe("the node's HTTP server", { timeout: 30_000 }, () => {
  let app: FastifyInstance;
  let port = 0;

  before(async () => {
    app = Fastify({
      ...httpServerOptions,
      requestTimeout: shortReceiveMs,
      http: {
        ...httpServerOptions.http,
        headersTimeout: shortReceiveMs,
        connectionsCheckingInterval: checkingIntervalMs,
      },
    });
    app.post("/echo", async (request) => request.body);
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    assert.ok(address !== null && typeof address === "object");
    port = address.port;
  });

  after(async () => {
    await app.close();
  });

  it("bounds the time a request may take to arrive", () => {
    assert.equal(httpServerOptions.requestTimeout, requestReceiveMsMax);
    assert.ok(requestReceiveMsMax > 0 && Number.isFinite(requestReceiveMsMax));
  });

  it("answers a body shorter than its Content-Length with 408 request-timeout and closes", async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, "127.0.0.1");
      let text = "";
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no answer within ${answerWaitMs} ms: ${JSON.stringify(text)}`));
      }, answerWaitMs);
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => {
        text += chunk;
      });
      socket.on("close", () => {
        clearTimeout(timer);
        resolve(text);
      });
      socket.on("error", () => undefined);
      socket.write(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{}",
      );
    });
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /content-type: application\/problem\+json/i);
    assert.match(answer, /"code":"request-timeout"/);
  });
});
