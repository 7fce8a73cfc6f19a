import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { entryPath, eventually, http, LocalCluster } from "../../test/support/cluster.ts";

/**
 * Three sites in a line, east – north – south, started in the order an operator deploying them
 * might: e1, then s1 (while north has no server yet, so south has no route to anyone), then n1.
 * s1 learns of n1 only through a pull; it must find one, and then receive east's changes.
 */
const topology = {
  sites: [{ name: "east" }, { name: "north" }, { name: "south" }],
  links: [
    { name: "east-north", sites: ["east", "north"], cost: 10, intervalMinutes: 1, notify: true },
    { name: "north-south", sites: ["north", "south"], cost: 10, intervalMinutes: 1, notify: true },
  ],
  settings: { intraSitePullIntervalMs: 2_000, notifyDelayMs: 5 },
};
const timings = { pullTimeoutMs: 3_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };
const base = "dc=example,dc=com";
/** The write must reach s1 well within one link interval (the links notify). */
const arrivalMs = 30_000;

interface Status {
  readonly partners: readonly { node: string; kind: string }[];
  readonly note: string | null;
}

describe("a site that had no route when its node joined", { timeout: 120_000 }, () => {
  const cluster = new LocalCluster(topology, timings);

  after(async () => {
    await cluster.stopAll();
  });

  it("learns of the servers that give it one, and receives every site's changes", async () => {
    const e1 = await cluster.start("e1", "east");
    const s1 = await cluster.start("s1", "south", { join: [e1.url] });
    const n1 = await cluster.start("n1", "north", { join: [e1.url] });
    const dn = `cn=from-east,${base}`;
    const written = await http("POST", `${e1.url}/v1/entries`, {
      dn,
      attributes: { objectClass: ["person"], cn: ["from-east"], sn: ["e"] },
    });
    assert.equal(written.status, 201, JSON.stringify(written.body));
    await eventually(
      "n1 holding east's write",
      async () => (await http("GET", entryPath(n1.url, dn))).status === 200,
    );
    await eventually(
      "s1 holding east's write",
      async () => (await http("GET", entryPath(s1.url, dn))).status === 200,
      arrivalMs,
    );
    await eventually("s1 pulling from n1 across its link", async () => {
      const status = (await http("GET", `${s1.url}/v1/status`)).body as Status;
      return status.partners.some((partner) => partner.node === "n1" && partner.kind === "inter");
    });
    const status = (await http("GET", `${s1.url}/v1/status`)).body as Status;
    assert.deepEqual(
      status.partners.map((partner) => [partner.node, partner.kind]),
      [["n1", "inter"]],
      "with a route, nothing is pulled from elsewhere",
    );
  });
});
