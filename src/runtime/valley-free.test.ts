import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { entryPath, eventually, http, LocalCluster } from "../../test/support/cluster.ts";

/**
 * Two hubs joined only through a branch (hubA – br – hubB), one node each, links that notify.
 * The valley-free policy gives the hubs no route to each other (each reports the other as
 * unreachable), so a change made in one hub must reach the branch and stop there: the branch
 * is never transit between two hubs. A change made in the branch reaches both.
 */
const topology = {
  sites: [
    { name: "hubA", tier: "hub" },
    { name: "hubB", tier: "hub" },
    { name: "br", tier: "branch" },
  ],
  links: [
    { name: "br-a", sites: ["br", "hubA"], cost: 10, intervalMinutes: 1, notify: true },
    { name: "br-b", sites: ["br", "hubB"], cost: 10, intervalMinutes: 1, notify: true },
  ],
  settings: { intraSitePullIntervalMs: 2_000, notifyDelayMs: 5 },
};
const timings = { pullTimeoutMs: 3_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };
const base = "dc=example,dc=com";
/** How long a1 is watched after r1 got hubB's change: over the links' notify path many times. */
const watchMs = 8_000;

const person = (name: string) => ({
  dn: `cn=${name},${base}`,
  attributes: { objectClass: ["person"], cn: [name], sn: [name] },
});

describe("the valley-free policy between node processes", { timeout: 90_000 }, () => {
  const cluster = new LocalCluster(topology, timings);

  after(async () => {
    await cluster.stopAll();
  });

  it("a hub's change reaches the branch and never the other hub through it", async () => {
    const a1 = await cluster.start("a1", "hubA");
    const r1 = await cluster.start("r1", "br", { join: [a1.url] });
    const b1 = await cluster.start("b1", "hubB", { join: [a1.url] });
    await eventually("a1 reporting hubB unreachable", async () => {
      const status = (await http("GET", `${a1.url}/v1/status`)).body as { unreachableSites: string[] };
      return status.unreachableSites.includes("hubB");
    });
    const fromBranch = `cn=from-br,${base}`;
    assert.equal((await http("POST", `${r1.url}/v1/entries`, person("from-br"))).status, 201);
    for (const node of [a1, b1])
      await eventually(`${node.name} holding the branch's write`, async () => {
        return (await http("GET", entryPath(node.url, fromBranch))).status === 200;
      });
    const fromHub = `cn=from-hubB,${base}`;
    assert.equal((await http("POST", `${b1.url}/v1/entries`, person("from-hubB"))).status, 201);
    await eventually("r1 holding hubB's write", async () => {
      return (await http("GET", entryPath(r1.url, fromHub))).status === 200;
    });
    // r1 notifies a1 of what it applied; a1 pulls, and must leave hubB's changes out.
    await new Promise((resolve) => setTimeout(resolve, watchMs));
    assert.equal((await http("GET", entryPath(a1.url, fromHub))).status, 404, "hubB's write came through br");
  });
});
