import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import {
  type Attempt,
  createClient,
  DeadlineExceededError,
  deadlineMsDefault,
  NoServerError,
  OutcomeUnknownError,
} from "./client.ts";

/**
 * The call's overall deadline (`deadlineMs`): each attempt has its own timeout, but a call that
 * keeps failing over used to take up to servers × that. Stand-in servers on loopback answer
 * `503 session-behind` after a delay (as a node waits for a session), hang, or answer.
 */
type Behaviour =
  | { readonly kind: "behind"; readonly afterMs: number }
  | { readonly kind: "hang" }
  | {
      readonly kind: "ok";
      readonly afterMs: number;
    };

const servers: Server[] = [];

async function stand(behaviour: Behaviour): Promise<string> {
  const server = createServer((_request, response) => {
    if (behaviour.kind === "hang") return;
    setTimeout(() => {
      if (behaviour.kind === "behind") {
        response.writeHead(503, { "content-type": "application/problem+json" });
        response.end(JSON.stringify({ code: "session-behind", status: 503 }));
        return;
      }
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ ok: true }));
    }, behaviour.afterMs);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const behind = (afterMs: number): Behaviour => ({ kind: "behind", afterMs });

async function elapsed<T>(work: () => Promise<T>): Promise<{ ms: number; error: unknown }> {
  const started = performance.now();
  try {
    await work();
    return { ms: performance.now() - started, error: null };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

describe("the client's deadline for a whole call", { timeout: 30_000 }, () => {
  after(async () => {
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("ends a read that keeps failing over at deadlineMs, naming the servers tried and the rest", async () => {
    const urls = await Promise.all([1, 2, 3, 4, 5].map(() => stand(behind(300))));
    const attempts: Attempt[] = [];
    const client = createClient({
      urls,
      deadlineMs: 1_000,
      requestTimeoutMs: 500,
      hedgeReadsAfterMs: null,
      onAttempt: (attempt) => attempts.push(attempt),
    });
    const { ms, error } = await elapsed(() => client.get("cn=a,dc=example,dc=com"));
    await client.close();
    assert.ok(error instanceof DeadlineExceededError, String(error));
    assert.ok(error instanceof NoServerError, "a NoServerError, for callers that catch that");
    assert.ok(ms >= 950 && ms < 1_400, `${ms} ms`);
    assert.equal(error.deadlineMs, 1_000);
    // Three answered 503 after 300 ms each; the fourth was cut at 1,000 ms; the fifth never asked.
    assert.equal(error.attempts.length, 4);
    assert.deepEqual(attempts, error.attempts);
    assert.equal(error.untried, 1);
    assert.match(
      error.message,
      /^no Plexus server answered within the call's deadline of 1000 ms \(deadlineMs\): 4 tried, 1 not tried: .*: 503 session-behind; .*: no answer before the call's deadline \(1000 ms\)$/,
    );
    // Without the deadline the same call takes every server's 300 ms and gives up after all five.
    const unbounded = createClient({
      urls,
      deadlineMs: null,
      requestTimeoutMs: 500,
      hedgeReadsAfterMs: null,
    });
    const slow = await elapsed(() => unbounded.get("cn=a,dc=example,dc=com"));
    await unbounded.close();
    assert.ok(slow.error instanceof NoServerError && !(slow.error instanceof DeadlineExceededError));
    assert.ok(slow.ms >= 1_450, `${slow.ms} ms`);
  });

  it("cuts the attempt in flight at the deadline, counts the servers not tried, and blames none for it", async () => {
    const urls = await Promise.all([1, 2, 3, 4, 5, 6].map(() => stand(behind(300))));
    const client = createClient({ urls, deadlineMs: 700, requestTimeoutMs: 500, hedgeReadsAfterMs: null });
    const { ms, error } = await elapsed(() => client.get("cn=a,dc=example,dc=com"));
    assert.ok(error instanceof DeadlineExceededError, String(error));
    assert.ok(ms >= 650 && ms < 1_000, `${ms} ms`);
    assert.equal(error.attempts.length, 3);
    assert.equal(error.untried, 3);
    assert.equal(error.attempts[2]?.failure, "no answer before the call's deadline (700 ms)");
    assert.match(error.message, /3 tried, 3 not tried: .*503 session-behind/);
    // The server the deadline cut short is not in back-off: it comes third again.
    const order = await client.candidates();
    assert.equal(order[2]?.url, urls[2]);
    await client.close();
  });

  it("ends a hedged read among silent servers at the deadline, not at their timeout", async () => {
    const urls = await Promise.all([1, 2, 3].map(() => stand({ kind: "hang" })));
    const client = createClient({ urls, deadlineMs: 800, requestTimeoutMs: 500, hedgeReadsAfterMs: 100 });
    // requestTimeoutMs 500 < 800: the deadline is deadlineMs; without it: 3 hedged timeouts.
    const { ms, error } = await elapsed(() => client.search({ base: "dc=example,dc=com" }));
    await client.close();
    assert.ok(error instanceof NoServerError, String(error));
    assert.ok(ms < 1_100, `${ms} ms`);
    const slowest = createClient({ urls, deadlineMs: 600, requestTimeoutMs: 5_000, hedgeReadsAfterMs: 100 });
    const cut = await elapsed(() => slowest.get("cn=a,dc=example,dc=com"));
    await slowest.close();
    assert.ok(cut.error instanceof DeadlineExceededError, String(cut.error));
    assert.ok(
      cut.ms >= 4_900 && cut.ms < 5_600,
      `the deadline is never below requestTimeoutMs: ${cut.ms} ms`,
    );
    assert.equal(cut.error.attempts.length, 3);
    assert.ok(cut.error.attempts.every((attempt) => attempt.failure?.includes("deadline")));
  });

  it("ends a write cut short after it was sent with OutcomeUnknownError, saying the deadline did it", async () => {
    const urls = [await stand(behind(400)), await stand({ kind: "hang" })];
    const client = createClient({ urls, deadlineMs: 700, requestTimeoutMs: 600 });
    const { ms, error } = await elapsed(() =>
      client.add("cn=a,dc=example,dc=com", { objectClass: ["person"], cn: ["a"], sn: ["a"] }),
    );
    await client.close();
    assert.ok(error instanceof OutcomeUnknownError, String(error));
    assert.ok(ms >= 650 && ms < 1_000, `${ms} ms`);
    assert.equal(error.url, urls[1]);
    assert.equal(error.reason, "no answer before the call's deadline (700 ms)");
    assert.equal(error.attempts.length, 1);
  });

  it("counts the lookup of the servers: a DNS server that never answers ends the call at the deadline", async () => {
    const silent = { srv: () => new Promise<never>(() => {}), addresses: () => new Promise<never>(() => {}) };
    const client = createClient({
      zone: "plexus.test",
      resolver: silent,
      deadlineMs: 600,
      requestTimeoutMs: 300,
    });
    const { ms, error } = await elapsed(() => client.get("cn=a,dc=example,dc=com"));
    await client.close();
    assert.ok(error instanceof DeadlineExceededError, String(error));
    assert.ok(ms >= 550 && ms < 900, `${ms} ms`);
    assert.match(error.message, /deadline of 600 ms \(deadlineMs\): still looking up the servers$/);
  });

  it("never cuts a write concern's own wait: the deadline is at least its timeout and headroom", async () => {
    const urls = [await stand({ kind: "ok", afterMs: 500 })];
    const client = createClient({ urls, deadlineMs: 100, requestTimeoutMs: 100 });
    const answer = await client.add("cn=a,dc=example,dc=com", {}, "site; timeout=1000");
    await client.close();
    assert.equal(answer.status, 200);
    assert.equal(deadlineMsDefault, 15_000);
  });
});
