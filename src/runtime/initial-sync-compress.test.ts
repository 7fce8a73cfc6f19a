import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../test/support/in-process-node.ts";
import { http } from "../cli/local-cluster.ts";
import { type ClusterSecret, clusterSecret } from "./auth.ts";

/**
 * A node's initial sync carries the whole directory once: across a site boundary it travels
 * gzipped, as every inter-site pull does; inside a site it does not.
 */
const base = "dc=example,dc=com";
const entries = 400;
const batch = 200;
const secret = clusterSecret("the initial sync compression test's secret") as ClusterSecret;
const topology = {
  sites: [{ name: "east" }, { name: "west" }],
  links: [{ name: "east-west", sites: ["east", "west"], cost: 10, intervalMinutes: 1 }],
};

/** Bytes of pull answers `url`'s node received from `partner`, as on the wire. */
async function receivedFrom(url: string, partner: string): Promise<number> {
  const text = String((await http("GET", `${url}/metrics`)).body);
  const line = text
    .split("\n")
    .find(
      (row) => row.startsWith("plexus_pull_received_bytes_total{") && row.includes(`partner="${partner}"`),
    );
  return Number(line?.split(" ").at(-1) ?? Number.NaN);
}

describe("the initial sync across a site boundary", { timeout: 120_000 }, () => {
  const nodes: InProcessNode[] = [];
  after(async () => {
    for (const node of nodes) await node.close();
  });

  it("is gzipped, and inside a site it is not", async () => {
    const e1 = await startInProcessNode("e1", "east", { secret, topology, pageWorker: false });
    nodes.push(e1);
    for (let first = 0; first < entries; first += batch) {
      const operations = Array.from({ length: batch }, (_, offset) => ({
        op: "create",
        dn: `uid=user${first + offset},${base}`,
        attributes: {
          objectClass: ["inetOrgPerson", "person"],
          uid: [`user${first + offset}`],
          cn: [`User ${first + offset}`],
          sn: ["Person"],
          mail: [`user${first + offset}@example.com`],
        },
      }));
      assert.equal((await http("POST", `${e1.url}/v1/batch`, { operations })).status, 200);
    }
    const join = { secret, join: [e1.url], partitions: [], pageWorker: false };
    const e2 = await startInProcessNode("e2", "east", join);
    nodes.push(e2);
    const w1 = await startInProcessNode("w1", "west", join);
    nodes.push(w1);
    const inside = await receivedFrom(e2.url, "e1");
    const across = await receivedFrom(w1.url, "e1");
    assert.ok(inside > entries * 100, `the sync inside the site brought ${inside} bytes`);
    assert.ok(
      across < inside / 3,
      `across the sites ${across} bytes, inside ${inside}: gzip takes an entry's page to a fraction`,
    );
  });
});
