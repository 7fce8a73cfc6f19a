import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NodeId } from "../../src/core/ids.ts";
import type { SiteName } from "../../src/core/topology/model.ts";
import { type ClusterSecret, clusterSecret } from "../../src/runtime/auth.ts";
import { silentLogger } from "../../src/runtime/log.ts";
import { type NodeOptions, PlexusNode, runtimeTimingsDefault } from "../../src/runtime/node.ts";

/**
 * One node in the test's own process, the first of a new directory, in a fresh temporary data
 * directory on a free loopback port: for tests of the edge (API, batch, locate, CLI) that need
 * a real node but not a separate process. `synchronous=normal` (tests need no fsync), silent.
 */
export interface InProcessNode {
  readonly node: PlexusNode;
  readonly url: string;
  readonly secret: ClusterSecret;
  /** Stops the node and removes its data directory. */
  close(): Promise<void>;
}

export async function startInProcessNode(
  name: string,
  site: string,
  overrides: Partial<NodeOptions> = {},
): Promise<InProcessNode> {
  const directory = mkdtempSync(join(tmpdir(), `plexus-${name}-`));
  const secret = clusterSecret(`a cluster secret for the test node ${name}`) as ClusterSecret;
  try {
    const node = await PlexusNode.start({
      dataDirectory: directory,
      node: name as NodeId,
      site: site as SiteName,
      host: "127.0.0.1",
      port: 0,
      join: [],
      secret,
      partitions: ["dc=example,dc=com"],
      topology: {},
      synchronous: "normal",
      pageWorker: true,
      timings: runtimeTimingsDefault,
      log: silentLogger,
      ...overrides,
    });
    return {
      node,
      url: node.url,
      secret: overrides.secret ?? secret,
      async close() {
        await node.stop();
        rmSync(directory, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(directory, { recursive: true, force: true });
    throw error;
  }
}
