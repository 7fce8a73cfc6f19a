import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { makeReplica } from "../../../test/support/replicas.ts";
import { configPartition } from "../directory/partition.ts";
import type { NodeId } from "../ids.ts";
import { unwrap } from "../result.ts";
import { readTopology, topologyWrites } from "../topology/entries.ts";
import { checkTopology, type SiteName, type TopologyConfig } from "../topology/model.ts";
import {
  checkRegistration,
  checkServerStanding,
  closestSite,
  editDistanceWithin,
  knownSitesListedMax,
  registrationWrites,
} from "./registration.ts";

function seeded(sites: readonly string[] = ["east"]): ReturnType<typeof makeReplica> {
  const test = makeReplica("n1", 7);
  unwrap(test.replica.createPartition(configPartition));
  const config = unwrap(
    checkTopology({
      sites: sites.map((name) => ({ name })),
      servers: [{ node: "n1", site: sites[0], addresses: ["127.0.0.1"], httpPort: 7001 }],
    }),
  ) as TopologyConfig;
  for (const result of test.replica.write(topologyWrites(config))) assert.ok(result.ok);
  return test;
}

describe("registration", () => {
  it("refuses what is not a registration", () => {
    for (const bad of [
      null,
      { node: "N1", site: "east", address: "127.0.0.1", httpPort: 1 },
      { node: "n2", site: "-", address: "127.0.0.1", httpPort: 1 },
      { node: "n2", site: "east", address: "10.0.0.0/8", httpPort: 1 },
      { node: "n2", site: "east", address: "127.0.0.1", httpPort: 70_000 },
      { node: "n2", site: "east", address: "127.0.0.1", httpPort: 1, newSite: "true" },
      { node: "n2", site: "east", address: "127.0.0.1", httpPort: 1, newSite: 1 },
      { node: "n2", site: "east", address: "127.0.0.1", httpPort: 1, newSite: null },
    ]) {
      assert.equal(checkRegistration(bad).ok, false, JSON.stringify(bad));
    }
    const malformed = checkRegistration({
      node: "n2",
      site: "east",
      address: "::1",
      httpPort: 1,
      newSite: "yes",
    });
    assert.ok(!malformed.ok);
    assert.equal(malformed.error.message, "newSite must be true or false (or absent)");
  });

  it("takes newSite when it is a boolean, and leaves it out when absent", () => {
    const registration = { node: "n2", site: "east", address: "::1", httpPort: 1 };
    assert.equal(unwrap(checkRegistration({ ...registration, newSite: true })).newSite, true);
    assert.equal(unwrap(checkRegistration({ ...registration, newSite: false })).newSite, false);
    assert.ok(!("newSite" in unwrap(checkRegistration(registration))));
  });

  it("adds a server, then updates its port, then does nothing", () => {
    const { replica } = seeded();
    const registration = unwrap(
      checkRegistration({ node: "n2", site: "east", address: "127.0.0.1", httpPort: 7002 }),
    );
    const apply = (): number => {
      const writes = unwrap(
        registrationWrites(readTopology(replica).config, registration, "east" as SiteName),
      );
      for (const result of replica.write(writes)) assert.ok(result.ok);
      return writes.length;
    };
    assert.equal(apply(), 1);
    assert.deepEqual(
      readTopology(replica).config.servers.map((server) => server.node),
      ["n1", "n2"] as NodeId[],
    );
    const moved = { ...registration, httpPort: 7003 };
    const writes = unwrap(registrationWrites(readTopology(replica).config, moved, "east" as SiteName));
    assert.deepEqual(
      writes.map((write) => write.op),
      ["modify"],
    );
    for (const result of replica.write(writes)) assert.ok(result.ok);
    assert.equal(readTopology(replica).config.servers[1]?.httpPort, 7003);
    assert.deepEqual(unwrap(registrationWrites(readTopology(replica).config, moved, "east" as SiteName)), []);
  });

  it("a server of a new site asked for (newSite) brings the site and a link to the admitting site", () => {
    const { replica } = seeded();
    const registration = unwrap(
      checkRegistration({ node: "w1", site: "west", address: "::1", httpPort: 7005, newSite: true }),
    );
    for (const result of replica.write(
      unwrap(registrationWrites(readTopology(replica).config, registration, "east" as SiteName)),
    ))
      assert.ok(result.ok);
    const { config, problems } = readTopology(replica);
    assert.deepEqual(problems, []);
    assert.deepEqual(
      config.links.map((link) => [link.name, link.sites]),
      [["east-west", ["east", "west"]]],
    );
    assert.equal(config.servers.find((server) => server.node === "w1")?.addresses[0], "::1");
  });

  it("refuses a site the topology lacks unless asked for, naming it, the known ones and the close one", () => {
    const { replica } = seeded(["branch", "Hq", "east"]);
    const config = readTopology(replica).config;
    for (const newSite of [undefined, false]) {
      const registration = unwrap(
        checkRegistration({
          node: "b1",
          site: "branhc",
          address: "10.0.0.1",
          httpPort: 7005,
          ...(newSite === undefined ? {} : { newSite }),
        }),
      );
      const refused = registrationWrites(config, registration, "east" as SiteName);
      assert.ok(!refused.ok, "nothing to write: no site, link or server entry");
      assert.equal(refused.error.code, "invalid-request");
      assert.equal(
        refused.error.message,
        "the site branhc is not in the topology (did you mean branch?); its sites are branch, east, Hq. " +
          "Give --site an existing site, or to create this one on purpose start the node with " +
          "--new-site (the new site gets a link to the admitting node's site), or add the site " +
          'first (docs/operations.md, "Adding a site")',
      );
    }
    // A known site in another case is that site, not a new one.
    const upper = unwrap(checkRegistration({ node: "b1", site: "BRANCH", address: "10.0.0.1", httpPort: 1 }));
    assert.equal(unwrap(registrationWrites(config, upper, "east" as SiteName)).length, 1);
    // Nothing close: no suggestion.
    const far = unwrap(checkRegistration({ node: "b1", site: "depot", address: "10.0.0.1", httpPort: 1 }));
    const refused = registrationWrites(config, far, "east" as SiteName);
    assert.ok(!refused.ok);
    assert.match(
      refused.error.message,
      /^the site depot is not in the topology; its sites are branch, east, Hq\. /,
    );
  });

  it("lists at most knownSitesListedMax sites in a refusal, then how many more", () => {
    const names = Array.from(
      { length: knownSitesListedMax + 5 },
      (_, index) => `s${String(index).padStart(2, "0")}`,
    );
    const { replica } = seeded(names);
    const registration = unwrap(
      checkRegistration({ node: "x1", site: "elsewhere", address: "::1", httpPort: 1 }),
    );
    const refused = registrationWrites(readTopology(replica).config, registration, "s00" as SiteName);
    assert.ok(!refused.ok);
    assert.match(
      refused.error.message,
      new RegExp(`; its sites are ${names.slice(0, knownSitesListedMax).join(", ")} and 5 more\\. `),
    );
  });

  it("suggests the closest known site within two edits, case-insensitively, ties to the first", () => {
    const known = ["hq", "branch", "Branch2", "east"] as SiteName[];
    assert.equal(closestSite("branhc", known), "branch");
    assert.equal(closestSite("BRANCH22", known), "Branch2");
    assert.equal(closestSite("eats", known), "east");
    assert.equal(closestSite("hqq", known), "hq");
    assert.equal(closestSite("warehouse", known), null);
    assert.equal(
      closestSite("xy", ["ab", "aa"] as SiteName[]),
      "aa",
      "both two edits away: the first in order",
    );
  });

  it("the banded edit distance agrees with the full one wherever it answers (property)", () => {
    const reference = (a: string, b: string): number => {
      const rows = Array.from({ length: a.length + 1 }, (_, row) =>
        Array.from({ length: b.length + 1 }, (_, column) => (row === 0 ? column : column === 0 ? row : 0)),
      );
      for (let row = 1; row <= a.length; row++)
        for (let column = 1; column <= b.length; column++) {
          const cells = rows as number[][];
          (cells[row] as number[])[column] = Math.min(
            (cells[row - 1]?.[column - 1] as number) + (a[row - 1] === b[column - 1] ? 0 : 1),
            (cells[row - 1]?.[column] as number) + 1,
            (cells[row]?.[column - 1] as number) + 1,
          );
        }
      return rows[a.length]?.[b.length] as number;
    };
    const word = fc.string({ unit: fc.constantFrom("a", "b", "c", "-"), maxLength: 12 });
    fc.assert(
      fc.property(word, word, fc.integer({ min: 0, max: 4 }), (a, b, limit) => {
        const full = reference(a, b);
        assert.equal(editDistanceWithin(a, b, limit), full <= limit ? full : null, `${a} ${b} ${limit}`);
      }),
      { numRuns: 500 },
    );
  });

  it("refuses writes on a node whose server entry left the topology, and nothing before it is read", () => {
    const servers = [{ node: "a1" as NodeId }, { node: "a2" as NodeId }];
    assert.ok(checkServerStanding(servers, "a1" as NodeId).ok);
    assert.ok(checkServerStanding([], "a3" as NodeId).ok, "no topology read yet");
    const gone = checkServerStanding(servers, "a3" as NodeId);
    assert.ok(!gone.ok);
    assert.equal(gone.error.code, "not-a-server");
    assert.match(gone.error.message, /^a3 is no longer a server of the topology/);
  });
});
