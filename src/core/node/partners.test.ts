import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InvocationId, NodeId } from "../ids.ts";
import { unwrap } from "../result.ts";
import { checkTopology, type TopologyConfig } from "../topology/model.ts";
import { minuteOfWeek, minutesToScheduleChange, nextHopSites, openPlan, partnerPlan } from "./partners.ts";

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

  it("each inter-site partner leaves out the origins that come along another path", () => {
    const invocation = (n: number) => n.toString(16).padStart(32, "0") as InvocationId;
    const published = {
      ...config,
      servers: config.servers.map((entry, index) => ({ ...entry, invocations: [invocation(index + 1)] })),
    };
    const own = (site: string) =>
      published.servers.filter((entry) => entry.site === site).flatMap((entry) => entry.invocations);
    for (const node of nodes) {
      const plan = partnerPlan(published, node, new Set());
      for (const connection of plan.inbound) {
        if (connection.kind !== "inter") {
          assert.deepEqual(connection.exclude, [], "never filtered inside a site");
          continue;
        }
        const mySite = published.servers.find((entry) => entry.node === node)?.site as string;
        // In a line, middle gets east's changes from east and west's from west; east and west
        // get everything else from middle. Nobody pulls its own site's changes across, but for
        // its own invocations' (origins.ts: never left out, for a restore's sake; its UTD
        // covers every change of its current one, so none comes).
        const expected: Record<string, string[]> = {
          "middle<east": ["middle", "west"],
          "middle<west": ["middle", "east"],
          "east<middle": ["east"],
          "west<middle": ["west"],
        };
        const sites = expected[`${mySite}<${connection.site}`];
        assert.ok(sites !== undefined, `${node} pulls from ${connection.site}`);
        const mine = published.servers.find((entry) => entry.node === node)?.invocations ?? [];
        const excluded = sites
          .flatMap(own)
          .filter((id) => !mine.includes(id))
          .sort();
        assert.deepEqual(connection.exclude, excluded, `${node} from ${connection.site}`);
      }
    }
  });

  it("reports the sites a node's site has no route toward (the valley-free policy, no link)", () => {
    const tiered = unwrap(
      checkTopology({
        sites: [
          { name: "h1", tier: "hub" },
          { name: "b", tier: "branch" },
          { name: "h2", tier: "hub" },
          { name: "island" },
        ],
        links: [
          { name: "h1-b", sites: ["h1", "b"], cost: 1 },
          { name: "b-h2", sites: ["b", "h2"], cost: 1 },
        ],
        servers: [
          server("x1", "h1", 7001),
          server("x2", "b", 7002),
          server("x3", "h2", 7003),
          server("x4", "island", 7004),
        ],
      }),
    ) as TopologyConfig;
    const unreachable = (node: string) => partnerPlan(tiered, node as NodeId, new Set()).unreachableSites;
    assert.deepEqual(unreachable("x1"), ["h2", "island"], "a branch is never transit between two hubs");
    assert.deepEqual(unreachable("x2"), ["island"]);
    assert.deepEqual(unreachable("x4"), ["b", "h1", "h2"]);
    assert.deepEqual(partnerPlan(config, "e1" as NodeId, new Set()).unreachableSites, []);
  });

  it("a hub pulls nothing from a branch that the other hub originated: the branch is no transit", () => {
    const invocation = (n: number) => n.toString(16).padStart(32, "0") as InvocationId;
    const tiered = unwrap(
      checkTopology({
        sites: [
          { name: "h1", tier: "hub" },
          { name: "b", tier: "branch" },
          { name: "h2", tier: "hub" },
        ],
        links: [
          { name: "h1-b", sites: ["h1", "b"], cost: 1 },
          { name: "b-h2", sites: ["b", "h2"], cost: 1 },
        ],
        servers: [
          { ...server("x1", "h1", 7001), invocations: [invocation(1)] },
          { ...server("x2", "b", 7002), invocations: [invocation(2)] },
          { ...server("x3", "h2", 7003), invocations: [invocation(3)] },
        ],
      }),
    ) as TopologyConfig;
    const fromBranch = (node: string) =>
      partnerPlan(tiered, node as NodeId, new Set()).inbound.find((connection) => connection.node === "x2")
        ?.exclude;
    // h2 has no route from h1 (policy): its changes must not come through b, which it reports
    // as "their changes cannot reach this site". (A node's own invocations are never left out.)
    assert.deepEqual(fromBranch("x1"), [invocation(3)]);
    assert.deepEqual(fromBranch("x3"), [invocation(1)]);
    const branch = partnerPlan(tiered, "x2" as NodeId, new Set()).inbound;
    assert.deepEqual(
      branch.map((connection) => [connection.node, connection.exclude]),
      [
        ["x1", [invocation(3)]],
        ["x3", [invocation(1)]],
      ],
      "the branch takes each hub's changes from that hub",
    );
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

  it("counts minutes of the week from Monday 00:00 UTC", () => {
    assert.equal(minuteOfWeek(Date.UTC(2026, 10, 23, 0, 0)), 0, "2026-11-23 is a Monday");
    assert.equal(minuteOfWeek(Date.UTC(2026, 10, 29, 23, 59, 59)), 7 * 24 * 60 - 1);
    assert.equal(minuteOfWeek(Date.UTC(1970, 0, 1, 1, 0)), 3 * 24 * 60 + 60, "the epoch was a Thursday");
  });

  /** The test topology with every link open Mondays 01:00-02:00 only. */
  const openMondayOneToTwo = (): TopologyConfig =>
    unwrap(
      checkTopology({
        ...config,
        links: config.links.map((link) => ({ ...link, schedule: [{ fromMinute: 60, toMinute: 120 }] })),
      }),
    ) as TopologyConfig;

  it("leaves out inter-site connections while their link's schedule is closed", () => {
    const scheduled = openMondayOneToTwo();
    const middle = scheduled.servers.filter((entry) => entry.site === "middle").map((entry) => entry.node);
    const plans = middle.map((node) => partnerPlan(scheduled, node, new Set()));
    const inter = (plan: ReturnType<typeof openPlan>) =>
      plan.inbound.filter((connection) => connection.kind === "inter").length;
    assert.ok(plans.some((plan) => inter(plan) > 0));
    for (const plan of plans) {
      assert.equal(inter(openPlan(plan, 30)), 0, "closed at 00:30 on Monday");
      assert.equal(inter(openPlan(plan, 90)), inter(plan), "open at 01:30");
      assert.deepEqual(
        openPlan(plan, 30).inbound.filter((connection) => connection.kind === "intra"),
        plan.inbound.filter((connection) => connection.kind === "intra"),
      );
    }
  });

  it("says when a link schedule next opens or closes, so the node wakes right then", () => {
    const scheduled = openMondayOneToTwo();
    const inbound = partnerPlan(scheduled, "m1" as NodeId, new Set()).inbound;
    assert.equal(minutesToScheduleChange(inbound, 30), 30, "opens at 01:00");
    assert.equal(minutesToScheduleChange(inbound, 60), 60, "open from this minute: closes at 02:00");
    assert.equal(minutesToScheduleChange(inbound, 119), 1);
    assert.equal(minutesToScheduleChange(inbound, 120), 7 * 24 * 60 - 60, "opens again next Monday");
    assert.equal(minutesToScheduleChange(partnerPlan(config, "m1" as NodeId, new Set()).inbound, 30), null);
  });
});
