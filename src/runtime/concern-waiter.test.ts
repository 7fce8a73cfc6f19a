import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InvocationId, NodeId, Usn } from "../core/ids.ts";
import type { UtdVector } from "../core/replication/utd.ts";
import { ConcernWaiter, type Server } from "./concern-waiter.ts";

const inv = "a".repeat(32) as InvocationId;
const self: Server = { node: "e1" as NodeId, site: "east" };
const servers: Server[] = [
  self,
  { node: "e2" as NodeId, site: "east" },
  { node: "w1" as NodeId, site: "west" },
];

/** A cluster whose servers report what `applied` says, counting the reports asked for. */
function scripted(applied: Map<string, number>) {
  const asked: string[] = [];
  const waiter = new ConcernWaiter(async (server): Promise<UtdVector | null> => {
    asked.push(server.node);
    const usn = applied.get(server.node);
    return usn === undefined ? null : { [inv]: usn as Usn };
  }, 5);
  return { waiter, asked };
}

describe("writes waiting for their write concern", () => {
  it("share one report per server and round, and are answered when the reports meet them", async () => {
    const applied = new Map([
      ["e2", 0],
      ["w1", 0],
    ]);
    const { waiter, asked } = scripted(applied);
    const writes = Array.from({ length: 20 }, (_, index) =>
      waiter.wait(
        { concern: { kind: "site" }, timeoutMs: 5_000 },
        { invocation: inv, usn: (index + 1) as Usn },
        self,
        servers,
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 30));
    applied.set("e2", 20);
    const outcomes = await Promise.all(writes);
    assert.ok(outcomes.every((outcome) => outcome.met && outcome.nodes.includes("e2" as NodeId)));
    assert.ok(!asked.includes("w1"), "a site concern asks no other site");
    const rounds = asked.length;
    assert.ok(rounds < 20, `20 waiting writes cost ${rounds} reports, not one per write and round`);
    assert.equal(waiter.waiting, 0);
  });

  it("answers at the deadline with what was reached, whatever a silent server does", async () => {
    const { waiter } = scripted(new Map([["e2", 5]]));
    const started = performance.now();
    const outcome = await waiter.wait(
      { concern: { kind: "sites", count: 2 }, timeoutMs: 60 },
      { invocation: inv, usn: 5 as Usn },
      self,
      servers,
    );
    assert.deepEqual(outcome, { met: false, nodes: ["e1", "e2"], sites: ["east"] });
    assert.ok(performance.now() - started < 1_000);
  });

  it("asks each server on its own: one that does not answer delays no other's reports", async () => {
    // w1 is cut off: its report requests hang until their own timeout. e2 applies the write a
    // little after it was committed, so its first report does not cover it yet.
    const applied = new Map([["e2", 0]]);
    const asked: string[] = [];
    const waiter = new ConcernWaiter(async (server): Promise<UtdVector | null> => {
      asked.push(server.node);
      if (server.node === "w1") return new Promise((resolve) => setTimeout(() => resolve(null), 2_000));
      return { [inv]: (applied.get(server.node) ?? 0) as Usn };
    }, 5);
    try {
      const write = { invocation: inv, usn: 7 as Usn };
      const started = performance.now();
      const all = waiter.wait({ concern: { kind: "all" }, timeoutMs: 400 }, write, self, servers);
      const site = waiter.wait({ concern: { kind: "site" }, timeoutMs: 5_000 }, write, self, servers);
      setTimeout(() => applied.set("e2", 7), 30);
      const siteOutcome = await site;
      assert.equal(siteOutcome.met, true);
      assert.ok(performance.now() - started < 1_000, "the site concern did not wait for w1's timeout");
      // `all` cannot be met, but its answer names every node that has the write.
      assert.deepEqual(await all, { met: false, nodes: ["e1", "e2"], sites: ["east"] });
      assert.equal(asked.filter((node) => node === "w1").length, 1, "one request at a time to w1");
    } finally {
      waiter.close();
    }
  });

  it("answers a local concern at once and every waiter when closed", async () => {
    const { waiter, asked } = scripted(new Map());
    const local = await waiter.wait(
      { concern: { kind: "local" }, timeoutMs: 5_000 },
      { invocation: inv, usn: 1 as Usn },
      self,
      servers,
    );
    assert.equal(local.met, true);
    assert.deepEqual(asked, []);
    const pending = waiter.wait(
      { concern: { kind: "all" }, timeoutMs: 60_000 },
      { invocation: inv, usn: 1 as Usn },
      self,
      servers,
    );
    waiter.close();
    assert.equal((await pending).met, false);
  });
});
