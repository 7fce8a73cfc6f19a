import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import dnsPacket from "dns-packet";
import { type Attempt, createClient, dnsResolver, NoServerError, ProblemError } from "./client.ts";

/**
 * The client shell against stand-ins on loopback: small HTTP servers that answer like nodes
 * (locate, entries; or 503, or never) and a tiny DNS responder (dns-packet) serving the
 * locator's SRV and A records. The real-process failover test is failover.test.ts.
 */
type Mode = "ok" | "session-behind" | "hang";

interface FakeNode {
  readonly name: string;
  port: number;
  mode: Mode;
  server: Server;
  /** Session tokens the node received, in order. */
  readonly sessions: (string | null)[];
}

async function fakeNode(name: string, port = 0): Promise<FakeNode> {
  const node: FakeNode = { name, port, mode: "ok", server: createServer(), sessions: [] };
  node.server = createServer((request, response) => {
    node.sessions.push((request.headers["plexus-session"] as string | undefined) ?? null);
    if (node.mode === "hang") return; // never answers
    if (node.mode === "session-behind") {
      response.writeHead(503, { "content-type": "application/problem+json" });
      response.end(JSON.stringify({ code: "session-behind", status: 503 }));
      return;
    }
    const token = Buffer.from(JSON.stringify({ [`inv-${name}`]: node.sessions.length }), "utf8").toString(
      "base64url",
    );
    response.writeHead(request.url === "/v1/entries/missing" ? 404 : 200, {
      "content-type": "application/json",
      "plexus-session": token,
    });
    if (request.url?.startsWith("/v1/locate")) {
      response.end(JSON.stringify({ clientSite: "a", closestSites: [{ site: "b", cost: 10, servers: 1 }] }));
    } else if (request.url === "/v1/entries/missing") {
      response.end(JSON.stringify({ code: "no-such-entry", status: 404, detail: "no entry missing" }));
    } else response.end(JSON.stringify({ node: name }));
  });
  await new Promise<void>((resolve) => node.server.listen(port, "127.0.0.1", resolve));
  node.port = (node.server.address() as AddressInfo).port;
  return node;
}

async function kill(node: FakeNode): Promise<void> {
  node.server.closeAllConnections();
  await new Promise((resolve) => node.server.close(resolve));
}

/** A DNS responder for the test zone: SRV by name, A for each target; anything else NXDOMAIN. */
function dnsResponder(
  records: Map<string, { target: string; port: number; priority: number }[]>,
): Promise<Socket> {
  const socket = createSocket("udp4");
  socket.on("message", (message, peer) => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return; // malformed: ignored
    }
    const question = query.questions?.[0];
    if (question === undefined) return;
    const name = question.name.toLowerCase();
    const answers: dnsPacket.Answer[] = [];
    if (question.type === "SRV")
      for (const record of records.get(name) ?? [])
        answers.push({ type: "SRV", name, ttl: 60, data: { ...record, weight: 10 } });
    if (question.type === "A" && name.endsWith(".test.zone"))
      answers.push({ type: "A", name, ttl: 60, data: "127.0.0.1" });
    const known = answers.length > 0 || records.has(name) || name.endsWith(".test.zone");
    const reply = dnsPacket.encode({
      id: query.id,
      type: "response",
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3),
      questions: [question],
      answers,
    });
    socket.send(reply, peer.port, peer.address);
  });
  return new Promise((resolve) => socket.bind(0, "127.0.0.1", () => resolve(socket)));
}

describe("the client against stand-in nodes and DNS", { timeout: 60_000 }, () => {
  const nodes = new Map<string, FakeNode>();
  let dns: Socket;
  let dnsServer: string;

  before(async () => {
    for (const name of ["a1", "a2", "b1", "c1"]) nodes.set(name, await fakeNode(name));
    const srv = (names: string[]) =>
      names.map((name, index) => ({
        target: `${name}.test.zone`,
        port: nodes.get(name)?.port as number,
        priority: index,
      }));
    dns = await dnsResponder(
      new Map([
        ["_plexus._tcp.test.zone", srv(["c1", "b1", "a1", "a2"])],
        ["_plexus._tcp.a._sites.test.zone", srv(["a1", "a2"])],
        ["_plexus._tcp.b._sites.test.zone", srv(["b1"])],
      ]),
    );
    dnsServer = `127.0.0.1:${(dns.address() as AddressInfo).port}`;
  });

  after(async () => {
    dns.close();
    for (const node of nodes.values()) if (node.server.listening) await kill(node);
  });

  const node = (name: string): FakeNode => nodes.get(name) as FakeNode;

  it("resolves SRV and A records through node:dns, NXDOMAIN as empty", async () => {
    const resolver = dnsResolver([dnsServer]);
    const records = await resolver.srv("_plexus._tcp.a._sites.test.zone");
    assert.deepEqual(
      records.map((record) => [record.target, record.priority]),
      [
        ["a1.test.zone", 0],
        ["a2.test.zone", 1],
      ],
    );
    assert.deepEqual(await resolver.srv("_plexus._tcp.nowhere._sites.other"), []);
    assert.deepEqual(await resolver.addresses("a1.test.zone"), ["127.0.0.1"]);
  });

  it("pings to learn its site, then uses its site's servers first, then the closest site's, then any", async () => {
    const client = createClient({ zone: "test.zone", dnsServers: [dnsServer], random: () => 0 });
    try {
      const answer = await client.get<{ node: string }>("cn=x");
      assert.equal(answer.body.node, "a1");
      assert.deepEqual(client.location, {
        clientSite: "a",
        closestSites: [{ site: "b", cost: 10 }],
        via: "http",
      });
      const order = (await client.candidates()).map((candidate) => `${candidate.url}/${candidate.tier.kind}`);
      const url = (name: string) => `http://127.0.0.1:${node(name).port}`;
      assert.deepEqual(order, [
        `${url("a1")}/site`,
        `${url("a2")}/site`,
        `${url("b1")}/closest`,
        `${url("c1")}/generic`,
      ]);
    } finally {
      await client.close();
    }
  });

  it("fails over server by server, carries the session token, and returns to its site after the back-off", async () => {
    const attempts: Attempt[] = [];
    const client = createClient({
      zone: "test.zone",
      dnsServers: [dnsServer],
      random: () => 0,
      backoff: { baseMs: 150, maxMs: 150 },
      onAttempt: (attempt) => attempts.push(attempt),
    });
    try {
      assert.equal((await client.get<{ node: string }>("cn=x")).body.node, "a1");
      const token = client.session;
      assert.notEqual(token, null);
      const a1Port = node("a1").port;
      await kill(node("a1"));
      const second = await client.get<{ node: string }>("cn=x");
      assert.equal(second.body.node, "a2");
      assert.deepEqual(
        second.failed.map((failure) => failure.failure),
        ["connection refused"],
      );
      assert.equal(node("a2").sessions.at(-1), token, "the token travels to the next server");
      await kill(node("a2"));
      const third = await client.get<{ node: string }>("cn=x");
      assert.equal(third.body.node, "b1");
      assert.equal(third.tier.kind, "closest");
      // Both of site a's servers are in back-off: the next request goes straight to b1.
      const fourth = await client.get<{ node: string }>("cn=x");
      assert.equal(fourth.body.node, "b1");
      assert.deepEqual(fourth.failed, []);
      // The session grew with each answer (c1 answered the ping): b1 got a token holding them all.
      const held = JSON.parse(Buffer.from(node("b1").sessions.at(-1) ?? "", "base64url").toString("utf8"));
      assert.deepEqual(Object.keys(held).sort(), ["inv-a1", "inv-a2", "inv-b1", "inv-c1"]);
      nodes.set("a1", await fakeNode("a1", a1Port));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const back = await client.get<{ node: string }>("cn=x");
      assert.equal(back.body.node, "a1", "back in its own site once the back-off ran out");
      assert.ok(attempts.some((attempt) => attempt.failure !== null));
    } finally {
      await client.close();
    }
  });

  it("moves on from a 503 session-behind and from a server that never answers", async () => {
    node("a1").mode = "session-behind";
    node("b1").mode = "hang";
    const client = createClient({
      zone: "test.zone",
      dnsServers: [dnsServer],
      site: "a",
      random: () => 0,
      requestTimeoutMs: 300,
    });
    try {
      // a1 behind, a2 dead (previous test), b1 hangs: c1 (generic) answers.
      const answer = await client.get<{ node: string }>("cn=x");
      assert.equal(answer.body.node, "c1");
      assert.deepEqual(
        answer.failed.map((failure) => failure.failure),
        ["503 session-behind", "connection refused"],
      );
      // With site given there is no ping, so no closest tier: b1 is only a generic candidate, after c1.
    } finally {
      node("a1").mode = "ok";
      node("b1").mode = "ok";
      await client.close();
    }
  });

  it("returns problem answers as ProblemError without failing over", async () => {
    const client = createClient({
      urls: [`http://127.0.0.1:${node("c1").port}`, `http://127.0.0.1:${node("b1").port}`],
    });
    try {
      await assert.rejects(client.get("missing"), (error: unknown) => {
        assert.ok(error instanceof ProblemError);
        assert.equal(error.code, "no-such-entry");
        return true;
      });
    } finally {
      await client.close();
    }
  });

  it("says which servers it tried and why when none answers", async () => {
    const dead = await fakeNode("dead");
    const port = dead.port;
    await kill(dead);
    const client = createClient({
      urls: [`http://127.0.0.1:${port}`, `http://127.0.0.1:${node("a2").port}`],
    });
    try {
      await assert.rejects(client.get("cn=x"), (error: unknown) => {
        assert.ok(error instanceof NoServerError);
        assert.equal(error.attempts.length, 2);
        assert.match(error.message, /2 tried/);
        assert.match(error.message, /connection refused/);
        return true;
      });
    } finally {
      await client.close();
    }
  });

  it("looks an empty answer up again at the next request (nodes not registered yet)", async () => {
    let registered = false;
    const port = node("c1").port;
    const client = createClient({
      zone: "test.zone",
      site: "a",
      resolver: {
        srv: async (name) =>
          registered && name === "_plexus._tcp.test.zone"
            ? [{ target: "127.0.0.1", port, priority: 0, weight: 0 }]
            : [],
        addresses: async () => [],
      },
    });
    try {
      await assert.rejects(
        client.get("cn=x"),
        /no Plexus server to try: DNS has no _plexus\._tcp\.test\.zone/,
      );
      registered = true;
      assert.equal((await client.get<{ node: string }>("cn=x")).body.node, "c1");
    } finally {
      await client.close();
    }
  });

  it("refuses options that say nothing or too much", () => {
    assert.throws(() => createClient({}), /either a zone/);
    assert.throws(() => createClient({ zone: "x", urls: ["http://127.0.0.1:1"] }), /either a zone/);
    assert.throws(() => createClient({ zone: "bad zone!" }), /not a DNS zone/);
  });
});
