import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import Fastify from "fastify";
import { type InProcessNode, startInProcessNode } from "../../../test/support/in-process-node.ts";
import { sseBlocks } from "../../../test/support/sse.ts";
import type { Guid, InvocationId, Usn } from "../../core/ids.ts";
import {
  type ChangeEvent,
  type DirectoryService,
  encodeSession,
  isProblem,
  registerClientApi,
  sessionHeader,
} from "./api.ts";
import { eventId, startPosition } from "./watch.ts";

/**
 * Where GET /v1/watch starts, on a node in this process: `Last-Event-ID` over `?after` (a
 * browser's EventSource reconnects with its first URL plus the header), and no position this
 * node never reached.
 */
const base = "dc=example,dc=com";
const requestTimeoutMs = 10_000;
/** Writes made before the tests, so that the node's USN has room below it. */
const writesBefore = 3;
/** A HEAD has no stream to wait for: its headers come at once (a hung HEAD fails the test). */
const headTimeoutMs = 2_000;

interface Opened {
  readonly status: number;
  readonly type: string;
  /** The position the stream starts after (from its first comment line), for a 200. */
  readonly start: number | null;
  /** USNs of the events that arrived with the first chunks, for a 200. */
  readonly usns: readonly number[];
  /** The problem document, for an error. */
  readonly body: Record<string, unknown> | null;
}

describe("GET /v1/watch's start position", { timeout: 60_000 }, () => {
  let node: InProcessNode;

  before(async () => {
    node = await startInProcessNode("watch", "east");
    for (let index = 0; index < writesBefore; index++) {
      const created = await fetch(`${node.url}/v1/entries`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          dn: `cn=watch-${index},${base}`,
          attributes: { objectClass: ["person"], cn: [`watch-${index}`], sn: ["watch"] },
        }),
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      assert.equal(created.status, 201, await created.text());
    }
  });

  after(async () => {
    await node.close();
  });

  const usnNow = async (): Promise<number> => {
    const response = await fetch(`${node.url}/v1/status`, { signal: AbortSignal.timeout(requestTimeoutMs) });
    return ((await response.json()) as { usn: number }).usn;
  };

  /**
   * Opens a stream, reads until its first comment line and every event up to `usnUntil` (the
   * node is idle: nothing more will come), then closes it.
   */
  const open = async (query: string, headers: Record<string, string>, usnUntil = 0): Promise<Opened> => {
    const abort = new AbortController();
    const response = await fetch(`${node.url}/v1/watch${query}`, {
      headers,
      signal: AbortSignal.any([abort.signal, AbortSignal.timeout(requestTimeoutMs)]),
    });
    const type = response.headers.get("content-type") ?? "";
    if (!type.startsWith("text/event-stream"))
      return {
        status: response.status,
        type,
        start: null,
        usns: [],
        body: (await response.json()) as Record<string, unknown>,
      };
    const reader = response.body?.getReader();
    assert.ok(reader !== undefined);
    let start: number | null = null;
    const usns: number[] = [];
    try {
      for await (const block of sseBlocks(reader)) {
        const comment = /^: watching changes after USN ([0-9]+)$/m.exec(block)?.[1];
        if (comment !== undefined) start = Number(comment);
        const id = /^id: [0-9a-f]{32}:([0-9]+)$/m.exec(block)?.[1];
        if (id !== undefined) usns.push(Number(id));
        if (start !== null && (usns.at(-1) ?? start) >= usnUntil) break;
      }
    } finally {
      abort.abort();
    }
    return { status: response.status, type, start, usns, body: null };
  };

  it("starts after Last-Event-ID when ?after is given too (an EventSource reconnecting)", async () => {
    const usn = await usnNow();
    const resumed = await open("?after=0", { "last-event-id": String(usn - 1) }, usn);
    assert.equal(resumed.status, 200);
    assert.equal(resumed.start, usn - 1, "the header wins over ?after");
    assert.deepEqual(resumed.usns, [usn], "only what came after the header's position");
    const first = await open("?after=0", {}, usn);
    assert.equal(first.start, 0, "?after alone still counts");
    assert.ok(first.usns.length >= writesBefore, "from 0: everything");
    assert.equal((await open("", { "last-event-id": "1" })).start, 1, "the header alone");
    assert.equal((await open("", {})).start, usn, "neither: from now");
  });

  it("takes an empty Last-Event-ID as none, and refuses a malformed position in either", async () => {
    assert.equal((await open("?after=1", { "last-event-id": "" })).start, 1);
    for (const [query, headers] of [
      ["?after=1", { "last-event-id": "x" }],
      ["?after=-1", { "last-event-id": "1" }],
      ["", { "last-event-id": "1.5" }],
    ] as const) {
      const refused = await open(query, headers);
      assert.equal(refused.status, 400, `${query} ${JSON.stringify(headers)}`);
      assert.match(refused.type, /^application\/problem\+json/);
      assert.equal(refused.body?.code, "invalid-request");
    }
  });

  it("answers HEAD with a stream's headers at once, and checks its position as GET does", async () => {
    const head = await fetch(`${node.url}/v1/watch?after=0`, {
      method: "HEAD",
      signal: AbortSignal.timeout(headTimeoutMs),
    });
    assert.equal(head.status, 200);
    assert.match(head.headers.get("content-type") ?? "", /^text\/event-stream/);
    const beyond = await fetch(`${node.url}/v1/watch?after=99999999`, {
      method: "HEAD",
      signal: AbortSignal.timeout(headTimeoutMs),
    });
    assert.equal(beyond.status, 400);
  });

  it("refuses a position beyond this node's USN, from ?after or Last-Event-ID; its USN itself is fine", async () => {
    const usn = await usnNow();
    const fromQuery = await open(`?after=${usn + 1}`, {});
    assert.equal(fromQuery.status, 400);
    assert.match(fromQuery.type, /^application\/problem\+json/);
    assert.equal(fromQuery.body?.code, "invalid-request");
    assert.match(
      String(fromQuery.body?.detail),
      new RegExp(`^after ${usn + 1} is beyond this node's USN, which is only ${usn}: positions are per node`),
    );
    const fromHeader = await open("?after=0", { "last-event-id": "99999999" });
    assert.equal(fromHeader.status, 400);
    assert.equal(fromHeader.body?.code, "invalid-request");
    assert.match(
      String(fromHeader.body?.detail),
      /^Last-Event-ID 99999999 is beyond this node's USN, which is only [0-9]+/,
    );
    const atUsn = await open(`?after=${usn}`, { "last-event-id": String(usn) });
    assert.equal(atUsn.status, 200, "a position equal to the USN: nothing missed, nothing to wait for");
    assert.equal(atUsn.start, usn);
  });
});

/** How long the stub node below takes to catch up with a session token. */
const catchUpMs = 300;

/**
 * A directory whose catch-up with any session token takes `catchUpMs`, and which counts the
 * change listeners its watch streams hold: enough of a node for the watch route alone.
 */
function slowCatchUpDirectory(): { service: DirectoryService; listeners: () => number } {
  let listeners = 0;
  const unused = (): never => {
    throw new Error("not used by a watch");
  };
  const service: DirectoryService = {
    ready: () => true,
    write: unused,
    concernAttainable: unused,
    catchUp: async () => {
      await sleep(catchUpMs);
      return true;
    },
    unreachableSession: () => null,
    lostSession: async () => null,
    invocation: () => "ab".repeat(16) as InvocationId,
    formerInvocation: () => false,
    get: unused,
    search: unused,
    conflicts: unused,
    status: () => ({}),
    position: () => 0,
    changesSince: () => [],
    onChange: () => {
      listeners++;
      return () => {
        listeners--;
      };
    },
  };
  return { service, listeners: () => listeners };
}

describe("a watch whose client leaves while its session is waited for", { timeout: 30_000 }, () => {
  it("opens no stream, so it holds no listener and no slot", async () => {
    const { service, listeners } = slowCatchUpDirectory();
    const app = Fastify();
    registerClientApi(app, service);
    await app.listen({ host: "127.0.0.1", port: 0 });
    try {
      const address = app.server.address();
      assert.ok(address !== null && typeof address === "object");
      const token = encodeSession({ ["ab".repeat(16) as InvocationId]: 1 as Usn });
      const gone = fetch(`http://127.0.0.1:${address.port}/v1/watch`, {
        headers: { [sessionHeader]: token },
        signal: AbortSignal.timeout(catchUpMs / 3),
      });
      await assert.rejects(gone);
      await sleep(catchUpMs * 2);
      assert.equal(listeners(), 0, "a stream was opened for a client already gone");
    } finally {
      await app.close();
    }
  });
});

describe("a watch position tagged with its database instance", () => {
  const current = "c".repeat(32);
  const former = "f".repeat(32);
  const stranger = "5".repeat(32);
  const node = {
    position: () => 40,
    invocation: () => current as InvocationId,
    formerInvocation: (invocation: string) => invocation === former,
  };
  const codeOf = (start: ReturnType<typeof startPosition>): string =>
    typeof start === "number" ? `position ${start}` : start.code;

  it("resumes from an event id of the instance the node runs now", () => {
    assert.equal(eventId(current, 17), `${current}:17`);
    assert.equal(startPosition(undefined, eventId(current, 17), node), 17);
    assert.equal(startPosition(eventId(current, 40), undefined, node), 40);
    assert.equal(startPosition("12", undefined, node), 12, "a bare USN still counts");
    assert.equal(codeOf(startPosition(eventId(current, 41), undefined, node)), "invalid-request");
  });

  it("says a position of a former instance (before a restore) is gone, however low its USN", () => {
    // USN 12 of the former instance may name another change than USN 12 now: no resuming.
    for (const usn of [0, 12, 40, 99]) {
      const start = startPosition(undefined, eventId(former, usn), node);
      assert.ok(typeof start !== "number" && isProblem(start));
      assert.equal(start.code, "position-gone");
      assert.equal(start.status, 410);
      assert.match(
        start.detail,
        new RegExp(`^Last-Event-ID ${former}:${usn} is a position of instance ${former}`),
      );
      assert.match(start.detail, /start again from 0 \(everything\) or with no position \(from now\)$/);
    }
  });

  it("refuses another node's position as one this node never gave", () => {
    const start = startPosition(eventId(stranger, 3), undefined, node);
    assert.ok(typeof start !== "number");
    assert.equal(start.code, "invalid-request");
    assert.match(start.detail, /is not this node's .*positions are per node/);
    for (const bad of [`${current}:`, `${current}:-1`, `${current.toUpperCase()}:1`, `x:1`, `${current}:1:2`])
      assert.equal(codeOf(startPosition(bad, undefined, node)), "invalid-request", bad);
  });
});

/**
 * A directory whose changes the test makes by hand (`commit`), each event's DN as long as the
 * test says, its change listeners told or not: enough of a node for a watch stream whose
 * reader falls behind.
 */
function handFedDirectory(): {
  service: DirectoryService;
  commit: (dnLength: number, notify?: boolean) => number;
} {
  const unused = (): never => {
    throw new Error("not used by a watch");
  };
  const events: ChangeEvent[] = [];
  const listeners = new Set<() => void>();
  const service: DirectoryService = {
    ready: () => true,
    write: unused,
    concernAttainable: unused,
    catchUp: async () => true,
    unreachableSession: () => null,
    lostSession: async () => null,
    invocation: () => "cd".repeat(16) as InvocationId,
    formerInvocation: () => false,
    get: unused,
    search: unused,
    conflicts: unused,
    status: () => ({}),
    position: () => events.length,
    changesSince: (after, limit) => events.slice(after, after + limit),
    onChange: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  const commit = (dnLength: number, notify = true): number => {
    const usn = events.length + 1;
    const guid = usn.toString(16).padStart(32, "0") as Guid;
    events.push({ usn, guid, dn: `cn=${"x".repeat(dnLength)},${base}`, deleted: false });
    if (notify) for (const listener of listeners) listener();
    return usn;
  };
  return { service, commit };
}

/** Bytes of events that no socket buffer holds: the stream must wait for its reader to drain it. */
const backlogBytes = 32 * 1024 * 1024;
/** Events of that backlog (fewer than a stream reads per step, so that one step writes them all). */
const backlogEvents = 64;

describe("a watch whose reader falls behind", { timeout: 30_000 }, () => {
  it("still sends a change made while the stream waited for its reader to drain", async () => {
    const { service, commit } = handFedDirectory();
    const app = Fastify();
    registerClientApi(app, service);
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    assert.ok(address !== null && typeof address === "object");
    // A raw socket, not read yet: the stream fills the buffers and waits for them to drain.
    const socket = connect(address.port, "127.0.0.1");
    try {
      socket.pause();
      socket.write("GET /v1/watch HTTP/1.1\r\nHost: watch\r\n\r\n");
      await sleep(200);
      // One step of the stream writes the whole backlog, then waits for the reader.
      for (let index = 1; index < backlogEvents; index++) commit(backlogBytes / backlogEvents, false);
      commit(backlogBytes / backlogEvents);
      await sleep(200);
      // Made while the stream waits for the drain: its listener fires then, and must not be lost.
      const last = commit(1);
      let text = "";
      const wanted = `id: ${eventId("cd".repeat(16), last)}\n`;
      const arrived = new Promise<void>((resolve) => {
        socket.on("data", (chunk: Buffer) => {
          text = (text + chunk.toString("latin1")).slice(-4096);
          if (text.includes(wanted)) resolve();
        });
      });
      socket.resume();
      const outcome = await Promise.race([
        arrived.then(() => "arrived"),
        sleep(10_000).then(() => "missing"),
      ]);
      assert.equal(outcome, "arrived", `the change made during the drain (USN ${last}) never came`);
    } finally {
      socket.destroy();
      await app.close();
    }
  });
});
