/**
 * Replication health as people read it, modelled on repadmin: /showrepl (`plexus repl
 * status`: one node's inbound partners and how far it is behind per origin) and /replsummary
 * (`plexus repl summary`: for every node the largest delta since a successful pull and the
 * failures, as destination and as source). Pure functions over GET /v1/status answers; the
 * time "now" is an argument.
 */

/** One inbound partner as GET /v1/status reports it. */
export interface PartnerView {
  readonly node: string;
  readonly url: string | null;
  readonly kind: string | null;
  readonly site: string | null;
  readonly pulling: boolean;
  readonly lastSuccessAt: string | null;
  readonly lastFailureAt: string | null;
  readonly lastFailure: string | null;
  readonly consecutiveFailures: number;
}

/** The part of GET /v1/status these views read. */
export interface StatusView {
  readonly node: string;
  readonly site: string;
  readonly url: string;
  readonly ready: boolean;
  readonly invocationId: string;
  readonly usn: number;
  /**
   * The USN of the newest change made on that node (its `usn` also counts changes it applied
   * from others); null from a node that does not say.
   */
  readonly originatedUsn: number | null;
  readonly utd: Readonly<Record<string, number>>;
  readonly quarantined: boolean;
  /** While the node's disk is full (it refuses client writes): since when, and how many it refused. */
  readonly storageFull: { readonly since: string; readonly refusedWrites: number } | null;
  readonly partners: readonly PartnerView[];
  readonly unreachableSites: readonly string[];
}

type Fields = Record<string, unknown>;

function isRecord(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/** A status answer checked field by field (it comes from the network): null when it is not one. */
export function parseStatus(body: unknown): StatusView | null {
  if (!isRecord(body) || typeof body.node !== "string" || typeof body.invocationId !== "string") return null;
  if (!isRecord(body.utd) || !Array.isArray(body.partners)) return null;
  const utd: Record<string, number> = {};
  for (const [invocation, usn] of Object.entries(body.utd))
    if (typeof usn === "number") utd[invocation] = usn;
  const partners: PartnerView[] = [];
  for (const raw of body.partners) {
    if (!isRecord(raw) || typeof raw.node !== "string") return null;
    partners.push({
      node: raw.node,
      url: text(raw.url),
      kind: text(raw.kind),
      site: text(raw.site),
      pulling: raw.pulling === true,
      lastSuccessAt: text(raw.lastSuccessAt),
      lastFailureAt: text(raw.lastFailureAt),
      lastFailure: text(raw.lastFailure),
      consecutiveFailures: typeof raw.consecutiveFailures === "number" ? raw.consecutiveFailures : 0,
    });
  }
  return {
    node: body.node,
    site: text(body.site) ?? "?",
    url: text(body.url) ?? "?",
    ready: body.ready === true,
    invocationId: body.invocationId,
    usn: typeof body.usn === "number" ? body.usn : 0,
    originatedUsn: typeof body.originatedUsn === "number" ? body.originatedUsn : null,
    utd,
    quarantined: body.quarantined === true,
    storageFull: storageFullOf(body.storageFull),
    partners,
    unreachableSites: Array.isArray(body.unreachableSites) ? body.unreachableSites.map(String) : [],
  };
}

function storageFullOf(value: unknown): StatusView["storageFull"] {
  if (!isRecord(value)) return null;
  return {
    since: typeof value.since === "string" ? value.since : "?",
    refusedWrites: typeof value.refusedWrites === "number" ? value.refusedWrites : 0,
  };
}

/** A duration for a table: `0s`, `45s`, `3m12s`, `2h03m`, `4d07h`. */
export function formatDelta(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, "0")}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h${String(minutes % 60).padStart(2, "0")}m`;
  return `${Math.floor(hours / 24)}d${String(hours % 24).padStart(2, "0")}h`;
}

/** `2026-11-27T22:50:01.123Z (3s ago)`, or `never`. */
export function formatWhen(iso: string | null, now: number): string {
  if (iso === null) return "never";
  const at = Date.parse(iso);
  return Number.isNaN(at) ? iso : `${iso} (${formatDelta(now - at)} ago)`;
}

/** Rows of a left-aligned table, columns two spaces apart. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows)
    for (const [index, cell] of row.entries()) widths[index] = Math.max(widths[index] ?? 0, cell.length);
  return rows
    .map((row) =>
      row
        .map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0)))
        .join("  "),
    )
    .map((line) => `${line.trimEnd()}\n`)
    .join("");
}

/** Who an invocation id belongs to: from the topology's server objects and from status answers. */
export type OriginNames = ReadonlyMap<string, string>;

export interface OriginLag {
  readonly invocation: string;
  /** The server whose database has (had) this invocation id, when known. */
  readonly node: string | null;
  /** The originating USN up to which this node has the origin's changes. */
  readonly here: number;
  /** The same for each partner (null: its status could not be read). */
  readonly partners: Readonly<Record<string, number | null>>;
  /**
   * How far this node trails the origin's newest change (in USNs), when the origin itself was
   * asked; else how far it trails the most any asked node has. 0: it lacks none of them.
   */
  readonly behind: number;
  /** How long ago the newest change from this origin held here was made (null: not known). */
  readonly newestAgeMs: number | null;
  /**
   * How much older that change is than the newest one a partner, or the origin itself, holds
   * (0 when not behind; null when the ages are not known): the lag in time, as repadmin shows it.
   */
  readonly timeBehindMs: number | null;
}

/**
 * Per node (this one, its partners, the origins asked), per origin: the newest change's age,
 * from GET /metrics.
 */
export type OriginAges = ReadonlyMap<string, ReadonlyMap<string, number>>;

const originAgeMetric = "plexus_origin_last_change_age_seconds";

/**
 * Per origin invocation id, milliseconds since the newest change from that origin held by the
 * node was made there: the `plexus_origin_last_change_age_seconds` gauge of its /metrics
 * (docs/operations-metrics.md; origins seen since that process started).
 */
export function parseOriginAges(metrics: string): Map<string, number> {
  const ages = new Map<string, number>();
  for (const line of metrics.split("\n")) {
    if (!line.startsWith(`${originAgeMetric}{`)) continue;
    const origin = /[{,]origin="([0-9a-f]+)"/.exec(line)?.[1];
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (origin !== undefined && Number.isFinite(value)) ages.set(origin, value * 1_000);
  }
  return ages;
}

/**
 * How much older this node's newest change from `invocation` is than the youngest any other
 * node asked holds: its partners, and the origin itself (its own age: since its last write).
 * The origin counts because when a whole site is cut off, the partners lack the same changes
 * and would make a node BEHIND by several changes look 0 s behind.
 */
function timeBehind(
  self: string,
  invocation: string,
  here: number | null,
  behind: number,
  ages: OriginAges,
): number | null {
  if (behind === 0) return 0;
  if (here === null) return null;
  let youngest: number | null = null;
  for (const [node, held] of ages) {
    const age = node === self ? undefined : held.get(invocation);
    if (age !== undefined) youngest = Math.min(youngest ?? age, age);
  }
  return youngest === null ? null : Math.max(0, here - youngest);
}

/**
 * Where an origin's changes end, as far as the nodes asked tell: the origin's newest change of
 * its own when it is one of them (USNs it took to apply others' changes are nothing anyone
 * lacks), else the most any of them has of it.
 */
function originTarget(invocation: string, statuses: Iterable<StatusView>, most: number): number {
  for (const status of statuses) {
    if (status.invocationId !== invocation) continue;
    // A node that does not report its newest own change: its USN is an upper bound.
    return status.originatedUsn ?? Math.max(most, status.usn);
  }
  return most;
}

/**
 * Per origin: what `self` has against what each partner has, and how far it trails the origin
 * (`origins`: statuses of other nodes asked only for their newest own change).
 */
export function originLags(
  self: StatusView,
  partners: ReadonlyMap<string, StatusView | null>,
  names: OriginNames,
  ages: OriginAges = new Map(),
  origins: readonly StatusView[] = [],
): OriginLag[] {
  const invocations = new Set(Object.keys(self.utd));
  for (const status of partners.values())
    for (const invocation of Object.keys(status?.utd ?? {})) invocations.add(invocation);
  const answered = [...partners.values()].filter((status): status is StatusView => status !== null);
  const asked = [self, ...origins, ...answered];
  const lags = [...invocations].map((invocation) => {
    const here = self.utd[invocation] ?? 0;
    const seen: Record<string, number | null> = {};
    let most = here;
    for (const [node, status] of partners) {
      const value = status === null ? null : (status.utd[invocation] ?? 0);
      seen[node] = value;
      if (value !== null) most = Math.max(most, value);
    }
    const behind = Math.max(0, originTarget(invocation, asked, most) - here);
    const newestAgeMs = ages.get(self.node)?.get(invocation) ?? null;
    return {
      invocation,
      node: names.get(invocation) ?? null,
      here,
      partners: seen,
      behind,
      newestAgeMs,
      timeBehindMs: timeBehind(self.node, invocation, newestAgeMs, behind, ages),
    };
  });
  // By origin name, then id: a restored server's older ids sit next to its current one.
  return lags.sort(
    (a, b) => (a.node ?? "~").localeCompare(b.node ?? "~") || a.invocation.localeCompare(b.invocation),
  );
}

/** Invocation ids to node names, from status answers (current ids) and topology servers (every id). */
export function originNames(
  statuses: Iterable<StatusView | null>,
  servers: readonly { node: string; invocations?: readonly string[] }[],
): Map<string, string> {
  const names = new Map<string, string>();
  for (const server of servers)
    for (const invocation of server.invocations ?? []) names.set(invocation, server.node);
  for (const status of statuses) if (status !== null) names.set(status.invocationId, status.node);
  return names;
}

/** `repl status`: one node, its inbound partners, and its lag per origin. */
export function formatReplStatus(
  self: StatusView,
  lags: readonly OriginLag[],
  unreadable: ReadonlyMap<string, string>,
  now: number,
): string {
  const lines = [
    `${self.node}  site ${self.site}  ${self.url}`,
    `  invocation ${self.invocationId}  usn ${self.usn}${self.ready ? "" : "  NOT READY"}${self.quarantined ? "  QUARANTINED" : ""}`,
  ];
  if (self.storageFull !== null)
    lines.push(
      `  DISK FULL since ${self.storageFull.since}: ${self.storageFull.refusedWrites} client writes refused (storage-full)`,
    );
  if (self.unreachableSites.length > 0)
    lines.push(`  sites with no route: ${self.unreachableSites.join(", ")}`);
  lines.push("", `Inbound partners (${self.partners.length})`);
  if (self.partners.length === 0) lines.push("  none");
  for (const partner of self.partners) {
    lines.push(
      `  ${partner.node}  ${partner.kind ?? "?"}  site ${partner.site ?? "?"}  ${partner.url ?? "(no address)"}${partner.pulling ? "  (pulling)" : ""}`,
      `    last success:          ${formatWhen(partner.lastSuccessAt, now)}`,
      `    last failure:          ${partner.lastFailureAt === null ? "none" : `${formatWhen(partner.lastFailureAt, now)}: ${partner.lastFailure ?? "?"}`}`,
      `    consecutive failures:  ${partner.consecutiveFailures}`,
    );
    const why = unreadable.get(partner.node);
    if (why !== undefined) lines.push(`    status not readable:   ${why}`);
  }
  const partnerNames = self.partners.map((partner) => partner.node);
  lines.push(
    "",
    "Origins: the originating USN this node has, against its partners (BEHIND: the origin's newest",
    "change minus here, or the most a partner has when the origin did not answer); the age of the",
    "newest change held here, and how much older it is than the newest a partner or the origin",
    "holds (TIME BEHIND; ages from /metrics, '?' when not known)",
  );
  const rows: string[][] = [
    ["ORIGIN", "INVOCATION", "HERE", ...partnerNames, "BEHIND", "NEWEST HERE", "TIME BEHIND"],
  ];
  const duration = (ms: number | null): string => (ms === null ? "?" : formatDelta(ms));
  for (const lag of lags) {
    rows.push([
      lag.invocation === self.invocationId ? `${lag.node ?? "?"} (this node)` : (lag.node ?? "?"),
      lag.invocation.slice(0, 8),
      String(lag.here),
      ...partnerNames.map((node) => {
        const value = lag.partners[node];
        return value === null || value === undefined ? "?" : String(value);
      }),
      String(lag.behind),
      lag.newestAgeMs === null ? "?" : `${formatDelta(lag.newestAgeMs)} ago`,
      duration(lag.timeBehindMs),
    ]);
  }
  lines.push(table(rows).replace(/^/gm, "  ").trimEnd());
  return `${lines.join("\n")}\n`;
}

export interface SummaryRow {
  readonly node: string;
  /** Longest time since a successful pull over the node's connections; null: one never succeeded. */
  readonly largestDeltaMs: number | null;
  readonly fails: number;
  readonly total: number;
  /** The most recent failure's reason among its failing connections. */
  readonly error: string | null;
}

interface Connection {
  readonly destination: string;
  readonly source: string;
  readonly partner: PartnerView;
}

function summaryRow(node: string, connections: readonly Connection[], now: number): SummaryRow {
  let largest: number | null = 0;
  let latestFailure: { at: number; reason: string } | null = null;
  let fails = 0;
  for (const { partner } of connections) {
    const success = partner.lastSuccessAt === null ? Number.NaN : Date.parse(partner.lastSuccessAt);
    if (largest !== null) largest = Number.isNaN(success) ? null : Math.max(largest, now - success);
    if (partner.consecutiveFailures > 0) {
      fails++;
      const at = partner.lastFailureAt === null ? 0 : Date.parse(partner.lastFailureAt);
      if (latestFailure === null || at > latestFailure.at)
        latestFailure = { at, reason: partner.lastFailure ?? "?" };
    }
  }
  return {
    node,
    largestDeltaMs: largest,
    fails,
    total: connections.length,
    error: latestFailure?.reason ?? null,
  };
}

export interface Summary {
  readonly destinations: SummaryRow[];
  readonly sources: SummaryRow[];
  /**
   * Per reachable node, summed over origins: how far it trails each origin's newest change (in
   * USNs; for an origin not reachable, the most any reachable node has). 0: it lacks nothing.
   */
  readonly behind: Readonly<Record<string, number>>;
}

/** The /replsummary tables from every reachable node's status. */
export function summarize(statuses: readonly StatusView[], now: number): Summary {
  const connections: Connection[] = statuses.flatMap((status) =>
    status.partners.map((partner) => ({ destination: status.node, source: partner.node, partner })),
  );
  const sources = [...new Set(connections.map((connection) => connection.source))].sort();
  const most: Record<string, number> = {};
  for (const status of statuses) {
    for (const [invocation, usn] of Object.entries(status.utd))
      most[invocation] = Math.max(most[invocation] ?? 0, usn);
    most[status.invocationId] ??= 0;
  }
  const targets = Object.entries(most).map(
    ([invocation, usn]) => [invocation, originTarget(invocation, statuses, usn)] as const,
  );
  const behind: Record<string, number> = {};
  for (const status of statuses)
    behind[status.node] = targets.reduce(
      (sum, [invocation, usn]) => sum + Math.max(0, usn - (status.utd[invocation] ?? 0)),
      0,
    );
  return {
    destinations: statuses
      .map((status) =>
        summaryRow(
          status.node,
          connections.filter((connection) => connection.destination === status.node),
          now,
        ),
      )
      .sort((a, b) => a.node.localeCompare(b.node)),
    sources: sources.map((source) =>
      summaryRow(
        source,
        connections.filter((connection) => connection.source === source),
        now,
      ),
    ),
    behind,
  };
}

function summaryTable(
  title: string,
  rows: readonly SummaryRow[],
  behind?: Readonly<Record<string, number>>,
): string {
  const header = [
    title,
    "largest delta",
    "fails/total",
    "%",
    ...(behind === undefined ? [] : ["usn behind"]),
    "error",
  ];
  return table([
    header,
    ...rows.map((row) => [
      row.node,
      row.total === 0 ? "-" : row.largestDeltaMs === null ? "never" : formatDelta(row.largestDeltaMs),
      `${row.fails} / ${row.total}`,
      row.total === 0 ? "0" : String(Math.round((100 * row.fails) / row.total)),
      ...(behind === undefined ? [] : [String(behind[row.node] ?? "?")]),
      row.error ?? "",
    ]),
  ]);
}

/** `repl summary` as text; `unreachable` lists the nodes whose status could not be read. */
export function formatSummary(summary: Summary, unreachable: ReadonlyMap<string, string>): string {
  const parts = [
    summaryTable("Source node", summary.sources),
    summaryTable("Destination node", summary.destinations, summary.behind),
  ];
  if (unreachable.size > 0)
    parts.push(
      `Unreachable (${unreachable.size}):\n${[...unreachable].map(([node, why]) => `  ${node}: ${why}\n`).join("")}`,
    );
  return parts.join("\n");
}

/**
 * `plexus conflicts` as text: one item per conflict, then the count; `cutAt` the --limit the
 * list stopped at while more remain (null: these are all).
 */
export function formatConflicts(
  conflicts: readonly Record<string, unknown>[],
  cutAt: number | null = null,
): string {
  const items = conflicts.map(
    (item) =>
      `${String(item.kind)}  ${String(item.dn)}\n  claimed: ${String(item.claimedRdn)} under ${claimedParentText(item)}  (guid ${String(item.guid)})\n`,
  );
  const count = `${conflicts.length} conflict${conflicts.length === 1 ? "" : "s"}`;
  const more = cutAt === null ? "" : ` shown; more remain beyond --limit ${cutAt}`;
  return `${items.join("")}# ${count}${more}\n`;
}

/** The parent a conflict's entry claims: its DN here, else its GUID, said to be missing. */
function claimedParentText(item: Record<string, unknown>): string {
  if (typeof item.claimedParentDn === "string") return item.claimedParentDn;
  return item.claimedParent === null || item.claimedParent === undefined
    ? "no parent"
    : `the entry ${String(item.claimedParent)}, which this node does not hold`;
}
