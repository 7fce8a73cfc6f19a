import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../test/support/in-process-node.ts";
import { type ClusterSecret, clusterSecret } from "../runtime/auth.ts";
import { liveTopologyCommand } from "./repl.ts";

/**
 * `plexus topology --url` draws bridgeheads and rings as the node it asks has them: with the
 * servers that node found stale left out, not as configured. A stand-in in front of a real
 * node answers its status with one partner failing.
 */
const secret = clusterSecret("the live topology test's secret, long enough") as ClusterSecret;

describe("plexus topology --url", { timeout: 60_000 }, () => {
  const nodes: InProcessNode[] = [];
  let standIn: Server | undefined;
  after(async () => {
    standIn?.closeAllConnections();
    await new Promise((resolve) => (standIn === undefined ? resolve(null) : standIn.close(resolve)));
    for (const node of nodes) await node.close();
  });

  it("leaves out the servers the node found stale, and says which", async () => {
    const e1 = await startInProcessNode("e1", "east", { secret, pageWorker: false });
    nodes.push(e1);
    const e2 = await startInProcessNode("e2", "east", {
      secret,
      join: [e1.url],
      partitions: [],
      pageWorker: false,
    });
    nodes.push(e2);
    // e1's own answers, but for its status: e2 failing every pull.
    standIn = createServer(async (request, response) => {
      let body = "";
      for await (const chunk of request) body += chunk;
      const forwarded = await fetch(`${e1.url}${request.url}`, {
        method: request.method ?? "GET",
        headers: { "content-type": "application/json" },
        ...(body === "" ? {} : { body }),
      });
      let text = await forwarded.text();
      if (request.url?.startsWith("/v1/status")) {
        const status = JSON.parse(text) as { partners: { node: string; consecutiveFailures: number }[] };
        status.partners = status.partners.map((partner) => ({
          ...partner,
          consecutiveFailures: 9,
          lastFailure: "connect ECONNREFUSED 127.0.0.1:9",
        }));
        text = JSON.stringify(status);
      }
      response.writeHead(forwarded.status, { "content-type": "application/json" });
      response.end(text);
    });
    await new Promise<void>((resolve) => standIn?.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(standIn.address() as AddressInfo).port}`;
    let out = "";
    let err = "";
    const code = await liveTopologyCommand(
      url,
      undefined,
      { write: (text: string) => (out += text) },
      { write: (text: string) => (err += text) },
    );
    assert.equal(code, 0, err);
    assert.match(
      out,
      /^As e1 sees it: stale \(failed 3\+ pulls in a row\): e2\n {2}e2: connect ECONNREFUSED 127\.0\.0\.1:9\n\n/,
    );
    assert.match(out, /intra-site \(1 live, diameter 0\):\n {6}e1 ↔ \(alone\)/);
  });
});
