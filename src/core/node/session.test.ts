import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InvocationId, NodeId, Usn } from "../ids.ts";
import type { UtdVector } from "../replication/utd.ts";
import { judgeableGaps, lostSessionReason, publishedInvocations } from "./session.ts";

const old = "a".repeat(32) as InvocationId;
const current = "b".repeat(32) as InvocationId;
const foreign = "c".repeat(32) as InvocationId;
const servers = [
  { node: "n1" as NodeId, invocations: [old, current] },
  { node: "n2" as NodeId, invocations: [] },
];
const utd = (entries: Record<string, number>): UtdVector => entries as UtdVector;

describe("session tokens that can never be met", () => {
  const published = publishedInvocations({ servers } as never);

  it("lists each published invocation with its server", () => {
    assert.deepEqual(
      [...published],
      [
        [old, "n1"],
        [current, "n1"],
      ],
    );
    assert.equal(publishedInvocations(null).size, 0);
  });

  it("judges only gaps of published instances beyond this node's UTD", () => {
    const token = utd({ [old]: 31, [current]: 5, [foreign]: 9 });
    assert.deepEqual(judgeableGaps(token, utd({ [old]: 26, [current]: 5 }), published), [[old, 31]]);
    assert.deepEqual(judgeableGaps(token, utd({ [old]: 31, [current]: 7 }), published), []);
  });

  it("is lost only when no server's report covers a gap", () => {
    const gaps: [InvocationId, Usn][] = [[old, 31 as Usn]];
    const lost = lostSessionReason(gaps, published, [utd({ [old]: 26 }), utd({ [old]: 20 })]);
    assert.match(lost ?? "", /USN 31 of instance a{32} of server n1.*the most any holds is USN 26/);
    assert.equal(lostSessionReason(gaps, published, [utd({ [old]: 26 }), utd({ [old]: 31 })]), null);
  });
});
