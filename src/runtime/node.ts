import { closeSync, existsSync, fsyncSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { request } from "undici";
import { configPartition, dnsPartition } from "../core/directory/partition.ts";
import type { Guid, InvocationId, NodeId, Usn } from "../core/ids.ts";
import { isNodeId } from "../core/ids.ts";
import {
  type NodeConfig,
  NodeMachine,
  nodeConfigDefaults,
  type PullAdmission,
  type Send,
} from "../core/node/machine.ts";
import {
  checkPeerMessage,
  notifyViaMax,
  type PeerMessage,
  pageSourceProblem,
  pullDestinationProblem,
} from "../core/node/messages.ts";
import {
  minuteOfWeek,
  minutesToScheduleChange,
  openPlan,
  type PartnerPlan,
  type PlannedConnection,
  partnerPlan,
  stalePartners,
} from "../core/node/partners.ts";
import {
  checkRegistration,
  checkServerStanding,
  hasSite,
  joinedLinkDefaults,
  type Registration,
  registrationWrites,
} from "../core/node/registration.ts";
import { judgeableGaps, lostSessionReason, publishedInvocations } from "../core/node/session.ts";
import { checkConcernAttainable, type WriteConcernRequest } from "../core/node/write-concern.ts";
import type { WriteOutcome, WriteRequest } from "../core/replica/originating.ts";
import type { ConflictView, EntryView, SearchRequest, SearchResult } from "../core/replica/read.ts";
import { Replica } from "../core/replica/replica.ts";
import { type UtdVector, utdCoversVector, utdGet } from "../core/replication/utd.ts";
import { validateUtd } from "../core/replication/validate.ts";
import { fail, ok, type Result } from "../core/result.ts";
import { invocationWrite, readTopology, topologyWrites } from "../core/topology/entries.ts";
import {
  checkTopology,
  type SiteName,
  settingsDefaults,
  siteKey,
  type TopologyConfig,
} from "../core/topology/model.ts";
import {
  type ChangeEvent,
  clientBodyBytesMax,
  type DirectoryService,
  frameworkErrors,
  registerClientApi,
  registerProblemHandlers,
  type WriteReceipt,
} from "../edge/http/api.ts";
import type { LocatorView } from "../edge/http/locate.ts";
import { registerReplicateRoute } from "../edge/http/replicate.ts";
import { httpServerOptions } from "../edge/http/server.ts";
import { type LocateUdp, startLocateUdp } from "../edge/locate/udp.ts";
import { type DataDirectory, databaseFileName, openDataDirectory } from "../store/data-directory.ts";
import { isStorageFull } from "../store/sqlite-store.ts";
import type { ClusterSecret } from "./auth.ts";
import { ConcernWaiter } from "./concern-waiter.ts";
import { type LocatorOptions, NodeLocator } from "./locator.ts";
import { errorText, type Logger } from "./log.ts";
import { type MetricsSource, NodeMetrics, type QueueSizes, registerMetricsRoute } from "./metrics.ts";
import { builtPage, PageBuilder } from "./page-builder.ts";
import { PeerClient, type PeerReply, peerPaths } from "./peer-client.ts";
import {
  type AnswerEncodings,
  type PeerAnswer,
  type PeerRefusal,
  registerPeerRoutes,
} from "./peer-server.ts";
import { cryptoRandom, monotonicClock, systemClock, wallTimeOf } from "./ports.ts";
import { type PullResult, replicateNow } from "./replicate-now.ts";

/**
 * One Plexus node process: the data directory, the replica, the node state machine driven by
 * real timers, the transport to other nodes and the client API. The machine decides what to
 * send and when; this class only carries messages, keeps the timer set to the machine's next
 * wake time, re-reads the topology when the config partition changes, and batches client
 * writes into shared transactions (group commit).
 */
export interface RuntimeTimings {
  /** An exchange with a partner (one page) that takes longer counts as failed. */
  readonly pullTimeoutMs: number;
  readonly retryBackoffBaseMs: number;
  readonly retryBackoffMaxMs: number;
  /** The config partition is re-read at most this often while it keeps changing. */
  readonly topologyRefreshMs: number;
  /** How long a joining node waits for its initial sync before it gives up (and exits). */
  readonly initialSyncTimeoutMs: number;
  /** How long a joining node keeps asking its join URLs to admit it. */
  readonly joinTimeoutMs: number;
}

export const runtimeTimingsDefault: RuntimeTimings = {
  pullTimeoutMs: nodeConfigDefaults.pullTimeoutMs,
  retryBackoffBaseMs: nodeConfigDefaults.retryBackoffBaseMs,
  retryBackoffMaxMs: nodeConfigDefaults.retryBackoffMaxMs,
  topologyRefreshMs: 100,
  initialSyncTimeoutMs: 30 * 60_000,
  joinTimeoutMs: 60_000,
};

/** Exchanges with partners in flight at once; the rest wait their turn. */
export const peerRequestsInFlightMax = 16;
/** Client writes committed in one transaction at most. */
export const groupCommitBatchMax = 512;
/** Client writes waiting for a transaction; beyond this a write is refused at once. */
export const writeQueueMax = 10_000;
/** setTimeout's own ceiling is about 24.8 days; the machine is ticked at least this often. */
const timerMaxMs = 60_000;
const msPerMinute = 60_000;
/** A wake for a link schedule's minute comes this long after it starts, never just before. */
const scheduleWakeSlackMs = 5;
const syncPollMs = 20;
/** How long a stopping node lets requests under way finish before it closes their connections. */
const drainTimeoutMs = 5_000;
const drainReapMs = 50;
/** How often a request carrying a session token looks again whether this node caught up. */
const catchUpPollMs = 10;
/** How often a write waiting for its concern asks the other servers again. */
const concernPollMs = 10;
/** How long a join waits for the server already holding the joiner's name to say it is alive. */
const nameProbeTimeoutMs = 2_000;
/** A partner refusing this node's signature is logged again after this (ms). */
const refusedSignatureWarnMs = 10 * 60_000;
/** One UTD report may take this long; a server that does not answer in time is asked again. */
const utdReportTimeoutMs = 1_000;
/**
 * Servers a node asks for UTD reports before it calls a session token lost; in a larger
 * topology it never does (the token stays session-behind), so that one request cannot make
 * it send thousands.
 */
const lostSessionServersMax = 256;
const joinRetryMs = 500;
/** The file that says this data directory finished its initial sync (or created the directory). */
export const syncedMarkerFileName = "plexus.synced";

/**
 * A data directory whose database holds no replica has not synced, whatever its marker says:
 * its database was lost or moved away (store.ts's advice for an unreadable one). Left there, the
 * marker would have the node serve an empty replica as if synced, join and all skipped.
 */
function forgetSynced(options: NodeOptions): void {
  const marker = join(options.dataDirectory, syncedMarkerFileName);
  if (!existsSync(marker)) return;
  options.log.log("warn", "synced-marker-stale", {
    detail: "the data directory's database holds no replica: it joins (or creates the directory) afresh",
  });
  rmSync(marker);
}

/**
 * Why an exchange with a partner failed, as its last failure in GET /v1/status and repl status:
 * the transport's reason, and what a 401 means (the partner refuses this node's signature).
 */
function exchangeFailure(reply: PeerReply): string {
  const reason = reply.ok ? `HTTP ${reply.status}: no answer to use` : reply.reason;
  return !reply.ok && reply.status === 401
    ? `${reason}: the partner refuses this node's requests as unsigned (another cluster secret?)`
    : reason;
}

/**
 * Why `answer`, from `partner`, cannot be the answer to `asked`, or null. The machine drops an
 * answer that is not a message for it unseen, and keeps the exchange in flight until its
 * timeout: a malformed answer or one to another request (a broken or hostile partner) fails
 * the exchange at once instead, with the reason in the partner's status. A page names its
 * source, and the machine keeps the watermark of the node it names: only `partner` may answer
 * for itself (a page naming another partner would move that partner's watermark).
 */
export function answerProblem(partner: NodeId, asked: PeerMessage, answer: unknown): string | null {
  const checked = checkPeerMessage(answer);
  if (!checked.ok) return `malformed answer: ${checked.error.message}`;
  const message = checked.value;
  const expected =
    asked.kind === "pull" ? "page" : asked.kind === "lingering-check" ? "lingering-answer" : null;
  if (expected === null || !("id" in asked)) return null;
  if ((message.kind !== expected && message.kind !== "refused") || message.id !== asked.id)
    return `the answer to ${asked.kind} ${asked.id} is ${message.kind}${"id" in message ? ` ${message.id}` : ""}`;
  // A page without a source is left to the page checks, which say what is missing.
  if (message.kind === "page" && isRecord(message.page) && message.page.source !== undefined)
    return pageSourceProblem(partner, message.page);
  return null;
}

/**
 * Why a message POSTed by `from` is refused before the machine sees it, or null. Answers
 * (pages, refusals, lingering answers) travel back on the exchange that asked, never on their
 * own; a pull names its destination, whose UTD and purge horizon the puller records: only
 * `from` may pull for itself (a pull naming another node would stand in for its reports).
 */
export function postedMessageProblem(from: NodeId, body: unknown): string | null {
  if (!isRecord(body)) return null;
  if (body.kind === "page" || body.kind === "refused" || body.kind === "lingering-answer")
    return `a ${body.kind} is an answer: it comes back on the exchange that asked, never on its own`;
  if (body.kind === "pull" && isRecord(body.request)) return pullDestinationProblem(from, body.request);
  return null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export interface NodeOptions {
  readonly dataDirectory: string;
  readonly node: NodeId;
  readonly site: SiteName;
  /** The IP address to listen on (and to advertise in the topology). */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Nodes to join through; empty for the first node of a new directory. */
  readonly join: readonly string[];
  /**
   * Ask the admitting node to create `site` when the topology lacks it (`--new-site`), with a
   * link to the admitting node's site; without it such a join is refused (a misspelt --site).
   */
  readonly newSite?: boolean;
  readonly secret: ClusterSecret;
  /** The first node creates these data partitions (config and dns always). */
  readonly partitions: readonly string[];
  /** The first node's initial topology (sites, links, subnets, settings); it adds itself. */
  readonly topology: unknown;
  readonly synchronous: "full" | "normal";
  readonly timings: RuntimeTimings;
  readonly log: Logger;
  /** The locator's DNS server and this node's registration in its zone; absent: no DNS. */
  readonly dns?: LocatorOptions;
  /**
   * Build the pages partners pull on a worker thread (page-builder.ts), so that serving them
   * does not take this thread from client writes; false builds them here.
   */
  readonly pageWorker: boolean;
}

type NotifyMessage = Extract<PeerMessage, { kind: "notify" }>;

/** Every join URL refused the registration itself (HTTP 400: a name taken, a site unknown). */
class JoinRefusedError extends Error {}

/** What peerStep answers when the store found no space for a partner's message. */
const storageFull = Symbol("storage-full");

/**
 * A partner's message this node cannot handle for want of space. A pull's admission seldom
 * writes (a rollback detected, a purge horizon that moved), so a full node usually goes on
 * serving pulls; when one must write, the puller's status shows why instead of an empty answer,
 * and it pulls again after its back-off.
 */
function storageFullPeerAnswer(node: NodeId): PeerRefusal {
  return {
    status: 503,
    code: "storage-full",
    detail: `${node}'s disk is full: it cannot record this pull; pull again once space is freed there`,
  };
}

/**
 * One notification that says what both do: changes of the node's own (no `via`) have the
 * partner pull at once, so either without `via` gives none; else the nodes of both.
 */
export function mergeNotifications(pending: NotifyMessage | null, next: NotifyMessage): NotifyMessage {
  if (pending === null) return next;
  if (pending.via === undefined || next.via === undefined) return { kind: "notify" };
  const via = [...new Set([...pending.via, ...next.via])].sort();
  return via.length > notifyViaMax ? { kind: "notify" } : { kind: "notify", via };
}

interface Committed {
  readonly result: Result<WriteOutcome>;
  /** The invocation id right after the transaction: the one the write's USN belongs to. */
  readonly invocation: InvocationId;
}

interface QueuedWrite {
  readonly request: WriteRequest;
  readonly resolve: (committed: Committed) => void;
  readonly reject: (error: unknown) => void;
}

export class PlexusNode implements DirectoryService {
  private readonly machine: NodeMachine;
  private readonly app: FastifyInstance;
  private readonly client: PeerClient;
  private readonly metrics: NodeMetrics;
  private readonly urls = new Map<NodeId, string>();
  private connections = new Map<NodeId, PlannedConnection>();
  private plan: PartnerPlan = { inbound: [], outbound: [], replicaSet: [], note: null, unreachableSites: [] };
  private planKey = "";
  /** The last partners line logged (logPartners). */
  private partnersLogged = "";
  /** `scheduleChangeAt`: when (monotonic) a link schedule of the plan next opens or closes. */
  private planCache: {
    config: TopologyConfig;
    key: string;
    plan: PartnerPlan;
    scheduleChangeAt: number;
  } | null = null;
  /** The last wake (monotonic): the next one comes timerMaxMs later at the latest. */
  private wokeAt = monotonicClock.now();
  private topology: TopologyConfig | null = null;
  private topologyProblems: readonly string[] = [];
  /** The machine's urgentChangeCount when the topology was last read. */
  private topologyReadAtChanges = -1;
  private topologyReadAt = Number.NEGATIVE_INFINITY;
  /** While a joining node syncs from the node that admitted it, that node is its only partner. */
  /** The node the initial sync pulls from; compressed when it is in another site, as a link would be. */
  private bootstrap: { readonly node: NodeId; readonly url: string; readonly compress: boolean } | null =
    null;
  private timer: NodeJS.Timeout | null = null;
  private readonly writeQueue: QueuedWrite[] = [];
  private flushScheduled = false;
  /**
   * Since when client writes are refused because the store found no space (monotonic ms), and
   * how many: logged once when it starts and once when a write commits again, not once per write.
   */
  private storageFull: { readonly since: number; refusedWrites: number } | null = null;
  private isReady = false;
  /** The invocation id whose publication on the server object is written or under way. */
  private publishing: InvocationId | null = null;
  private readonly changeListeners = new Set<() => void>();
  private readonly concerns = new ConcernWaiter((server) => this.utdOf(server), concernPollMs);
  /**
   * Partners with a notification on its way (notify): the one to send after it, merged from
   * those that came meanwhile, or null.
   */
  private readonly notifying = new Map<NodeId, NotifyMessage | null>();
  /** When each partner's refusal of this node's signature was last logged (warnRefusedSignature). */
  private readonly signatureWarnedAt = new Map<NodeId, number>();
  private announcedUsn = -1;
  private stopped = false;
  /** Builds the pages of pulls off this thread (page-builder.ts); null until started, or when off. */
  private pageBuilder: PageBuilder | null = null;
  /** Set when stop() begins: the node finishes what it started and takes nothing new. */
  private draining = false;
  private stopping: Promise<void> | null = null;
  private boundUrl = "";
  private dnsLocator: NodeLocator | null = null;
  /** The UDP ping on the HTTP port's number (src/edge/locate/udp.ts); null when that UDP port is taken. */
  private locateUdp: LocateUdp | null = null;

  private constructor(
    private readonly options: NodeOptions,
    private readonly data: DataDirectory,
    readonly replica: Replica,
  ) {
    this.machine = new NodeMachine(replica, monotonicClock, this.nodeConfig(this.plan));
    this.client = new PeerClient({
      self: options.node,
      secret: options.secret,
      inFlightMax: peerRequestsInFlightMax,
    });
    // While closing, requests get the API's own 503 problem (fastify still adds Connection: close).
    this.app = Fastify({
      logger: false,
      bodyLimit: clientBodyBytesMax,
      frameworkErrors,
      return503OnClosing: false,
      // DN-sized paths and request heads, and problem documents for what Node's parser refuses.
      ...httpServerOptions,
    });
    registerProblemHandlers(this.app, (error) =>
      options.log.log("error", "request-failed", { error: errorText(error) }),
    );
    registerPeerRoutes(this.app, options.secret, this.peerHandler(), options.log);
    registerClientApi(this.app, this);
    this.metrics = new NodeMetrics({ node: options.node, site: options.site }, this.metricsSource());
    registerMetricsRoute(this.app, this.metrics);
    registerReplicateRoute(this.app, this);
  }

  /** Opens (or creates) the data directory, listens, joins or creates the directory, then serves. */
  static async start(options: NodeOptions): Promise<PlexusNode> {
    const data = openDataDirectory(options.dataDirectory, { synchronous: options.synchronous });
    let replica: Replica;
    try {
      const meta = data.store.readMeta();
      if (meta !== undefined && meta.nodeId !== options.node)
        throw new Error(`the data directory belongs to node ${meta.nodeId}, not ${options.node}`);
      if (data.restored) options.log.log("warn", "restored-copy", { reason: data.reason ?? "" });
      if (meta === undefined) forgetSynced(options);
      replica =
        meta === undefined
          ? Replica.create(data.store, { clock: systemClock, random: cryptoRandom }, options.node)
          : Replica.open(
              data.store,
              { clock: systemClock, random: cryptoRandom },
              { restored: data.restored },
            );
    } catch (error) {
      data.close();
      throw error;
    }
    const node = new PlexusNode(options, data, replica);
    try {
      await node.begin();
    } catch (error) {
      await node.stop();
      throw error;
    }
    return node;
  }

  get url(): string {
    return this.boundUrl;
  }

  private async begin(): Promise<void> {
    const { options } = this;
    this.boundUrl = await this.app.listen({ host: options.host, port: options.port });
    const port = Number(new URL(this.boundUrl).port);
    const registration: Registration = {
      node: options.node,
      site: options.site,
      address: options.host,
      httpPort: port,
      ...(options.newSite === true ? { newSite: true } : {}),
    };
    // A restored copy in a new directory has no marker, yet it is a node's replica, not a new
    // directory to create: it is set up, and only its registration (address, port) is renewed.
    const synced = existsSync(join(options.dataDirectory, syncedMarkerFileName)) || this.data.restored;
    // Pages are built on this thread until the worker is ready (it loads in a fraction of a second).
    if (options.pageWorker)
      this.pageBuilder = PageBuilder.start(join(options.dataDirectory, databaseFileName), options.log);
    this.schedule();
    if (!synced && options.join.length === 0) {
      this.createDirectory(registration);
      this.markSynced();
    } else if (!synced) {
      await this.joinAndSync(registration);
      this.markSynced();
    } else {
      await this.refreshRegistration(registration);
      if (this.data.restored) this.markSynced();
    }
    this.isReady = true;
    this.refreshTopology(true);
    this.schedule();
    if (options.dns !== undefined) await this.startLocator(options.dns, registration);
    this.locateUdp = await startLocateUdp(options.host, port, () => this.locator()).catch(
      (error: unknown) => {
        options.log.log("warn", "locate-udp-unavailable", { port, error: errorText(error) });
        return null;
      },
    );
    options.log.log("info", "serving", { url: this.boundUrl, invocation: this.replica.invocationId });
  }

  /**
   * Stops cleanly: new client requests get 503, requests under way finish (their writes
   * commit; write concern and session waits are bounded), watch streams end; then the
   * machine stops, exchanges in flight are abandoned, and the data directory is closed.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutDown();
    return this.stopping;
  }

  private async shutDown(): Promise<void> {
    this.draining = true;
    // A client that keeps a connection busy cannot hold the node past the drain time.
    const force = setTimeout(() => {
      this.options.log.log("warn", "drain-timeout", { afterMs: drainTimeoutMs });
      this.concerns.close();
      this.app.server.closeAllConnections();
    }, drainTimeoutMs);
    // server.close() closes the connections idle at that moment only; one that finishes its
    // request later would otherwise stay open until its keep-alive timeout.
    const reap = setInterval(() => this.app.server.closeIdleConnections(), drainReapMs);
    try {
      await this.app.close();
    } finally {
      clearTimeout(force);
      clearInterval(reap);
      this.stopped = true;
      await this.dnsLocator?.close();
      await this.locateUdp?.close();
      this.concerns.close();
      if (this.timer !== null) clearTimeout(this.timer);
      await this.client.close();
      await this.pageBuilder?.close();
      for (const queued of this.writeQueue.splice(0)) queued.reject(new Error("the node is shutting down"));
      this.data.close();
    }
  }

  /** DNS from the replica's dns partition, and this node's records in it (src/runtime/locator.ts). */
  private async startLocator(dns: LocatorOptions, registration: Registration): Promise<void> {
    this.dnsLocator = await NodeLocator.start(
      {
        search: (request) => this.replica.search(request),
        dnsChanges: () => this.replica.changesIn(dnsPartition),
        topology: () => this.topology,
        partners: () => this.machine.partnerStatus(),
        unreachableAfterFailures: () =>
          this.topology?.settings.staleAfterFailures ?? settingsDefaults.staleAfterFailures,
        write: (request) => this.commit(request).then(({ result }) => result),
        log: this.options.log,
      },
      dns,
      { ...registration, ldapPort: null },
    );
  }

  /** The DNS server's `host:port`, or null when this node serves no DNS. */
  get dnsAddress(): string | null {
    return this.dnsLocator?.address ?? null;
  }

  // -------------------------------------------------------------------------------------------
  // creating, joining, registering

  private createDirectory(registration: Registration): void {
    for (const partition of [configPartition, dnsPartition, ...this.options.partitions]) {
      const created = this.replica.createPartition(partition);
      if (!created.ok && created.error.code !== "partition-exists")
        throw new Error(`cannot create partition ${partition}: ${created.error.message}`);
    }
    const raw = (this.options.topology ?? {}) as Record<string, unknown>;
    const sites = Array.isArray(raw.sites) ? [...raw.sites] : [];
    if (
      !sites.some(
        (site) =>
          typeof site === "object" &&
          site !== null &&
          "name" in site &&
          siteKey(String(site.name)) === siteKey(registration.site),
      )
    )
      sites.push({ name: registration.site });
    // Every node registers itself with the address it really listens on; servers listed in a
    // topology file (examples/topology.json has some) would be partners that never answer.
    if (Array.isArray(raw.servers) && raw.servers.length > 0)
      this.options.log.log("warn", "topology-servers-ignored", { count: raw.servers.length });
    const checked = checkTopology({
      ...raw,
      sites,
      servers: [
        {
          node: registration.node,
          site: registration.site,
          addresses: [registration.address],
          httpPort: registration.httpPort,
        },
      ],
    });
    if (!checked.ok) throw new Error(`invalid initial topology: ${checked.error.message}`);
    const results = this.machine.write(topologyWrites(checked.value));
    const failed = results.find((result) => !result.ok && result.error.code !== "entry-exists");
    if (failed !== undefined && !failed.ok)
      throw new Error(`cannot store the topology: ${failed.error.message}`);
    this.options.log.log("info", "directory-created", {
      partitions: [configPartition, dnsPartition, ...this.options.partitions],
    });
  }

  /**
   * Asks the URLs (the join URLs unless told otherwise) in turn to admit this node, until one
   * does or the join timeout passes; `rounds` bounds how often the list is tried.
   */
  private async admit(
    registration: Registration,
    urls: readonly string[] = this.options.join,
    rounds = Number.POSITIVE_INFINITY,
  ): Promise<{ node: NodeId; url: string; site: string | null; siteCreated: boolean }> {
    const deadline = monotonicClock.now() + this.options.timings.joinTimeoutMs;
    let lastReason = "no join URL";
    // A node's refusal (HTTP 400: a name taken, a site unknown) says what to fix; the timeout's
    // message gives it rather than whatever the last URL answered, a mere "unreachable".
    let lastRefusal: string | null = null;
    for (let attempt = 0; attempt < rounds && monotonicClock.now() < deadline && !this.stopped; attempt++) {
      if (attempt > 0) await sleep(joinRetryMs);
      let unauthorized = 0;
      let refused = 0;
      for (const url of urls) {
        const reply = await this.client.post(
          url,
          peerPaths.join,
          registration,
          this.options.timings.pullTimeoutMs,
        );
        if (reply.ok && typeof reply.body === "object" && reply.body !== null) {
          const { node: admitter, site, siteCreated } = reply.body as Record<string, unknown>;
          if (isNodeId(admitter))
            return {
              node: admitter,
              url,
              site: typeof site === "string" ? site : null,
              siteCreated: siteCreated === true,
            };
          lastReason = `${url} answered without a node id`;
        } else if (!reply.ok) {
          lastReason = `${url}: ${reply.reason}`;
          if (reply.status === 401) unauthorized++;
          if (reply.status === 400) {
            refused++;
            lastRefusal = lastReason;
          }
        }
      }
      // Every node refused the registration itself (a name taken, …): asking again cannot help.
      if (urls.length > 0 && refused === urls.length)
        throw new JoinRefusedError(`could not join: ${lastReason}`);
      // Every node refused our signature: the secret is not the cluster's, and retrying cannot help.
      if (urls.length > 0 && unauthorized === urls.length)
        throw new Error(
          `could not join: ${urls.length === 1 ? "the node refuses" : "every join URL refuses"} this node's requests as unsigned (HTTP 401): the cluster secret is not the one the cluster uses`,
        );
      this.options.log.log("warn", "join-retry", { attempt, reason: lastReason });
    }
    throw new Error(`could not join: ${lastRefusal ?? lastReason}`);
  }

  /**
   * Registers through a join URL, then pulls everything from the node that admitted it. The
   * watermark is committed with every page, so a crash here resumes where it stopped. When
   * that node stops answering (staleAfterFailures pulls in a row), the sync goes on from
   * another join URL's node, asked to admit this one again; with none, it says so and keeps
   * trying the first until the initial sync timeout.
   */
  private async joinAndSync(registration: Registration): Promise<void> {
    let admitter = await this.admit(registration);
    if (admitter.siteCreated)
      // No `site` field: the log's base fields already name this node's site, the one created.
      this.options.log.log("warn", "site-created", {
        by: admitter.node,
        hint: `the topology had no such site: the admitting node created it (--new-site), with a link to its own site (cost ${joinedLinkDefaults.cost}, every ${joinedLinkDefaults.intervalMinutes} minutes, no notify); set that link as the site needs, see docs/operations.md`,
      });
    const deadline = monotonicClock.now() + this.options.timings.initialSyncTimeoutMs;
    for (;;) {
      this.syncFrom(admitter);
      const other = await this.awaitInitialSync(admitter, registration, deadline);
      if (other === null) break;
      admitter = other;
    }
    this.bootstrap = null;
    this.options.log.log("info", "initial-sync-done", { from: admitter.node, usn: this.replica.usn });
  }

  /** Makes `admitter` this node's only partner, from the watermark a page from it last committed. */
  private syncFrom(admitter: { node: NodeId; url: string; site: string | null }): void {
    // A restart during the initial sync resumes from the watermark its last page committed.
    const from = this.replica.changeRequest(admitter.node).from;
    this.options.log.log("info", "joined", {
      through: admitter.node,
      url: admitter.url,
      syncFromUsn: from.objectUsn,
    });
    // The whole directory crosses here once: gzipped when it crosses a site boundary (the
    // admitter says its site), as every inter-site pull is.
    const acrossSites = admitter.site !== null && siteKey(admitter.site) !== siteKey(this.options.site);
    this.bootstrap = { node: admitter.node, url: admitter.url, compress: acrossSites };
    this.urls.set(admitter.node, admitter.url);
    this.planKey = "";
    this.applyPlan(
      {
        inbound: [],
        outbound: [],
        replicaSet: [this.options.node, admitter.node],
        note: "initial sync",
        unreachableSites: [],
      },
      [{ node: admitter.node, pullIntervalMs: settingsDefaults.intraSitePullIntervalMs }],
    );
    this.wake();
  }

  /**
   * Waits for a whole pull cycle from `admitter`: null once it completed, or the node of
   * another join URL that admitted this one when `admitter` kept failing.
   */
  private async awaitInitialSync(
    admitter: { node: NodeId; url: string },
    registration: Registration,
    deadline: number,
  ): Promise<Awaited<ReturnType<PlexusNode["admit"]>> | null> {
    const threshold = settingsDefaults.staleAfterFailures;
    const others = this.options.join.filter((url) => url !== admitter.url);
    let failuresBeforeNextTry = threshold;
    for (;;) {
      const status = this.machine.partnerStatus().find((partner) => partner.partner === admitter.node);
      if (status?.lastSuccessAt !== null && status?.lastSuccessAt !== undefined) return null;
      if (this.stopped) throw new Error("stopped during the initial sync");
      if (monotonicClock.now() > deadline) throw new Error(`initial sync from ${admitter.node} timed out`);
      const failures = status?.consecutiveFailures ?? 0;
      if (failures >= failuresBeforeNextTry) {
        failuresBeforeNextTry = failures + threshold;
        this.options.log.log("warn", "initial-sync-stalled", {
          from: admitter.node,
          failures,
          reason: status?.lastFailure ?? null,
          next:
            others.length > 0
              ? "asking the other join URLs to admit this node and sync from there"
              : "retrying it until the initial sync timeout: give more --join URLs to go on from another node",
        });
        if (others.length > 0) {
          const other = await this.admit(registration, others, 1).catch((error: unknown) => {
            this.options.log.log("warn", "initial-sync-switch-failed", { error: errorText(error) });
            return null;
          });
          if (other !== null && other.node !== admitter.node) return other;
        }
      }
      await sleep(syncPollMs);
    }
  }

  /**
   * After a restart: update this node's server entry if its address, port or site changed. A
   * site this node's topology lacks is left to the partner asked (it may have heard of a site
   * added meanwhile); when none admits it, it is refused here as a join would be (unless
   * --new-site), rather than created by this node alone.
   */
  private async refreshRegistration(registration: Registration): Promise<void> {
    const config = readTopology(this.replica).config;
    const planned = registrationWrites(config, registration, registration.site);
    if (planned.ok && planned.value.length === 0) return;
    // Partners only know the address on this node's server entry: a change written here alone
    // could never reach them if the old address no longer answers. So a node that comes back
    // on a new address asks a partner to record it (the join URLs, else every server the
    // topology lists), as a joining node would.
    const known = config.servers
      .filter((server) => server.node !== this.options.node && server.addresses[0] !== undefined)
      .map((server) => urlOf(server.addresses[0] as string, server.httpPort));
    const candidates = this.options.join.length > 0 ? this.options.join : known;
    if (candidates.length > 0) {
      try {
        await this.admit(
          registration,
          candidates,
          this.options.join.length > 0 ? Number.POSITIVE_INFINITY : 1,
        );
        return;
      } catch (error) {
        // Refused, not unreachable (the name is a running server's, elsewhere: a restored copy
        // of a live node, a second start under its name): writing the entry here would move it
        // away from that server, and two nodes would serve under one name. Not started.
        if (error instanceof JoinRefusedError) {
          // This node's own reading says why, in its own words, when it can (a site unknown).
          if (!planned.ok) throw new Error(planned.error.message);
          throw new Error(
            `this node's registration was refused: ${error.message.replace(/^could not join: /, "")}`,
          );
        }
        // This node holds the whole directory and serves anyway; the update below replicates
        // to partners once one of them reaches it.
        this.options.log.log("warn", "registration-update-not-admitted", { error: errorText(error) });
      }
    }
    if (!planned.ok) throw new Error(planned.error.message);
    // No one answered: write it here; partners learn it if they reach this node some other way.
    for (const { result } of await Promise.all(planned.value.map((write) => this.commit(write))))
      if (!result.ok) this.options.log.log("warn", "registration-failed", { error: result.error.message });
  }

  private markSynced(): void {
    const fd = openSync(join(this.options.dataDirectory, syncedMarkerFileName), "w");
    try {
      writeSync(fd, `${new Date().toISOString()}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  // -------------------------------------------------------------------------------------------
  // topology and partners

  private nodeConfig(plan: PartnerPlan, inbound?: NodeConfig["inbound"]): NodeConfig {
    const settings = this.topology?.settings ?? settingsDefaults;
    return {
      ...nodeConfigDefaults,
      pullTimeoutMs: this.options.timings.pullTimeoutMs,
      retryBackoffBaseMs: this.options.timings.retryBackoffBaseMs,
      retryBackoffMaxMs: this.options.timings.retryBackoffMaxMs,
      notifyDelayMs: settings.notifyDelayMs,
      relayPullDelayMs: settings.relayPullDelayMs,
      inbound:
        inbound ??
        plan.inbound.map((connection) => ({
          node: connection.node,
          pullIntervalMs: connection.pullIntervalMs,
          // Reverse-path pulling: origins whose changes come along another route are left out.
          ...(connection.exclude.length > 0 ? { exclude: connection.exclude } : {}),
          // Ask to be told of the partner's changes over a notify link, whatever its plan says.
          ...(connection.notify ? { notify: true } : {}),
        })),
      outbound: plan.outbound,
      replicaSet: plan.replicaSet.length > 0 ? plan.replicaSet : [this.options.node],
    };
  }

  private applyPlan(plan: PartnerPlan, inbound?: NodeConfig["inbound"]): void {
    if (plan === this.plan && inbound === undefined) return;
    const config = this.nodeConfig(plan, inbound);
    const key = JSON.stringify([config, plan.inbound]);
    if (key === this.planKey) return;
    this.planKey = key;
    // A node this one stops notifying may still pull from it and not know why it should stop:
    // one last notification makes it pull now, and that pull brings the topology change.
    const dropped = this.plan.outbound.filter((node) => !plan.outbound.includes(node));
    this.plan = plan;
    this.connections = new Map(plan.inbound.map((connection) => [connection.node, connection]));
    this.machine.reconfigure(config);
    this.dispatch(dropped.map((node) => ({ to: node, message: { kind: "notify" } })));
    this.logPartners(plan);
    if (plan.unreachableSites.length > 0) {
      this.options.log.log("warn", "sites-unreachable", {
        sites: plan.unreachableSites,
        why: "no link up toward them, or the valley-free policy forbids every path: their changes cannot reach this site",
      });
    }
  }

  /**
   * Logs whom this node pulls from (and as what: a stale partner becomes a `probe`) and whom it
   * notifies, when that changed: a new plan that differs only in what the log does not show
   * (a partner's address, an origin filter) would repeat the same line.
   */
  private logPartners(plan: PartnerPlan): void {
    const fields = {
      inbound: plan.inbound.map((connection) => `${connection.node} (${connection.kind})`),
      outbound: plan.outbound,
      note: plan.note,
    };
    const line = JSON.stringify(fields);
    if (line === this.partnersLogged) return;
    this.partnersLogged = line;
    this.options.log.log("info", "partners", fields);
  }

  /**
   * Re-reads the topology when an urgent change (every config change is one) was written or
   * applied since the last read, at most every topologyRefreshMs. Reading the config partition
   * after every change of any partition cost a partner about 2 % of its CPU under write load.
   */
  private refreshTopology(force = false): void {
    if (this.bootstrap !== null || this.stopped) return;
    const now = monotonicClock.now();
    if (
      !force &&
      (!this.topologyMayHaveChanged() || now - this.topologyReadAt < this.options.timings.topologyRefreshMs)
    ) {
      this.refreshStale();
      return;
    }
    this.topologyReadAtChanges = this.machine.urgentChangeCount;
    this.topologyReadAt = now;
    const read = readTopology(this.replica);
    if (read.problems.join("\n") !== this.topologyProblems.join("\n") && read.problems.length > 0)
      this.options.log.log("warn", "topology-problems", { problems: read.problems });
    this.topology = read.config;
    this.topologyProblems = read.problems;
    for (const server of read.config.servers) {
      const address = server.addresses[0];
      if (address === undefined || server.node === this.options.node) continue;
      this.urls.set(server.node, urlOf(address, server.httpPort));
    }
    this.applyPlan(this.currentPlan(read.config));
    this.publishInvocation(read.config);
  }

  /**
   * Records this node's current invocation id on its server object (once per invocation), so
   * that every node can tell which site a change came from and filter inter-site pulls by origin.
   */
  private publishInvocation(config: TopologyConfig): void {
    if (!this.isReady || this.publishing === this.replica.invocationId) return;
    const write = invocationWrite(config, this.options.node, this.replica.invocationId);
    if (write === null) return;
    const invocation = this.replica.invocationId;
    this.publishing = invocation;
    void this.commit(write).then(
      ({ result }) => {
        if (!result.ok) {
          this.options.log.log("warn", "invocation-not-published", {
            invocation,
            error: result.error.message,
          });
          this.publishing = null;
        }
      },
      (error: unknown) => {
        this.options.log.log("warn", "invocation-not-published", { invocation, error: errorText(error) });
        this.publishing = null;
      },
    );
  }

  /** Partners that failed staleAfterFailures pulls in a row: the ring closes around them. */
  private staleSet(): Set<NodeId> {
    const threshold = this.topology?.settings.staleAfterFailures ?? settingsDefaults.staleAfterFailures;
    return stalePartners(this.machine.partnerStatus(), threshold);
  }

  /**
   * Runs on every wake (at least once a minute): partners that went stale or recovered, and
   * link schedules that opened or closed, change the plan without any config change.
   */
  private refreshStale(): void {
    if (this.topology === null) return;
    this.applyPlan(this.currentPlan(this.topology));
    // A rollback gives this node a new invocation id without any config change.
    this.publishInvocation(this.topology);
  }

  private topologyMayHaveChanged(): boolean {
    return this.machine.urgentChangeCount !== this.topologyReadAtChanges;
  }

  /** The plan for the topology, stale set and minute; computed again only when one of them changed. */
  private currentPlan(config: TopologyConfig): PartnerPlan {
    const stale = this.staleSet();
    const wall = Date.now();
    const minute = minuteOfWeek(wall);
    const key = `${[...stale].sort().join(",")}@${minute}`;
    // The schedule's wake time passing while the wall clock's minute has not (the wall clock
    // was set back) also asks for a new one: a wake time left in the past would make every
    // timer fire at once, over and over, until the wall clock caught up.
    const wakePassed = (this.planCache?.scheduleChangeAt ?? Number.POSITIVE_INFINITY) <= monotonicClock.now();
    if (this.planCache?.config !== config || this.planCache.key !== key || wakePassed) {
      const whole = partnerPlan(config, this.options.node, stale);
      const minutes = minutesToScheduleChange(whole.inbound, minute);
      const scheduleChangeAt =
        minutes === null
          ? Number.POSITIVE_INFINITY
          : monotonicClock.now() + minutes * msPerMinute - (wall % msPerMinute) + scheduleWakeSlackMs;
      this.planCache = { config, key, plan: openPlan(whole, minute), scheduleChangeAt };
    }
    return this.planCache.plan;
  }

  // -------------------------------------------------------------------------------------------
  // driving the machine

  private wake(): void {
    if (this.stopped) return;
    this.wokeAt = monotonicClock.now();
    this.dispatch(this.guard("tick", () => this.machine.tick(), []));
    this.refreshTopology();
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.announceChanges();
    if (this.timer !== null) clearTimeout(this.timer);
    let wake = this.machine.nextWakeAt();
    if (this.topologyMayHaveChanged() && this.bootstrap === null)
      wake = Math.min(wake, this.topologyReadAt + this.options.timings.topologyRefreshMs);
    // Both absolute: a timer set again and again by commits and peer requests must not put off
    // the minute's wake (stale partners, schedules) for ever, as a relative cap did.
    wake = Math.min(
      wake,
      this.wokeAt + timerMaxMs,
      this.planCache?.scheduleChangeAt ?? Number.POSITIVE_INFINITY,
    );
    const delay = Math.max(0, Math.min(wake - monotonicClock.now(), timerMaxMs));
    this.timer = setTimeout(() => this.wake(), Math.ceil(delay));
  }

  /** Runs a machine step; a throw is a bug in this node, logged, never a crash of the process. */
  private guard<T>(what: string, step: () => T, fallback: T): T {
    try {
      return step();
    } catch (error) {
      this.options.log.log("error", "machine-step-failed", { step: what, error: errorText(error) });
      return fallback;
    }
  }

  private dispatch(sends: readonly Send[]): void {
    for (const send of sends) {
      const url = this.urls.get(send.to);
      const message = send.message;
      switch (message.kind) {
        case "pull":
        case "lingering-check":
          if (url === undefined) this.machine.undeliverable(send.to, message, "no address known for it");
          else void this.exchange(send.to, url, message);
          break;
        case "notify":
          if (url !== undefined) this.notify(send.to, url, message);
          break;
        case "page":
        case "refused":
        case "lingering-answer":
          // Answers travel back on the exchange that asked; one here has no exchange to ride.
          this.options.log.log("warn", "answer-without-exchange", { to: send.to, kind: message.kind });
          break;
      }
    }
  }

  private async exchange(to: NodeId, url: string, message: PeerMessage): Promise<void> {
    const compress =
      this.connections.get(to)?.compress ?? (this.bootstrap?.node === to && this.bootstrap.compress);
    const reply = await this.client.post(
      url,
      peerPaths.messages,
      message,
      this.options.timings.pullTimeoutMs,
      compress,
    );
    if (this.stopped) return;
    const problem = reply.ok && reply.status === 200 ? answerProblem(to, message, reply.body) : null;
    if (problem !== null) {
      this.metrics.exchangeFailed(to, message.kind);
      this.options.log.log("warn", "peer-answer-refused", { from: to, kind: message.kind, reason: problem });
      this.machine.undeliverable(to, message, problem);
    } else if (!reply.ok || reply.status !== 200) {
      this.metrics.exchangeFailed(to, message.kind);
      const reason = exchangeFailure(reply);
      this.options.log.log("debug", "exchange-failed", { to, kind: message.kind, reason });
      if (!reply.ok && reply.status === 401) this.warnRefusedSignature(to, reason);
      this.machine.undeliverable(to, message, reason);
    } else {
      const before = this.metrics.beforeApply(to, message.kind);
      try {
        const sends = this.machine.receive(to, reply.body);
        this.metrics.answerApplied(before, reply);
        this.dispatch(sends);
      } catch (error) {
        // Applying the answer failed here (the store: a full disk, an I/O error), and its
        // transaction was rolled back: the pull failed, with this node's reason, and is retried
        // after the back-off, not left in flight until its timeout.
        this.options.log.log("error", "machine-step-failed", { step: "receive", error: errorText(error) });
        const reason = isStorageFull(error)
          ? "this node's disk is full: the answer could not be stored"
          : `this node could not apply the answer: ${errorText(error)}`;
        this.machine.undeliverable(to, message, reason);
      }
    }
    this.refreshTopology();
    this.schedule();
  }

  /**
   * Notifies `to`, one notification on its way to each partner at most: those that come
   * meanwhile are merged into one, sent when it ends. A partner that takes connections and
   * never answers (SIGSTOPped, a half-open link) held one request slot per notification for
   * the pull timeout, one every notifyDelayMs under write load: within a second every slot
   * (peerRequestsInFlightMax) was its, and the healthy partners' pulls, notifications and
   * write-concern reports waited behind them (writes with concern `site` timed out).
   */
  private notify(to: NodeId, url: string, notification: NotifyMessage): void {
    if (this.notifying.has(to)) {
      this.notifying.set(to, mergeNotifications(this.notifying.get(to) ?? null, notification));
      return;
    }
    this.notifying.set(to, null);
    void this.sendNotification(to, url, notification);
  }

  private async sendNotification(to: NodeId, url: string, notification: NotifyMessage): Promise<void> {
    const reply = await this.client.post(
      url,
      peerPaths.messages,
      notification,
      this.options.timings.pullTimeoutMs,
    );
    // A lost notification costs latency only: the partner still pulls on its interval.
    if (!reply.ok) this.options.log.log("debug", "notify-failed", { to, reason: reply.reason });
    const next = this.notifying.get(to) ?? null;
    this.notifying.delete(to);
    // The partner may have pulled before the changes merged into `next` were committed.
    const nextUrl = this.urls.get(to);
    if (next !== null && nextUrl !== undefined && !this.stopped) this.notify(to, nextUrl, next);
  }

  private peerHandler() {
    return {
      message: (
        from: NodeId,
        body: unknown,
        reads: AnswerEncodings,
      ): PeerAnswer | PeerRefusal | Promise<PeerAnswer> => {
        if (this.stopped) return { status: 204 };
        const posted = postedMessageProblem(from, body);
        if (posted !== null) {
          this.options.log.log("warn", "peer-message-refused", { from, reason: posted });
          return { status: 400, detail: posted };
        }
        const builder = this.pageBuilder;
        if (builder?.available === true) {
          const admission = this.peerStep("admit-pull", () => this.machine.admitPull(from, body), undefined);
          if (admission === storageFull) return storageFullPeerAnswer(this.options.node);
          if (admission !== undefined) return this.answerPull(admission, builder, reads);
        }
        // The machine drops a malformed message unseen; from a node holding the secret it is a
        // bug or another version, which its sender and this node's log should both hear of.
        const checked = checkPeerMessage(body);
        if (!checked.ok) {
          this.options.log.log("warn", "peer-message-refused", { from, reason: checked.error.message });
          return { status: 400, detail: checked.error.message };
        }
        const sends = this.peerStep("receive", () => this.machine.receive(from, body), []);
        if (sends === storageFull) return storageFullPeerAnswer(this.options.node);
        const isAnswer = (send: Send): boolean =>
          send.to === from &&
          (send.message.kind === "page" ||
            send.message.kind === "refused" ||
            send.message.kind === "lingering-answer");
        const answer = sends.find(isAnswer);
        if (answer?.message.kind === "page") this.metrics.pageServed(from, "node");
        this.dispatch(sends.filter((send) => send !== answer));
        this.schedule();
        return answer === undefined ? { status: 204 } : { status: 200, body: answer.message };
      },
      join: async (from: NodeId, body: unknown) => this.admitPeer(from, body),
      utd: (): PeerAnswer => ({
        status: 200,
        body: {
          node: this.options.node,
          site: this.options.site,
          invocation: this.replica.invocationId,
          utd: this.replica.utd(),
        },
      }),
    };
  }

  /**
   * A pull the machine admitted, its page built on the page worker; by this thread when the
   * worker cannot (gone, or too many pages queued), as receive() would have.
   */
  private async answerPull(
    admission: PullAdmission,
    builder: PageBuilder,
    reads: AnswerEncodings,
  ): Promise<PeerAnswer> {
    this.schedule();
    if (admission.kind === "answer") return { status: 200, body: admission.message };
    const { ticket } = admission;
    const fromWorker = await builder.build(ticket, reads);
    const built =
      fromWorker ??
      // Not gzipped here: the transport compresses what the node's thread sends.
      this.guard(
        "read-page",
        () => builtPage(ticket.id, this.replica.readPage(ticket.request), { ...reads, gzip: false }),
        undefined,
      );
    if (this.stopped || built === undefined) return { status: 204 };
    if (built.kind === "refused") {
      const refused = this.machine.pageMessage(ticket, { ok: false, error: built.error });
      return { status: 200, body: refused };
    }
    this.guard("page-served", () => this.machine.pageServed(ticket, built.more), undefined);
    this.metrics.pageServed(ticket.from, fromWorker === undefined ? "node" : "worker");
    this.schedule();
    return { status: 200, json: built.body, gzipped: built.gzipped };
  }

  /**
   * A partner refusing this node's signature is a configuration error (another cluster secret),
   * not a failing network: said at warn level, at most once per partner and refusedSignatureWarnMs.
   */
  private warnRefusedSignature(partner: NodeId, reason: string): void {
    const now = monotonicClock.now();
    const last = this.signatureWarnedAt.get(partner);
    if (last !== undefined && now - last < refusedSignatureWarnMs) return;
    this.signatureWarnedAt.set(partner, now);
    this.options.log.log("warn", "partner-refuses-signature", {
      partner,
      reason,
      hint: "is this node's --secret-file the cluster's secret?",
    });
  }

  /** Admits a joining node: registers it (or updates its address) in the config partition. */
  private async admitPeer(
    from: NodeId,
    body: unknown,
  ): Promise<PeerAnswer | { status: 400 | 503; detail: string }> {
    if (!this.isReady) return { status: 503, detail: "this node is still syncing; join through another" };
    const checked = checkRegistration(body);
    if (!checked.ok) return { status: 400, detail: checked.error.message };
    if (checked.value.node !== from) return { status: 400, detail: "a node registers only itself" };
    if (checked.value.node === this.options.node)
      return { status: 400, detail: "that is this node's own name" };
    const config = readTopology(this.replica).config;
    // A site the topology lacks is refused before anything is written (no site, link or server
    // entry to delete afterwards), unless the joiner asked for it with --new-site.
    const planned = registrationWrites(config, checked.value, this.options.site);
    if (!planned.ok) return this.refuseJoin(checked.value, planned.error.message);
    const taken = await this.nameTakenBy(config, checked.value);
    if (taken !== null) return this.refuseJoin(checked.value, taken);
    const writes = planned.value;
    const siteCreated = !hasSite(config, checked.value.site);
    const results = (await Promise.all(writes.map((write) => this.commit(write)))).map(
      ({ result }) => result,
    );
    const failed = results.find((result) => !result.ok);
    if (failed !== undefined && !failed.ok) {
      // A full disk here is no fault of the joiner's: it may join through another node.
      const status = failed.error.code === "storage-full" ? 503 : 400;
      return { status, detail: failed.error.message };
    }
    this.options.log.log(siteCreated ? "warn" : "info", "admitted", {
      joiner: from,
      joinerSite: checked.value.site,
      writes: writes.length,
      ...(siteCreated ? { siteCreated: true } : {}),
    });
    this.refreshTopology(true);
    this.schedule();
    return { status: 200, body: { node: this.options.node, site: this.options.site, siteCreated } };
  }

  /** A join refused for a reason the joiner's operator must fix: said here too, at warn level. */
  private refuseJoin(registration: Registration, reason: string): { status: 400; detail: string } {
    this.options.log.log("warn", "join-refused", {
      joiner: registration.node,
      joinerSite: registration.site,
      reason,
    });
    return { status: 400, detail: reason };
  }

  /**
   * Why `registration` may not take its name, or null. A server entry of that name at another
   * address whose node answers as that name belongs to a running server: registering over it
   * would move the entry here, and nobody would pull from that server again (a typo in --node
   * silently cut a live node off). The same address, or no answer there, is the node itself
   * restarted or moved, as before.
   */
  private async nameTakenBy(config: TopologyConfig, registration: Registration): Promise<string | null> {
    const existing = config.servers.find((server) => server.node === registration.node);
    if (existing === undefined) return null;
    if (existing.httpPort === registration.httpPort && existing.addresses.includes(registration.address))
      return null;
    for (const address of existing.addresses) {
      const url = urlOf(address, existing.httpPort);
      if (await answersAs(url, registration.node))
        return `the node name ${registration.node} is taken: a server of that name answers at ${url}; give this node another --node, or stop that server first (its entry then moves here)`;
    }
    return null;
  }

  // -------------------------------------------------------------------------------------------
  // the directory service (client API)

  ready(): boolean {
    return this.isReady && !this.draining && !this.stopped;
  }

  concernAttainable(concern: WriteConcernRequest): Result<true> {
    const attainable = checkConcernAttainable(
      concern.concern,
      { node: this.options.node, site: this.options.site },
      this.topology?.servers ?? [],
    );
    return attainable.ok ? ok(true) : attainable;
  }

  async write(request: WriteRequest, concern: WriteConcernRequest): Promise<Result<WriteReceipt>> {
    const standing = checkServerStanding(this.topology?.servers ?? [], this.options.node);
    if (!standing.ok) {
      this.metrics.clientWrite(request.op, standing.error.code);
      return standing;
    }
    // A concern no server of the topology can meet is refused before the write, not timed out after it.
    const attainable = this.concernAttainable(concern);
    if (!attainable.ok) {
      this.metrics.clientWrite(request.op, attainable.error.code);
      return attainable;
    }
    const { result, invocation } = await this.commit(request).catch((error: unknown) => {
      this.metrics.clientWrite(request.op, "failed");
      throw error;
    });
    if (!result.ok) {
      this.metrics.clientWrite(request.op, result.error.code);
      return result;
    }
    const outcome = await this.concerns.wait(
      concern,
      { invocation, usn: result.value.usn },
      { node: this.options.node, site: this.options.site },
      this.topology?.servers ?? [],
    );
    this.metrics.clientWrite(request.op, outcome.met ? "ok" : "concern-not-met");
    return ok({ outcome: result.value, invocation, concern: outcome });
  }

  /** Queues a write for the next group commit: concurrent writes share one transaction and fsync. */
  private commit(request: WriteRequest): Promise<Committed> {
    if (this.writeQueue.length >= writeQueueMax) {
      return Promise.resolve({
        result: fail("limit-exceeded", `more than ${writeQueueMax} writes are waiting; retry later`),
        invocation: this.replica.invocationId,
      });
    }
    return new Promise((resolve, reject) => {
      this.writeQueue.push({ request, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    const batch = this.writeQueue.splice(0, groupCommitBatchMax);
    if (this.stopped) {
      for (const queued of batch) queued.reject(new Error("the node is shutting down"));
    } else {
      try {
        const began = monotonicClock.now();
        const results = this.machine.write(batch.map((queued) => queued.request));
        const changed = results.some((result) => result.ok && result.value.entries > 0);
        this.metrics.groupCommit(batch.length, (monotonicClock.now() - began) / 1_000, changed);
        const invocation = this.replica.invocationId;
        for (const [index, queued] of batch.entries()) {
          const result = results[index] ?? fail("invalid-request", "the write had no result");
          queued.resolve({ result, invocation });
        }
        this.storageRecovered();
      } catch (error) {
        if (isStorageFull(error)) this.refuseForStorage(batch, error);
        else {
          this.options.log.log("error", "write-failed", { writes: batch.length, error: errorText(error) });
          for (const queued of batch) queued.reject(error);
        }
      }
      this.refreshTopology();
      this.schedule();
    }
    if (this.writeQueue.length > 0) setImmediate(() => this.flush());
    else this.flushScheduled = false;
  }

  /**
   * A machine step for a partner's message: a throw is logged (a bug, never a crash), except the
   * store's want of space, which the partner is told of (storageFullPeerAnswer).
   */
  private peerStep<T>(what: string, step: () => T, fallback: T): T | typeof storageFull {
    try {
      return step();
    } catch (error) {
      if (!isStorageFull(error)) {
        this.options.log.log("error", "machine-step-failed", { step: what, error: errorText(error) });
        return fallback;
      }
      this.noteStorageFull(error, 0);
      return storageFull;
    }
  }

  /** The store found no space: logged once per episode (storage-full … storage-recovered). */
  private noteStorageFull(error: unknown, writes: number): void {
    if (this.storageFull === null) {
      this.storageFull = { since: monotonicClock.now(), refusedWrites: 0 };
      this.options.log.log("error", "storage-full", { writes, error: errorText(error) });
    }
    this.storageFull.refusedWrites += writes;
  }

  /**
   * The store refused the batch's transaction for want of space: SQLite rolled it back, so none
   * of these writes was stored, and each gets storage-full (retryable: another server can take it).
   */
  private refuseForStorage(batch: readonly QueuedWrite[], error: unknown): void {
    this.noteStorageFull(error, batch.length);
    const invocation = this.replica.invocationId;
    const result = fail(
      "storage-full",
      "this node's disk is full: the write was not stored; write to another server, or here once space is freed",
    );
    for (const queued of batch) queued.resolve({ result, invocation });
  }

  private storageRecovered(): void {
    if (this.storageFull === null) return;
    const { since, refusedWrites } = this.storageFull;
    this.storageFull = null;
    this.options.log.log("warn", "storage-recovered", {
      refusedWrites,
      fullForMs: Math.round(monotonicClock.now() - since),
    });
  }

  unreachableSession(token: UtdVector): string | null {
    const invocation = this.replica.invocationId;
    const claimed = token[invocation];
    if (claimed === undefined || claimed <= this.replica.usn) return null;
    return (
      `the session token claims USN ${claimed} of this node's instance ${invocation}, which has issued ` +
      `only ${this.replica.usn}: no node of this cluster gave it`
    );
  }

  /** Why `token` can never be met (see DirectoryService.lostSession and core/node/session.ts), or null. */
  async lostSession(token: UtdVector): Promise<string | null> {
    const published = publishedInvocations(this.topology);
    const gaps = judgeableGaps(token, this.replica.utd(), published);
    if (gaps.length === 0) return null;
    const reports = await this.surveyUtds();
    return reports === null ? null : lostSessionReason(gaps, published, reports);
  }

  /**
   * The UTD of every server of the topology (this node's own included), or null when one of
   * them does not report in time. Requests that ask while a survey is under way share it, so a
   * burst of lost tokens costs one report per server, not one per request.
   */
  private surveyUtds(): Promise<UtdVector[] | null> {
    if (this.survey !== null) return this.survey;
    const others = (this.topology?.servers ?? []).filter((server) => server.node !== this.options.node);
    if (others.length > lostSessionServersMax) return Promise.resolve(null);
    const survey = Promise.all(others.map((server) => this.utdOf(server)))
      .then((reports) => (reports.includes(null) ? null : [this.replica.utd(), ...(reports as UtdVector[])]))
      .catch(() => null);
    this.survey = survey.finally(() => {
      this.survey = null;
    });
    return this.survey;
  }

  /** The UTD survey under way for lostSession, shared by the requests that ask meanwhile. */
  private survey: Promise<UtdVector[] | null> | null = null;

  invocation(): InvocationId {
    return this.replica.invocationId;
  }

  formerInvocation(invocation: string): boolean {
    if (invocation === this.replica.invocationId) return false;
    const mine = this.topology?.servers.find((server) => server.node === this.options.node);
    return (mine?.invocations ?? []).includes(invocation as InvocationId);
  }

  async catchUp(token: UtdVector, waitMs: number): Promise<boolean> {
    if (utdCoversVector(this.replica.utd(), token)) return true;
    // Behind the client: pull from every partner now, as if each had just notified us.
    for (const partner of this.machine.partnerStatus())
      this.dispatch(
        this.guard("receive", () => this.machine.receive(partner.partner, { kind: "notify" }), []),
      );
    this.schedule();
    const deadline = monotonicClock.now() + waitMs;
    while (!this.stopped && monotonicClock.now() < deadline) {
      await sleep(catchUpPollMs);
      if (utdCoversVector(this.replica.utd(), token)) return true;
    }
    return false;
  }

  /**
   * A signed UTD report from `server`, or null when it does not answer in time or its report
   * cannot be true: one from another node (the address now serves another name), or one that
   * claims more of this node's instance than this node has issued — either would count toward
   * a write concern the server never met.
   */
  private async utdOf(server: { node: NodeId }): Promise<UtdVector | null> {
    const url = this.urls.get(server.node);
    if (url === undefined || this.stopped) return null;
    const reply = await this.client.post(url, peerPaths.utd, null, utdReportTimeoutMs);
    const body = reply.ok && isRecord(reply.body) ? reply.body : null;
    if (body === null || body.node !== server.node) return null;
    const utd = validateUtd(body.utd, "UTD report");
    if (!utd.ok || utdGet(utd.value, this.replica.invocationId) > this.replica.usn) return null;
    return utd.value;
  }

  /** Tells watch streams that something was committed (a client write or an applied page). */
  private announceChanges(): void {
    if (this.replica.usn === this.announcedUsn) return;
    this.announcedUsn = this.replica.usn;
    for (const listener of this.changeListeners) listener();
  }

  position(): number {
    return this.replica.usn;
  }

  changesSince(after: number, limit: number): ChangeEvent[] {
    return this.data.store.entriesChangedAfter(after as Usn, limit).map((row) => ({
      usn: row.usnChanged,
      guid: row.guid,
      dn: row.deleted ? null : (this.replica.dnOf(row.guid) ?? null),
      deleted: row.deleted,
    }));
  }

  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  get(dn: string, attributes: readonly string[] | undefined): Result<EntryView> {
    return this.replica.get(dn, attributes);
  }

  search(request: SearchRequest): Result<SearchResult> {
    return this.replica.search(request);
  }

  inboundPartners(): NodeId[] {
    return this.machine.partnerStatus().map((status) => status.partner);
  }

  /** `POST /v1/replicate`: pulls now from inbound partners (src/runtime/replicate-now.ts). */
  replicate(from: NodeId | null, timeoutMs: number): Promise<PullResult[]> {
    return replicateNow(
      {
        partners: () => this.machine.partnerStatus(),
        nudge: (partner) => {
          this.dispatch(this.guard("receive", () => this.machine.receive(partner, { kind: "notify" }), []));
          this.schedule();
        },
        now: () => monotonicClock.now(),
        stopped: () => this.stopped,
        wallTimeOf,
      },
      from,
      timeoutMs,
    );
  }

  conflicts(after: Guid | null, limit: number): Result<ConflictView[]> {
    return ok(this.replica.conflicts(after, limit));
  }

  locator(): LocatorView | null {
    if (this.topology === null) return null;
    return { topology: this.topology, node: this.options.node, site: this.options.site };
  }

  status(): unknown {
    return {
      node: this.options.node,
      site: this.options.site,
      url: this.boundUrl,
      ready: this.ready(),
      invocationId: this.replica.invocationId,
      usn: this.replica.usn,
      originatedUsn: this.replica.originatedUsn,
      utd: this.replica.utd(),
      quarantined: this.replica.isQuarantined(),
      storageFull:
        this.storageFull === null
          ? null
          : { since: wallTimeOf(this.storageFull.since), refusedWrites: this.storageFull.refusedWrites },
      dns: this.dnsLocator?.status() ?? null,
      partners: this.machine.partnerStatus().map((status) => {
        const connection = this.connections.get(status.partner);
        return {
          node: status.partner,
          url: this.urls.get(status.partner) ?? null,
          kind: connection?.kind ?? (this.bootstrap === null ? null : "initial-sync"),
          site: connection?.site ?? null,
          compress: connection?.compress ?? false,
          excludedOrigins: connection?.exclude ?? [],
          pulling: status.pulling,
          lastSuccessAt: status.lastSuccessAt === null ? null : wallTimeOf(status.lastSuccessAt),
          lastFailureAt: status.lastFailureAt === null ? null : wallTimeOf(status.lastFailureAt),
          lastFailure: status.lastFailure,
          consecutiveFailures: status.consecutiveFailures,
        };
      }),
      outbound: this.plan.outbound,
      replicaSet: this.plan.replicaSet,
      note: this.plan.note,
      unreachableSites: this.plan.unreachableSites,
      topologyProblems: this.topologyProblems,
      queues: this.queues(),
    };
  }

  private queues(): QueueSizes {
    return {
      writes: this.writeQueue.length,
      writeConcernWaits: this.concerns.waiting,
      peerRequestsInFlight: this.client.active,
      peerRequestsWaiting: this.client.queued,
    };
  }

  /** What GET /metrics reads from this node (src/runtime/metrics.ts). */
  private metricsSource(): MetricsSource {
    return {
      usn: () => this.replica.usn,
      invocation: () => this.replica.invocationId,
      utd: () => this.replica.utd(),
      ready: () => this.ready(),
      partners: () => this.machine.partnerStatus(),
      queues: () => this.queues(),
      servers: () => this.topology?.servers ?? [],
      entries: () => {
        const counts = this.replica.counts();
        return { live: counts.entries, tombstones: counts.tombstones };
      },
      conflicts: (max) => this.replica.conflicts(null, max).length,
      rejectedPages: () => this.machine.rejectedPageCount,
      storageFull: () => this.storageFull !== null,
    };
  }
}

/**
 * Whether the node at `url` answers GET /v1/status as `node`, within nameProbeTimeoutMs. By
 * undici's request(), as every request between nodes: Node's fetch refuses the ports browsers
 * block ("bad port"), where a node serves all the same, and its failure read as nothing there.
 */
async function answersAs(url: string, node: NodeId): Promise<boolean> {
  try {
    const response = await request(`${url}/v1/status`, { signal: AbortSignal.timeout(nameProbeTimeoutMs) });
    const body = (await response.body.json()) as { node?: unknown };
    return response.statusCode === 200 && body.node === node;
  } catch {
    return false;
  }
}

function urlOf(address: string, port: number): string {
  return `http://${address.includes(":") ? `[${address}]` : address}:${port}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
