import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { type InProcessNode, startInProcessNode } from "../../test/support/in-process-node.ts";
import { startOptions } from "../cli/start.ts";
import { type InvocationId, type Millis, type NodeId, nodeId, type Usn } from "../core/ids.ts";
import type { PullTicket } from "../core/node/machine.ts";
import { Replica } from "../core/replica/replica.ts";
import { unwrap } from "../core/result.ts";
import { SeededRandom } from "../sim/ports.ts";
import { SqliteStore } from "../store/sqlite-store.ts";
import { type ClusterSecret, clusterSecret } from "./auth.ts";
import type { Logger } from "./log.ts";
import { type BuiltPage, PageBuilder, pageBuildsQueuedMax, pageMessageBytes } from "./page-builder.ts";
import type { AnswerEncodings } from "./peer-server.ts";

/**
 * The page worker: pages built on it, from its own read-only connection, are byte for byte
 * those the node's thread builds; when it cannot build one, the caller is told so (and builds
 * it itself); and a node serves its partners' pulls from it, or from its own thread when off.
 */
const base = "dc=example,dc=com";
const readyWithinMs = 20_000;
const pollMs = 10;
const puller = nodeId("puller");
const compact: AnswerEncodings = { compactPages: true, gzip: false };
const pullerInvocation = "00000000000000000000000000000abc" as InvocationId;

interface LoggedEvent {
  readonly level: string;
  readonly event: string;
}

function recordingLogger(): { log: Logger; events: LoggedEvent[]; reasons: unknown[] } {
  const events: LoggedEvent[] = [];
  const reasons: unknown[] = [];
  const log: Logger = {
    log: (level, event, fields) => {
      events.push({ level, event });
      reasons.push(fields?.reason);
    },
  };
  return { events, log, reasons };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + readyWithinMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** A replica on a file with the partition and `count` people in it. */
function fileReplica(path: string, count: number): Replica {
  const clock = { now: () => Date.now() as Millis };
  const replica = Replica.create(
    SqliteStore.open({ path }),
    { clock, random: new SeededRandom(7) },
    nodeId("source"),
  );
  unwrap(replica.createPartition(base));
  addPeople(replica, 0, count);
  return replica;
}

function addPeople(replica: Replica, from: number, count: number): void {
  const writes = Array.from({ length: count }, (_, index) => ({
    op: "add" as const,
    dn: `cn=person${from + index},${base}`,
    attributes: { objectClass: ["person"], sn: [`surname ${from + index}`], description: ["ü € 𝄞"] },
  }));
  for (const result of replica.write(writes)) unwrap(result);
}

/** The puller's next pull from `from`, as the replica admits it. */
function ticketFor(
  replica: Replica,
  from: { objectUsn: number; propertyUsn: number },
  id: number,
): PullTicket {
  const request = unwrap(
    replica.admitPull({
      destination: puller,
      destinationInvocation: pullerInvocation,
      from: { invocation: from.objectUsn === 0 ? null : replica.invocationId, ...from },
      utd: {},
      purgeHorizon: {},
      limits: { entriesMax: 20, bytesMax: 1024 * 1024 },
    }),
  );
  return { from: puller, id, request, held: undefined };
}

describe("page builder", () => {
  let directory: string;
  before(() => {
    directory = mkdtempSync(join(tmpdir(), "plexus-page-builder-"));
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  /** A replica of `people` people in file `name`, and a page builder on it once it is ready. */
  async function withReadyBuilder(
    name: string,
    people: number,
    body: (replica: Replica, builder: PageBuilder, events: LoggedEvent[]) => Promise<void>,
  ): Promise<void> {
    const path = join(directory, name);
    const replica = fileReplica(path, people);
    const { log, events } = recordingLogger();
    const builder = PageBuilder.start(path, log);
    try {
      await until(() => builder.available, "the page worker");
      await body(replica, builder, events);
    } finally {
      await builder.close();
      replica.close();
    }
  }

  it("builds on the worker, page after page, the bytes the node's thread builds: compact, plain, gzipped", async () => {
    await withReadyBuilder("same.db", 70, async (replica, builder, events) => {
      const variants: AnswerEncodings[] = [
        { compactPages: true, gzip: false },
        { compactPages: false, gzip: false },
        { compactPages: true, gzip: true },
      ];
      for (const [variant, reads] of variants.entries()) {
        let from = { objectUsn: 0, propertyUsn: 0 };
        let pages = 0;
        for (let id = 1; ; id++) {
          const ticket = ticketFor(replica, from, id);
          const built = await builder.build(ticket, reads);
          assert.ok(built?.kind === "page", "the worker built it");
          const page = unwrap(replica.readPage(ticket.request));
          const expected = Buffer.from(pageMessageBytes(id, page, reads.compactPages));
          assert.equal(built.gzipped, reads.gzip, "pages of 20 entries are over the gzip threshold");
          const body = built.gzipped ? gunzipSync(built.body) : Buffer.from(built.body);
          assert.deepEqual(body, expected);
          if (built.gzipped) assert.ok(built.body.length < expected.length / 2, "compressed");
          assert.equal(built.more, page.more);
          pages++;
          if (!page.more) break;
          from = { objectUsn: page.highUsn, propertyUsn: page.from.propertyUsn };
          // Writes committed between two pages are in the next one the worker reads.
          if (pages === 2) addPeople(replica, 1000 * (variant + 1), 5);
        }
        assert.ok(pages >= 4, `${pages} pages`);
      }
      assert.deepEqual(events, [], "nothing went wrong");
    });
  });

  it("answers undefined beyond its queue bound, and once closed", async () => {
    await withReadyBuilder("queue.db", 10, async (replica, builder) => {
      const ticket = ticketFor(replica, { objectUsn: 0, propertyUsn: 0 }, 1);
      const queued = Array.from({ length: pageBuildsQueuedMax + 1 }, () => builder.build(ticket, compact));
      const answers: (BuiltPage | undefined)[] = await Promise.all(queued);
      assert.equal(answers.filter((answer) => answer !== undefined).length, pageBuildsQueuedMax);
      assert.equal(answers.at(-1), undefined, "the one beyond the bound is left to the caller");
      const pending = builder.build(ticket, compact);
      await builder.close();
      assert.equal(builder.available, false);
      const settled = await pending;
      assert.ok(settled === undefined || settled.kind === "page", "a build under way ends either way");
      assert.equal(await builder.build(ticket, compact), undefined);
    });
  });

  it("a worker that dies is given up for good, and every page is left to the caller", async () => {
    await withReadyBuilder("dies.db", 10, async (replica, builder, events) => {
      const ticket = ticketFor(replica, { objectUsn: 0, propertyUsn: 0 }, 1);
      assert.equal((await builder.build(ticket, compact))?.kind, "page");
      // What an uncaught error or an out-of-memory abort in the worker amounts to: its exit.
      await (builder as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
      await until(() => events.length > 0, "the exit to be noticed");
      assert.deepEqual(events, [{ level: "warn", event: "page-worker-stopped" }]);
      assert.equal(builder.available, false);
      assert.equal(await builder.build(ticket, compact), undefined);
    });
  });

  it("gives up on a worker that answers no page within the build timeout, and on one that never starts", async () => {
    const script = new URL("../../test/support/stuck-page-worker.mjs", import.meta.url);
    const replica = fileReplica(join(directory, "stuck.db"), 3);
    const stuck = recordingLogger();
    const builder = PageBuilder.start(join(directory, "stuck.db"), stuck.log, {
      script,
      buildTimeoutMs: 300,
    });
    const silent = recordingLogger();
    const neverReady = PageBuilder.start("never-ready", silent.log, { script, startTimeoutMs: 300 });
    try {
      await until(() => builder.available, "the stand-in worker");
      const ticket = ticketFor(replica, { objectUsn: 0, propertyUsn: 0 }, 1);
      const started = Date.now();
      const hung = new Promise((resolve) => setTimeout(() => resolve("no answer"), readyWithinMs).unref());
      assert.equal(
        await Promise.race([builder.build(ticket, compact), hung]),
        undefined,
        "left to the caller",
      );
      assert.ok(Date.now() - started >= 250, "not before the timeout");
      assert.deepEqual(stuck.events, [{ level: "warn", event: "page-worker-stopped" }]);
      assert.deepEqual(stuck.reasons, ["a page took over 300 ms"]);
      assert.equal(builder.available, false, "for good");
      assert.equal(await builder.build(ticket, compact), undefined);
      await until(() => silent.events.length > 0, "the start timeout");
      assert.deepEqual(silent.reasons, ["the worker did not start within 300 ms"]);
      assert.equal(neverReady.available, false);
    } finally {
      await builder.close();
      await neverReady.close();
      replica.close();
    }
  });

  it("gives up on a store it cannot open, says so, and leaves every page to the caller", async () => {
    const { log, events } = recordingLogger();
    const builder = PageBuilder.start(join(directory, "missing", "plexus.db"), log);
    try {
      await until(() => events.length > 0, "the worker's failure");
      assert.deepEqual(events, [{ level: "warn", event: "page-worker-stopped" }]);
      assert.equal(builder.available, false);
      const ticket: PullTicket = {
        from: puller,
        id: 1,
        request: {
          destination: puller,
          destinationInvocation: pullerInvocation,
          from: { invocation: null, objectUsn: 0 as Usn, propertyUsn: 0 as Usn },
          utd: {},
          purgeHorizon: {},
          limits: { entriesMax: 20, bytesMax: 1024 },
        },
        held: undefined,
      };
      assert.equal(await builder.build(ticket, compact), undefined);
    } finally {
      await builder.close();
    }
  });
});

describe("plexus start --page-worker", () => {
  const env = { PLEXUS_CLUSTER_SECRET: "a secret of sixteen bytes or more" };
  const args = ["--data", "unused-dir", "--node", "n1", "--site", "east"];

  it("is on by default, on or off by flag or config file (the flag wins), and refuses anything else", () => {
    const directory = mkdtempSync(join(tmpdir(), "plexus-page-worker-flag-"));
    try {
      const config = (value: unknown): string => {
        const file = join(directory, `config-${String(value)}.json`);
        writeFileSync(file, JSON.stringify({ pageWorker: value }));
        return file;
      };
      assert.equal(startOptions(args, env).pageWorker, true);
      assert.equal(startOptions([...args, "--page-worker", "off"], env).pageWorker, false);
      assert.equal(startOptions([...args, "--page-worker", "on"], env).pageWorker, true);
      assert.equal(startOptions([...args, "--config", config(false)], env).pageWorker, false);
      assert.equal(
        startOptions([...args, "--config", config(false), "--page-worker", "on"], env).pageWorker,
        true,
      );
      assert.throws(
        () => startOptions([...args, "--page-worker", "yes"], env),
        /--page-worker must be on or off/,
      );
      assert.throws(
        () => startOptions([...args, "--config", config("off")], env),
        /pageWorker must be true or false/,
      );
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

describe("a node serving pulls", () => {
  const secret = clusterSecret("the page builder test's cluster secret") as ClusterSecret;
  const started: InProcessNode[] = [];

  after(async () => {
    for (const node of started) await node.close();
  });

  /** Pages `node` has sent to `partner`'s pulls, by where they were built. */
  async function served(url: string, partner: string): Promise<{ worker: number; node: number }> {
    const text = await (await fetch(`${url}/metrics`)).text();
    const count = (builder: string): number => {
      const line = new RegExp(
        `^plexus_pages_served_total\\{[^}]*partner="${partner}"[^}]*builder="${builder}"[^}]*\\} (\\d+)$`,
        "m",
      );
      return Number(line.exec(text)?.[1] ?? 0);
    };
    return { worker: count("worker"), node: count("node") };
  }

  for (const pageWorker of [true, false]) {
    it(`replicates with the page worker ${pageWorker ? "on" : "off"}, its pages built ${pageWorker ? "there" : "on the node's thread"}`, async () => {
      const suffix = pageWorker ? "on" : "off";
      const first = await startInProcessNode(`pw-${suffix}-1`, "east", {
        secret,
        partitions: [base],
        pageWorker,
      });
      started.push(first);
      const second = await startInProcessNode(`pw-${suffix}-2`, "east", {
        secret,
        join: [first.url],
        partitions: [],
        pageWorker,
      });
      started.push(second);
      // The worker loads beside the node: pages asked for meanwhile are built by the node.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      for (let index = 0; index < 5; index++) {
        const response = await fetch(`${first.url}/v1/entries`, {
          method: "POST",
          headers: { "content-type": "application/json", "plexus-write-concern": "site; timeout=10000" },
          body: JSON.stringify({
            dn: `cn=w${index},${base}`,
            attributes: { objectClass: ["person"], sn: ["x"] },
          }),
        });
        assert.equal(response.status, 201, await response.text());
      }
      const found = await fetch(`${second.url}/v1/entries/${encodeURIComponent(`cn=w4,${base}`)}`);
      assert.equal(found.status, 200);
      const pages = await served(first.url, `pw-${suffix}-2` as NodeId);
      if (pageWorker) assert.ok(pages.worker > 0, `pages built on the worker: ${JSON.stringify(pages)}`);
      else assert.deepEqual({ worker: pages.worker, node: pages.node > 0 }, { worker: 0, node: true });
    });
  }
});
