import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { type InProcessNode, startInProcessNode } from "../../test/support/in-process-node.ts";
import type { NodeId } from "../core/ids.ts";
import { peerHeaders, signedHeaders, signResponse, verifyRequest } from "./auth.ts";
import { runtimeTimingsDefault } from "./node.ts";
import { peerPaths } from "./peer-client.ts";

/**
 * A node against a partner that holds the cluster secret but answers what it likes (a broken or
 * compromised node): every answer is signed, so only the node's own checks stand in the way.
 */

const evil = "evil" as NodeId;
const evilInvocation = "e".repeat(32);
/** What the fake partner answers to a pull: the message, given the pull. */
type Answer = (pull: { id: number; request: Record<string, unknown> }) => unknown;

interface PartnerStatus {
  node: string;
  pulling: boolean;
  lastFailure: string | null;
  lastFailureAt: string | null;
  lastSuccessAt: string | null;
}

function emptyPage(
  pull: { id: number; request: Record<string, unknown> },
  page: Record<string, unknown> = {},
) {
  const from = pull.request.from as { objectUsn: number };
  return {
    kind: "page",
    id: pull.id,
    page: {
      source: evil,
      sourceInvocation: evilInvocation,
      destinationInvocation: pull.request.destinationInvocation,
      from: pull.request.from,
      highUsn: from.objectUsn + 1,
      more: false,
      utd: { [evilInvocation]: from.objectUsn + 1 },
      purgeHorizon: {},
      entries: [],
      ...page,
    },
  };
}

describe("a partner that answers what it likes", { timeout: 60_000 }, () => {
  let victim: InProcessNode;
  let fake: Server;
  let answer: Answer = (pull) => emptyPage(pull);
  let pulls = 0;
  /** The fake partner's UTD report. */
  let report: () => unknown = () => ({ node: evil, site: "main", invocation: evilInvocation, utd: {} });

  async function post(path: string, body: unknown, as: NodeId = evil) {
    const payload = Buffer.from(JSON.stringify(body));
    const response = await request(new URL(path, victim.url), {
      method: "POST",
      body: payload,
      headers: {
        "content-type": "application/json",
        ...signedHeaders(victim.secret, { method: "POST", path, node: as, body: payload }, Date.now()),
      },
    });
    return { status: response.statusCode, text: await response.body.text() };
  }

  async function partner(): Promise<PartnerStatus> {
    const response = await request(new URL("/v1/status", victim.url));
    const status = (await response.body.json()) as { partners: PartnerStatus[] };
    const found = status.partners.find((candidate) => candidate.node === evil);
    assert.ok(found !== undefined, "the fake partner is an inbound partner");
    return found;
  }

  /** Has the victim pull from the fake partner now; resolves with the partner's status after it. */
  async function pullOnce(withinMs: number): Promise<PartnerStatus> {
    const seen = pulls;
    await new Promise((resolve) => setTimeout(resolve, 60)); // past the short back-off
    await post(peerPaths.messages, { kind: "notify" });
    const deadline = Date.now() + withinMs;
    while (Date.now() < deadline) {
      const status = await partner();
      if (pulls > seen && !status.pulling) return status;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return partner();
  }

  before(async () => {
    victim = await startInProcessNode("victim", "main", {
      timings: { ...runtimeTimingsDefault, retryBackoffBaseMs: 20, retryBackoffMaxMs: 40 },
    });
    fake = createServer((incoming, outgoing) => {
      const chunks: Buffer[] = [];
      incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
      incoming.on("end", () => {
        const raw = Buffer.concat(chunks);
        const path = incoming.url ?? "";
        const verified = verifyRequest(victim.secret, "POST", path, incoming.headers, raw, Date.now());
        if (!verified.ok) return void outgoing.writeHead(401).end();
        const message = raw.length === 0 ? null : JSON.parse(raw.toString("utf8"));
        if (message?.kind === "pull") pulls++;
        const body =
          path === peerPaths.utd
            ? Buffer.from(JSON.stringify(report()))
            : message?.kind === "pull"
              ? Buffer.from(JSON.stringify(answer(message)))
              : Buffer.alloc(0);
        const status = body.length === 0 ? 204 : 200;
        outgoing.writeHead(status, {
          "content-type": "application/json",
          [peerHeaders.signature]: signResponse(victim.secret, status, verified.signature, body),
        });
        outgoing.end(body);
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
    const port = (fake.address() as AddressInfo).port;
    const joined = await post(peerPaths.join, {
      node: evil,
      site: "main",
      address: "127.0.0.1",
      httpPort: port,
    });
    assert.equal(joined.status, 200, joined.text);
    const deadline = Date.now() + 5_000;
    while (pulls === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(pulls > 0, "the victim pulls from the fake partner");
  });

  after(async () => {
    await new Promise((resolve) => fake.close(resolve));
    await victim.close();
  });

  it("an answer that is no message for the pull fails the exchange at once, with the reason", async () => {
    // The machine drops such an answer unseen: the pull stayed in flight, silently, until its
    // timeout (pullTimeoutMs, 10 s).
    const cases: ReadonlyArray<readonly [Answer, RegExp]> = [
      [() => [], /^malformed answer: a peer message must be an object/],
      [() => null, /^malformed answer/],
      [(pull) => ({ ...emptyPage(pull), id: String(pull.id) }), /^malformed answer: a page message needs/],
      [(pull) => ({ ...emptyPage(pull), id: pull.id + 1000 }), /^the answer to pull \d+ is page \d+/],
      [() => ({ kind: "notify" }), /^the answer to pull \d+ is notify$/],
    ];
    for (const [given, reason] of cases) {
      answer = given;
      const started = Date.now();
      const status = await pullOnce(3_000);
      assert.match(status.lastFailure ?? "", reason);
      assert.ok(Date.now() - started < 3_000, "failed at once, not at the pull timeout");
    }
    answer = (pull) => emptyPage(pull);
    const healthy = await pullOnce(3_000);
    assert.ok(healthy.lastSuccessAt !== null && healthy.lastSuccessAt > (healthy.lastFailureAt ?? ""));
  });

  it("a page that names another node as its source is refused", async () => {
    // The destination keeps the watermark of the node a page names: a page naming another
    // partner moved that partner's watermark, so the destination skipped its changes.
    answer = (pull) => emptyPage(pull, { source: "honest" });
    const status = await pullOnce(3_000);
    assert.equal(status.lastFailure, "a page from evil names honest as its source");
    answer = (pull) => emptyPage(pull);
  });

  it("refuses answers posted on their own, and pulls for another node", async () => {
    const page = emptyPage({
      id: 1,
      request: {
        destinationInvocation: "d".repeat(32),
        from: { invocation: null, objectUsn: 0, propertyUsn: 0 },
      },
    });
    const posted = await post(peerPaths.messages, { ...page, page: { ...page.page, source: "honest" } });
    assert.equal(posted.status, 400);
    assert.match(posted.text, /a page is an answer/);
    for (const message of [
      { kind: "refused", id: 1, code: "quarantined", message: "no" },
      { kind: "lingering-answer", id: 1, answer: {} },
    ]) {
      assert.equal((await post(peerPaths.messages, message)).status, 400);
    }
    const spoofed = await post(peerPaths.messages, {
      kind: "pull",
      id: 5,
      request: {
        destination: "honest",
        destinationInvocation: "d".repeat(32),
        from: { invocation: null, objectUsn: 0, propertyUsn: 0 },
        utd: {},
        purgeHorizon: {},
        limits: { entriesMax: 1, bytesMax: 1000 },
      },
    });
    assert.equal(spoofed.status, 400);
    assert.match(spoofed.text, /a pull from evil names honest as its destination/);
  });

  it("a UTD report that cannot be true does not meet a write concern", async () => {
    // A report from another node (the partner's address now serves another name), or one that
    // claims more of this node's instance than it issued, met the concern "site" at once.
    const status = (await (await request(new URL("/v1/status", victim.url))).body.json()) as {
      invocationId: string;
    };
    const write = async (cn: string) => {
      const response = await request(new URL("/v1/entries", victim.url), {
        method: "POST",
        headers: { "content-type": "application/json", "plexus-write-concern": "site;timeout=300" },
        body: JSON.stringify({ dn: `cn=${cn},dc=example,dc=com`, attributes: { objectClass: ["person"] } }),
      });
      const text = await response.body.text();
      assert.ok(response.statusCode < 300 || response.statusCode === 504, text);
      return response.statusCode < 300;
    };
    const claims = (node: string, usn: number) => () => ({
      node,
      site: "main",
      invocation: evilInvocation,
      utd: { [status.invocationId]: usn },
    });
    report = claims("honest", 2 ** 52);
    assert.equal(await write("reported-by-another"), false);
    report = claims(evil, 2 ** 52);
    assert.equal(await write("claimed-beyond"), false);
    // The truth: the partner holds everything this node has issued.
    report = () => claims(evil, victim.node.position())();
    const met = write("reported-truly");
    assert.equal(await met, true, "a report that covers the write meets it");
  });
});
