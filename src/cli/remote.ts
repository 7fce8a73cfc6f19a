/**
 * The CLI's only way to a node: HTTP/JSON against one base URL (docs/api.md). Every command
 * goes through `connect(baseUrl)`, so a client that finds its node another way (the DNS
 * locator) can replace it by handing out the same `NodeApi`.
 *
 * Failures are two kinds of exception, both meant to end the command with a clear line:
 * `ProblemError` (the node answered with a problem document; `code` is its stable code) and
 * `UnreachableError` (no answer: connection refused, DNS, timeout); through the client library
 * (--zone), also its `OutcomeUnknownError` (a write that may have been applied).
 */
import { type Dispatcher, request } from "undici";
import { notSentCodes, OutcomeUnknownError } from "../client/client.ts";
import { searchSizeLimitDefault } from "../core/replica/read.ts";

/** A request that gets no answer within this long fails (write concern waits add their timeout). */
export const requestTimeoutMs = 10_000;
/** Headroom over a write concern's own timeout, for the node to answer after it gave up. */
const concernHeadroomMs = 5_000;
/** Search pages asked per request (the API's own ceiling). */
export const searchPageSize = 1_000;
/**
 * Pages a search follows beyond sizeLimit / searchPageSize: pages the node's scan limit ended
 * before they were full (each after 2,000,000 entries examined).
 */
const sparsePagesMax = 1_000;
/** How long a `repl sync` asks the node to wait for its pulls (the node's ceiling is 60 s). */
export const replicateTimeoutMsDefault = 10_000;

export const sessionHeaderName = "plexus-session";
export const writeConcernHeaderName = "plexus-write-concern";

export type Attributes = Record<string, string[]>;

export interface EntryView {
  readonly dn: string;
  readonly guid: string;
  readonly attributes: Attributes;
}

export interface Change {
  readonly operation: "add" | "delete" | "replace";
  readonly attribute: string;
  readonly values?: string[];
}

export interface SearchOptions {
  readonly base: string;
  readonly scope?: "base" | "one" | "sub";
  readonly filter?: string;
  readonly attributes?: readonly string[];
  readonly sizeLimit?: number;
}

/** What every call carries: the session token to hand on, and for writes the write concern. */
export interface CallOptions {
  readonly session?: string | undefined;
  /** `local`, `site`, `sites=N` or `all` (docs/api.md, "Write concern"). */
  readonly writeConcern?: string | undefined;
  /** The write concern's timeout in milliseconds. */
  readonly timeoutMs?: number | undefined;
}

/** A node's answer: its JSON body and the session token it handed back (null when none). */
export interface Answered<T> {
  readonly body: T;
  readonly session: string | null;
}

/** One page of a search: its entries, whether the size limit cut the result here, the session token. */
export interface SearchPageAnswer {
  readonly entries: EntryView[];
  /** On the last page: the size limit cut the result short. */
  readonly truncated: boolean;
  readonly session: string | null;
}

export class ProblemError extends Error {
  constructor(
    readonly code: string,
    readonly detail: string,
    readonly status: number,
    /** The whole problem document (what a write concern reached, the write's outcome, …). */
    readonly problem: Record<string, unknown>,
    /** The session token of the answer: a write that missed its write concern is still applied. */
    readonly session: string | null,
  ) {
    super(`${code}: ${detail}`);
  }
}

export class UnreachableError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`cannot reach ${url}: ${reason}`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why fetch failed, in words: the socket error's code when there is one. */
export function failureReason(error: unknown): string {
  if (error instanceof DOMException && error.name === "TimeoutError") return "no answer in time";
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (cause?.code === "ECONNREFUSED") return "connection refused (is a node running there?)";
  const message = typeof cause?.message === "string" ? cause.message : null;
  if (typeof cause?.code === "string") return message === null ? cause.code : `${cause.code} (${message})`;
  if (message !== null) return message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Whether a failed request may have reached the node: it timed out, or its connection broke
 * after it was made (the client library's notSentCodes are the errors raised before).
 */
function maybeReached(error: unknown): boolean {
  if (error instanceof DOMException && error.name === "TimeoutError") return true;
  const code = (error as { cause?: { code?: unknown } }).cause?.code;
  return typeof code === "string" && !notSentCodes.has(code);
}

/**
 * A write sent to the node at --url that then broke the connection or did not answer in time:
 * it may have been applied there, so "cannot reach" would be wrong (and a retry may apply it
 * twice). Reported as the client library's OutcomeUnknownError is for --zone: exit 4.
 */
export class WriteOutcomeUnknownError extends Error {
  constructor(
    /** The request, `METHOD /path`. */
    readonly request: string,
    readonly url: string,
    readonly reason: string,
  ) {
    super(`${request} may have been applied on ${url}: ${reason}; read to know whether it was applied`);
  }
}

/**
 * `fetch` for the CLI's requests, carried by undici's request(): Node's own fetch refuses the
 * ports the Fetch standard blocks for browsers ("bad port": 2049, 5060, 6000, 6665–6669,
 * 10080, …), where a node runs and its partners reach it all the same (they use request()
 * too). Failures look as fetch's do: the signal's TimeoutError, or a TypeError whose `cause`
 * is the socket error. Bodies are strings (JSON), and the answer is read whole.
 */
export const httpFetch: typeof fetch = async (input, init) => {
  if (init?.body !== undefined && init.body !== null && typeof init.body !== "string")
    throw new Error("httpFetch sends string bodies only");
  const failed = (error: unknown): Error =>
    error instanceof DOMException ? error : new TypeError("fetch failed", { cause: error });
  let answer: Dispatcher.ResponseData;
  let text: string;
  try {
    answer = await request(String(input), {
      method: (init?.method ?? "GET") as Dispatcher.HttpMethod,
      headers: Object.fromEntries(new Headers(init?.headers).entries()),
      body: init?.body ?? null,
      signal: init?.signal ?? null,
    });
    text = await answer.body.text();
  } catch (error) {
    throw failed(error);
  }
  const headers = new Headers();
  for (const [name, value] of Object.entries(answer.headers))
    for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value])
      headers.append(name, item);
  // A Response of these statuses cannot have a body, even an empty one.
  const bodiless = answer.statusCode === 204 || answer.statusCode === 205 || answer.statusCode === 304;
  return new Response(bodiless ? null : text, { status: answer.statusCode, headers });
};

/**
 * A node URL a person gave that cannot be one: a mistake in the command line, which
 * reportFailures (cli-support.ts) reports as bad usage, whichever command connected with it.
 */
export class BadUrlError extends Error {}

/** Checks a base URL given by a person: http(s), no path beyond `/`. Returns it without a trailing slash. */
export function checkBaseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BadUrlError(`'${text}' is not a URL (expected e.g. http://127.0.0.1:8080)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new BadUrlError(`'${text}' is not an http:// or https:// URL`);
  if (url.search !== "" || url.hash !== "")
    throw new BadUrlError(`'${text}' must not carry a query or fragment`);
  // Every request's path (/v1/…, /metrics) goes after it: `…/v1` would ask for /v1/v1/status.
  if (url.pathname !== "/")
    throw new BadUrlError(
      `'${text}' must be the node's address only, without a path (e.g. http://127.0.0.1:8080)`,
    );
  return url.href.replace(/\/+$/, "");
}

function entryPath(dn: string): string {
  return `/v1/entries/${encodeURIComponent(dn)}`;
}

function writeHeaders(options: CallOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  if (options.session !== undefined) headers[sessionHeaderName] = options.session;
  if (options.writeConcern !== undefined || options.timeoutMs !== undefined) {
    const level = options.writeConcern ?? "local";
    headers[writeConcernHeaderName] =
      options.timeoutMs === undefined ? level : `${level}; timeout=${options.timeoutMs}`;
  }
  return headers;
}

/** The client API of one node, as the CLI uses it. */
export interface NodeApi {
  readonly url: string;
  get(
    dn: string,
    attributes: readonly string[] | undefined,
    options: CallOptions,
  ): Promise<Answered<EntryView>>;
  add(dn: string, attributes: Attributes, options: CallOptions): Promise<Answered<Record<string, unknown>>>;
  modify(
    dn: string,
    changes: readonly Change[],
    options: CallOptions,
  ): Promise<Answered<Record<string, unknown>>>;
  delete(dn: string, subtree: boolean, options: CallOptions): Promise<Answered<Record<string, unknown>>>;
  rename(
    dn: string,
    move: { newRdn: string; newParent?: string; deleteOldRdn?: boolean },
    options: CallOptions,
  ): Promise<Answered<Record<string, unknown>>>;
  /** Every page up to sizeLimit, in the node's order, gathered (for results known to be small). */
  search(
    request: SearchOptions,
    options: CallOptions,
  ): Promise<Answered<{ entries: EntryView[]; truncated: boolean }>>;
  /**
   * The pages of a search up to sizeLimit, one at a time as the node answers them (cursor
   * paging): a caller that hands each on holds one page, however large the result.
   */
  searchPages(request: SearchOptions, options: CallOptions): AsyncGenerator<SearchPageAnswer>;
  conflicts(
    after: string | null,
    limit: number,
    options: CallOptions,
  ): Promise<Answered<Record<string, unknown>>>;
  status(timeoutMs?: number): Promise<Record<string, unknown>>;
  replicate(from: string | null, timeoutMs: number): Promise<Record<string, unknown>>;
  /** GET /metrics: Prometheus text (docs/operations-metrics.md). */
  metrics(timeoutMs?: number): Promise<string>;
}

/**
 * The node at `baseUrl` (checked with checkBaseUrl). `fetcher` carries the requests: httpFetch,
 * or the locator client's failover (src/cli/located.ts), which answers for many nodes.
 */
/** `where` names the node in "cannot reach" errors (the URL unless the caller knows better). */
export function connect(baseUrl: string, fetcher: typeof fetch = httpFetch, where?: string): NodeApi {
  const url = checkBaseUrl(baseUrl);
  const send = async (
    method: string,
    path: string,
    body: unknown,
    headers: Record<string, string>,
    timeoutMs: number,
    write: boolean,
  ): Promise<{ response: Response; text: string }> => {
    try {
      const response = await fetcher(`${url}${path}`, {
        method,
        headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      return { response, text: await response.text() };
    } catch (error) {
      // Through the client library (--zone): a write it did not send on to another node.
      if (error instanceof OutcomeUnknownError) throw error;
      if (write && maybeReached(error))
        throw new WriteOutcomeUnknownError(`${method} ${path}`, where ?? url, failureReason(error));
      throw new UnreachableError(where ?? url, failureReason(error));
    }
  };
  const call = async <T>(
    method: string,
    path: string,
    body: unknown,
    headers: Record<string, string>,
    timeoutMs = requestTimeoutMs,
    write = false,
  ): Promise<Answered<T>> => {
    const { response, text } = await send(method, path, body, headers, timeoutMs, write);
    let parsed: unknown = null;
    try {
      parsed = text === "" ? null : JSON.parse(text);
    } catch {
      throw new UnreachableError(url, `answered HTTP ${response.status} with something that is not JSON`);
    }
    if (!response.ok) {
      const problem = isRecord(parsed) ? parsed : {};
      const code = typeof problem.code === "string" ? problem.code : `http-${response.status}`;
      const detail = typeof problem.detail === "string" ? problem.detail : `HTTP ${response.status}`;
      throw new ProblemError(code, detail, response.status, problem, response.headers.get(sessionHeaderName));
    }
    return { body: parsed as T, session: response.headers.get(sessionHeaderName) };
  };
  /**
   * Each page the node answers until its nextCursor is null. A page with a cursor is full,
   * unless the node's scan limit ended it (read.ts: a selective filter over millions of
   * entries), so sizeLimit and sparsePagesMax bound the pages: a node that hands out cursors
   * for ever is not followed for ever, and a search cut short that way ends truncated.
   */
  async function* searchPages(
    request: SearchOptions,
    options: CallOptions,
  ): AsyncGenerator<SearchPageAnswer> {
    const pagesMax =
      Math.ceil((request.sizeLimit ?? searchSizeLimitDefault) / searchPageSize) + sparsePagesMax;
    let cursor: string | null = null;
    let session: string | null = null;
    for (let page = 0; page < pagesMax; page++) {
      const answer: Answered<{ entries: EntryView[]; truncated: boolean; nextCursor: string | null }> =
        await call(
          "POST",
          "/v1/search",
          { ...request, pageSize: searchPageSize, ...(cursor === null ? {} : { cursor }) },
          writeHeaders({ session: options.session }),
        );
      cursor = answer.body.nextCursor;
      session = answer.session;
      yield { entries: answer.body.entries, truncated: answer.body.truncated, session };
      if (cursor === null) return;
    }
    yield { entries: [], truncated: true, session };
  }
  const writeTimeout = (options: CallOptions): number =>
    Math.max(requestTimeoutMs, (options.timeoutMs ?? 0) + concernHeadroomMs);
  return {
    url,
    get: (dn, attributes, options) =>
      call(
        "GET",
        `${entryPath(dn)}${attributes === undefined ? "" : `?attributes=${encodeURIComponent(attributes.join(","))}`}`,
        undefined,
        writeHeaders({ session: options.session }),
      ),
    add: (dn, attributes, options) =>
      call("POST", "/v1/entries", { dn, attributes }, writeHeaders(options), writeTimeout(options), true),
    modify: (dn, changes, options) =>
      call("PATCH", entryPath(dn), { changes }, writeHeaders(options), writeTimeout(options), true),
    delete: (dn, subtree, options) =>
      call(
        "DELETE",
        `${entryPath(dn)}${subtree ? "?subtree=true" : ""}`,
        undefined,
        writeHeaders(options),
        writeTimeout(options),
        true,
      ),
    rename: (dn, move, options) =>
      call("POST", `${entryPath(dn)}/rename`, move, writeHeaders(options), writeTimeout(options), true),
    search: async (request, options) => {
      const entries: EntryView[] = [];
      let truncated = false;
      let session: string | null = null;
      for await (const page of searchPages(request, options)) {
        entries.push(...page.entries);
        truncated = page.truncated;
        session = page.session;
      }
      return { body: { entries, truncated }, session };
    },
    searchPages,
    conflicts: (after, limit, options) =>
      call(
        "GET",
        `/v1/conflicts?limit=${limit}${after === null ? "" : `&after=${encodeURIComponent(after)}`}`,
        undefined,
        writeHeaders({ session: options.session }),
      ),
    status: async (timeoutMs = requestTimeoutMs) =>
      (await call<Record<string, unknown>>("GET", "/v1/status", undefined, {}, timeoutMs)).body,
    metrics: async (timeoutMs = requestTimeoutMs) => {
      const { response, text } = await send("GET", "/metrics", undefined, {}, timeoutMs, false);
      if (!response.ok)
        throw new ProblemError(`http-${response.status}`, "no metrics", response.status, {}, null);
      return text;
    },
    replicate: async (from, timeoutMs) =>
      (
        await call<Record<string, unknown>>(
          "POST",
          "/v1/replicate",
          { ...(from === null ? {} : { from }), timeoutMs },
          {},
          timeoutMs + concernHeadroomMs,
        )
      ).body,
  };
}
