import { LocalCluster as SharedCluster } from "../../src/cli/local-cluster.ts";

/**
 * The integration tests' cluster: src/cli/local-cluster.ts (shared with `plexus demo`).
 * PLEXUS_KEEP_CLUSTER=1 keeps the directories and writes each node's log next to its data.
 */
export {
  type Answer,
  type ClusterNode,
  entryPath,
  eventually,
  http,
  startTimeoutMs,
  stopTimeoutMs,
} from "../../src/cli/local-cluster.ts";

const keep = process.env.PLEXUS_KEEP_CLUSTER === "1";

export class LocalCluster extends SharedCluster {
  constructor(topology: unknown, timings: Record<string, number>) {
    super(topology, timings, { keep });
  }

  override async stopAll(): Promise<string[]> {
    const killed = await super.stopAll();
    if (keep) process.stderr.write(`cluster kept in ${this.directory}\n`);
    return killed;
  }
}
