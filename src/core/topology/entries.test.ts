import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { makeDirectory, syncAll } from "../../../test/support/replicas.ts";
import type { InvocationId } from "../ids.ts";
import { unwrap } from "../result.ts";
import { invocationWrite, readTopology, topologyContainers, topologyWrites } from "./entries.ts";
import { checkTopology, invocationsPerServerMax, type TopologyConfig } from "./model.ts";

const example = unwrap(
  checkTopology(
    JSON.parse(readFileSync(new URL("../../../examples/topology.json", import.meta.url), "utf8")),
  ),
) as TopologyConfig;

function sorted(config: TopologyConfig): TopologyConfig {
  const by =
    <T>(key: (item: T) => string) =>
    (a: T, b: T) =>
      key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
  return {
    ...config,
    sites: [...config.sites].sort(by((site) => site.name.toLowerCase())),
    links: [...config.links].sort(by((link) => link.name.toLowerCase())),
    subnets: [...config.subnets].sort(by((subnet) => subnet.cidr)),
    servers: [...config.servers].sort(by((server) => server.node)),
  };
}

function seeded() {
  const replicas = makeDirectory(["node-a", "node-b"]);
  const [a] = replicas;
  if (a === undefined) throw new Error("no replica");
  unwrap(a.replica.createPartition("cn=config"));
  for (const result of a.replica.write(topologyWrites(example))) unwrap(result);
  return replicas;
}

describe("topology in the config partition", () => {
  it("round-trips through entries and replicates: every node reads the same topology", () => {
    const replicas = seeded();
    syncAll(replicas);
    for (const { replica } of replicas) {
      const read = readTopology(replica);
      assert.deepEqual(read.problems, []);
      assert.deepEqual(read.config, sorted(example));
    }
  });

  it("records each invocation id of a server once, and starts a full list again", () => {
    const [a] = seeded();
    if (a === undefined) throw new Error("no replica");
    const node = example.servers[0]?.node;
    assert.ok(node !== undefined);
    const first = invocationWrite(readTopology(a.replica).config, node, a.replica.invocationId);
    assert.ok(first !== null);
    unwrap(a.replica.writeOne(first));
    const read = readTopology(a.replica);
    assert.deepEqual(read.problems, []);
    assert.deepEqual(read.config.servers.find((server) => server.node === node)?.invocations, [
      a.replica.invocationId,
    ]);
    assert.equal(invocationWrite(read.config, node, a.replica.invocationId), null, "already recorded");
    assert.equal(invocationWrite(read.config, "nobody" as typeof node, a.replica.invocationId), null);
    const many = Array.from(
      { length: invocationsPerServerMax },
      (_, index) => index.toString(16).padStart(32, "0") as InvocationId,
    );
    const full = {
      ...read.config,
      servers: read.config.servers.map((server) =>
        server.node === node ? { ...server, invocations: many } : server,
      ),
    };
    assert.equal(invocationWrite(full, node, a.replica.invocationId)?.changes[0]?.operation, "replace");
  });

  it("leaves out an object that does not check out, reports it, and keeps the rest", () => {
    const [a] = seeded();
    if (a === undefined) throw new Error("no replica");
    for (const result of a.replica.write([
      {
        op: "add",
        dn: `cn=moon,${topologyContainers.links}`,
        attributes: {
          objectClass: ["plexusSiteLink"],
          cn: ["moon"],
          plexusSite: ["paris", "moon-base"],
          plexusCost: ["1"],
        },
      },
      {
        op: "add",
        dn: `cn=cheap,${topologyContainers.links}`,
        attributes: {
          objectClass: ["plexusSiteLink"],
          cn: ["cheap"],
          plexusSite: ["paris", "lyon"],
          plexusCost: ["zero"],
        },
      },
      {
        op: "modify",
        dn: `cn=settings,cn=config`,
        changes: [{ operation: "replace", attribute: "plexusNotifyDelayMs", values: ["-5"] }],
      },
    ])) {
      unwrap(result);
    }
    const read = readTopology(a.replica);
    assert.equal(read.problems.length, 3, read.problems.join("\n"));
    for (const expected of [
      /cn=moon.*no such site: moon-base/,
      /cn=cheap.*cost must be/,
      /notifyDelayMs.*defaults apply/,
    ]) {
      assert.ok(
        read.problems.some((problem) => expected.test(problem)),
        `${expected} in ${read.problems.join("; ")}`,
      );
    }
    assert.deepEqual(read.config.links, sorted(example).links);
    assert.equal(read.config.settings.notifyDelayMs, 20);
  });

  it("reads an empty topology from a directory without one", () => {
    const [a] = makeDirectory(["node-a"]);
    if (a === undefined) throw new Error("no replica");
    const read = readTopology(a.replica);
    assert.deepEqual([read.config.sites, read.config.links, read.problems], [[], [], []]);
  });
});
