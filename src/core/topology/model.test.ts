import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cidrContains, formatAddress, longestMatch, parseAddress, parseCidr } from "./address.ts";
import { adjacencyCost, compileGraph, siteIndex } from "./graph.ts";
import { checkTopology, scheduleOpen, settingsDefaults, type TopologyConfig } from "./model.ts";

const valid = {
  sites: [{ name: "Paris", tier: "hub" }, { name: "lyon", tier: "branch" }, { name: "berlin" }],
  links: [
    { name: "fr", sites: ["paris", "LYON"], cost: 10, intervalMinutes: 5, notify: true },
    {
      name: "eu",
      sites: ["paris", "berlin", "lyon"],
      cost: 40,
      schedule: [{ fromMinute: 60, toMinute: 120 }],
    },
  ],
  subnets: [
    { cidr: "10.1.0.0/16", site: "paris" },
    { cidr: "10.1.2.0/24", site: "lyon" },
    { cidr: "2001:DB8::/32", site: "berlin" },
  ],
  servers: [{ node: "dc1", site: "paris", addresses: ["127.0.0.1", "::1"], httpPort: 8080 }],
};

function checked(input: unknown): TopologyConfig {
  const result = checkTopology(input);
  assert.ok(result.ok, result.ok ? "" : result.error.message);
  return result.value;
}

describe("topology config", () => {
  it("accepts a valid topology and fills in defaults", () => {
    const config = checked(valid);
    assert.equal(config.sites[2]?.tier, "peer");
    assert.equal(config.links[0]?.compress, true);
    assert.equal(config.links[1]?.notify, false);
    assert.equal(config.links[1]?.intervalMinutes, 15);
    assert.equal(config.subnets[2]?.cidr, "2001:db8::/32");
    assert.deepEqual(config.settings, settingsDefaults);
  });

  const broken: Array<[string, (input: Record<string, unknown>) => unknown, RegExp]> = [
    ["not an object", () => 5, /expected an object/],
    ["sites missing", (i) => ({ ...i, sites: undefined }), /sites: expected a list/],
    ["a site name with a dot", (i) => ({ ...i, sites: [{ name: "a.b" }] }), /DNS label/],
    [
      "a duplicate site (case-insensitive)",
      (i) => ({ ...i, sites: [{ name: "x" }, { name: "X" }] }),
      /defined twice/,
    ],
    ["an unknown tier", (i) => ({ ...i, sites: [{ name: "x", tier: "core" }] }), /tier must be/],
    [
      "a link to an unknown site",
      (i) => ({ ...i, links: [{ name: "l", sites: ["paris", "rome"], cost: 1 }] }),
      /no such site: rome/,
    ],
    [
      "a link of one site",
      (i) => ({ ...i, links: [{ name: "l", sites: ["paris"], cost: 1 }] }),
      /two or more/,
    ],
    [
      "a link listing a site twice",
      (i) => ({ ...i, links: [{ name: "l", sites: ["paris", "PARIS"], cost: 1 }] }),
      /listed twice/,
    ],
    ["cost 0", (i) => ({ ...i, links: [{ name: "l", sites: ["paris", "lyon"], cost: 0 }] }), /cost must be/],
    [
      "a fractional cost",
      (i) => ({ ...i, links: [{ name: "l", sites: ["paris", "lyon"], cost: 1.5 }] }),
      /cost must be/,
    ],
    [
      "a zero interval",
      (i) => ({ ...i, links: [{ name: "l", sites: ["paris", "lyon"], cost: 1, intervalMinutes: 0 }] }),
      /intervalMinutes/,
    ],
    [
      "an empty schedule",
      (i) => ({ ...i, links: [{ name: "l", sites: ["paris", "lyon"], cost: 1, schedule: [] }] }),
      /schedule/,
    ],
    [
      "a backwards window",
      (i) => ({
        ...i,
        links: [{ name: "l", sites: ["paris", "lyon"], cost: 1, schedule: [{ fromMinute: 9, toMinute: 9 }] }],
      }),
      /window/,
    ],
    [
      "notify as a string",
      (i) => ({ ...i, links: [{ name: "l", sites: ["paris", "lyon"], cost: 1, notify: "yes" }] }),
      /notify must be/,
    ],
    [
      "a duplicate link",
      (i) => ({
        ...i,
        links: [...(i.links as unknown[]), { name: "FR", sites: ["paris", "lyon"], cost: 1 }],
      }),
      /defined twice/,
    ],
    [
      "a bad CIDR",
      (i) => ({ ...i, subnets: [{ cidr: "10.0.0.0/33", site: "paris" }] }),
      /not an IPv4 or IPv6 CIDR/,
    ],
    [
      "a duplicate subnet (same network)",
      (i) => ({
        ...i,
        subnets: [
          { cidr: "10.0.0.1/8", site: "paris" },
          { cidr: "10.9.9.9/8", site: "lyon" },
        ],
      }),
      /defined twice/,
    ],
    [
      "a server in an unknown site",
      (i) => ({ ...i, servers: [{ node: "dc9", site: "rome", httpPort: 1 }] }),
      /no such site/,
    ],
    [
      "a server with a bad address",
      (i) => ({ ...i, servers: [{ node: "dc9", site: "paris", addresses: ["1.2.3"], httpPort: 1 }] }),
      /not an IP address/,
    ],
    [
      "a server with port 0",
      (i) => ({ ...i, servers: [{ node: "dc9", site: "paris", httpPort: 0 }] }),
      /httpPort/,
    ],
    [
      "a duplicate server",
      (i) => ({
        ...i,
        servers: [
          { node: "a", site: "paris", httpPort: 1 },
          { node: "a", site: "lyon", httpPort: 2 },
        ],
      }),
      /defined twice/,
    ],
    ["an unknown setting", (i) => ({ ...i, settings: { notifyDelay: 5 } }), /unknown setting notifyDelay/],
    [
      "a one-day tombstone lifetime",
      (i) => ({ ...i, settings: { tombstoneLifetimeDays: 1 } }),
      /tombstoneLifetimeDays/,
    ],
  ];
  for (const [name, mutate, message] of broken) {
    it(`refuses ${name} with invalid-config`, () => {
      const result = checkTopology(mutate({ ...valid }));
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.error.code, "invalid-config");
        assert.match(result.error.message, message);
      }
    });
  }

  it("compiles the cheapest link per pair, sites numbered by name", () => {
    const graph = compileGraph(checked(valid));
    assert.deepEqual(graph.names, ["berlin", "lyon", "Paris"]);
    const [berlin, lyon, paris] = ["berlin", "LYON", "paris"].map((name) => siteIndex(graph, name) as number);
    assert.equal(adjacencyCost(graph, paris as number, lyon as number), 10);
    assert.equal(
      adjacencyCost(graph, berlin as number, lyon as number),
      40,
      "the three-site link joins every pair",
    );
    const withoutFr = compileGraph(checked(valid), (link) => link.name !== "fr");
    assert.equal(adjacencyCost(withoutFr, paris as number, lyon as number), 40);
  });

  it("a cheaper link added after another of the same pair takes over the pair", () => {
    const base = checked(valid);
    const fr = base.links.find((link) => link.name === "fr") as TopologyConfig["links"][number];
    const cheaper = { ...fr, name: "zz-fr-cheap", cost: fr.cost - 1 };
    const config = { ...base, links: [...base.links, cheaper] };
    const graph = compileGraph(config);
    const [lyon, paris] = ["lyon", "paris"].map((name) => siteIndex(graph, name) as number);
    assert.equal(adjacencyCost(graph, paris as number, lyon as number), fr.cost - 1);
    const planted = compileGraph(config, () => true, { keepFirstParallelLink: true });
    assert.equal(
      adjacencyCost(planted, paris as number, lyon as number),
      fr.cost,
      "the canary keeps the first",
    );
  });

  it("opens a scheduled link only inside its windows, weekly", () => {
    const link = checked(valid).links[1] as NonNullable<TopologyConfig["links"][number]>;
    assert.equal(scheduleOpen(link, 59), false);
    assert.equal(scheduleOpen(link, 60), true);
    assert.equal(scheduleOpen(link, 119), true);
    assert.equal(scheduleOpen(link, 120), false);
    assert.equal(scheduleOpen(link, 60 + 7 * 24 * 60), true);
  });
});

describe("addresses", () => {
  it("parses and prints IPv4 and IPv6 canonically", () => {
    assert.equal(parseCidr("10.1.2.3/16")?.text, "10.1.0.0/16");
    assert.equal(parseCidr("2001:0DB8:0000:0000:0000:0000:0000:0001")?.text, "2001:db8::1/128");
    assert.equal(parseCidr("::")?.text, "::/128");
    assert.equal(parseCidr("::ffff:192.0.2.1")?.text, "::ffff:c000:201/128");
    assert.equal(formatAddress(parseAddress("2001:db8:0:1:0:0:0:1") as Uint8Array), "2001:db8:0:1::1");
    assert.equal(formatAddress(parseAddress("1:0:2:0:3:0:4:0") as Uint8Array), "1:0:2:0:3:0:4:0");
  });

  for (const bad of [
    "",
    "1.2.3",
    "1.2.3.256",
    "01.2.3.4",
    "1.2.3.4/",
    "1.2.3.4/08",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "g::1",
    ":1",
    "1.2.3.4/33",
    "::/129",
    7,
  ]) {
    it(`refuses ${JSON.stringify(bad)}`, () => assert.equal(parseCidr(bad), null));
  }

  it("maps an address to the longest matching prefix", () => {
    const prefixes = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "::/0"].map((text, index) => ({
      cidr: parseCidr(text) as NonNullable<ReturnType<typeof parseCidr>>,
      index,
    }));
    assert.equal(longestMatch(prefixes, parseAddress("10.1.2.7") as Uint8Array)?.index, 2);
    assert.equal(longestMatch(prefixes, parseAddress("10.1.3.7") as Uint8Array)?.index, 1);
    assert.equal(longestMatch(prefixes, parseAddress("11.0.0.1") as Uint8Array), undefined);
    assert.equal(longestMatch(prefixes, parseAddress("fe80::1") as Uint8Array)?.index, 3);
    assert.equal(
      cidrContains(
        prefixes[0]?.cidr as NonNullable<ReturnType<typeof parseCidr>>,
        parseAddress("::1") as Uint8Array,
      ),
      false,
    );
  });
});
