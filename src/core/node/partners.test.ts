import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeId } from "../ids.ts";
import { unwrap } from "../result.ts";
import { checkTopology, type TopologyConfig } from "../topology/model.ts";
import { nextHopSites, partnerPlan } from "./partners.ts";

const server = (node: string, site: string, port: number) => ({
  node,
  site,
  addresses: ["127.0.0.1"],
  httpPort: port,
});

/** Three sites in a line (east – middle – west), two servers each but the last. */
const config = unwrap(
  checkTopology({
    sites: [{ name: "east" }, { name: "middle" }, { name: "west" }],
    links: [
      { name: "east-middle", sites: ["east", "middle"], cost: 10, notify: true },
      { name: "middle-west", sites: ["middle", "west"], cost: 10, notify: false },
    ],
    servers: [
      server("e1", "east", 7001),
      server("e2", "east", 7002),
      server("m1", "middle", 7003),
      server("m2", "middle", 7004),
      server("w1", "west", 7005),
    ],
  }),
) as TopologyConfig;
const nodes = config.servers.map((entry) => entry.node);

describe("partner plan", () => {
  it("routes through the middle: east's next hop toward west is middle", () => {
    assert.deepEqual([...nextHopSites(config, "east")], ["middle"]);
    assert.deepEqual([...nextHopSites(config, "middle")].sort(), ["east", "west"]);
  });

  it("every node's outbound list is exactly the notified inbound lists that name it", () => {
    const plans = new Map(nodes.map((node) => [node, partnerPlan(config, node, new Set())]));
    for (const source of nodes) {
      const expected = nodes.filter((destination) =>
        plans.get(destination)?.inbound.some((connection) => connection.node === source && connection.notify),
      );
      assert.deepEqual([...(plans.get(source)?.outbound ?? [])].sort(), expected.sort(), source);
    }
    const e1 = plans.get("e1" as NodeId);
    assert.ok(e1?.inbound.some((connection) => connection.node === "e2" && connection.kind === "intra"));
    assert.deepEqual(e1?.replicaSet, nodes);
    const inter = [...plans.values()].flatMap((plan) =>
      plan.inbound.filter((connection) => connection.kind === "inter"),
    );
    assert.ok(
      inter.some((connection) => connection.site === "west"),
      "someone in middle pulls from west",
    );
    assert.ok(
      inter.filter((connection) => connection.site === "west").every((connection) => !connection.notify),
      "the middle-west link does not notify",
    );
  });

  it("a node outside the topology has no partner and says why", () => {
    const plan = partnerPlan(config, "x9" as NodeId, new Set());
    assert.deepEqual(plan.inbound, []);
    assert.deepEqual(plan.outbound, []);
    assert.match(plan.note ?? "", /not a server/);
  });

  it("a stale intra-site partner becomes a probe", () => {
    const plan = partnerPlan(config, "e1" as NodeId, new Set(["e2" as NodeId]));
    assert.deepEqual(
      plan.inbound.filter((connection) => connection.node === "e2").map((connection) => connection.kind),
      ["probe"],
    );
  });
});
