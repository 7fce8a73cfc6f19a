import { createSocket } from "node:dgram";
import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import { Agent, request as undiciRequest } from "undici";
import {
  type BackoffPolicy,
  backoffDefault,
  type Candidate,
  FailureBook,
  genericSrvName,
  hostPort,
  mergeSession,
  plan,
  type RandomSource,
  rfc2782Order,
  type SrvTarget,
  siteSrvName,
  type Tier,
} from "./select.ts";

/**
 * The Plexus client (docs/client.md): finds servers through the locator's DNS records, pings
 * one to learn its own site, and fails over from its site's servers to the next-closest
 * sites' and then to any server, keeping the session token so that its reads see its own
 * writes wherever they land. The choices are select.ts's; this file only does the I/O.
 */

/** A request that gets no answer within this long fails over. Above the node's 2 s session wait. */
export const requestTimeoutMsDefault = 3_000;
/**
 * How long one call may take over all its attempts (failovers, hedged reads, the lookup of the
 * servers): five attempts' worth of requestTimeoutMsDefault. Without it a call that keeps
 * failing over took up to servers × requestTimeoutMs.
 */
export const deadlineMsDefault = 15_000;
/** A server that does not accept the connection within this long fails over (a dead host). */
export const connectTimeoutMsDefault = 500;
/** How long resolved records and the ping's answer are used before they are looked up again. */
export const recordsRefreshMsDefault = 60_000;
/** DNS queries: per try, and tries per server. */
export const dnsTimeoutMsDefault = 1_000;
const dnsTries = 2;
/** A UDP ping without an answer in this long falls back to GET /v1/locate on the same server. */
export const pingUdpTimeoutMsDefault = 300;
/** Headroom over a write concern's own timeout, for the node to answer after it gave up. */
const concernHeadroomMs = 2_000;
/** A write concern's timeout when it gives none (docs/api.md). */
const concernTimeoutMsDefault = 5_000;
/** Answers larger than this are refused (a search page is at most 1,000 entries). */
const answerBytesMax = 64 * 1024 * 1024;
/** Statuses that say "try another server": not ready, quarantined, behind the session, disk full. */
const failoverStatus = 503;
/**
 * Connection errors raised before a request was sent: the server cannot have applied it, so
 * even a write goes on to the next server. Anything else (reset, closed, no answer in time)
 * may come after the server got the request.
 */
export const notSentCodes: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
]);
/**
 * A read waits this long for its server before the next one is asked too: far above a healthy
 * node's answer (milliseconds), far below requestTimeoutMs.
 */
export const hedgeReadsAfterMsDefault = 500;
/** POST routes that only read, so that they fail over like a GET. */
const readOnlyPosts = new Set(["/v1/search"]);
/**
 * Connections the client opens to one server at most; further requests wait for one of them.
 * Thousands of requests at once would otherwise each open a connection, overflow the server's
 * accept queue (511 on Node) and fail as connect timeouts, putting a healthy server in back-off.
 */
export const connectionsPerServerMax = 128;

export interface SrvResolver {
  /** The SRV records at `name`; empty when the name or the type does not exist. */
  srv(name: string): Promise<SrvTarget[]>;
  /** The addresses of a host name (A, then AAAA). */
  addresses(host: string): Promise<string[]>;
}

export interface ClientOptions {
  /** The locator zone (e.g. `example.com`): servers are found by its SRV records. */
  readonly zone?: string;
  /** DNS servers (`host:port`) answering for the zone; default the system's. */
  readonly dnsServers?: readonly string[];
  /** Fixed servers instead of DNS (base URLs, tried in order; no site discovery). */
  readonly urls?: readonly string[];
  /** The client's site when known; otherwise it asks a server (GET /v1/locate). */
  readonly site?: string;
  /** Ask the ping about this address instead of the one the client connects from (proxies, tests). */
  readonly address?: string;
  /** The local address to connect from. */
  readonly localAddress?: string;
  /** How to ping: a UDP datagram first (falling back to HTTP), or HTTP only. Default udp. */
  readonly ping?: "udp" | "http";
  /** Keep connections open between requests (default true); a one-shot command turns it off so it can exit at once. */
  readonly keepAlive?: boolean;
  readonly requestTimeoutMs?: number;
  /**
   * One call ends within this long, however many servers it tries: then it throws
   * DeadlineExceededError (a NoServerError) naming the servers tried, or OutcomeUnknownError for
   * a write the deadline cut short after it was sent. Never less than a write's own write
   * concern timeout plus headroom. Default deadlineMsDefault; null: no overall bound.
   */
  readonly deadlineMs?: number | null;
  /**
   * A read with no answer after this long is asked of the next server too, and the first answer
   * wins (default hedgeReadsAfterMsDefault; null: never). A server gone silent on a kept
   * connection then costs a read this, not requestTimeoutMs. Writes are never sent twice.
   */
  readonly hedgeReadsAfterMs?: number | null;
  readonly connectTimeoutMs?: number;
  readonly recordsRefreshMs?: number;
  readonly backoff?: BackoffPolicy;
  /** Write concern for every write that does not give its own (`local`, `site`, `sites=N`, `all`). */
  readonly writeConcern?: string;
  /** A session token to start from (another client's, or a saved one). */
  readonly session?: string;
  readonly resolver?: SrvResolver;
  readonly random?: RandomSource;
  readonly now?: () => number;
  /** Told of every attempt that failed and of every answer (observability, tests). */
  readonly onAttempt?: (attempt: Attempt) => void;
}

export interface Attempt {
  readonly url: string;
  readonly tier: Tier;
  /** Null when an answer came; otherwise why the server was left. */
  readonly failure: string | null;
  readonly status?: number;
}

export interface ClientAnswer<T = unknown> {
  readonly status: number;
  readonly body: T;
  /** The server that answered. */
  readonly url: string;
  readonly tier: Tier;
  /** The servers tried before it, and why each was left. */
  readonly failed: readonly Attempt[];
}

export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly problem: Record<string, unknown>,
    readonly url: string,
  ) {
    super(`${code}: ${typeof problem.detail === "string" ? problem.detail : `HTTP ${status}`} (${url})`);
  }
}

/** Every server was tried and none answered: which, from which tier, and why. */
export class NoServerError extends Error {
  constructor(
    readonly attempts: readonly Attempt[],
    why: string,
    /** A subclass's own message. */
    message?: string,
  ) {
    const behind = attempts.length > 0 && attempts.every((attempt) => attempt.failure === sessionBehind);
    super(
      message ??
        (attempts.length === 0
          ? `no Plexus server to try: ${why}`
          : `no Plexus server answered (${attempts.length} tried): ${triedText(attempts)}${
              behind
                ? " (every one lacks writes this client's session token holds: should the servers that took them be gone for good, client.forgetSession() stops waiting for them)"
                : ""
            }`),
    );
  }
}

/**
 * The call's deadline (`deadlineMs`) passed before any server answered: the servers tried and
 * why each was left (the ones the deadline cut short say so), and how many were not tried.
 */
export class DeadlineExceededError extends NoServerError {
  constructor(
    attempts: readonly Attempt[],
    readonly deadlineMs: number,
    /** Candidates the call did not get to. */
    readonly untried: number,
  ) {
    super(
      attempts,
      "",
      `no Plexus server answered within the call's deadline of ${deadlineMs} ms (deadlineMs): ${
        attempts.length === 0
          ? "still looking up the servers"
          : `${attempts.length} tried${untried > 0 ? `, ${untried} not tried` : ""}: ${triedText(attempts)}`
      }`,
    );
  }
}

function triedText(attempts: readonly Attempt[]): string {
  return attempts
    .map((attempt) => `${attempt.url} (${describeTier(attempt.tier)}): ${attempt.failure}`)
    .join("; ");
}

/** A body's text, or null once it runs past `bytesMax` (the rest is not read). */
async function boundedText(body: AsyncIterable<Uint8Array>, bytesMax: number): Promise<string | null> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.byteLength;
    if (bytes > bytesMax) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The failure of a server that has not caught up with the session token (a healthy one). */
const sessionBehind = "503 session-behind";

/** Where `rename` takes an entry: a new RDN, and optionally a new parent (docs/api.md). */
export interface RenameTarget {
  readonly newRdn: string;
  /** The new parent's DN; absent: the entry stays under its parent. */
  readonly newParent?: string;
  /** Remove the old RDN's value from the entry (default true). */
  readonly deleteOldRdn?: boolean;
}

/** Per call: what the caller can add to one request (and its failovers). */
export interface CallOptions {
  /**
   * Aborts the request and its failovers: the call rejects with the signal's reason and tries
   * no other server. A write aborted after it was sent may have been applied (as with
   * OutcomeUnknownError: read to know).
   */
  readonly signal?: AbortSignal;
}

/**
 * A write (anything but a read) reached a server, which then broke the connection, did not
 * answer in time or answered something that is not an answer: it may have been applied there.
 * It is not sent to another server, where it could be applied a second time (a create then
 * makes a naming conflict) or refused for having been applied (a delete's `no-such-entry`).
 */
export class OutcomeUnknownError extends Error {
  constructor(
    /** The request, `METHOD /path`. */
    readonly request: string,
    /** The server the write went to. */
    readonly url: string,
    readonly tier: Tier,
    /** Why its outcome is unknown. */
    readonly reason: string,
    /** The servers tried before it (which cannot have applied it), and why each was left. */
    readonly attempts: readonly Attempt[],
  ) {
    super(
      `${request} may have been applied on ${url} (${describeTier(tier)}): ${reason}; not sent to another server (read to know whether it was applied)`,
    );
  }
}

export function describeTier(tier: Tier): string {
  switch (tier.kind) {
    case "site":
      return `site ${tier.site}`;
    case "closest":
      return `next-closest site ${tier.site}`;
    case "generic":
      return "any site";
    case "urls":
      return "given URL";
  }
}

export interface Located {
  readonly clientSite: string | null;
  /**
   * The answering node's site. When no subnet holds the client's address, the closest sites
   * are counted from it, and the client starts from it (as a closest site of cost 0).
   */
  readonly nodeSite: string | null;
  readonly closestSites: readonly { readonly site: string; readonly cost: number }[];
  /** How the ping was answered. */
  readonly via: "udp" | "http";
}

/** The resolver over node:dns (c-ares) with the given servers, or the system's. */
export function dnsResolver(
  servers: readonly string[] | undefined,
  timeoutMs = dnsTimeoutMsDefault,
): SrvResolver {
  const resolver = new Resolver({ timeout: timeoutMs, tries: dnsTries });
  if (servers !== undefined && servers.length > 0) resolver.setServers([...servers]);
  const missing = (error: unknown): boolean => {
    const code = (error as { code?: unknown }).code;
    return code === "ENOTFOUND" || code === "ENODATA";
  };
  return {
    srv: async (name) => {
      try {
        return (await resolver.resolveSrv(name)).map((record) => ({
          target: record.name,
          port: record.port,
          priority: record.priority,
          weight: record.weight,
        }));
      } catch (error) {
        if (missing(error)) return [];
        throw error;
      }
    },
    addresses: async (host) => {
      const found: string[] = [];
      for (const family of [4, 6] as const) {
        try {
          found.push(...(await (family === 4 ? resolver.resolve4(host) : resolver.resolve6(host))));
        } catch (error) {
          if (!missing(error)) throw error;
        }
      }
      return found;
    },
  };
}

interface Records {
  readonly tiers: readonly (readonly Candidate[])[];
  readonly at: number;
}

export class PlexusClient {
  private readonly book: FailureBook;
  private readonly agent: Agent;
  private readonly resolver: SrvResolver | null;
  private readonly random: RandomSource;
  private readonly now: () => number;
  private records: Records | null = null;
  private refreshing: Promise<Records> | null = null;
  private located: Located | null = null;
  private sessionToken: string | null;

  constructor(private readonly options: ClientOptions) {
    if ((options.zone === undefined) === (options.urls === undefined || options.urls.length === 0))
      throw new Error("give either a zone (servers from DNS) or urls, not both");
    if (options.zone !== undefined && !/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/i.test(options.zone))
      throw new Error(`'${options.zone}' is not a DNS zone name`);
    this.book = new FailureBook(options.backoff ?? backoffDefault);
    // Fixed URLs are checked here, so that a bad one is refused by createClient, not by a request.
    if (options.urls !== undefined && options.urls.length > 0)
      this.records = { tiers: [options.urls.map((url) => urlCandidate(url))], at: 0 };
    this.agent = new Agent({
      connections: connectionsPerServerMax,
      connect: { timeout: options.connectTimeoutMs ?? connectTimeoutMsDefault },
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    });
    this.resolver = options.zone === undefined ? null : (options.resolver ?? dnsResolver(options.dnsServers));
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => performance.now());
    this.sessionToken = options.session ?? null;
  }

  /** The token that carries what this client has written (hand it to another client to share). */
  get session(): string | null {
    return this.sessionToken;
  }

  /**
   * Drops the session token: later requests no longer wait for the writes it holds. For when
   * the servers that took them are gone for good (a site lost with writes acknowledged at
   * concern `local`): every other server answers `503 session-behind` until those writes
   * reach it, which then never happens. Reads may then miss them; writes go on.
   */
  forgetSession(): void {
    this.sessionToken = null;
  }

  /** What the last ping said (null before the first, or with fixed URLs). */
  get location(): Located | null {
    return this.located;
  }

  /** The servers in the order the next request would try them. */
  async candidates(): Promise<Candidate[]> {
    return plan((await this.currentRecords()).tiers, this.book, this.now());
  }

  /**
   * One request, failed over server by server: a connection error, a timeout or a 503 moves
   * on to the next candidate (the first two also put the server in back-off). Any other
   * answer, success or problem, is returned. Writes are retried elsewhere too: a write whose
   * connection broke after it was sent may have been applied (a retried create then answers
   * entry-exists), which is why writes that matter ask for a write concern.
   */
  async request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    options: CallOptions = {},
  ): Promise<ClientAnswer<T>> {
    options.signal?.throwIfAborted();
    // The caller's error (a cycle, a BigInt), thrown before any server is tried: caught in an
    // attempt, it read as a server's failure, put it in back-off and made a write "maybe applied".
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const timeoutMs = this.timeoutFor(headers);
    const deadline = this.deadlineFor(timeoutMs);
    const expiry = new AbortController();
    const timer = deadline === null ? undefined : setTimeout(() => expiry.abort(), deadline);
    try {
      return await this.requestWithin<T>({ method, path, payload, headers, timeoutMs }, options.signal, {
        ms: deadline ?? 0,
        signal: expiry.signal,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** `request` once its deadline is set: `deadline.signal` aborts when the call's time is up. */
  private async requestWithin<T>(
    ask: Ask,
    signal: AbortSignal | undefined,
    deadline: Deadline,
  ): Promise<ClientAnswer<T>> {
    const { method, path, payload, headers, timeoutMs } = ask;
    const records = await untilDeadline(this.currentRecords(), deadline);
    signal?.throwIfAborted();
    const order = plan(records.tiers, this.book, this.now());
    if (order.length === 0) throw new NoServerError([], this.emptyReason());
    const failed: Attempt[] = [];
    const read = isRead(method, path);
    const hedgeAfterMs =
      this.options.hedgeReadsAfterMs === undefined
        ? hedgeReadsAfterMsDefault
        : this.options.hedgeReadsAfterMs;
    if (read && hedgeAfterMs !== null) return this.hedgedRead<T>(order, ask, hedgeAfterMs, signal, deadline);
    const both = signal === undefined ? deadline.signal : AbortSignal.any([signal, deadline.signal]);
    for (const [index, candidate] of order.entries()) {
      if (deadline.signal.aborted) throw new DeadlineExceededError(failed, deadline.ms, order.length - index);
      const outcome = await this.attempt(candidate, method, path, payload, headers, timeoutMs, both);
      // The caller gave up: no other server is tried, and this one is not blamed.
      signal?.throwIfAborted();
      if (outcome.kind === "answer") return this.answered<T>(candidate, outcome, failed);
      // The deadline cut this attempt short: the server had less than its timeout, no back-off.
      const cut = deadline.signal.aborted;
      if (cut) this.noteCut(candidate, deadline, failed);
      else this.noteFailure(candidate, outcome, failed);
      // A write the server may have applied is not sent again elsewhere (OutcomeUnknownError).
      if (!read && outcome.maybeApplied)
        throw new OutcomeUnknownError(
          `${method.toUpperCase()} ${path}`,
          candidate.url,
          candidate.tier,
          cut ? deadlineReason(deadline) : outcome.reason,
          failed.slice(0, -1),
        );
      if (cut) throw new DeadlineExceededError(failed, deadline.ms, order.length - index - 1);
    }
    throw new NoServerError(failed, "");
  }

  /**
   * A read, server after server as `request` does, but one that has no answer after
   * `hedgeAfterMs` is asked of the next server as well, and the first answer wins. A server
   * outrun that way goes into back-off at once (a silent one would otherwise take the next
   * write, and hold it for requestTimeoutMs), and comes out of it when its own answer arrives
   * after all (it was only slow): its request goes on in the background until then. Requests
   * started after the winner are cancelled. A failure asks the next server at once.
   */
  private async hedgedRead<T>(
    order: readonly Candidate[],
    ask: Ask,
    hedgeAfterMs: number,
    signal: AbortSignal | undefined,
    deadline: Deadline,
  ): Promise<ClientAnswer<T>> {
    const failed: Attempt[] = [];
    const running = new Map<number, { readonly cancel: AbortController; readonly done: Promise<number> }>();
    const outcomes = new Map<number, Awaited<ReturnType<PlexusClient["attempt"]>>>();
    const expired = new Promise<"deadline">((resolve) => {
      if (deadline.signal.aborted) resolve("deadline");
      else deadline.signal.addEventListener("abort", () => resolve("deadline"), { once: true });
    });
    let next = 0;
    const start = (): void => {
      const index = next++;
      const candidate = order[index] as Candidate;
      const cancel = new AbortController();
      const both = AbortSignal.any([
        ...(signal === undefined ? [] : [signal]),
        deadline.signal,
        cancel.signal,
      ]);
      const done = this.attempt(
        candidate,
        ask.method,
        ask.path,
        ask.payload,
        ask.headers,
        ask.timeoutMs,
        both,
      ).then((outcome) => {
        outcomes.set(index, outcome);
        return index;
      });
      running.set(index, { cancel, done });
    };
    start();
    try {
      while (running.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        const hedge =
          next < order.length
            ? new Promise<"hedge">((resolve) => {
                timer = setTimeout(() => resolve("hedge"), hedgeAfterMs);
              })
            : new Promise<never>(() => {});
        const first = await Promise.race([...[...running.values()].map((each) => each.done), hedge, expired]);
        clearTimeout(timer);
        signal?.throwIfAborted();
        if (first === "hedge") {
          start();
          continue;
        }
        if (first !== "deadline") {
          running.delete(first);
          const outcome = outcomes.get(first);
          const candidate = order[first] as Candidate;
          if (outcome?.kind === "answer") {
            this.settleOutrun(order, running, outcomes, first, hedgeAfterMs, failed);
            return this.answered<T>(candidate, outcome, failed);
          }
          if (!deadline.signal.aborted) {
            if (outcome !== undefined) this.noteFailure(candidate, outcome, failed);
            if (running.size === 0 && next < order.length) start();
            continue;
          }
          this.noteCut(candidate, deadline, failed);
        }
        // The deadline passed: the requests still waiting are cut short (and not blamed).
        for (const [index, { cancel }] of running) {
          cancel.abort();
          this.noteCut(order[index] as Candidate, deadline, failed);
        }
        running.clear();
        throw new DeadlineExceededError(failed, deadline.ms, order.length - next);
      }
    } catch (error) {
      for (const { cancel } of running.values()) cancel.abort();
      throw error;
    }
    throw new NoServerError(failed, "");
  }

  /**
   * After the answer of request `winner`: the requests started before it were outrun (back-off
   * now, out of it if their answer comes after all), the ones started after it are cancelled.
   */
  private settleOutrun(
    order: readonly Candidate[],
    running: ReadonlyMap<number, { readonly cancel: AbortController; readonly done: Promise<number> }>,
    outcomes: ReadonlyMap<number, Awaited<ReturnType<PlexusClient["attempt"]>>>,
    winner: number,
    hedgeAfterMs: number,
    failed: Attempt[],
  ): void {
    for (const [index, { cancel, done }] of running) {
      if (index > winner) {
        cancel.abort();
        continue;
      }
      const candidate = order[index] as Candidate;
      const reason = `no answer within ${hedgeAfterMs} ms (the read went on to the next server)`;
      this.book.fail(candidate.key, this.now(), reason);
      const attempt = { url: candidate.url, tier: candidate.tier, failure: reason };
      this.options.onAttempt?.(attempt);
      failed.push(attempt);
      void done.then((settled) => {
        const late = outcomes.get(settled);
        if (late?.kind === "answer") this.book.succeed(candidate.key);
        // No answer at all in the end: a failure of its own, on top of having been outrun.
        else if (late?.kind === "failed" && late.backoff)
          this.book.fail(candidate.key, this.now(), late.reason);
      });
    }
  }

  /** An answer from `candidate`: the server is well, and the caller learns who answered and who failed first. */
  private answered<T>(
    candidate: Candidate,
    outcome: { kind: "answer"; status: number; body: unknown },
    failed: readonly Attempt[],
  ): ClientAnswer<T> {
    this.book.succeed(candidate.key);
    this.options.onAttempt?.({
      url: candidate.url,
      tier: candidate.tier,
      failure: null,
      status: outcome.status,
    });
    return {
      status: outcome.status,
      body: outcome.body as T,
      url: candidate.url,
      tier: candidate.tier,
      failed,
    };
  }

  /** A request the call's deadline cut short: recorded, but no back-off (it was not given its timeout). */
  private noteCut(candidate: Candidate, deadline: Deadline, failed: Attempt[]): void {
    const attempt = { url: candidate.url, tier: candidate.tier, failure: deadlineReason(deadline) };
    this.options.onAttempt?.(attempt);
    failed.push(attempt);
  }

  /** A server that gave no answer: back-off when it may be down, and the attempt recorded. */
  private noteFailure(
    candidate: Candidate,
    outcome: { reason: string; backoff: boolean },
    failed: Attempt[],
  ): void {
    if (outcome.backoff) this.book.fail(candidate.key, this.now(), outcome.reason);
    const attempt = { url: candidate.url, tier: candidate.tier, failure: outcome.reason };
    this.options.onAttempt?.(attempt);
    failed.push(attempt);
  }

  /** Like request, but a problem answer (4xx, 5xx) throws ProblemError. */
  async call<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    options: CallOptions = {},
  ): Promise<ClientAnswer<T>> {
    const answer = await this.request<T>(method, path, body, headers, options);
    if (answer.status >= 400) {
      const problem: Record<string, unknown> = isRecord(answer.body) ? answer.body : {};
      const code = typeof problem.code === "string" ? problem.code : `http-${answer.status}`;
      throw new ProblemError(answer.status, code, problem, answer.url);
    }
    return answer;
  }

  // The wrappers are async so that a DN no path can carry (entryPath) rejects, as every other
  // failure does, rather than throwing before the caller has a promise.
  async get<T = Record<string, unknown>>(
    dn: string,
    attributes?: readonly string[],
    options: CallOptions = {},
  ): Promise<ClientAnswer<T>> {
    const query = attributes === undefined ? "" : `?attributes=${encodeURIComponent(attributes.join(","))}`;
    return this.call<T>("GET", `${entryPath(dn)}${query}`, undefined, {}, options);
  }

  async add(
    dn: string,
    attributes: Record<string, string[]>,
    writeConcern?: string,
    options: CallOptions = {},
  ): Promise<ClientAnswer> {
    return this.call("POST", "/v1/entries", { dn, attributes }, this.concernHeader(writeConcern), options);
  }

  async modify(
    dn: string,
    changes: readonly Change[],
    writeConcern?: string,
    options: CallOptions = {},
  ): Promise<ClientAnswer> {
    return this.call("PATCH", entryPath(dn), { changes }, this.concernHeader(writeConcern), options);
  }

  async delete(
    dn: string,
    options: { subtree?: boolean; writeConcern?: string } & CallOptions = {},
  ): Promise<ClientAnswer> {
    const query = options.subtree === true ? "?subtree=true" : "";
    return this.call(
      "DELETE",
      `${entryPath(dn)}${query}`,
      undefined,
      this.concernHeader(options.writeConcern),
      options,
    );
  }

  /** Renames the entry and/or moves it under `to.newParent` (POST /v1/entries/{dn}/rename). */
  async rename(
    dn: string,
    to: RenameTarget,
    writeConcern?: string,
    options: CallOptions = {},
  ): Promise<ClientAnswer> {
    return this.call("POST", `${entryPath(dn)}/rename`, to, this.concernHeader(writeConcern), options);
  }

  /** One page of a search (`cursor` from the previous page's nextCursor). */
  async search<T = { entries: Record<string, unknown>[]; truncated: boolean; nextCursor: string | null }>(
    request: Record<string, unknown>,
    options: CallOptions = {},
  ): Promise<ClientAnswer<T>> {
    return this.call<T>("POST", "/v1/search", request, {}, options);
  }

  /** Forgets resolved records and the ping's answer: the next request looks them up again. */
  forgetRecords(): void {
    this.records = null;
    this.located = null;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private concernHeader(writeConcern: string | undefined): Record<string, string> {
    const concern = writeConcern ?? this.options.writeConcern;
    return concern === undefined ? {} : { "plexus-write-concern": concern };
  }

  private timeoutFor(headers: Record<string, string>): number {
    const base = this.options.requestTimeoutMs ?? requestTimeoutMsDefault;
    // HTTP header names are case-insensitive, and request() passes the caller's as given.
    const concern = Object.entries(headers).find(
      ([name]) => name.toLowerCase() === "plexus-write-concern",
    )?.[1];
    if (concern === undefined || /^\s*local\b/i.test(concern)) return base;
    const given = /timeout=([0-9]{1,6})/i.exec(concern);
    const concernMs = given === null ? concernTimeoutMsDefault : Number(given[1]);
    return Math.max(base, concernMs + concernHeadroomMs);
  }

  /** The call's deadline: deadlineMs, but never below one attempt's own timeout (a write concern's wait); null for none. */
  private deadlineFor(timeoutMs: number): number | null {
    const deadlineMs = this.options.deadlineMs === undefined ? deadlineMsDefault : this.options.deadlineMs;
    return deadlineMs === null ? null : Math.max(deadlineMs, timeoutMs);
  }

  private emptyReason(): string {
    if (this.options.zone === undefined) return "no URLs given";
    return `DNS has no ${genericSrvName(this.options.zone)} records${
      this.located?.clientSite ? ` nor ${siteSrvName(this.options.zone, this.located.clientSite)}` : ""
    }`;
  }

  private async attempt(
    candidate: Candidate,
    method: string,
    path: string,
    payload: string | undefined,
    headers: Record<string, string>,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<
    | { kind: "answer"; status: number; body: unknown }
    | { kind: "failed"; reason: string; backoff: boolean; maybeApplied: boolean }
  > {
    const sent: Record<string, string> = { ...headers };
    if (this.sessionToken !== null && path !== "/v1/locate" && !path.startsWith("/v1/locate?"))
      sent["plexus-session"] = this.sessionToken;
    if (payload !== undefined) sent["content-type"] = "application/json";
    try {
      const response = await undiciRequest(`${candidate.url}${path}`, {
        method: method as "GET",
        headers: sent,
        ...(payload === undefined ? {} : { body: payload }),
        dispatcher: this.agent,
        reset: this.options.keepAlive === false,
        signal:
          signal === undefined
            ? AbortSignal.timeout(timeoutMs)
            : AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
      });
      const length = Number(response.headers["content-length"] ?? 0);
      // Said up front, or found while reading a chunked answer: either way no more is read.
      const text = length > answerBytesMax ? null : await boundedText(response.body, answerBytesMax);
      if (text === null) {
        response.body.destroy();
        return {
          kind: "failed",
          reason: `answer of more than ${answerBytesMax} bytes is too large`,
          backoff: false,
          maybeApplied: true,
        };
      }
      const token = response.headers["plexus-session"];
      if (typeof token === "string") this.sessionToken = mergeSession(this.sessionToken, token);
      let parsed: unknown = text;
      try {
        parsed = text === "" ? null : JSON.parse(text);
      } catch {
        return {
          kind: "failed",
          reason: `HTTP ${response.statusCode} with a body that is not JSON`,
          backoff: true,
          maybeApplied: true,
        };
      }
      if (response.statusCode === failoverStatus) {
        const problem: Record<string, unknown> = isRecord(parsed) ? parsed : {};
        const code = typeof problem.code === "string" ? problem.code : "unavailable";
        // A node behind the session is healthy: the next request may find it caught up. A 503
        // problem changes nothing (docs/api.md), so even a write goes on to the next server.
        return {
          kind: "failed",
          reason: `503 ${code}`,
          backoff: code !== "session-behind",
          maybeApplied: false,
        };
      }
      return { kind: "answer", status: response.statusCode, body: parsed };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      return {
        kind: "failed",
        reason: failureReason(error),
        backoff: true,
        maybeApplied: !(typeof code === "string" && notSentCodes.has(code)),
      };
    }
  }

  /** The records in use; looked up again when older than recordsRefreshMs (old ones serve on a failed lookup). */
  private async currentRecords(): Promise<Records> {
    if (this.options.zone === undefined) return this.records as Records;
    const age = this.records === null ? Number.POSITIVE_INFINITY : this.now() - this.records.at;
    if (age < (this.options.recordsRefreshMs ?? recordsRefreshMsDefault) && this.records !== null)
      return this.records;
    this.refreshing ??= this.lookUp()
      .then((records) => {
        this.records = records;
        return records;
      })
      .finally(() => {
        this.refreshing = null;
      });
    // Records that name servers serve while the new ones are looked up: a DNS server that is
    // slow or gone (its site died) would otherwise hold every request for its timeouts.
    const held = this.records;
    if (held?.tiers.some((tier) => tier.length > 0)) {
      this.refreshing.catch(() => {}); // a failed refresh keeps the old records
      return held;
    }
    try {
      return await this.refreshing;
    } catch (error) {
      if (this.records === null)
        throw new NoServerError([], `looking up the zone's SRV records failed: ${(error as Error).message}`);
      return this.records;
    }
  }

  private async lookUp(): Promise<Records> {
    const zone = this.options.zone as string;
    const generic = await this.resolveTier(genericSrvName(zone), { kind: "generic" });
    const site = this.options.site ?? (await this.ping(generic));
    const tiers: Candidate[][] = [];
    if (site !== null) tiers.push(await this.resolveTier(siteSrvName(zone, site), { kind: "site", site }));
    // In no subnet's site, the closest sites are counted from the answering node's: it comes first.
    const nodeSite =
      site === null && this.options.site === undefined ? (this.located?.nodeSite ?? null) : null;
    const nearest = [
      ...(nodeSite === null ? [] : [{ site: nodeSite, cost: 0 }]),
      ...(this.located?.closestSites ?? []),
    ];
    const closest = await Promise.all(
      nearest.map((near) =>
        this.resolveTier(siteSrvName(zone, near.site), {
          kind: "closest",
          site: near.site,
          cost: near.cost,
        }).catch(() => []),
      ),
    );
    tiers.push(...closest, generic);
    // No record at all (a zone whose nodes have not registered yet) is looked up again next time.
    const empty = tiers.every((tier) => tier.length === 0);
    return { tiers, at: empty ? Number.NEGATIVE_INFINITY : this.now() };
  }

  /**
   * The ping on the generic servers in order until one answers (a UDP datagram, then GET
   * /v1/locate on the same server); null site when none does.
   */
  private async ping(generic: readonly Candidate[]): Promise<string | null> {
    const query =
      this.options.address === undefined ? "" : `?address=${encodeURIComponent(this.options.address)}`;
    const timeoutMs = this.options.requestTimeoutMs ?? requestTimeoutMsDefault;
    for (const candidate of plan([generic], this.book, this.now())) {
      const overUdp = this.options.ping === "http" ? null : await this.pingUdp(candidate);
      if (overUdp !== null) {
        this.located = overUdp;
        return overUdp.clientSite;
      }
      const path = `/v1/locate${query}`;
      const outcome = await this.attempt(candidate, "GET", path, undefined, {}, timeoutMs, undefined);
      if (outcome.kind === "failed") {
        if (outcome.backoff) this.book.fail(candidate.key, this.now(), outcome.reason);
        continue;
      }
      const located = checkLocated(outcome.body, "http");
      if (located === null) continue;
      this.located = located;
      return located.clientSite;
    }
    return this.located?.clientSite ?? null;
  }

  /** One UDP ping datagram to the server's port (src/edge/locate/udp.ts); null without an answer in time. */
  private pingUdp(candidate: Candidate): Promise<Located | null> {
    const url = new URL(candidate.url);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const id = Math.floor(this.random() * 2 ** 31);
    const request = {
      v: 1,
      id,
      ...(this.options.address === undefined ? {} : { address: this.options.address }),
    };
    const socket = createSocket(isIP(host) === 6 ? "udp6" : "udp4");
    let done = false;
    return new Promise((resolve) => {
      const finish = (located: Located | null): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.removeAllListeners("message");
        socket.close();
        resolve(located);
      };
      const timer = setTimeout(() => finish(null), pingUdpTimeoutMsDefault);
      socket.on("error", () => finish(null));
      socket.on("message", (datagram) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(datagram.toString("utf8"));
        } catch {
          return; // not an answer: keep waiting
        }
        if (!isRecord(parsed) || parsed.id !== id) return;
        const located = checkLocated(parsed, "udp");
        if (located !== null) finish(located);
      });
      socket.bind(0, this.options.localAddress, () =>
        socket.send(JSON.stringify(request), Number(url.port), host, (error) => {
          if (error) finish(null);
        }),
      );
    });
  }

  private async resolveTier(name: string, tier: Tier): Promise<Candidate[]> {
    const resolver = this.resolver as SrvResolver;
    const ordered = rfc2782Order(await resolver.srv(name), this.random);
    const candidates: Candidate[] = [];
    for (const record of ordered) {
      const target = record.target.replace(/\.$/, "");
      const addresses = isIP(target) === 0 ? await resolver.addresses(target).catch(() => []) : [target];
      const address = addresses[0];
      if (address === undefined) continue;
      const key = hostPort(address, record.port);
      candidates.push({ key, url: `http://${key}`, tier });
    }
    return candidates;
  }
}

/** One request as a call makes it, on each server it tries. */
interface Ask {
  readonly method: string;
  readonly path: string;
  /** The body as JSON text, serialized once for every server tried. */
  readonly payload: string | undefined;
  readonly headers: Record<string, string>;
  readonly timeoutMs: number;
}

/** A call's deadline: its length, and the signal that aborts when it passes (never, without one). */
interface Deadline {
  readonly ms: number;
  readonly signal: AbortSignal;
}

function deadlineReason(deadline: Deadline): string {
  return `no answer before the call's deadline (${deadline.ms} ms)`;
}

/** `work`, or DeadlineExceededError once the deadline passes first (the work goes on, unawaited). */
function untilDeadline<T>(work: Promise<T>, deadline: Deadline): Promise<T> {
  if (deadline.signal.aborted) return Promise.reject(new DeadlineExceededError([], deadline.ms, 0));
  return new Promise<T>((resolve, reject) => {
    const expire = (): void => reject(new DeadlineExceededError([], deadline.ms, 0));
    deadline.signal.addEventListener("abort", expire, { once: true });
    work.then(resolve, reject).finally(() => deadline.signal.removeEventListener("abort", expire));
  });
}

export interface Change {
  readonly operation: "add" | "delete" | "replace";
  readonly attribute: string;
  readonly values?: readonly string[];
}

export function createClient(options: ClientOptions): PlexusClient {
  return new PlexusClient(options);
}

/** A UTF-16 code unit of a surrogate pair standing alone: in `u` mode a whole pair is one code point, not matched. */
const loneSurrogate = /\p{Surrogate}/u;

function entryPath(dn: string): string {
  // encodeURIComponent would throw URIError "URI malformed": a lone surrogate has no UTF-8.
  if (loneSurrogate.test(dn))
    throw new TypeError(
      `the DN ${JSON.stringify(dn)} is not well-formed Unicode (it holds a lone surrogate): no URL can name it, and no entry has it`,
    );
  return `/v1/entries/${encodeURIComponent(dn)}`;
}

function urlCandidate(text: string): Candidate {
  const url = URL.canParse(text) ? new URL(text) : null;
  if (url === null || (url.protocol !== "http:" && url.protocol !== "https:"))
    throw new Error(`'${text}' is not an http(s) URL`);
  return { key: url.host, url: url.href.replace(/\/+$/, ""), tier: { kind: "urls" } };
}

/** Whether a request only reads: it may be sent to another server whatever happened to it. */
function isRead(method: string, path: string): boolean {
  const upper = method.toUpperCase();
  if (upper === "GET" || upper === "HEAD" || upper === "OPTIONS") return true;
  const query = path.indexOf("?");
  return upper === "POST" && readOnlyPosts.has(query < 0 ? path : path.slice(0, query));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkLocated(body: unknown, via: Located["via"]): Located | null {
  if (!isRecord(body) || !Array.isArray(body.closestSites)) return null;
  if (body.clientSite !== null && typeof body.clientSite !== "string") return null;
  const closestSites = body.closestSites
    .filter(isRecord)
    .filter((near) => typeof near.site === "string" && typeof near.cost === "number")
    .map((near) => ({ site: near.site as string, cost: near.cost as number }));
  const nodeSite = typeof body.nodeSite === "string" ? body.nodeSite : null;
  return { clientSite: body.clientSite, nodeSite, closestSites, via };
}

function failureReason(error: unknown): string {
  const named = error as { name?: unknown; code?: unknown; message?: unknown };
  if (named.name === "TimeoutError" || named.name === "AbortError") return "no answer in time";
  if (named.code === "ECONNREFUSED") return "connection refused";
  if (named.code === "UND_ERR_CONNECT_TIMEOUT") return "connect timeout";
  if (typeof named.code === "string")
    return `${named.code}${typeof named.message === "string" ? ` (${named.message})` : ""}`;
  return error instanceof Error ? error.message : String(error);
}
