import type { NodeId } from "../ids.ts";
import { compileGraph, compileServedGraph, siteIndex } from "./graph.ts";
import { bridgehead, graphDiameter, intraSiteGraph } from "./intra.ts";
import { minutesPerWeek, type SiteLink, siteKey, type TopologyConfig } from "./model.ts";
import { pathFrom, routesTo } from "./reference.ts";

/**
 * A readable text view of a topology: sites and their servers, site links, each site's
 * bridgeheads and intra-site connections, and the routes between sites (the stable state the
 * path-vector protocol converges to). `plexus topology` prints it. With `site`, only that
 * site's routes are listed (all sites' routes are sites² lines).
 */
export interface ViewOptions {
  readonly site?: string;
  readonly stale?: ReadonlySet<NodeId>;
}

const routingKey = "routing";

export function renderTopology(config: TopologyConfig, options: ViewOptions = {}): string {
  const stale = options.stale ?? new Set<NodeId>();
  const graph = compileGraph(config);
  const lines: string[] = [];
  const serversOf = (site: string): NodeId[] =>
    config.servers.filter((server) => siteKey(server.site) === siteKey(site)).map((server) => server.node);
  lines.push(`Sites (${config.sites.length})`);
  for (const name of graph.names) {
    const site = config.sites.find((candidate) => candidate.name === name);
    const servers = serversOf(name);
    lines.push(
      `  ${name}  ${site?.tier ?? "peer"}  servers: ${servers.length === 0 ? "(none)" : servers.join(", ")}`,
    );
  }
  lines.push("", `Site links (${config.links.length})`);
  for (const link of config.links) lines.push(`  ${link.name}  ${describeLink(link)}`);
  if (config.subnets.length > 0) {
    lines.push("", `Subnets (${config.subnets.length})`);
    for (const subnet of config.subnets) lines.push(`  ${subnet.cidr} → ${subnet.site}`);
  }
  lines.push("", "Bridgeheads and connections");
  for (const [index, name] of graph.names.entries()) {
    const servers = serversOf(name);
    if (servers.length === 0) {
      lines.push(`  ${name}: no servers`);
      continue;
    }
    const neighbours: string[] = [];
    for (let at = graph.offsets[index] as number; at < (graph.offsets[index + 1] as number); at++) {
      const neighbour = graph.names[graph.targets[at] as number] as string;
      neighbours.push(`${neighbour} via ${bridgehead(servers, siteKey(neighbour), stale) ?? "(none live)"}`);
    }
    lines.push(`  ${name}: routing bridgehead ${bridgehead(servers, routingKey, stale) ?? "(none live)"}`);
    if (neighbours.length > 0) lines.push(`    toward ${neighbours.join("; ")}`);
    const intra = intraSiteGraph(servers, stale);
    const diameter = intra.size <= 1 ? 0 : graphDiameter(intra);
    lines.push(`    intra-site (${intra.size} live, diameter ${diameter}):`);
    for (const [server, partners] of intra)
      lines.push(`      ${server} ↔ ${partners.length === 0 ? "(alone)" : partners.join(", ")}`);
  }
  // Routes run between served sites only: a site without servers has no bridgehead.
  const served = compileServedGraph(config);
  const only = options.site === undefined ? undefined : siteIndex(served, options.site);
  if (options.site !== undefined && only === undefined) {
    lines.push("", `Routes from ${options.site}: none (the site has no servers)`);
    return `${lines.join("\n")}\n`;
  }
  lines.push(
    "",
    only === undefined ? "Routes (between sites with servers)" : `Routes from ${served.names[only]}`,
  );
  let unreachable = 0;
  for (let destination = 0; destination < served.names.length; destination++) {
    const routes = routesTo(served, destination);
    for (let site = 0; site < served.names.length; site++) {
      if (site === destination || (only !== undefined && site !== only)) continue;
      const path = pathFrom(routes, site);
      const label = `  ${served.names[site]} → ${served.names[destination]}`;
      if (path === null) {
        unreachable++;
        lines.push(`${label}: UNREACHABLE (no link, or the valley-free policy forbids every path)`);
      } else {
        lines.push(
          `${label}: cost ${routes.cost[site]} via ${path
            .slice(1)
            .map((hop) => served.names[hop])
            .join(" → ")}`,
        );
      }
    }
  }
  if (unreachable > 0) lines.push("", `${unreachable} site pairs are unreachable.`);
  return `${lines.join("\n")}\n`;
}

function describeLink(link: SiteLink): string {
  const parts = [
    link.sites.join(" — "),
    `cost ${link.cost}`,
    `every ${link.intervalMinutes} min`,
    link.schedule === null ? "always open" : `open ${link.schedule.map(formatWindow).join(", ")}`,
    link.notify ? "notify" : "no notify",
    link.compress ? "compressed" : "uncompressed",
  ];
  return parts.join(", ");
}

const days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

function formatWindow(window: { fromMinute: number; toMinute: number }): string {
  const at = (minute: number): string => {
    const wrapped = minute % minutesPerWeek;
    const day = days[Math.floor(wrapped / 1440)] as string;
    const inDay = wrapped % 1440;
    return `${day} ${String(Math.floor(inDay / 60)).padStart(2, "0")}:${String(inDay % 60).padStart(2, "0")}`;
  };
  return `${at(window.fromMinute)}–${at(window.toMinute)}`;
}
