import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { NodeId } from "../ids.ts";
import { bridgehead, graphDiameter, intraSiteGraph, intraSitePartners, ringOnlyServersMax } from "./intra.ts";

const servers = (count: number): NodeId[] =>
  Array.from({ length: count }, (_, index) => `dc${String(index).padStart(3, "0")}` as NodeId);

describe("intra-site connections", () => {
  it("is a plain ring up to seven servers", () => {
    const graph = intraSiteGraph(servers(5));
    assert.deepEqual(graph.get("dc000" as NodeId), ["dc001", "dc004"]);
    assert.equal(graphDiameter(graph), 2);
    assert.equal(graphDiameter(intraSiteGraph(servers(ringOnlyServersMax))), 3);
  });

  it("keeps every pair within three hops, symmetric, without stale servers (any size, any stale set)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 150 }),
        fc.array(fc.nat(149), { maxLength: 40 }),
        (count, staleIndexes) => {
          const all = servers(count);
          const stale = new Set(
            staleIndexes.filter((index) => index < count).map((index) => all[index] as NodeId),
          );
          const graph = intraSiteGraph([...all].reverse(), stale);
          assert.equal(graph.size, count - stale.size);
          for (const [server, partners] of graph) {
            assert.ok(!stale.has(server));
            for (const partner of partners) {
              assert.ok(!stale.has(partner), "a stale server is no partner");
              assert.ok(graph.get(partner)?.includes(server), "connections are symmetric");
            }
            // Heads carry about 2√n connections; nobody carries more than 2√n + 3.
            assert.ok(
              partners.length <= 2 * Math.ceil(Math.sqrt(count)) + 3,
              `${server} has ${partners.length} partners`,
            );
          }
          assert.ok(graphDiameter(graph) <= 3, `diameter ${graphDiameter(graph)} for ${graph.size} servers`);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("closes the ring around a stale partner and probes it until it recovers", () => {
    const all = servers(4);
    const stale = new Set([all[1] as NodeId]);
    const { partners, probes } = intraSitePartners(all[0] as NodeId, all, stale);
    assert.deepEqual(partners, ["dc002", "dc003"]);
    assert.deepEqual(probes, ["dc001"]);
    assert.deepEqual(intraSitePartners(all[0] as NodeId, all, new Set()).partners, ["dc001", "dc003"]);
  });
});

describe("bridgehead selection", () => {
  it("is deterministic, spread over the candidates, and moves only the stale one's choices", () => {
    const candidates = servers(6);
    const keys = Array.from({ length: 600 }, (_, index) => `site-${index}`);
    const chosen = keys.map((key) => bridgehead(candidates, key));
    assert.deepEqual(
      chosen,
      keys.map((key) => bridgehead([...candidates].reverse(), key)),
    );
    const load = new Map<string, number>();
    for (const server of chosen) load.set(server as string, (load.get(server as string) ?? 0) + 1);
    assert.equal(load.size, 6);
    for (const count of load.values()) assert.ok(count > 50 && count < 150, `load ${[...load.values()]}`);
    const stale = new Set([candidates[2] as NodeId]);
    keys.forEach((key, index) => {
      const after = bridgehead(candidates, key, stale);
      if (chosen[index] !== candidates[2])
        assert.equal(after, chosen[index], "a choice not held by the stale server stays");
      else assert.notEqual(after, candidates[2]);
    });
    assert.equal(bridgehead(candidates, "x", new Set(candidates)), undefined);
  });
});
