import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InvocationId, NodeId } from "../ids.ts";
import { graphFromEdges } from "./graph.ts";
import type { SiteName } from "./model.ts";
import { nextHopTable, originExclusions, originSitesOf } from "./origins.ts";

const id = (n: number): InvocationId => n.toString(16).padStart(32, "0") as InvocationId;

describe("reverse-path origin filters", () => {
  // a — b — c in a line, and a — d: from b, the next hop toward a and d is a, toward c is c.
  const names = ["a", "b", "c", "d"] as SiteName[];
  const graph = graphFromEdges(
    names,
    ["peer", "peer", "peer", "peer"],
    [
      [0, 1, 1],
      [1, 2, 1],
      [0, 3, 1],
    ],
  );
  const table = nextHopTable(graph);
  const toward = (site: string): string | undefined => {
    const hop = table.hop(1, names.indexOf(site as SiteName));
    return hop < 0 ? undefined : names[hop];
  };
  const origins = [
    { site: "a", invocations: [id(1)] },
    { site: "b", invocations: [id(2), id(3)] },
    { site: "c", invocations: [id(4)] },
    { site: "d", invocations: [id(5)] },
    { site: "e", invocations: [id(6)] },
  ];

  it("the next-hop table follows the least-cost routes", () => {
    assert.deepEqual(
      [0, 2, 3].map((to) => names[table.hop(1, to)]),
      ["a", "c", "a"],
    );
    assert.equal(table.hop(1, 1), -1);
  });

  it("an inter-site partner leaves out its own site's origins and those routed elsewhere", () => {
    assert.deepEqual(originExclusions({ kind: "inter", site: "a" as SiteName }, "b", toward, origins), [
      id(2),
      id(3),
      id(4),
    ]);
    assert.deepEqual(originExclusions({ kind: "inter", site: "c" as SiteName }, "b", toward, origins), [
      id(1),
      id(2),
      id(3),
      id(5),
    ]);
  });

  it("origins it cannot route (site e has no route) are left in; intra-site pulls are never filtered", () => {
    for (const site of ["a", "c"]) {
      assert.ok(
        !originExclusions({ kind: "inter", site: site as SiteName }, "b", toward, origins).includes(id(6)),
      );
    }
    assert.deepEqual(originExclusions({ kind: "intra", site: "b" as SiteName }, "b", toward, origins), []);
    assert.deepEqual(originExclusions({ kind: "probe", site: "b" as SiteName }, "b", toward, origins), []);
  });

  it("origins of a site it knows but has no route toward (policy, no link up) are left out", () => {
    for (const site of ["a", "c"]) {
      assert.ok(
        originExclusions(
          { kind: "inter", site: site as SiteName },
          "b",
          toward,
          origins,
          new Set(["E"]),
        ).includes(id(6)),
        `from ${site}: e is reached through no neighbour, so none may pass it on`,
      );
    }
  });

  it("a pull from outside its group takes the origins of the sites named and those it cannot place only", () => {
    // From b, c is the next hop toward c and e has no route: a pull from outside b's group that
    // names e takes e's origins and unknown ones, never those of b's group, routed or not.
    const outside = {
      kind: "probe",
      site: "e" as SiteName,
      onlyOrigins: { sites: ["E" as SiteName] },
    } as const;
    assert.deepEqual(originExclusions(outside, "b", toward, origins, new Set(["e"])), [
      id(1),
      id(2),
      id(3),
      id(4),
      id(5),
    ]);
    assert.ok(!originExclusions(outside, "b", toward, origins).includes(id(7)), "an unknown origin passes");
  });

  it("a node never leaves out its own invocations, those its database had before a restore included", () => {
    // b's server restored from a backup: id(2) is its database's old instance, id(3) its new
    // one. The changes of id(2) newer than the backup are held by a and c only (b passed them
    // on before the restore); left out like the rest of b's site's origins, they never came back.
    const restored = origins.map((origin) =>
      origin.site === "b" ? { ...origin, own: true as const } : origin,
    );
    for (const site of ["a", "c"]) {
      const excluded = originExclusions({ kind: "inter", site: site as SiteName }, "b", toward, restored);
      assert.ok(
        !excluded.includes(id(2)) && !excluded.includes(id(3)),
        `from ${site}: ${excluded.join(",")}`,
      );
    }
    const outside = {
      kind: "probe",
      site: "e" as SiteName,
      onlyOrigins: { sites: ["e" as SiteName] },
    } as const;
    assert.ok(!originExclusions(outside, "b", toward, restored).includes(id(2)));
    // The planted defect leaves them out again.
    const planted = originExclusions(
      { kind: "inter", site: "a" as SiteName },
      "b",
      toward,
      restored,
      new Set(),
      {
        leaveOutOwnOrigins: true,
      },
    );
    assert.ok(planted.includes(id(2)) && planted.includes(id(3)));
  });

  it("another server of its own site is still left out: its changes arrive inside the site", () => {
    const mate = [...origins, { site: "b", invocations: [id(9)] }].map((origin) =>
      origin.invocations.includes(id(2)) ? { ...origin, own: true as const } : origin,
    );
    assert.ok(originExclusions({ kind: "inter", site: "a" as SiteName }, "b", toward, mate).includes(id(9)));
  });

  it("servers name the sites of their invocations, the pulling node's marked as its own", () => {
    const servers = [
      { node: "n1", site: "a", addresses: [], httpPort: 1, invocations: [id(1)] },
      { node: "n2", site: "b", addresses: [], httpPort: 1 },
    ] as never;
    assert.deepEqual(originSitesOf({ servers }), [
      { site: "a", invocations: [id(1)] },
      { site: "b", invocations: [] },
    ]);
    assert.deepEqual(originSitesOf({ servers }, "n1" as NodeId), [
      { site: "a", invocations: [id(1)], own: true },
      { site: "b", invocations: [] },
    ]);
  });
});
