import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../test/support/in-process-node.ts";
import { type ClusterSecret, clusterSecret } from "./auth.ts";
import type { PlexusNode } from "./node.ts";

/**
 * Three nodes of one site, in this process, each pulling from the other two. When r1 writes,
 * r3 passes the changes on to r2 with a notification naming r1 (`via`); r2 pulls from r1
 * itself, so it puts off the pull from r3 by relayPullDelayMs — here a minute, longer than the
 * test. Counting r2's pulls from r3 shows whether the notification carried `via` from one
 * process to the other, which the state machine's own tests cannot see.
 */
const base = "dc=example,dc=com";
const secret = clusterSecret("the relay test's cluster secret") as ClusterSecret;
const minuteMs = 60_000;
const writesMade = 10;
/** Time for startup's own pulls (a new partner is pulled at once) to end before counting. */
const settleMs = 1_500;
/** Time for relayed notifications and any pull they would cause to happen after the writes. */
const afterWritesMs = 500;

async function pullsFrom(node: PlexusNode, partner: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const pattern = new RegExp(
    `^plexus_pulls_total\\{[^}]*partner="${partner}"[^}]*outcome="ok"[^}]*\\} (\\d+)$`,
    "m",
  );
  return Number(pattern.exec(text)?.[1] ?? 0);
}

describe("relayed notifications", () => {
  const started: InProcessNode[] = [];

  const start = async (name: string, joinUrl: string | null): Promise<PlexusNode> => {
    const node = await startInProcessNode(name, "east", {
      join: joinUrl === null ? [] : [joinUrl],
      secret,
      partitions: joinUrl === null ? [base] : [],
      topology: {
        settings: { intraSitePullIntervalMs: minuteMs, notifyDelayMs: 5, relayPullDelayMs: minuteMs },
      },
    });
    started.push(node);
    return node.node;
  };

  before(async () => {
    const first = await start("r1", null);
    await start("r2", first.url);
    await start("r3", first.url);
    await new Promise((resolve) => setTimeout(resolve, settleMs));
  });

  after(async () => {
    for (const node of started) await node.close();
  });

  it("a node does not fetch from one partner what another partner brings it directly", async () => {
    const [writer, reader, relay] = started.map((node) => node.node) as [PlexusNode, PlexusNode, PlexusNode];
    const before = await pullsFrom(reader, "r3");
    for (let index = 0; index < writesMade; index++) {
      const response = await fetch(`${writer.url}/v1/entries`, {
        method: "POST",
        headers: { "content-type": "application/json", "plexus-write-concern": "site; timeout=10000" },
        body: JSON.stringify({
          dn: `cn=relay${index},${base}`,
          attributes: { objectClass: ["person"], sn: ["x"] },
        }),
      });
      assert.equal(response.status, 201, await response.text());
    }
    await new Promise((resolve) => setTimeout(resolve, afterWritesMs));
    for (const node of [reader, relay]) {
      const found = await fetch(
        `${node.url}/v1/entries/${encodeURIComponent(`cn=relay${writesMade - 1},${base}`)}`,
      );
      assert.equal(found.status, 200, `${node.url} has the last write`);
    }
    assert.equal(await pullsFrom(reader, "r3"), before, "r2 put off the pulls r3's notifications asked for");
    assert.ok((await pullsFrom(reader, "r1")) > 0, "r2 pulls from r1");
  });
});
