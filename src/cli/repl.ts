import { parseArgs } from "node:util";
import { configPartition } from "../core/directory/partition.ts";
import type { NodeId } from "../core/ids.ts";
import { stalePartners } from "../core/node/partners.ts";
import type { EntryView as CoreEntryView, SearchRequest, SearchResult } from "../core/replica/read.ts";
import { ok, type Result } from "../core/result.ts";
import { readTopology } from "../core/topology/entries.ts";
import type { TopologyConfig } from "../core/topology/model.ts";
import { renderTopology } from "../core/topology/view.ts";
import {
  type Environment,
  exitProblem,
  forEachBounded,
  integerFlag,
  nodeUrl,
  type Output,
  reportFailures,
  UsageError,
} from "./cli-support.ts";
import { firstRdn } from "./entry-text.ts";
import {
  connect,
  type EntryView,
  type NodeApi,
  replicateTimeoutMsDefault,
  UnreachableError,
} from "./remote.ts";
import {
  formatConflicts,
  formatReplStatus,
  formatSummary,
  originLags,
  originNames,
  parseOriginAges,
  parseStatus,
  type StatusView,
  summarize,
} from "./repl-text.ts";

/**
 * `plexus repl status | summary | sync`, `plexus conflicts` and `plexus topology --url`: the
 * operator's view of replication, read from the nodes' own GET /v1/status and cn=config.
 */

/** Another node's status is given this long; an unreachable one is reported, not waited for. */
const peerStatusTimeoutMs = 3_000;
/**
 * Other nodes asked at once (statuses, metrics): `repl summary` asks every server of the
 * topology, and thousands of simultaneous requests would exhaust sockets and time out together.
 */
const peerReadsInFlightMax = 32;
/**
 * `repl status` also asks this many origins that are not partners for their newest change
 * (BEHIND then counts only changes missing); beyond it, the partners' figures stand in.
 */
const originStatusReadsMax = 32;
/** cn=config holds the topology: a few objects per site, link and server. */
const configEntriesMax = 100_000;
const conflictsPageMax = 1_000;
const conflictsShownDefault = 1_000;
const conflictsShownMax = 100_000;
const replicateTimeoutMsMax = 60_000;

const urlHelp =
  "  --url URL    the node to ask (default: $PLEXUS_URL)\n" +
  "  --zone ZONE [--dns-server HOST:PORT]...\n" +
  "               instead of --url: the node the locator picks (own site first; docs/client.md)\n" +
  "  --json       print JSON instead of text";
const replUsage = `usage: plexus repl status [NODE] [--url URL] [--json]
       plexus repl summary [--url URL] [--json]
       plexus repl sync [--url URL] [--from NODE] [--timeout MS] [--json]

  status    this node's inbound partners (last success, last failure and its reason,
            consecutive failures) and, per origin, the originating USN it has against
            what each partner has and the origin's newest change (BEHIND), the age of the
            newest change it holds and how much older that is than the newest a partner or
            the origin holds (like repadmin /showrepl); NODE: that
            server instead of the --url node, found in the topology the --url node holds
  summary   every server of the topology (read from cn=config): the largest delta since a
            successful pull and the failing connections, per source and per destination,
            and how many USNs each trails the origins' newest changes by, summed (like
            repadmin /replsummary); a node that does not answer is listed as unreachable
  sync      pull now from every inbound partner (or --from NODE) and wait up to --timeout
            (default ${replicateTimeoutMsDefault} ms) for each pull to end (POST /v1/replicate); exit 1
            unless every pull succeeded
${urlHelp}`;
const conflictsUsage = `usage: plexus conflicts [--url URL] [--limit N] [--json]

Lists the entries that need an operator's eye (GET /v1/conflicts): naming-conflict losers
(cn=...\\0ACNF:<guid>), orphans under LostAndFound, move-cycle breakers; at most --limit
(default ${conflictsShownDefault}), and says when more remain (--json: "more": true).
${urlHelp}`;

const urlOptions = {
  url: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function api(url: string | undefined, env: Environment): NodeApi {
  try {
    return connect(nodeUrl(url, env));
  } catch (error) {
    throw error instanceof UsageError ? error : new UsageError((error as Error).message);
  }
}

async function statusOf(node: NodeApi, timeoutMs?: number): Promise<StatusView> {
  const status = parseStatus(await node.status(timeoutMs));
  if (status === null) throw new UnreachableError(node.url, "it did not answer with a Plexus node status");
  return status;
}

/** The live topology: cn=config read in one search, then read as a node reads it. */
export async function liveTopology(
  node: NodeApi,
): Promise<{ config: TopologyConfig; problems: readonly string[] }> {
  const { body } = await node.search(
    { base: configPartition, scope: "sub", sizeLimit: configEntriesMax },
    {},
  );
  return readTopology(configSearcher(body.entries));
}

function normalDn(dn: string): string {
  return dn.replace(/\s*([,=])\s*/g, "$1").toLowerCase();
}

/** Answers readTopology's one-level searches from entries already fetched. */
export function configSearcher(entries: readonly EntryView[]): {
  search(request: SearchRequest): Result<SearchResult>;
} {
  return {
    search: (request) => {
      const objectClass = /^\(objectClass=([^)]+)\)$/i.exec(request.filter ?? "")?.[1]?.toLowerCase();
      const base = normalDn(request.base);
      const found = entries.filter((entry) => {
        const dn = normalDn(entry.dn);
        const parent = dn.slice(firstRdn(dn).length + 1);
        const classes =
          Object.entries(entry.attributes).find(([type]) => type.toLowerCase() === "objectclass")?.[1] ?? [];
        return (
          parent === base &&
          (objectClass === undefined || classes.some((name) => name.toLowerCase() === objectClass))
        );
      });
      return ok({ entries: found as unknown as CoreEntryView[], truncated: false, next: null });
    },
  };
}

/** Each server's URL as the topology records it (its first address and HTTP port). */
function serverUrls(config: TopologyConfig): Map<string, string> {
  const urls = new Map<string, string>();
  for (const server of config.servers) {
    const address = server.addresses[0];
    if (address !== undefined)
      urls.set(server.node, `http://${address.includes(":") ? `[${address}]` : address}:${server.httpPort}`);
  }
  return urls;
}

/** Statuses read in parallel; a node that does not answer maps to why. */
async function readStatuses(urls: ReadonlyMap<string, string | null>): Promise<{
  statuses: Map<string, StatusView | null>;
  unreachable: Map<string, string>;
}> {
  const statuses = new Map<string, StatusView | null>();
  const unreachable = new Map<string, string>();
  await forEachBounded([...urls], peerReadsInFlightMax, async ([node, url]) => {
    try {
      if (url === null) throw new Error("no address known");
      statuses.set(node, await statusOf(connect(url), peerStatusTimeoutMs));
    } catch (error) {
      statuses.set(node, null);
      unreachable.set(node, (error as Error).message);
    }
  });
  return { statuses: new Map([...statuses].sort(([a], [b]) => a.localeCompare(b))), unreachable };
}

/** Per node, the age of its newest change per origin (GET /metrics); a node that does not answer is left out. */
async function readAges(urls: ReadonlyMap<string, string | null>): Promise<Map<string, Map<string, number>>> {
  const ages = new Map<string, Map<string, number>>();
  await forEachBounded([...urls], peerReadsInFlightMax, async ([node, url]) => {
    if (url === null) return;
    try {
      ages.set(node, parseOriginAges(await connect(url).metrics(peerStatusTimeoutMs)));
    } catch {
      // The ages are extra: without them the time columns say '?'.
    }
  });
  return ages;
}

/**
 * The statuses of the servers whose changes `self` holds and that are neither it nor a partner
 * (at most originStatusReadsMax): each one's newest own change tells whether anything of it is
 * missing. One that does not answer is left out.
 */
async function readOrigins(
  self: StatusView,
  partners: ReadonlySet<string>,
  config: TopologyConfig | undefined,
): Promise<StatusView[]> {
  if (config === undefined) return [];
  const held = new Set(Object.keys(self.utd));
  const urls = serverUrls(config);
  const others = config.servers
    .filter((server) => server.node !== self.node && !partners.has(server.node))
    .filter((server) => (server.invocations ?? []).some((invocation) => held.has(invocation)))
    .map((server) => server.node)
    .slice(0, originStatusReadsMax);
  const { statuses } = await readStatuses(new Map(others.map((other) => [other, urls.get(other) ?? null])));
  return [...statuses.values()].filter((status): status is StatusView => status !== null);
}

/** `repl status NODE`: that server's URL as the topology read through `node` records it. */
async function nodeNamed(node: NodeApi, name: string | undefined): Promise<NodeApi> {
  if (name === undefined) return node;
  const urls = serverUrls((await liveTopology(node)).config);
  const url = [...urls].find(([server]) => server.toLowerCase() === name.toLowerCase())?.[1];
  if (url === undefined)
    throw new UsageError(`no server named ${name} in the topology (servers: ${[...urls.keys()].join(", ")})`);
  return connect(url);
}

async function replStatus(node: NodeApi, json: boolean, stdout: Output): Promise<number> {
  const self = await statusOf(node);
  let config: TopologyConfig | undefined;
  try {
    config = (await liveTopology(node)).config;
  } catch {
    // Names then come from the statuses alone (current invocation ids only).
  }
  const partnerUrls = new Map(self.partners.map((partner) => [partner.node, partner.url]));
  // The partners and the other origins are asked at once: each server that does not answer
  // costs its timeout once, not once per round (two partners down took 10.7 s, asked in turn).
  const [{ statuses, unreachable }, ages, origins] = await Promise.all([
    readStatuses(partnerUrls),
    readAges(new Map([[self.node, node.url], ...partnerUrls])),
    readOrigins(self, new Set(partnerUrls.keys()), config),
  ]);
  // An origin's own newest change is the measure of time behind when the partners lack it too.
  for (const [origin, held] of await readAges(new Map(origins.map((status) => [status.node, status.url]))))
    ages.set(origin, held);
  const names = originNames([self, ...statuses.values()], config?.servers ?? []);
  const lags = originLags(self, statuses, names, ages, origins);
  if (json) {
    stdout.write(
      `${JSON.stringify({ ...self, origins: lags, unreadablePartners: Object.fromEntries(unreachable) })}\n`,
    );
  } else {
    stdout.write(formatReplStatus(self, lags, unreachable, Date.now()));
  }
  return 0;
}

async function replSummary(node: NodeApi, json: boolean, stdout: Output): Promise<number> {
  const { config } = await liveTopology(node);
  const { statuses, unreachable } = await readStatuses(serverUrls(config));
  const reachable = [...statuses.values()].filter((status): status is StatusView => status !== null);
  const summary = summarize(reachable, Date.now());
  if (json) stdout.write(`${JSON.stringify({ ...summary, unreachable: Object.fromEntries(unreachable) })}\n`);
  else stdout.write(formatSummary(summary, unreachable));
  return 0;
}

async function replSync(
  node: NodeApi,
  from: string | null,
  timeoutMs: number,
  json: boolean,
  stdout: Output,
): Promise<number> {
  const answer = await node.replicate(from, timeoutMs);
  const pulls = Array.isArray(answer.pulls) ? (answer.pulls as Record<string, unknown>[]) : [];
  if (json) stdout.write(`${JSON.stringify({ pulls })}\n`);
  else if (pulls.length === 0) stdout.write("no inbound partners: nothing to pull\n");
  for (const pull of json ? [] : pulls) {
    const node = String(pull.node);
    switch (pull.result) {
      case "success":
        stdout.write(`${node}: pulled, done at ${String(pull.at)}\n`);
        break;
      case "failure":
        stdout.write(`${node}: FAILED at ${String(pull.at)}: ${String(pull.error)}\n`);
        break;
      case "backing-off":
        stdout.write(
          `${node}: not asked: backing off after ${String(pull.consecutiveFailures)} failures (${String(pull.lastFailure)}); retried on its schedule\n`,
        );
        break;
      case "no-longer-partner":
        stdout.write(`${node}: no longer an inbound partner (the topology changed during the sync)\n`);
        break;
      case "timeout":
        stdout.write(`${node}: still pulling after ${timeoutMs} ms\n`);
        break;
      default:
        stdout.write(`${node}: ${String(pull.result)}\n`);
    }
  }
  return pulls.every((pull) => pull.result === "success") ? 0 : exitProblem;
}

/** `plexus repl SUBCOMMAND ...`; resolves with the exit code. */
export function replCommand(
  args: readonly string[],
  stdout: Output,
  stderr: Output,
  env: Environment = process.env,
): Promise<number> {
  return reportFailures("repl", replUsage.split("\n")[0] ?? "", stderr, async () => {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { ...urlOptions, from: { type: "string" }, timeout: { type: "string" } },
      allowPositionals: true,
    });
    if (values.help === true) {
      stdout.write(`${replUsage}\n`);
      return 0;
    }
    const [sub, target, ...extra] = positionals;
    const unexpected = sub === "status" ? extra[0] : (target ?? extra[0]);
    if (unexpected !== undefined) throw new UsageError(`unexpected argument '${unexpected}'`);
    if (sub !== "sync" && (values.from !== undefined || values.timeout !== undefined))
      throw new UsageError("--from and --timeout go with 'repl sync'");
    const json = values.json === true;
    switch (sub) {
      case "status":
        return replStatus(await nodeNamed(api(values.url, env), target), json, stdout);
      case "summary":
        return replSummary(api(values.url, env), json, stdout);
      case "sync":
        return replSync(
          api(values.url, env),
          values.from ?? null,
          integerFlag(values.timeout, "--timeout", 1, replicateTimeoutMsMax) ?? replicateTimeoutMsDefault,
          json,
          stdout,
        );
      default:
        throw new UsageError(
          sub === undefined ? "which one: status, summary or sync?" : `unknown subcommand '${sub}'`,
        );
    }
  });
}

/** `plexus conflicts`: every page of GET /v1/conflicts up to --limit. */
export function conflictsCommand(
  args: readonly string[],
  stdout: Output,
  stderr: Output,
  env: Environment = process.env,
): Promise<number> {
  return reportFailures("conflicts", conflictsUsage.split("\n")[0] ?? "", stderr, async () => {
    const { values } = parseArgs({ args: [...args], options: { ...urlOptions, limit: { type: "string" } } });
    if (values.help === true) {
      stdout.write(`${conflictsUsage}\n`);
      return 0;
    }
    const limit = integerFlag(values.limit, "--limit", 1, conflictsShownMax) ?? conflictsShownDefault;
    const node = api(values.url, env);
    const conflicts: Record<string, unknown>[] = [];
    let after: string | null = null;
    while (conflicts.length < limit) {
      const { body } = await node.conflicts(after, Math.min(conflictsPageMax, limit - conflicts.length), {});
      conflicts.push(...((body.conflicts as Record<string, unknown>[] | undefined) ?? []));
      after = typeof body.next === "string" ? body.next : null;
      if (after === null) break;
    }
    // A full last page leaves a `next` even when nothing follows: ask for one more to know
    // whether the list stops at --limit, so that the first N are not taken for all there are.
    const more =
      after !== null &&
      (((await node.conflicts(after, 1, {})).body.conflicts as unknown[] | undefined) ?? []).length > 0;
    if (values.json === true) {
      stdout.write(`${JSON.stringify({ conflicts, more })}\n`);
    } else {
      stdout.write(formatConflicts(conflicts, more ? limit : null));
    }
    return 0;
  });
}

/** `plexus topology --url URL [--site NAME]`: the live topology, read from a node's cn=config. */
export function liveTopologyCommand(
  url: string,
  site: string | undefined,
  stdout: Output,
  stderr: Output,
): Promise<number> {
  return reportFailures("topology", "usage: plexus topology --url URL [--site NAME]", stderr, async () => {
    const node = api(url, {});
    const { config, problems } = await liveTopology(node);
    if (site !== undefined && !config.sites.some((known) => known.name.toLowerCase() === site.toLowerCase()))
      throw new UsageError(`no site named ${site} in the topology of ${url}`);
    // Bridgeheads and rings as this node has them: without the servers it found stale, they
    // would be the configured ones, a failed-over bridgehead shown as if it still held the duty.
    const status = await statusOf(node);
    const stale = stalePartners(
      status.partners.map((partner) => ({
        partner: partner.node as NodeId,
        consecutiveFailures: partner.consecutiveFailures,
      })),
      config.settings.staleAfterFailures,
    );
    if (stale.size > 0) {
      const why = (node: string): string =>
        status.partners.find((partner) => partner.node === node)?.lastFailure ?? "no reason recorded";
      stdout.write(
        `As ${status.node} sees it: stale (failed ${config.settings.staleAfterFailures}+ pulls in a row): ${[...stale].join(", ")}\n` +
          [...stale].map((node) => `  ${node}: ${why(node)}\n`).join("") +
          "\n",
      );
    }
    stdout.write(renderTopology(config, { ...(site === undefined ? {} : { site }), stale }));
    for (const problem of problems) stderr.write(`plexus topology: left out: ${problem}\n`);
    return 0;
  });
}
