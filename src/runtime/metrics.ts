import { performance } from "node:perf_hooks";
import type { FastifyInstance } from "fastify";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { InvocationId, NodeId } from "../core/ids.ts";
import type { PartnerStatus } from "../core/node/machine.ts";
import type { UtdVector } from "../core/replication/utd.ts";
import type { PeerReply } from "./peer-client.ts";
import { monotonicClock } from "./ports.ts";

/**
 * The node's Prometheus metrics (prom-client), in a registry of its own: several nodes run in
 * one test process, and each must count only its own work. Every sample carries the node's
 * name and site as labels. Counters move through the few calls node.ts makes (a client write,
 * a pull answered or failed, a group commit); gauges (queues, partner lag, per-origin
 * knowledge) are read from the node when Prometheus scrapes. Labels hold node names,
 * invocation ids and error codes only: nothing secret. docs/operations-metrics.md lists them.
 */
export const metricsPath = "/metrics";
/** Origins (invocation ids) whose newest change time is remembered; more are not tracked. */
export const originsTrackedMax = 1_024;

const batchSizeBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
const commitSecondsBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/**
 * Inside a site a change takes milliseconds; across sites it waits, at each site boundary, up
 * to the link's interval (15 minutes by default, and no notification) or for a scheduled link's
 * next open window, hours away: the buckets reach a day so that quantiles are not clamped.
 */
const delaySecondsBuckets = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200,
  21_600, 43_200, 86_400,
];

export interface QueueSizes {
  readonly writes: number;
  readonly writeConcernWaits: number;
  readonly peerRequestsInFlight: number;
  readonly peerRequestsWaiting: number;
}

/** What the node shows the metrics; read at scrape time (and around each applied answer). */
export interface MetricsSource {
  usn(): number;
  invocation(): InvocationId;
  utd(): UtdVector;
  ready(): boolean;
  partners(): readonly PartnerStatus[];
  queues(): QueueSizes;
  /** The servers of the topology with the invocation ids they published, to name origins. */
  servers(): readonly { readonly node: NodeId; readonly invocations?: readonly InvocationId[] }[];
  /** Pages the machine did not apply so far (NodeMachine.rejectedPageCount). */
  rejectedPages(): number;
  /** Live entries and tombstones held (the store's running totals: no scan). */
  entries(): { readonly live: number; readonly tombstones: number };
  /** Live entries with a naming conflict or out of their place, counted up to `max`. */
  conflicts(max: number): number;
  /** Whether the store refuses client writes for want of space now (its disk is full). */
  storageFull(): boolean;
}

/**
 * plexus_naming_conflicts counts up to this many (each one is read to be counted); beyond, it
 * shows this. An alert wants "more than none"; the list is `plexus conflicts`.
 */
export const conflictsCountedMax = 1_000;

/** How a pull ended: a page applied, refused by the source, not applied here, or no answer. */
export type PullOutcome = "ok" | "refused" | "rejected" | "error";

/** Taken just before an answer is handed to the machine; see `answerApplied`. */
export interface BeforeApply {
  readonly partner: NodeId;
  readonly kind: string;
  readonly usn: number;
  /** The partner's last failure time then: the machine sets a new one when it rejects the answer. */
  readonly lastFailureAt: number | null;
  /** The machine's count of rejected pages then: it moves for a late page it did not apply too. */
  readonly rejectedPages: number;
  readonly startedMs: number;
}

interface OriginKnowledge {
  /** Originating time (wall clock, ms) of the newest change from this origin held here. */
  newestMs: number;
  /** For that change: when it was applied here minus when it was made (ms); null for own writes. */
  delayMs: number | null;
}

export class NodeMetrics {
  readonly registry = new Registry();
  private readonly origins = new Map<InvocationId, OriginKnowledge>();
  private readonly writes: Counter<"operation" | "outcome">;
  private readonly pulls: Counter<"partner" | "outcome">;
  private readonly pages: Counter<"partner">;
  private readonly entries: Counter<"partner">;
  private readonly bytes: Counter<"partner">;
  private readonly served: Counter<"partner" | "builder">;
  private readonly batchSize: Histogram;
  private readonly commitSeconds: Histogram;
  private readonly pageApplySeconds: Histogram;
  private readonly delaySeconds: Histogram;

  constructor(
    labels: { readonly node: string; readonly site: string },
    private readonly source: MetricsSource,
  ) {
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> =>
      new Counter({ name, help, labelNames, registers });
    const histogram = (name: string, help: string, buckets: readonly number[]): Histogram =>
      new Histogram({ name, help, buckets: [...buckets], registers });
    this.writes = counter(
      "plexus_client_writes_total",
      "Client writes by operation and outcome (ok, concern-not-met, an error code, or failed).",
      ["operation", "outcome"],
    );
    this.pulls = counter(
      "plexus_pulls_total",
      "Pull exchanges with an inbound partner, by outcome (ok, refused, rejected, error).",
      ["partner", "outcome"],
    );
    this.pages = counter("plexus_pages_applied_total", "Change pages from a partner applied here.", [
      "partner",
    ]);
    this.entries = counter(
      "plexus_entries_applied_total",
      "Entries changed here by pages from a partner (entries already current are not counted).",
      ["partner"],
    );
    this.bytes = counter(
      "plexus_pull_received_bytes_total",
      "Bytes of pull answers received from a partner, as on the wire (gzipped across sites).",
      ["partner"],
    );
    this.served = counter(
      "plexus_pages_served_total",
      "Change pages sent to a partner's pull, by where they were built: worker (the page worker " +
        "thread) or node (the node's own thread: the page worker is off, gone, or busy).",
      ["partner", "builder"],
    );
    this.batchSize = histogram(
      "plexus_group_commit_writes",
      "Writes committed in one group-commit transaction.",
      batchSizeBuckets,
    );
    this.commitSeconds = histogram(
      "plexus_group_commit_seconds",
      "Time of one group-commit SQLite transaction, its fsync included.",
      commitSecondsBuckets,
    );
    this.pageApplySeconds = histogram(
      "plexus_page_apply_seconds",
      "Time to check and apply one change page in its SQLite transaction, fsync included.",
      commitSecondsBuckets,
    );
    this.delaySeconds = histogram(
      "plexus_replication_delay_seconds",
      "For each origin's newest change in an applied page: applied here minus made there (clocks' skew included).",
      delaySecondsBuckets,
    );
    this.registerGauges();
  }

  /** A client write answered: `outcome` is ok, concern-not-met, an error code, or failed. */
  clientWrite(operation: string, outcome: string): void {
    this.writes.inc({ operation, outcome });
  }

  /** A group commit of `writes` writes whose transaction took `seconds`. */
  groupCommit(writes: number, seconds: number, changed: boolean): void {
    this.batchSize.observe(writes);
    this.commitSeconds.observe(seconds);
    if (changed) this.origins.set(this.source.invocation(), { newestMs: Date.now(), delayMs: null });
  }

  /** A page went to `partner`'s pull, built on the page worker or on the node's thread. */
  pageServed(partner: NodeId, builder: "worker" | "node"): void {
    this.served.inc({ partner, builder });
  }

  /** An exchange with `partner` got no usable answer (transport failure, timeout, HTTP error). */
  exchangeFailed(partner: NodeId, kind: string): void {
    if (kind === "pull") this.pulls.inc({ partner, outcome: "error" });
  }

  beforeApply(partner: NodeId, kind: string): BeforeApply {
    return {
      partner,
      kind,
      usn: this.source.usn(),
      lastFailureAt: this.lastFailureOf(partner),
      rejectedPages: this.source.rejectedPages(),
      startedMs: performance.now(),
    };
  }

  /** The machine has taken the answer to a pull: count it by what it did to the replica. */
  answerApplied(before: BeforeApply, reply: Extract<PeerReply, { ok: true }>): void {
    if (before.kind !== "pull") return;
    const { partner } = before;
    const body = reply.body as { kind?: unknown; page?: unknown } | null;
    this.bytes.inc({ partner }, reply.bytes);
    if (body?.kind === "refused") {
      this.pulls.inc({ partner, outcome: "refused" });
      return;
    }
    const rejected =
      this.lastFailureOf(partner) !== before.lastFailureAt ||
      this.source.rejectedPages() !== before.rejectedPages;
    if (body?.kind !== "page" || rejected) {
      this.pulls.inc({ partner, outcome: "rejected" });
      return;
    }
    this.pulls.inc({ partner, outcome: "ok" });
    this.pages.inc({ partner });
    // Applying takes one new USN per entry it changes, and nothing else runs meanwhile.
    this.entries.inc({ partner }, Math.max(0, this.source.usn() - before.usn));
    this.pageApplySeconds.observe((performance.now() - before.startedMs) / 1_000);
    this.noteOrigins(body.page);
  }

  async text(): Promise<string> {
    // prom-client writes a NaN value as `Nan` (nodejs_eventloop_lag_mean_seconds when scraped
    // twice within the event-loop monitor's resolution); the format spells it `NaN`, and strict
    // parsers refuse anything else.
    return (await this.registry.metrics()).replace(/ Nan$/gm, " NaN");
  }

  private lastFailureOf(partner: NodeId): number | null {
    return this.source.partners().find((candidate) => candidate.partner === partner)?.lastFailureAt ?? null;
  }

  /**
   * The newest originating time per origin in an applied page (validated by the replica, so
   * well formed; read defensively all the same). An origin's time only moves forward.
   */
  private noteOrigins(page: unknown): void {
    const entries = (page as { entries?: unknown } | null)?.entries;
    if (!Array.isArray(entries)) return;
    const newest = new Map<InvocationId, number>();
    for (const entry of entries as { items?: unknown }[]) {
      if (!Array.isArray(entry.items)) continue;
      for (const item of entry.items as { stamp?: { invocation?: unknown; time?: unknown } }[]) {
        const stamp = item.stamp;
        if (typeof stamp?.invocation !== "string" || typeof stamp.time !== "number") continue;
        const invocation = stamp.invocation as InvocationId;
        // Most items of a page share few origins: the map is touched only for a newer time.
        if (stamp.time > (newest.get(invocation) ?? -1)) newest.set(invocation, stamp.time);
      }
    }
    const now = Date.now();
    for (const [invocation, time] of newest) {
      const known = this.origins.get(invocation);
      if (known !== undefined && known.newestMs >= time) continue;
      if (known === undefined && this.origins.size >= originsTrackedMax) continue;
      this.origins.set(invocation, { newestMs: time, delayMs: now - time });
      this.delaySeconds.observe(Math.max(0, now - time) / 1_000);
    }
  }

  private registerGauges(): void {
    const registers = [this.registry];
    const gauge = (
      name: string,
      help: string,
      labelNames: readonly string[],
      read: (gauge: Gauge) => void,
    ): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          read(this);
        },
      });
    };
    const queue = (name: string, help: string, size: (queues: QueueSizes) => number): void =>
      gauge(name, help, [], (metric) => metric.set(size(this.source.queues())));
    queue("plexus_write_queue_length", "Client writes waiting for a group commit.", (q) => q.writes);
    queue(
      "plexus_write_concern_waiters",
      "Committed writes waiting for their write concern.",
      (q) => q.writeConcernWaits,
    );
    queue(
      "plexus_peer_requests_in_flight",
      "Requests to other nodes under way.",
      (q) => q.peerRequestsInFlight,
    );
    queue(
      "plexus_peer_requests_waiting",
      "Requests to other nodes waiting for a slot.",
      (q) => q.peerRequestsWaiting,
    );
    gauge("plexus_ready", "1 once the node serves clients (initial sync done), else 0.", [], (metric) =>
      metric.set(this.source.ready() ? 1 : 0),
    );
    gauge(
      "plexus_storage_full",
      "1 while the store refuses client writes for want of space (the disk is full), else 0.",
      [],
      (metric) => metric.set(this.source.storageFull() ? 1 : 0),
    );
    gauge("plexus_usn", "This node's highest update sequence number.", [], (metric) =>
      metric.set(this.source.usn()),
    );
    gauge(
      "plexus_entries",
      "Entries held here: live, and tombstones of deleted ones.",
      ["state"],
      (metric) => {
        const { live, tombstones } = this.source.entries();
        metric.set({ state: "live" }, live);
        metric.set({ state: "tombstone" }, tombstones);
      },
    );
    gauge(
      "plexus_naming_conflicts",
      `Live entries with a naming conflict or out of their place (plexus conflicts), counted up to ${conflictsCountedMax}.`,
      [],
      (metric) => metric.set(this.source.conflicts(conflictsCountedMax)),
    );
    this.registerPartnerGauges(gauge);
    this.registerOriginGauges(gauge);
  }

  private registerPartnerGauges(
    gauge: (name: string, help: string, labels: readonly string[], read: (gauge: Gauge) => void) => void,
  ): void {
    gauge(
      "plexus_partner_last_success_age_seconds",
      "Seconds since the last complete pull from an inbound partner (absent before the first).",
      ["partner"],
      (metric) => {
        const now = monotonicClock.now();
        for (const status of this.source.partners())
          if (status.lastSuccessAt !== null)
            metric.set({ partner: status.partner }, (now - status.lastSuccessAt) / 1_000);
      },
    );
    gauge(
      "plexus_partner_consecutive_failures",
      "Failed pulls from an inbound partner since its last success.",
      ["partner"],
      (metric) => {
        for (const status of this.source.partners())
          metric.set({ partner: status.partner }, status.consecutiveFailures);
      },
    );
  }

  private registerOriginGauges(
    gauge: (name: string, help: string, labels: readonly string[], read: (gauge: Gauge) => void) => void,
  ): void {
    const labels = ["origin", "origin_node"];
    gauge(
      "plexus_origin_utd_usn",
      "Up-to-dateness vector: the origin's USN up to which this node holds all its changes.",
      labels,
      (metric) => {
        const names = this.originNames();
        for (const [origin, usn] of Object.entries(this.source.utd()))
          metric.set({ origin, origin_node: names.get(origin as InvocationId) ?? "" }, usn);
      },
    );
    gauge(
      "plexus_origin_last_change_age_seconds",
      "Seconds since the newest change from this origin that this node holds was made there (origins seen since this process started).",
      labels,
      (metric) => {
        const names = this.originNames();
        const now = Date.now();
        for (const [origin, known] of this.origins)
          metric.set(
            { origin, origin_node: names.get(origin) ?? "" },
            Math.max(0, now - known.newestMs) / 1_000,
          );
      },
    );
    gauge(
      "plexus_origin_replication_delay_seconds",
      "For the newest change from this origin held here: when it was applied here minus when it was made.",
      labels,
      (metric) => {
        const names = this.originNames();
        for (const [origin, known] of this.origins)
          if (known.delayMs !== null)
            metric.set({ origin, origin_node: names.get(origin) ?? "" }, Math.max(0, known.delayMs) / 1_000);
      },
    );
  }

  /** Invocation id → the server that published it (empty label when no server did). */
  private originNames(): Map<InvocationId, string> {
    const names = new Map<InvocationId, string>();
    for (const server of this.source.servers())
      for (const invocation of server.invocations ?? []) names.set(invocation, server.node);
    return names;
  }
}

/**
 * GET /metrics, unauthenticated like a usual Prometheus target: it says how busy and how far
 * behind the node is, never an entry, a secret or a client's address. Served while the node
 * still syncs (it is outside the API's /v1/ readiness check).
 */
export function registerMetricsRoute(app: FastifyInstance, metrics: NodeMetrics): void {
  app.get(metricsPath, async (_request, reply) =>
    reply.header("content-type", metrics.registry.contentType).send(await metrics.text()),
  );
}
