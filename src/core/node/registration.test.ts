import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { makeReplica } from "../../../test/support/replicas.ts";
import { configPartition } from "../directory/partition.ts";
import type { NodeId } from "../ids.ts";
import { unwrap } from "../result.ts";
import { readTopology, topologyWrites } from "../topology/entries.ts";
import { checkTopology, type SiteName, type TopologyConfig } from "../topology/model.ts";
import { checkRegistration, checkServerStanding, registrationWrites } from "./registration.ts";

function seeded(): ReturnType<typeof makeReplica> {
  const test = makeReplica("n1", 7);
  unwrap(test.replica.createPartition(configPartition));
  const config = unwrap(
    checkTopology({
      sites: [{ name: "east" }],
      servers: [{ node: "n1", site: "east", addresses: ["127.0.0.1"], httpPort: 7001 }],
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
    ]) {
      assert.equal(checkRegistration(bad).ok, false, JSON.stringify(bad));
    }
  });

  it("adds a server, then updates its port, then does nothing", () => {
    const { replica } = seeded();
    const registration = unwrap(
      checkRegistration({ node: "n2", site: "east", address: "127.0.0.1", httpPort: 7002 }),
    );
    const apply = (): number => {
      const writes = registrationWrites(readTopology(replica).config, registration, "east" as SiteName);
      for (const result of replica.write(writes)) assert.ok(result.ok);
      return writes.length;
    };
    assert.equal(apply(), 1);
    assert.deepEqual(
      readTopology(replica).config.servers.map((server) => server.node),
      ["n1", "n2"] as NodeId[],
    );
    const moved = { ...registration, httpPort: 7003 };
    const writes = registrationWrites(readTopology(replica).config, moved, "east" as SiteName);
    assert.deepEqual(
      writes.map((write) => write.op),
      ["modify"],
    );
    for (const result of replica.write(writes)) assert.ok(result.ok);
    assert.equal(readTopology(replica).config.servers[1]?.httpPort, 7003);
    assert.deepEqual(registrationWrites(readTopology(replica).config, moved, "east" as SiteName), []);
  });

  it("a server of a new site brings the site and a link to the admitting site", () => {
    const { replica } = seeded();
    const registration = unwrap(
      checkRegistration({ node: "w1", site: "west", address: "::1", httpPort: 7005 }),
    );
    for (const result of replica.write(
      registrationWrites(readTopology(replica).config, registration, "east" as SiteName),
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
