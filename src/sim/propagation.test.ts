import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { graphFromEdges } from "../core/topology/graph.ts";
import type { SiteName } from "../core/topology/model.ts";
import { routesTo } from "../core/topology/reference.ts";
import { propagation } from "./propagation.ts";

const minute = 60_000;

describe("propagation of one change under reverse-path pulling", () => {
  // a — b — c, and a — c directly but dear: c's route to a runs through b.
  const names = ["a", "b", "c"] as SiteName[];
  const graph = graphFromEdges(
    names,
    ["peer", "peer", "peer"],
    [
      [0, 1, 1],
      [1, 2, 1],
      [0, 2, 5],
    ],
  );
  const intervals = new Map<string, number>([
    ["0-1", 10 * minute],
    ["1-2", 15 * minute],
    ["0-2", 30 * minute],
  ]);
  const linkOf = (link: number): number => {
    const key = ["0-1", "1-2", "0-2"][link];
    return intervals.get(key as string) as number;
  };

  it("each site pulls at its first phase after its next hop has the change", () => {
    const phases = [0, 0.5, 0.2];
    const result = propagation(graph, 0, routesTo(graph, 0), {
      intervalMs: linkOf,
      phase: (site) => phases[site] as number,
    });
    // b pulls from a at 5, 15, 25 … min: the change written at 0 arrives at 5 min.
    assert.equal(result.arrivalMs[1], 5 * minute);
    // c pulls from b at 3, 18, 33 … min: first after 5 is 18.
    assert.equal(result.arrivalMs[2], 18 * minute);
    assert.deepEqual([...result.boundMs], [0, 10 * minute, 25 * minute]);
  });

  it("a change never arrives later than the bound when routes follow the cheapest paths", () => {
    for (let k = 0; k < 50; k++) {
      const phase = (site: number): number => ((site * 7 + k * 13) % 100) / 100;
      const result = propagation(graph, 2, routesTo(graph, 2), { intervalMs: linkOf, phase });
      for (let site = 0; site < 3; site++)
        assert.ok((result.arrivalMs[site] as number) <= (result.boundMs[site] as number));
    }
  });
});
