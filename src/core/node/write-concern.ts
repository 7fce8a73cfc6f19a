import type { InvocationId, NodeId, Usn } from "../ids.ts";
import { type UtdVector, utdGet } from "../replication/utd.ts";
import { fail, ok, type Result } from "../result.ts";
import { siteKey } from "../topology/model.ts";

/**
 * Write concern: how far a client write must have travelled before the node answers.
 *
 *   local     durable on this node's disk (the default: a local write never waits for the WAN)
 *   site      also applied by another node of this node's site
 *   sites=N   applied in N sites (this one counts)
 *   all       applied by every server of the topology
 *
 * The header is `Plexus-Write-Concern: site` or `…; timeout=2000` (milliseconds). A node
 * "has applied" the write when its UTD covers the write's (invocation, USN). Which nodes have
 * it is reported by the runtime; whether that meets the concern is decided here.
 */
export type WriteConcern =
  | { readonly kind: "local" }
  | { readonly kind: "site" }
  | { readonly kind: "sites"; readonly count: number }
  | { readonly kind: "all" };

export interface WriteConcernRequest {
  readonly concern: WriteConcern;
  readonly timeoutMs: number;
}

export const writeConcernTimeoutMsDefault = 5_000;
export const writeConcernTimeoutMsMax = 60_000;
const headerLengthMax = 100;
const sitesCountMax = 100_000;

export function parseWriteConcern(header: string | undefined): Result<WriteConcernRequest> {
  if (header === undefined)
    return ok({ concern: { kind: "local" }, timeoutMs: writeConcernTimeoutMsDefault });
  if (header.length > headerLengthMax) return fail("invalid-request", "write concern header too long");
  const [level = "", ...parameters] = header.split(";").map((part) => part.trim().toLowerCase());
  let timeoutMs = writeConcernTimeoutMsDefault;
  // One timeout: of two, which was meant? (Neither the last nor the first: refused.)
  if (parameters.length > 1)
    return fail("invalid-request", `write concern '${header}': one parameter at most (timeout=MS)`);
  for (const parameter of parameters) {
    const match = /^timeout=([0-9]{1,6})$/.exec(parameter);
    const value = match === null ? Number.NaN : Number(match[1]);
    if (!(value >= 1 && value <= writeConcernTimeoutMsMax))
      return fail(
        "invalid-request",
        `write concern parameter '${parameter}': timeout=1..${writeConcernTimeoutMsMax} (ms)`,
      );
    timeoutMs = value;
  }
  if (level === "local" || level === "site" || level === "all")
    return ok({ concern: { kind: level }, timeoutMs });
  const sites = /^sites=([0-9]{1,6})$/.exec(level);
  const count = sites === null ? Number.NaN : Number(sites[1]);
  if (count >= 1 && count <= sitesCountMax) return ok({ concern: { kind: "sites", count }, timeoutMs });
  return fail("invalid-request", `unknown write concern '${level}' (local, site, sites=N or all)`);
}

export function formatWriteConcern(concern: WriteConcern): string {
  return concern.kind === "sites" ? `sites=${concern.count}` : concern.kind;
}

export interface ReplicaProgress {
  readonly node: NodeId;
  readonly site: string;
  /** The node's UTD as last reported; null when it has not answered. */
  readonly utd: UtdVector | null;
}

export interface ConcernOutcome {
  readonly met: boolean;
  /** Nodes known to have applied the write, this one first. */
  readonly nodes: readonly NodeId[];
  /** Sites of those nodes (site keys, sorted). */
  readonly sites: readonly string[];
}

/**
 * Whether the write (`invocation`, `usn`) made on `self` meets `concern`, given what the other
 * servers reported. `servers` is the topology's server list (with this node); a concern the
 * topology cannot meet at all (`site` in a site of one) is simply never met here, and refused
 * before the write by `checkConcernAttainable`. `all` counts the listed servers, this node
 * among them: on the only server it is met at once.
 */
export function evaluateWriteConcern(
  concern: WriteConcern,
  write: { readonly invocation: InvocationId; readonly usn: Usn },
  self: { readonly node: NodeId; readonly site: string },
  servers: readonly { readonly node: NodeId; readonly site: string }[],
  reports: readonly ReplicaProgress[],
): ConcernOutcome {
  const nodes: NodeId[] = [self.node];
  const sites = new Set([siteKey(self.site)]);
  for (const report of reports) {
    if (report.node === self.node || report.utd === null) continue;
    if (utdGet(report.utd, write.invocation) < write.usn) continue;
    nodes.push(report.node);
    sites.add(siteKey(report.site));
  }
  const has = new Set(nodes);
  let met: boolean;
  switch (concern.kind) {
    case "local":
      met = true;
      break;
    case "site":
      met = nodes.some((node, index) => {
        const report = reports.find((candidate) => candidate.node === node);
        return index > 0 && report !== undefined && siteKey(report.site) === siteKey(self.site);
      });
      break;
    case "sites":
      met = sites.size >= concern.count;
      break;
    case "all":
      met = servers.every((server) => has.has(server.node));
      break;
  }
  return { met, nodes, sites: [...sites].sort() };
}

/**
 * Refuses a concern the topology's servers cannot meet, before the write is applied: applying
 * it and then waiting out its timeout only to answer "not met" would tell the client late what
 * is known at once. `sites=N` is refused when the servers sit in fewer than N sites, `site` when
 * no server but `self` is in `self`'s site (as with `sites=N`, a node that joins later does not
 * count: the client hears now, and can ask again once it has joined). `all` is never refused:
 * it counts the servers there are, so on a node that is the only server it is met at once.
 * An empty server list (the topology not read yet) refuses nothing.
 */
export function checkConcernAttainable(
  concern: WriteConcern,
  self: { readonly node: NodeId; readonly site: string },
  servers: readonly { readonly node: NodeId; readonly site: string }[],
): Result<void> {
  switch (concern.kind) {
    case "local":
    case "all":
      return ok(undefined);
    case "site":
      return servers.length === 0 ? ok(undefined) : checkSiteAttainable(self, servers);
    case "sites":
      return servers.length === 0 ? ok(undefined) : checkSitesAttainable(concern.count, servers);
  }
}

function checkSiteAttainable(
  self: { readonly node: NodeId; readonly site: string },
  servers: readonly { readonly node: NodeId; readonly site: string }[],
): Result<void> {
  const site = siteKey(self.site);
  if (servers.some((server) => server.node !== self.node && siteKey(server.site) === site))
    return ok(undefined);
  return fail(
    "invalid-request",
    `write concern site cannot be met: no other server of the topology is in site ${self.site}`,
  );
}

function checkSitesAttainable(count: number, servers: readonly { readonly site: string }[]): Result<void> {
  const sites = new Set(servers.map((server) => siteKey(server.site))).size;
  if (count <= sites) return ok(undefined);
  return fail(
    "invalid-request",
    `write concern sites=${count} cannot be met: the topology's servers are in ${sites} ${sites === 1 ? "site" : "sites"}`,
  );
}

/** The servers whose progress can matter for `concern` (never this node itself). */
export function serversToAsk<T extends { readonly node: NodeId; readonly site: string }>(
  concern: WriteConcern,
  self: { readonly node: NodeId; readonly site: string },
  servers: readonly T[],
): T[] {
  if (concern.kind === "local") return [];
  const others = servers.filter((server) => server.node !== self.node);
  return concern.kind === "site"
    ? others.filter((server) => siteKey(server.site) === siteKey(self.site))
    : others;
}
