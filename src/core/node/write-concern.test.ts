import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InvocationId, NodeId, Usn } from "../ids.ts";
import {
  checkConcernAttainable,
  evaluateWriteConcern,
  parseWriteConcern,
  serversToAsk,
  type WriteConcern,
} from "./write-concern.ts";

const node = (name: string) => name as NodeId;
const inv = "a".repeat(32) as InvocationId;
const write = { invocation: inv, usn: 10 as Usn };
const self = { node: node("e1"), site: "east" };
const servers = [
  { node: node("e1"), site: "east" },
  { node: node("e2"), site: "east" },
  { node: node("w1"), site: "west" },
  { node: node("n1"), site: "north" },
];
const has = (usn: number) => ({ [inv]: usn as Usn });

describe("write concern", () => {
  it("parses the header, with a bounded timeout", () => {
    assert.deepEqual(parseWriteConcern(undefined), {
      ok: true,
      value: { concern: { kind: "local" }, timeoutMs: 5000 },
    });
    assert.deepEqual(parseWriteConcern("SITES=2; timeout=250"), {
      ok: true,
      value: { concern: { kind: "sites", count: 2 }, timeoutMs: 250 },
    });
    assert.equal(parseWriteConcern("all").ok, true);
    for (const bad of [
      "",
      "most",
      "sites=0",
      "sites=x",
      "site; timeout=0",
      "site; timeout=999999",
      "site; wait=1",
      "site; timeout=5; timeout=6",
      "site; timeout=5;",
      "x".repeat(200),
    ]) {
      const parsed = parseWriteConcern(bad);
      assert.ok(!parsed.ok && parsed.error.code === "invalid-request", bad);
    }
  });

  it("counts a node only when its UTD covers the write", () => {
    const check = (concern: WriteConcern, reports: [string, string, number | null][]) =>
      evaluateWriteConcern(
        concern,
        write,
        self,
        servers,
        reports.map(([name, site, usn]) => ({ node: node(name), site, utd: usn === null ? null : has(usn) })),
      );
    assert.equal(check({ kind: "local" }, []).met, true);
    assert.equal(check({ kind: "site" }, [["e2", "east", 9]]).met, false, "one USN short");
    assert.equal(check({ kind: "site" }, [["w1", "west", 10]]).met, false, "another site is not this site");
    assert.equal(check({ kind: "site" }, [["e2", "east", 10]]).met, true);
    const two = check({ kind: "sites", count: 2 }, [
      ["e2", "east", 12],
      ["w1", "west", 10],
      ["n1", "north", null],
    ]);
    assert.deepEqual(two, { met: true, nodes: ["e1", "e2", "w1"], sites: ["east", "west"] });
    assert.equal(check({ kind: "sites", count: 3 }, [["w1", "west", 10]]).met, false);
    assert.equal(
      check({ kind: "all" }, [
        ["e2", "east", 10],
        ["w1", "west", 10],
      ]).met,
      false,
    );
    assert.equal(
      check({ kind: "all" }, [
        ["e2", "east", 10],
        ["w1", "west", 10],
        ["n1", "north", 11],
      ]).met,
      true,
    );
  });

  it("asks only the servers that can matter", () => {
    assert.deepEqual(serversToAsk({ kind: "local" }, self, servers), []);
    assert.deepEqual(
      serversToAsk({ kind: "site" }, self, servers).map((server) => server.node),
      ["e2"],
    );
    assert.equal(serversToAsk({ kind: "all" }, self, servers).length, 3);
  });

  it("refuses sites=N beyond the sites that have servers, before the write", () => {
    // servers: east (two nodes), west, north.
    for (const count of [1, 2, 3])
      assert.equal(checkConcernAttainable({ kind: "sites", count }, self, servers).ok, true);
    const refused = checkConcernAttainable({ kind: "sites", count: 4 }, self, servers);
    assert.ok(!refused.ok);
    assert.equal(refused.error.code, "invalid-request");
    assert.equal(
      refused.error.message,
      "write concern sites=4 cannot be met: the topology's servers are in 3 sites",
    );
    assert.equal(
      checkConcernAttainable({ kind: "sites", count: 4 }, self, []).ok,
      true,
      "topology not read yet",
    );
    assert.equal(
      checkConcernAttainable({ kind: "sites", count: 2 }, self, [
        { node: node("e1"), site: "East" },
        { node: node("e2"), site: "east" },
      ]).ok,
      false,
    );
  });

  it("refuses site when no other server is in this node's site, before the write", () => {
    const west = { node: node("w1"), site: "west" };
    assert.equal(checkConcernAttainable({ kind: "site" }, self, servers).ok, true, "e2 is in east");
    const refused = checkConcernAttainable({ kind: "site" }, west, servers);
    assert.ok(!refused.ok);
    assert.equal(refused.error.code, "invalid-request");
    assert.equal(
      refused.error.message,
      "write concern site cannot be met: no other server of the topology is in site west",
    );
    const alone = [{ node: node("e1"), site: "east" }];
    assert.equal(checkConcernAttainable({ kind: "site" }, self, alone).ok, false, "the only server");
    assert.equal(
      checkConcernAttainable({ kind: "site" }, self, [{ node: node("e1"), site: "east" }, west]).ok,
      false,
      "a server in another site does not count",
    );
    assert.equal(
      checkConcernAttainable({ kind: "site" }, { node: node("e1"), site: "EAST" }, servers).ok,
      true,
      "site names compare as site keys",
    );
    assert.equal(checkConcernAttainable({ kind: "site" }, self, []).ok, true, "topology not read yet");
  });

  it("never refuses local or all, and all on the only server is met at once", () => {
    const alone = [{ node: node("e1"), site: "east" }];
    for (const concern of [{ kind: "local" }, { kind: "all" }] as const) {
      assert.equal(checkConcernAttainable(concern, self, alone).ok, true, concern.kind);
      assert.equal(checkConcernAttainable(concern, self, servers).ok, true, concern.kind);
    }
    assert.deepEqual(evaluateWriteConcern({ kind: "all" }, write, self, alone, []), {
      met: true,
      nodes: ["e1"],
      sites: ["east"],
    });
  });
});
