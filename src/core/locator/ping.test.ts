import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { NodeId } from "../ids.ts";
import { checkTopology, type SiteName, type TopologyConfig } from "../topology/model.ts";
import { closestSitesMax, locate } from "./ping.ts";

function topology(raw: unknown): TopologyConfig {
  const checked = checkTopology(raw);
  assert.ok(checked.ok, checked.ok ? "" : checked.error.message);
  return checked.value;
}

const three = topology({
  sites: [{ name: "a" }, { name: "b" }, { name: "c" }, { name: "island" }],
  links: [
    { name: "ab", sites: ["a", "b"], cost: 10 },
    { name: "ac", sites: ["a", "c"], cost: 100 },
    { name: "bc", sites: ["b", "c"], cost: 50 },
  ],
  subnets: [
    { cidr: "10.0.0.0/8", site: "c" },
    { cidr: "10.1.0.0/16", site: "a" },
    { cidr: "10.1.2.0/24", site: "b" },
    { cidr: "2001:db8::/32", site: "a" },
    { cidr: "2001:db8:1::/48", site: "b" },
  ],
  servers: [
    { node: "a1", site: "a", httpPort: 1 },
    { node: "a2", site: "a", httpPort: 2 },
    { node: "b1", site: "b", httpPort: 3 },
  ],
});
const a1 = { node: "a1" as NodeId, site: "a" as SiteName };

describe("locate", () => {
  it("places a client by the longest prefix holding its address, IPv4 and IPv6", () => {
    assert.equal(locate(three, "10.9.9.9", a1).clientSite, "c");
    assert.equal(locate(three, "10.1.9.9", a1).clientSite, "a");
    assert.equal(locate(three, "10.1.2.3", a1).subnet, "10.1.2.0/24");
    assert.equal(locate(three, "10.1.2.3", a1).clientSite, "b");
    assert.equal(locate(three, "2001:db8::5", a1).clientSite, "a");
    assert.equal(locate(three, "2001:db8:1::5", a1).clientSite, "b");
  });

  it("reads an IPv4-mapped IPv6 address (a dual-stack socket) as IPv4", () => {
    const answer = locate(three, "::ffff:10.1.9.9", a1);
    assert.equal(answer.address, "10.1.9.9");
    assert.equal(answer.clientSite, "a");
  });

  it("says whether the answering node is in the client's site", () => {
    assert.equal(locate(three, "10.1.9.9", a1).inClientSite, true);
    assert.equal(locate(three, "10.1.2.3", a1).inClientSite, false);
  });

  it("lists the other sites by least total link cost, then name; unreachable ones left out", () => {
    const fromA = locate(three, "10.1.9.9", a1).closestSites;
    assert.deepEqual(fromA, [
      { site: "b", cost: 10, servers: 1 },
      { site: "c", cost: 60, servers: 0 },
    ]);
    const fromC = locate(three, "10.200.0.1", a1).closestSites.map((site) => site.site);
    assert.deepEqual(fromC, ["b", "a"]);
  });

  it("places no client outside every subnet, or with an invalid address, and counts from the node's site", () => {
    for (const address of ["192.168.1.1", "not-an-address", "", "::1"]) {
      const answer = locate(three, address, a1);
      assert.equal(answer.clientSite, null);
      assert.equal(answer.subnet, null);
      assert.equal(answer.inClientSite, false);
      assert.deepEqual(
        answer.closestSites.map((site) => site.site),
        ["b", "c"],
      );
    }
  });

  it("is bounded: at most closestSitesMax sites", () => {
    const names = Array.from({ length: 30 }, (_, index) => `s${String(index).padStart(2, "0")}`);
    const star = topology({
      sites: names.map((name) => ({ name })),
      links: names
        .slice(1)
        .map((name, index) => ({ name: `l${index}`, sites: ["s00", name], cost: 30 - index })),
      subnets: [{ cidr: "10.0.0.0/8", site: "s00" }],
    });
    const answer = locate(star, "10.0.0.1", { node: "n" as NodeId, site: "s00" as SiteName });
    assert.equal(answer.closestSites.length, closestSitesMax);
    assert.equal(answer.closestSites[0]?.site, "s29");
  });
});

describe("locate properties", () => {
  const octet = fc.integer({ min: 0, max: 255 });
  const address = fc.tuple(octet, octet, octet, octet).map((parts) => parts.join("."));

  it("the longest matching prefix wins whatever the order of the subnets", () => {
    fc.assert(
      fc.property(
        address,
        fc.uniqueArray(fc.integer({ min: 0, max: 32 }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 1000 }),
        (text, prefixes, shuffle) => {
          // Every prefix of the address is a subnet; site s<prefix> owns the /prefix.
          const sites = prefixes.map((prefix) => ({ name: `s${prefix}` }));
          const subnets = prefixes.map((prefix) => ({ cidr: `${text}/${prefix}`, site: `s${prefix}` }));
          const rotated = [
            ...subnets.slice(shuffle % subnets.length),
            ...subnets.slice(0, shuffle % subnets.length),
          ];
          const config = topology({ sites, subnets: rotated });
          const answer = locate(config, text, { node: "n" as NodeId, site: sites[0]?.name as SiteName });
          assert.equal(answer.clientSite, `s${Math.max(...prefixes)}`);
        },
      ),
    );
  });

  it("closest sites come in non-decreasing cost, never the client's own, each at its least-cost distance", () => {
    const edge = fc.tuple(
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 1, max: 100 }),
    );
    fc.assert(
      fc.property(fc.array(edge, { maxLength: 20 }), (edges) => {
        const names = Array.from({ length: 8 }, (_, index) => `s${index}`);
        const links = edges
          .filter(([x, y]) => x !== y)
          .map(([x, y, cost], index) => ({ name: `l${index}`, sites: [`s${x}`, `s${y}`], cost }));
        const config = topology({
          sites: names.map((name) => ({ name })),
          links,
          subnets: [{ cidr: "10.0.0.0/8", site: "s0" }],
        });
        const answer = locate(config, "10.1.1.1", { node: "n" as NodeId, site: "s3" as SiteName });
        const costs = answer.closestSites.map((site) => site.cost);
        assert.deepEqual(
          costs,
          [...costs].sort((x, y) => x - y),
        );
        assert.ok(answer.closestSites.every((site) => site.site !== "s0"));
        // Floyd-Warshall as the reference distance.
        const far = Number.POSITIVE_INFINITY;
        const distance = names.map((_, x) => names.map((__, y) => (x === y ? 0 : far)));
        for (const link of links) {
          const x = Number(link.sites[0]?.slice(1));
          const y = Number(link.sites[1]?.slice(1));
          const row = distance[x] as number[];
          row[y] = Math.min(row[y] as number, link.cost);
          (distance[y] as number[])[x] = row[y] as number;
        }
        for (let k = 0; k < 8; k++)
          for (let x = 0; x < 8; x++)
            for (let y = 0; y < 8; y++) {
              const through = (distance[x]?.[k] as number) + (distance[k]?.[y] as number);
              if (through < (distance[x]?.[y] as number)) (distance[x] as number[])[y] = through;
            }
        const reachable = names.filter((_, index) => index !== 0 && distance[0]?.[index] !== far);
        assert.equal(answer.closestSites.length, reachable.length);
        for (const site of answer.closestSites)
          assert.equal(site.cost, distance[0]?.[Number(site.site.slice(1))]);
      }),
    );
  });
});
