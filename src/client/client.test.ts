import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import dnsPacket from "dns-packet";
import {
  type Attempt,
  connectionsPerServerMax,
  createClient,
  dnsResolver,
  NoServerError,
  OutcomeUnknownError,
  ProblemError,
} from "./client.ts";

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
        nodeSite: null, // the stand-ins do not say theirs
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

  it("says how to stop waiting for a session no server catches up with, and forgetSession does", async () => {
    node("c1").mode = "session-behind";
    const client = createClient({ urls: [`http://127.0.0.1:${node("c1").port}`], session: "held" });
    try {
      await assert.rejects(client.get("cn=x"), (error: Error) => {
        assert.ok(error instanceof NoServerError);
        assert.match(error.message, /503 session-behind.*client\.forgetSession\(\)/);
        return true;
      });
      assert.equal(node("c1").sessions.at(-1), "held");
      client.forgetSession();
      assert.equal(client.session, null);
      node("c1").mode = "ok";
      const answer = await client.get<{ node: string }>("cn=x");
      assert.equal(answer.body.node, "c1");
      assert.equal(node("c1").sessions.at(-1), null, "the request went without the forgotten token");
    } finally {
      node("c1").mode = "ok";
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

/** A stand-in node whose answer to each request is up to the test; it counts what it got. */
interface Scripted {
  readonly url: string;
  readonly requests: string[];
  /** Sockets open at the same time, at most. */
  maxOpen: number;
  close(): Promise<void>;
}

type Behaviour = (
  request: import("node:http").IncomingMessage,
  response: import("node:http").ServerResponse,
) => void;

async function scripted(behaviour: Behaviour): Promise<Scripted> {
  let open = 0;
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString("utf8");
    });
    request.on("end", () => {
      node.requests.push(`${request.method} ${request.url} ${body}`);
      behaviour(request, response);
    });
  });
  server.on("connection", (socket) => {
    open++;
    node.maxOpen = Math.max(node.maxOpen, open);
    socket.on("close", () => open--);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const node: Scripted = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: [],
    maxOpen: 0,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return node;
}

const answerJson =
  (status: number, body: unknown, delayMs = 0): Behaviour =>
  (_request, response) => {
    setTimeout(() => {
      response.writeHead(status, { "content-type": "application/json" });
      response.end(JSON.stringify(body));
    }, delayMs);
  };

const entry = { objectClass: ["person"], cn: ["x"], sn: ["x"] };

describe("writes are sent again only where they cannot have been applied", { timeout: 30_000 }, () => {
  it("does not send a create to another server after the first one got it and broke the connection", async () => {
    // The node received the create (it may have committed it) and died before answering.
    const crashed = await scripted((request) => request.socket.destroy());
    const next = await scripted(answerJson(201, { dn: "cn=x" }));
    const client = createClient({ urls: [crashed.url, next.url] });
    try {
      await assert.rejects(client.add("cn=x,dc=example,dc=com", entry), (error: unknown) => {
        assert.ok(error instanceof OutcomeUnknownError, String(error));
        assert.equal(error.url, crashed.url);
        assert.match(error.message, /may have been applied/);
        return true;
      });
      assert.equal(crashed.requests.length, 1);
      assert.deepEqual(next.requests, [], "the create went to one server only");
    } finally {
      await client.close();
      await crashed.close();
      await next.close();
    }
  });

  it("does not send a delete again after the first server did not answer in time", async () => {
    const slow = await scripted(answerJson(200, { dn: "cn=x" }, 1_000));
    const next = await scripted(answerJson(404, { code: "no-such-entry", status: 404 }));
    const client = createClient({ urls: [slow.url, next.url], requestTimeoutMs: 200 });
    try {
      await assert.rejects(client.delete("cn=x,dc=example,dc=com"), OutcomeUnknownError);
      assert.deepEqual(next.requests, []);
    } finally {
      await client.close();
      await slow.close();
      await next.close();
    }
  });

  it("still fails a write over from a refused connection and a 503 problem, and a read from anything", async () => {
    const dead = await scripted(answerJson(200, {}));
    const deadUrl = dead.url;
    await dead.close();
    const notReady = await scripted(answerJson(503, { code: "not-ready", status: 503 }));
    const crashed = await scripted((request) => request.socket.destroy());
    const next = await scripted(answerJson(201, { dn: "cn=x" }));
    const client = createClient({ urls: [deadUrl, notReady.url, next.url] });
    const reads = createClient({ urls: [crashed.url, next.url] });
    try {
      const written = await client.add("cn=x,dc=example,dc=com", entry);
      assert.equal(written.url, next.url);
      assert.deepEqual(
        written.failed.map((attempt) => attempt.failure),
        ["connection refused", "503 not-ready"],
      );
      const read = await reads.get("cn=x,dc=example,dc=com");
      assert.equal(read.url, next.url);
      const searched = await reads.search({ base: "dc=example,dc=com" });
      assert.equal(searched.url, next.url, "a search is a read, though it is a POST");
    } finally {
      await client.close();
      await reads.close();
      await notReady.close();
      await crashed.close();
      await next.close();
    }
  });
});

describe("the client in no subnet's site", { timeout: 30_000 }, () => {
  it("starts from the answering node's site, from which the closest sites are counted", async () => {
    // No subnet holds the client's address: the ping's closest sites are counted from the
    // answering node's site (docs/api.md), so that site is nearer than any of them.
    const located = { clientSite: null, nodeSite: "b", closestSites: [{ site: "a", cost: 10, servers: 1 }] };
    const b1 = await scripted(answerJson(200, located));
    const a1 = await scripted(answerJson(200, located));
    const port = (url: string) => Number(new URL(url).port);
    const client = createClient({
      zone: "test.zone",
      ping: "http",
      random: () => 0,
      resolver: {
        srv: async (name) =>
          name === "_plexus._tcp.test.zone"
            ? [
                { target: "127.0.0.1", port: port(b1.url), priority: 0, weight: 0 },
                { target: "127.0.0.1", port: port(a1.url), priority: 0, weight: 0 },
              ]
            : name === "_plexus._tcp.b._sites.test.zone"
              ? [{ target: "127.0.0.1", port: port(b1.url), priority: 0, weight: 0 }]
              : name === "_plexus._tcp.a._sites.test.zone"
                ? [{ target: "127.0.0.1", port: port(a1.url), priority: 0, weight: 0 }]
                : [],
        addresses: async () => [],
      },
    });
    try {
      const order = (await client.candidates()).map((candidate) => [candidate.url, candidate.tier]);
      assert.deepEqual(order, [
        [b1.url, { kind: "closest", site: "b", cost: 0 }],
        [a1.url, { kind: "closest", site: "a", cost: 10 }],
      ]);
      assert.equal(client.location?.nodeSite, "b");
    } finally {
      await client.close();
      await b1.close();
      await a1.close();
    }
  });
});

describe("looking the records up again", { timeout: 30_000 }, () => {
  it("does not make requests wait for DNS once it has records: a slow or dead DNS costs no latency", async () => {
    const node = await scripted(answerJson(200, { node: "n" }));
    let now = 0;
    let dnsDown = false;
    const never = new Promise<never>(() => {});
    const client = createClient({
      zone: "test.zone",
      site: "a",
      now: () => now,
      recordsRefreshMs: 1_000,
      requestTimeoutMs: 500,
      resolver: {
        srv: async (name) => {
          if (dnsDown) return never; // a DNS server that never answers
          return name === "_plexus._tcp.test.zone"
            ? [{ target: "127.0.0.1", port: Number(new URL(node.url).port), priority: 0, weight: 0 }]
            : [];
        },
        addresses: async () => [],
      },
    });
    try {
      await client.get("cn=x");
      dnsDown = true;
      now = 5_000;
      const started = performance.now();
      const answer = await client.get<{ node: string }>("cn=x");
      assert.equal(answer.body.node, "n");
      assert.ok(performance.now() - started < 400, "answered from the records it had");
    } finally {
      await client.close();
      await node.close();
    }
  });
});

describe("reads asked of the next server when the first is slow", { timeout: 30_000 }, () => {
  it("takes the first answer, sets the slow server aside until it answers, and never sends a write twice", async () => {
    const slow = await scripted(answerJson(200, { dn: "cn=x", from: "slow" }, 1_500));
    const fast = await scripted(answerJson(200, { dn: "cn=x", from: "fast" }));
    const client = createClient({ urls: [slow.url, fast.url], hedgeReadsAfterMs: 100 });
    const patient = createClient({ urls: [slow.url, fast.url], hedgeReadsAfterMs: null });
    try {
      const started = performance.now();
      const read = await client.get("cn=x");
      assert.equal(read.url, fast.url);
      assert.ok(performance.now() - started < 1_000, "answered by the second server, not after the first");
      assert.deepEqual(
        read.failed.map((attempt) => [attempt.url, attempt.failure]),
        [[slow.url, "no answer within 100 ms (the read went on to the next server)"]],
      );
      // Outrun: set aside at once, so that the next request (a write, say) does not wait on it…
      assert.equal((await client.candidates())[0]?.url, fast.url);
      // …and taken back once its own answer arrives: it was only slow.
      const back = performance.now();
      while ((await client.candidates())[0]?.url !== slow.url) {
        assert.ok(performance.now() - back < 5_000, "the slow server's late answer lifted its back-off");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const searched = await client.search({ base: "dc=example,dc=com" });
      assert.equal(searched.url, fast.url, "a search is a read");
      await new Promise((resolve) => setTimeout(resolve, 1_600)); // the search's late answer
      const fastRequests = fast.requests.length;
      // A write waits for the server it went to: it is never sent to a second one at once.
      const written = await client.add("cn=y,dc=example,dc=com", entry);
      assert.equal(written.url, slow.url);
      assert.equal(fast.requests.length, fastRequests, "the write went to one server only");
      // hedgeReadsAfterMs null: a read waits for its server, as before.
      assert.equal((await patient.get("cn=x")).url, slow.url);
    } finally {
      await client.close();
      await patient.close();
      await slow.close();
      await fast.close();
    }
  });
});

describe("a call the caller aborts", { timeout: 30_000 }, () => {
  it("stops at once, tries no other server and blames none", async () => {
    const slow = await scripted(answerJson(200, { dn: "cn=x" }, 2_000));
    const next = await scripted(answerJson(200, { dn: "cn=x" }));
    const client = createClient({ urls: [slow.url, next.url], requestTimeoutMs: 10_000 });
    try {
      const controller = new AbortController();
      const started = performance.now();
      setTimeout(() => controller.abort(new Error("the user went away")), 100);
      await assert.rejects(
        client.get("cn=x", undefined, { signal: controller.signal }),
        /the user went away/,
      );
      assert.ok(performance.now() - started < 1_500, "not after the slow server's answer");
      assert.deepEqual(next.requests, [], "no failover after the caller gave up");
      // The slow server is not in back-off for it: the next call starts with it again.
      assert.equal((await client.candidates())[0]?.url, slow.url);
      // An already aborted signal sends nothing.
      await assert.rejects(
        client.add("cn=y,dc=example,dc=com", entry, undefined, {
          signal: AbortSignal.abort(new Error("no")),
        }),
        /no/,
      );
      assert.equal(slow.requests.length, 1);
    } finally {
      await client.close();
      await slow.close();
      await next.close();
    }
  });

  it("rejects what it cannot send before sending it, trying and blaming no server", async () => {
    const node = await scripted(answerJson(200, { dn: "cn=x" }));
    const client = createClient({ urls: [node.url] });
    try {
      const lone = "cn=\ud800,dc=example,dc=com";
      // A DN no URL can carry (a lone surrogate has no UTF-8): a rejection, not a synchronous URIError.
      const calls: (() => Promise<unknown>)[] = [
        () => client.get(lone),
        () => client.modify(lone, [{ operation: "delete", attribute: "sn" }]),
        () => client.delete(lone),
        () => client.rename(lone, { newRdn: "cn=y" }),
      ];
      for (const call of calls) {
        let pending: Promise<unknown> | undefined;
        assert.doesNotThrow(() => {
          pending = call();
        }, "a promise-returning call throws nothing synchronously");
        await assert.rejects(pending as Promise<unknown>, (error: unknown) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.match(error.message, /not well-formed Unicode/);
          return true;
        });
      }
      // A body JSON cannot hold: the caller's error, not a write that "may have been applied"
      // on a server it never reached, nor a failure that puts the server in back-off.
      const circular: Record<string, unknown> = { base: "dc=example,dc=com" };
      circular.self = circular;
      await assert.rejects(client.search(circular), (error: unknown) => {
        assert.ok(error instanceof TypeError && !(error instanceof NoServerError), String(error));
        return true;
      });
      await assert.rejects(
        client.add("cn=x,dc=example,dc=com", { cn: [1n as unknown as string] }),
        (error: unknown) => {
          assert.ok(error instanceof TypeError && !(error instanceof OutcomeUnknownError), String(error));
          return true;
        },
      );
      assert.deepEqual(node.requests, [], "nothing was sent");
      const [first] = await client.candidates();
      assert.equal(first?.url, node.url);
      assert.equal((await client.get("cn=x")).status, 200, "the server is in no back-off");
    } finally {
      await client.close();
      await node.close();
    }
  });

  it("renames through POST /v1/entries/{dn}/rename", async () => {
    const node = await scripted(answerJson(200, { dn: "cn=b,ou=p,dc=example,dc=com" }));
    const client = createClient({ urls: [node.url] });
    try {
      const answer = await client.rename(
        "cn=a,dc=example,dc=com",
        { newRdn: "cn=b", newParent: "ou=p,dc=example,dc=com" },
        "site",
      );
      assert.equal(answer.status, 200);
      assert.deepEqual(node.requests, [
        `POST /v1/entries/${encodeURIComponent("cn=a,dc=example,dc=com")}/rename {"newRdn":"cn=b","newParent":"ou=p,dc=example,dc=com"}`,
      ]);
    } finally {
      await client.close();
      await node.close();
    }
  });
});

describe("options and limits", { timeout: 30_000 }, () => {
  it("stops reading a chunked answer that runs past the size limit", async () => {
    const chunk = Buffer.alloc(1024 * 1024, "a");
    let written = 0;
    const flood = await scripted((_request, response) => {
      response.writeHead(200, { "content-type": "application/json" }); // no content-length: chunked
      const more = (): void => {
        // Bounded: a little past the client's limit, unless the client hangs up first.
        while (written < 80 && !response.destroyed) {
          written++;
          if (!response.write(chunk)) return void response.once("drain", more);
        }
        response.end();
      };
      more();
    });
    const client = createClient({ urls: [flood.url], requestTimeoutMs: 20_000 });
    try {
      await assert.rejects(client.get("cn=x"), /answer of more than 67108864 bytes is too large/);
      assert.ok(written < 80, `the client hung up before the end (${written} MiB written)`);
    } finally {
      await client.close();
      await flood.close();
    }
  });

  it("refuses a URL that is not one when the client is created", () => {
    assert.throws(() => createClient({ urls: ["not a url"] }), /not an http\(s\) URL/);
    assert.throws(() => createClient({ urls: ["ftp://127.0.0.1:1"] }), /not an http\(s\) URL/);
  });

  it("gives a write concern sent through request() its timeout, whatever the header's case", async () => {
    const slow = await scripted(answerJson(201, { dn: "cn=x" }, 400));
    const client = createClient({ urls: [slow.url], requestTimeoutMs: 200 });
    try {
      const answer = await client.request(
        "POST",
        "/v1/entries",
        { dn: "cn=x", attributes: entry },
        {
          "Plexus-Write-Concern": "site; timeout=1000",
        },
      );
      assert.equal(answer.status, 201);
    } finally {
      await client.close();
      await slow.close();
    }
  });

  it("opens a bounded number of connections to one server, however many requests run at once", async () => {
    const node = await scripted(answerJson(200, { node: "n" }, 20));
    const client = createClient({ urls: [node.url] });
    try {
      const answers = await Promise.all(
        Array.from({ length: connectionsPerServerMax * 3 }, () => client.get("cn=x")),
      );
      assert.equal(answers.length, connectionsPerServerMax * 3);
      assert.ok(answers.every((answer) => answer.failed.length === 0));
      assert.ok(node.maxOpen <= connectionsPerServerMax, `${node.maxOpen} connections at once`);
    } finally {
      await client.close();
      await node.close();
    }
  });
});
