import type { ClusterNode } from "../../src/cli/local-cluster.ts";
import type { SrvResolver } from "../../src/client/client.ts";

/**
 * SRV answers shaped as the locator registers them (`_plexus._tcp.<zone>`,
 * `_plexus._tcp.<site>._sites.<zone>`, targets `<node>.<zone>`), read straight from a local
 * cluster's nodes — dead ones included, as a dead node's records stay until scavenged. For
 * tests and benchmarks of the client's failover without a DNS server in the way.
 */
export function clusterResolver(nodes: ReadonlyMap<string, ClusterNode>, zone: string): SrvResolver {
  const records = (site: string | null) =>
    [...nodes.values()]
      .filter((node) => node.url !== "" && (site === null || node.site === site))
      .map((node) => ({
        target: `${node.name}.${zone}`,
        port: Number(new URL(node.url).port),
        priority: 0,
        weight: 100,
      }));
  return {
    srv: async (name) => {
      if (name === `_plexus._tcp.${zone}`) return records(null);
      const site = /^_plexus\._tcp\.([a-z0-9-]+)\._sites\./.exec(name)?.[1];
      return site === undefined ? [] : records(site);
    },
    addresses: async () => ["127.0.0.1"],
  };
}
