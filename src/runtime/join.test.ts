import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { NodeId } from "../core/ids.ts";
import type { SiteName } from "../core/topology/model.ts";
import { type ClusterSecret, clusterSecret } from "./auth.ts";
import { silentLogger } from "./log.ts";
import { PlexusNode, runtimeTimingsDefault } from "./node.ts";

const base = "dc=example,dc=com";
/** Longer than the test may run: a node that kept retrying would fail it by the test's timeout. */
const joinTimeoutMs = 10 * 60_000;

describe("joining", { timeout: 60_000 }, () => {
  const directory = mkdtempSync(join(tmpdir(), "plexus-join-"));
  const nodes: PlexusNode[] = [];

  const start = async (name: string, secretText: string, joinUrl: string | null): Promise<PlexusNode> => {
    const node = await PlexusNode.start({
      dataDirectory: join(directory, name),
      node: name as NodeId,
      site: "east" as SiteName,
      host: "127.0.0.1",
      port: 0,
      join: joinUrl === null ? [] : [joinUrl],
      secret: clusterSecret(secretText) as ClusterSecret,
      partitions: joinUrl === null ? [base] : [],
      topology: {},
      synchronous: "normal",
      pageWorker: false,
      timings: { ...runtimeTimingsDefault, joinTimeoutMs },
      log: silentLogger,
    });
    nodes.push(node);
    return node;
  };

  after(async () => {
    for (const node of nodes) await node.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  it("gives up at once, saying why, when the cluster refuses this node's secret", async () => {
    const first = await start("j1", "the cluster's own secret, long enough", null);
    await assert.rejects(
      start("j2", "some other secret, also long enough", first.url),
      /could not join: the node refuses this node's requests as unsigned \(HTTP 401\): the cluster secret is not the one the cluster uses/,
    );
  });
});
