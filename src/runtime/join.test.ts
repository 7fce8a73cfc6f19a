import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../test/support/in-process-node.ts";
import { entryPath, eventually, http } from "../cli/local-cluster.ts";
import { type ClusterSecret, clusterSecret } from "./auth.ts";
import { runtimeTimingsDefault } from "./node.ts";

const base = "dc=example,dc=com";
/** Longer than the test may run: a node that kept retrying would fail it by the test's timeout. */
const joinTimeoutMs = 10 * 60_000;

describe("joining and leaving", { timeout: 120_000 }, () => {
  const nodes: InProcessNode[] = [];

  const start = async (name: string, secretText: string, joinUrl: string | null): Promise<InProcessNode> => {
    const node = await startInProcessNode(name, "east", {
      join: joinUrl === null ? [] : [joinUrl],
      secret: clusterSecret(secretText) as ClusterSecret,
      partitions: joinUrl === null ? [base] : [],
      topology: { settings: { intraSitePullIntervalMs: 1_000, notifyDelayMs: 10 } },
      pageWorker: false,
      timings: { ...runtimeTimingsDefault, joinTimeoutMs },
    });
    nodes.push(node);
    return node;
  };

  after(async () => {
    for (const node of nodes) await node.close();
  });

  it("gives up at once, saying why, when the cluster refuses this node's secret", async () => {
    const first = await start("j1", "the cluster's own secret, long enough", null);
    await assert.rejects(
      start("j2", "some other secret, also long enough", first.url),
      /could not join: the node refuses this node's requests as unsigned \(HTTP 401\): the cluster secret is not the one the cluster uses/,
    );
  });

  it("a node whose server entry was removed takes no more writes, and still serves reads", async () => {
    const secret = "the leaving test's secret, long enough";
    const first = await start("l1", secret, null);
    const second = await start("l2", secret, first.url);
    const person = (cn: string) => ({
      dn: `cn=${cn},${base}`,
      attributes: { objectClass: ["person"], sn: [cn] },
    });
    assert.equal((await http("POST", `${second.url}/v1/entries`, person("before"))).status, 201);
    const removed = await http("DELETE", entryPath(first.url, "cn=l2,cn=servers,cn=config"));
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    let refused: { status: number; body: unknown } | undefined;
    await eventually("l2 refuses writes once it hears it was removed", async () => {
      const answer = await http("POST", `${second.url}/v1/entries`, person(`after-${Date.now()}`));
      refused = answer;
      return answer.status === 503;
    });
    assert.ok(refused !== undefined);
    const body = refused.body as { code?: string; detail?: string };
    assert.equal(body.code, "not-a-server");
    assert.match(body.detail ?? "", /l2 is no longer a server of the topology/);
    assert.equal((await http("GET", entryPath(second.url, `cn=before,${base}`))).status, 200, "reads go on");
    assert.equal((await http("POST", `${first.url}/v1/entries`, person("elsewhere"))).status, 201);
  });
});
