import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { http, LocalCluster } from "../../test/support/cluster.ts";
import type { NodeId } from "../core/ids.ts";
import { mergeNotifications } from "./node.ts";

/**
 * A partner that takes connections and never answers (SIGSTOPped: the kernel still accepts
 * its TCP connections) must cost only its own requests. Three nodes of one site: n3 is
 * stopped, n1 takes writes with write concern `site`, which n2 alone meets. Each notification
 * to n3 used to hold one of n1's peer request slots for the pull timeout: within a second all
 * of them were n3's, and n1's write-concern reports to n2 waited behind them (writes answered
 * 504 at their timeout, 112 writes in 20 s instead of 3,766).
 */
const topology = {
  sites: [{ name: "hq" }],
  links: [],
  settings: { notifyDelayMs: 5 },
};
const timings = { pullTimeoutMs: 10_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };
const base = "dc=example,dc=com";
const loadMs = 4_000;
const writersCount = 4;
const writesMax = 2_000;

interface Status {
  readonly queues: { readonly peerRequestsWaiting: number };
}

describe("a stopped partner", { timeout: 120_000 }, () => {
  const cluster = new LocalCluster(topology, timings);

  before(async () => {
    const n1 = await cluster.start("n1", "hq");
    await cluster.start("n2", "hq", { join: [n1.url] });
    await cluster.start("n3", "hq", { join: [n1.url] });
  });

  after(async () => {
    cluster.node("n3").process?.kill("SIGCONT");
    await cluster.stopAll();
  });

  it("does not hold up writes whose concern the other partners meet", async () => {
    const n1 = cluster.node("n1").url;
    const n3 = cluster.node("n3").process;
    assert.ok(n3 !== null);
    n3.kill("SIGSTOP");
    const began = Date.now();
    let next = 0;
    const failures: string[] = [];
    const writer = async (): Promise<void> => {
      while (Date.now() - began < loadMs && next < writesMax) {
        const name = `u${next++}`;
        const answer = await http(
          "POST",
          `${n1}/v1/entries`,
          { dn: `cn=${name},${base}`, attributes: { objectClass: ["person"], cn: [name], sn: ["x"] } },
          { "plexus-write-concern": "site; timeout=3000" },
        );
        if (answer.status !== 201) failures.push(`${name}: ${answer.status} ${JSON.stringify(answer.body)}`);
      }
    };
    await Promise.all(Array.from({ length: writersCount }, writer));
    const status = (await http("GET", `${n1}/v1/status`)).body as Status;
    n3.kill("SIGCONT");
    assert.deepEqual(failures.slice(0, 3), [], `${failures.length} of ${next} writes failed`);
    assert.equal(status.queues.peerRequestsWaiting, 0, "no request waits for a slot");
  });
});

describe("mergeNotifications", () => {
  const a = "a" as NodeId;
  const b = "b" as NodeId;
  it("keeps a notification of the node's own changes (no via) over one of relayed changes", () => {
    assert.deepEqual(mergeNotifications({ kind: "notify", via: [a] }, { kind: "notify" }), {
      kind: "notify",
    });
    assert.deepEqual(mergeNotifications({ kind: "notify" }, { kind: "notify", via: [a] }), {
      kind: "notify",
    });
  });
  it("names the nodes of both", () => {
    assert.deepEqual(mergeNotifications({ kind: "notify", via: [b] }, { kind: "notify", via: [a, b] }), {
      kind: "notify",
      via: [a, b],
    });
    assert.deepEqual(mergeNotifications(null, { kind: "notify", via: [b] }), { kind: "notify", via: [b] });
  });
});
