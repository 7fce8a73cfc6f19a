import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { InvocationId, NodeId } from "../ids.ts";
import { unwrap } from "../result.ts";
import { connectionsOf } from "./connections.ts";
import { bridgehead } from "./intra.ts";
import { checkTopology, type SiteName, type TopologyConfig } from "./model.ts";
import { originExclusions, originSitesOf, SiteRoutes } from "./origins.ts";

const config = unwrap(
  checkTopology(
    JSON.parse(readFileSync(new URL("../../../examples/topology.json", import.meta.url), "utf8")),
  ),
) as TopologyConfig;
const node = (name: string) => name as NodeId;
const id = (n: number): InvocationId => n.toString(16).padStart(32, "0") as InvocationId;
const everyNeighbour = new Set(["paris", "frankfurt", "lyon", "bonn"]);

describe("a node's connections", () => {
  it("pulls from its intra-site partners and, as a bridgehead, from the neighbour's bridgehead", () => {
    const parisServers = ["par1", "par2", "par3"].map(node);
    const towardBonnFromFrankfurt = bridgehead(["fra1", "fra2"].map(node), "bonn");
    const connections = connectionsOf(config, towardBonnFromFrankfurt as NodeId, new Set(), everyNeighbour);
    assert.equal(connections.site, "frankfurt");
    const inter = connections.inbound.filter((connection) => connection.kind === "inter");
    assert.ok(
      inter.some((connection) => connection.node === "bon1" && connection.pullIntervalMs === 15 * 60_000),
    );
    const bonn = connectionsOf(config, node("bon1"), new Set(), new Set(["frankfurt"]));
    assert.deepEqual(
      bonn.inbound.map((connection) => [connection.node, connection.kind, connection.schedule?.length]),
      [[towardBonnFromFrankfurt, "inter", 2]],
      "bonn's only partner is frankfurt's bridgehead toward bonn, on the scheduled link",
    );
    const par1 = connectionsOf(config, node("par1"), new Set(), everyNeighbour);
    assert.deepEqual(
      par1.inbound.filter((connection) => connection.kind === "intra").map((connection) => connection.node),
      parisServers.filter((server) => server !== "par1"),
    );
  });

  it("pulls only from neighbours that are a next hop toward some origin", () => {
    const lyon = connectionsOf(config, node("lyo1"), new Set(), new Set(["paris"]));
    assert.deepEqual([...new Set(lyon.inbound.map((connection) => connection.site))], ["paris"]);
  });

  it("fails over when a bridgehead is stale, and probes the stale intra-site server", () => {
    const towardBonn = bridgehead(["fra1", "fra2"].map(node), "bonn") as NodeId;
    const other = towardBonn === "fra1" ? node("fra2") : node("fra1");
    const stale = new Set([towardBonn]);
    const bonn = connectionsOf(config, node("bon1"), stale, new Set(["frankfurt"]));
    assert.deepEqual(
      bonn.inbound.map((connection) => [connection.node, connection.kind]),
      [
        [other, "inter"],
        [towardBonn, "probe"],
      ],
      "bonn pulls from the other bridgehead and keeps probing the stale one: were it dropped, its " +
        "failures would be forgotten, it would be fresh again and chosen again",
    );
    const recovered = connectionsOf(config, node("bon1"), new Set(), new Set(["frankfurt"]));
    assert.deepEqual(
      recovered.inbound.map((connection) => [connection.node, connection.kind]),
      [[towardBonn, "inter"]],
      "once a probe succeeds it is no longer stale: the bridgehead again, and no probe",
    );
    const survivor = connectionsOf(config, other, stale, everyNeighbour);
    assert.ok(
      survivor.inbound.some((connection) => connection.node === towardBonn && connection.kind === "probe"),
    );
    assert.ok(
      survivor.inbound.some((connection) => connection.node === "bon1" && connection.kind === "inter"),
    );
  });

  it("keeps probing a neighbour site whose every server is stale", () => {
    const frankfurt = ["fra1", "fra2"].map(node);
    const bonn = connectionsOf(config, node("bon1"), new Set(frankfurt), new Set(["frankfurt"]));
    const preferred = bridgehead(frankfurt, "bonn") as NodeId;
    assert.deepEqual(
      bonn.inbound.map((connection) => [connection.node, connection.kind]),
      [
        [preferred, "probe"],
        [frankfurt.find((server) => server !== preferred), "probe"],
      ],
      "with no live server to pull from, bonn still tries them all: were they dropped, their failures " +
        "would be forgotten, the preferred one fresh and chosen again, failing again (the plan flipping)",
    );
    assert.equal(bonn.note, null);
  });

  it("says why a node has no connections", () => {
    assert.match(connectionsOf(config, node("ghost"), new Set(), everyNeighbour).note ?? "", /not a server/);
    // The only server of the directory: nobody to pull from, anywhere.
    const alone = { ...config, servers: config.servers.filter((server) => server.node === "bon1") };
    assert.match(connectionsOf(alone, node("bon1"), new Set(), new Set()).note ?? "", /no partner/);
  });

  it("a site with no route to any served site pulls from one server elsewhere, to learn the topology", () => {
    // south's only link goes to north, which has no server yet in this node's view (it joined
    // before north's servers did): without a source elsewhere it would never hear of them.
    const chain = unwrap(
      checkTopology({
        sites: [{ name: "east" }, { name: "north" }, { name: "south" }],
        links: [
          { name: "east-north", sites: ["east", "north"], cost: 10 },
          { name: "north-south", sites: ["north", "south"], cost: 10 },
        ],
        servers: ["e1", "e2", "s1", "s2"].map((name, index) => ({
          node: name,
          site: name.startsWith("e") ? "east" : "south",
          addresses: ["127.0.0.1"],
          httpPort: 7001 + index,
        })),
      }),
    ) as TopologyConfig;
    const none = new Set<NodeId>();
    const sources = (self: string, stale: ReadonlySet<NodeId>) =>
      connectionsOf(chain, node(self), stale, new Set())
        .inbound.filter((connection) => connection.site === "east")
        .map((connection) => [connection.node, connection.kind, connection.compress]);
    const southDuty = [node("s1"), node("s2")].filter((self) => sources(self, none).length > 0);
    assert.equal(southDuty.length, 1, "one server of south pulls from elsewhere");
    const duty = southDuty[0] as NodeId;
    const chosen = bridgehead([node("e1"), node("e2")], "south") as NodeId;
    const other = chosen === "e1" ? node("e2") : node("e1");
    assert.deepEqual(sources(duty, none), [[chosen, "probe", true]]);
    assert.deepEqual(
      sources(duty, new Set([chosen])),
      [
        [other, "probe", true],
        [chosen, "probe", true],
      ],
      "the next server takes over; the stale one is still probed",
    );
    const southPeer = duty === "s1" ? "s2" : "s1";
    assert.deepEqual(
      sources(southPeer, new Set([duty])),
      [[chosen, "probe", true]],
      "duty moves with staleness",
    );
    // Once north's server is in the view, the links join the sites: nothing from elsewhere.
    const joined = {
      ...chain,
      servers: [
        ...chain.servers,
        { node: node("n1"), site: "north" as SiteName, addresses: ["127.0.0.1"], httpPort: 7009 },
      ],
    };
    const routed = connectionsOf(joined, duty, none, new Set());
    assert.ok(
      routed.inbound.every((connection) => connection.site === "south"),
      "with north served, nothing is pulled from elsewhere",
    );
  });

  it("a routeless site pulls from a server of each group of linked sites, so routeless sites never wait on each other", () => {
    // Servers joined before the sites between them had one: w-x are linked to each other only;
    // y and hq are alone.
    const groups = unwrap(
      checkTopology({
        sites: ["hq", "mid", "w", "x", "y"].map((name) => ({ name })),
        links: [
          { name: "hq-mid", sites: ["hq", "mid"], cost: 10 },
          { name: "mid-w", sites: ["mid", "w"], cost: 10 },
          { name: "w-x", sites: ["w", "x"], cost: 10 },
          { name: "mid-y", sites: ["mid", "y"], cost: 10 },
        ],
        servers: [
          ["hq1", "hq"],
          ["w1", "w"],
          ["x1", "x"],
          ["y1", "y"],
        ].map(([name, site], index) => ({
          node: name,
          site,
          addresses: ["127.0.0.1"],
          httpPort: 7101 + index,
        })),
      }),
    ) as TopologyConfig;
    const elsewhere = (self: string, routes: readonly string[] = []): string[] =>
      connectionsOf(groups, node(self), new Set(), new Set(routes))
        .inbound.filter((connection) => connection.unfiltered === true)
        .map((connection) => connection.node)
        .sort();
    const wOrX = (site: string): string => bridgehead([node("w1"), node("x1")], site) as string;
    assert.deepEqual(elsewhere("y1"), ["hq1", wOrX("y")].sort(), "y: one of each other group, hq among them");
    assert.deepEqual(elsewhere("hq1"), [wOrX("hq"), "y1"].sort());
    // w and x route to each other: nothing unfiltered (the next test: w pulls from outside for
    // what its routes cannot bring).
    assert.deepEqual(elsewhere("w1", ["x"]), []);
    const connected = {
      ...groups,
      servers: [
        ...groups.servers,
        { node: node("m1"), site: "mid" as SiteName, addresses: ["127.0.0.1"], httpPort: 7109 },
      ],
    };
    assert.deepEqual(
      connectionsOf(connected, node("y1"), new Set(), new Set(["mid"])).inbound.filter(
        (c) => c.unfiltered === true,
      ),
      [],
      "once mid is served, y has a route and pulls along it",
    );
  });

  it("a site with routes, linked to a site with no server in its view, pulls from outside its group what its routes cannot bring", () => {
    // The island: w, br and x joined before mid had a server. w and x are hubs joined only
    // through the branch br, so w has a route to br only (x is beyond a valley), yet no site of
    // the island is routeless; hq, elsewhere, is known (it admitted them). w is linked to mid,
    // which has no server in this view: evidence that the view may lack servers, as it does.
    // hq's group also holds hqb, a branch.
    const island = unwrap(
      checkTopology({
        sites: [
          { name: "hq", tier: "hub" },
          { name: "hqb", tier: "branch" },
          { name: "mid", tier: "hub" },
          { name: "w", tier: "hub" },
          { name: "br", tier: "branch" },
          { name: "x", tier: "hub" },
        ],
        links: [
          { name: "hq-mid", sites: ["hq", "mid"], cost: 10 },
          { name: "hq-hqb", sites: ["hq", "hqb"], cost: 10 },
          { name: "mid-w", sites: ["mid", "w"], cost: 10 },
          { name: "w-br", sites: ["w", "br"], cost: 10 },
          { name: "br-x", sites: ["br", "x"], cost: 10 },
        ],
        servers: [
          ["hq1", "hq", id(1)],
          ["w1", "w", id(2)],
          ["br1", "br", id(3)],
          ["x1", "x", id(4)],
          ["hqb9", "hqb", id(5)],
        ].map(([name, site, invocation], index) => ({
          node: name,
          site,
          addresses: ["127.0.0.1"],
          httpPort: 7201 + index,
          invocations: [invocation],
        })),
      }),
    ) as TopologyConfig;
    const plan = (config: TopologyConfig, self: string) => {
      const routes = new SiteRoutes(config);
      const site = config.servers.find((server) => server.node === self)?.site as SiteName;
      const connections = connectionsOf(config, node(self), new Set(), routes.hopsFrom(site));
      return connections.inbound
        .filter((connection) => connection.site !== site && connection.kind === "probe")
        .map((connection) => ({
          node: connection.node,
          unfiltered: connection.unfiltered === true,
          only: connection.onlyOrigins?.sites,
          exclude: originExclusions(
            connection,
            site,
            (origin) => routes.toward(site, origin),
            originSitesOf(config),
            new Set(routes.unreachableFrom(site)),
          ),
        }));
    };
    assert.deepEqual(new SiteRoutes(island).hopsFrom("w"), new Set(["br"]), "w routes to br, not to x");
    assert.deepEqual(
      plan(island, "w1"),
      [{ node: "hq1", unfiltered: false, only: ["hq", "hqb"], exclude: [id(2), id(3), id(4)] }],
      "w pulls from hq's group the changes of its sites and of origins it cannot place, and none of " +
        "its own group's: not x's, which the valley-free policy keeps from it, nor br's and its own, " +
        "which its routes bring; from hq1, not the branch hqb9 (hashing alone would pick it), as w is a hub",
    );
    assert.deepEqual(plan(island, "br1"), [], "br is linked to served sites only: its view shows no gap");
    assert.deepEqual(plan(island, "x1"), []);
    const served = {
      ...island,
      servers: [
        ...island.servers,
        { node: node("m1"), site: "mid" as SiteName, addresses: [], httpPort: 7209 },
      ],
    };
    assert.deepEqual(plan(served, "w1"), [], "once mid is served in w's view, w pulls along its routes only");
    const alone = { ...island, servers: island.servers.filter((server) => !server.node.startsWith("hq")) };
    assert.deepEqual(plan(alone, "w1"), [], "with no server known outside its group there is no one to ask");
  });
});
