import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { entryPath, eventually, http, LocalCluster } from "../../test/support/cluster.ts";
import { plexus } from "../../test/support/plexus-cli.ts";
import { sseBlocks } from "../../test/support/sse.ts";

/**
 * Session tokens and watch positions across a restore, with real node processes (n1 and n2 in
 * one site): n1 acknowledges writes with write concern local while n2 is down, then is
 * restored from a backup taken before them. Those writes are gone from the cluster for good,
 * so a token naming them must say so (a client retrying `session-behind` would retry for
 * ever), and a watch position of n1's old instance must not resume on the restored copy.
 */
const topology = {
  sites: [{ name: "hq" }],
  links: [],
  settings: { intraSitePullIntervalMs: 1_000, notifyDelayMs: 5 },
};
const timings = { pullTimeoutMs: 3_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };
const base = "dc=example,dc=com";
/** The node's session wait (2 s), one UTD survey and slack for a loaded machine. */
const lostAnswerMsMax = 5_000;
const streamWaitMs = 10_000;

const person = (name: string) => ({
  dn: `cn=${name},${base}`,
  attributes: { objectClass: ["person"], cn: [name], sn: [name] },
});

interface Status {
  readonly invocationId: string;
  readonly usn: number;
}

async function statusOf(url: string): Promise<Status> {
  return (await http("GET", `${url}/v1/status`)).body as Status;
}

/** The id of the first event a watch from `after` sends (the node has one to send). */
async function firstEventId(url: string, after: number): Promise<string> {
  const abort = new AbortController();
  const response = await fetch(`${url}/v1/watch?after=${after}`, {
    signal: AbortSignal.any([abort.signal, AbortSignal.timeout(streamWaitMs)]),
  });
  assert.equal(response.status, 200);
  const reader = response.body?.getReader();
  assert.ok(reader !== undefined);
  try {
    for await (const block of sseBlocks(reader)) {
      const id = /^id: (.+)$/m.exec(block)?.[1];
      if (id !== undefined) return id;
    }
  } finally {
    abort.abort();
  }
  throw new Error("the stream ended without an event");
}

describe("session tokens and watch positions across a restore", { timeout: 120_000 }, () => {
  const cluster = new LocalCluster(topology, timings);
  const url = (name: string): string => cluster.node(name).url;

  before(async () => {
    const first = await cluster.start("n1", "hq");
    await cluster.start("n2", "hq", { join: [first.url] });
  });

  after(async () => {
    await cluster.stopAll();
  });

  it("a token naming writes lost with the restore is session-lost, not session-behind for ever", async () => {
    const kept = await http("POST", `${url("n1")}/v1/entries`, person("kept"));
    assert.equal(kept.status, 201);
    const keptToken = kept.headers.get("plexus-session") ?? "";
    await eventually(
      "n2 holding kept",
      async () => (await http("GET", entryPath(url("n2"), `cn=kept,${base}`))).status === 200,
    );
    const backup = join(cluster.directory, "n1.backup");
    assert.equal(
      (await plexus(["backup", "--data", cluster.node("n1").dataDirectory, "--output", backup])).code,
      0,
    );
    const backupUsn = (await statusOf(url("n1"))).usn;

    // n2 down: what n1 acknowledges now (write concern local) no partner pulls. It comes back
    // on its port (and so does n1), as a real server does: n1 only asks the servers it can reach.
    const n1Port = Number(new URL(url("n1")).port);
    const n2Port = Number(new URL(url("n2")).port);
    await cluster.stop("n2");
    const lost = await http("POST", `${url("n1")}/v1/entries`, person("lost"));
    assert.equal(lost.status, 201);
    const lostToken = lost.headers.get("plexus-session") ?? "";
    const old = await statusOf(url("n1"));
    const oldPosition = await firstEventId(url("n1"), backupUsn);
    assert.match(oldPosition, new RegExp(`^${old.invocationId}:[0-9]+$`));

    // A plain restart keeps the instance: the position still resumes.
    await cluster.stop("n1");
    await cluster.start("n1", "hq", { port: n1Port });
    const resumed = await http("HEAD", `${url("n1")}/v1/watch`, undefined, { "last-event-id": oldPosition });
    assert.equal(resumed.status, 200, "a restart without a restore keeps every position");

    await cluster.stop("n1");
    const restored = await plexus(["restore", "--data", cluster.node("n1").dataDirectory, "--from", backup]);
    assert.equal(restored.code, 0, restored.stderr);
    await cluster.start("n1", "hq", { port: n1Port });
    await cluster.start("n2", "hq", { port: n2Port });
    assert.notEqual((await statusOf(url("n1"))).invocationId, old.invocationId);

    // What the backup held, and n2 too, is still met at once.
    const read = await http("GET", entryPath(url("n2"), `cn=kept,${base}`), undefined, {
      "plexus-session": keptToken,
    });
    assert.equal(read.status, 200);

    for (const name of ["n1", "n2"]) {
      const began = Date.now();
      const answer = await http("GET", entryPath(url(name), base), undefined, {
        "plexus-session": lostToken,
      });
      const took = Date.now() - began;
      const body = answer.body as { code: string; detail: string };
      assert.equal(answer.status, 410, `${name}: ${JSON.stringify(body)}`);
      assert.equal(body.code, "session-lost");
      assert.match(
        body.detail,
        new RegExp(`names USN ${old.usn} of instance ${old.invocationId} of server n1`),
      );
      assert.equal(answer.headers.get("retry-after"), null, "nothing to retry");
      assert.ok(took < lostAnswerMsMax, `${name} answered in ${took} ms`);
    }
    // A write with the token changes nothing.
    const write = await http("POST", `${url("n2")}/v1/entries`, person("with-lost-token"), {
      "plexus-session": lostToken,
    });
    assert.equal(write.status, 410);
    assert.equal((await http("GET", entryPath(url("n2"), `cn=with-lost-token,${base}`))).status, 404);

    // The old instance's position is gone, even once the new USNs have passed it.
    for (let index = 0; index < 5; index++)
      assert.equal((await http("POST", `${url("n1")}/v1/entries`, person(`new-${index}`))).status, 201);
    const usnNow = (await statusOf(url("n1"))).usn;
    assert.ok(usnNow > old.usn, `USN ${usnNow} passed the old position ${old.usn}`);
    const gone = await http("GET", `${url("n1")}/v1/watch`, undefined, { "last-event-id": oldPosition });
    assert.equal(gone.status, 410, JSON.stringify(gone.body));
    assert.equal((gone.body as { code: string }).code, "position-gone");
  });
});
