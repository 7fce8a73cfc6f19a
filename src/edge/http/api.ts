import { createHash } from "node:crypto";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from "fastify";
import { isAttributeType, parseDn } from "../../core/directory/dn.ts";
import type { Guid, InvocationId, Usn } from "../../core/ids.ts";
import {
  type ConcernOutcome,
  formatWriteConcern,
  parseWriteConcern,
  type WriteConcernRequest,
} from "../../core/node/write-concern.ts";
import type { WriteOutcome, WriteRequest } from "../../core/replica/originating.ts";
import type {
  ConflictView,
  EntryView,
  SearchPosition,
  SearchRequest,
  SearchResult,
} from "../../core/replica/read.ts";
import { pagedSearchEntriesMax, searchSizeLimitDefault } from "../../core/replica/read.ts";
import { type UtdVector, utdMerge } from "../../core/replication/utd.ts";
import { validateUtd } from "../../core/replication/validate.ts";
import type { Result } from "../../core/result.ts";
import { registerBatchRoute } from "./batch.ts";
import { decodeJsonBody, parseJsonBody } from "./json-body.ts";
import { type LocatorView, registerLocateRoute } from "./locate.ts";
import { type Problem, type ProblemCode, problem, problemOf, sendProblem } from "./problems.ts";
import { registerWatchRoute } from "./watch.ts";

/**
 * The client API under /v1 (docs/api.md). It translates: it checks the shape of what arrives
 * (types, unknown fields), turns it into the core's requests, and turns results into JSON or
 * problem documents. Every decision — DN syntax, schema, conflicts, limits — is the core's.
 */
export interface DirectoryService {
  /** False while a joining node performs its initial sync. */
  ready(): boolean;
  /** Commits the write, then waits (bounded) until it meets the write concern. */
  write(request: WriteRequest, concern: WriteConcernRequest): Promise<Result<WriteReceipt>>;
  /**
   * Whether the topology's servers could ever meet `concern` (a write asking for one they
   * cannot is refused before it is written); `write` checks it too.
   */
  concernAttainable(concern: WriteConcernRequest): Result<true>;
  /** Resolves true once this node's UTD covers `token`, false when `waitMs` passed first. */
  catchUp(token: UtdVector, waitMs: number): Promise<boolean>;
  /**
   * Why no waiting can make this node cover `token` (it claims more of this node's own
   * instance than the node has issued), or null: that much it can tell without waiting.
   */
  unreachableSession(token: UtdVector): string | null;
  /**
   * Why no node will ever cover `token` — it names changes that no server holds, made by an
   * instance since replaced (a restore) — or null when they may still come. Asked only once
   * catchUp has failed: it may cost a UTD report from every server.
   */
  lostSession(token: UtdVector): Promise<string | null>;
  /** This node's current invocation id: a watch position carries it. */
  invocation(): InvocationId;
  /** Whether `invocation` is one this node's database had before it was restored or rolled back. */
  formerInvocation(invocation: string): boolean;
  get(dn: string, attributes: readonly string[] | undefined): Result<EntryView>;
  search(request: SearchRequest): Result<SearchResult>;
  conflicts(after: Guid | null, limit: number): Result<ConflictView[]>;
  status(): unknown;
  /** This node's USN now: where a watch without a position starts. */
  position(): number;
  /** Entries whose replicated state changed after local USN `after`, in USN order, at most `limit`. */
  changesSince(after: number, limit: number): ChangeEvent[];
  /** Calls `listener` after anything committed here (client write or applied page); returns the unsubscribe. */
  onChange(listener: () => void): () => void;
  /** What GET /v1/locate answers from (locate.ts); null (or absent) until the node has a topology. */
  locator?(): LocatorView | null;
}

/** One watch event: an entry as of its latest change on this node (intermediate ones fold into it). */
export interface ChangeEvent {
  /** The entry's usnChanged on this node: the position to resume after. */
  readonly usn: number;
  readonly guid: Guid;
  /** Null for a deleted entry (a tombstone has no place in the tree). */
  readonly dn: string | null;
  readonly deleted: boolean;
}

export interface WriteReceipt {
  readonly outcome: WriteOutcome;
  /** The invocation the write's USN belongs to: with it, the write's place in every UTD. */
  readonly invocation: InvocationId;
  readonly concern: ConcernOutcome;
}

export const clientBodyBytesMax = 8 * 1024 * 1024;
/** How long a request carrying a session token waits for this node to catch up with it. */
export const sessionWaitMs = 2_000;
export const sessionTokenLengthMax = 8_192;
export const sessionHeader = "plexus-session";
export const writeConcernHeader = "plexus-write-concern";
export const conflictsLimitDefault = 100;
export const conflictsLimitMax = 1000;
export const searchPageSizeMax = 1000;
/**
 * Characters of a search cursor: base64url of `{ returned, position, search }`. A position is a
 * key path as deep as the last entry's DN, with one GUID per level (read.ts SearchPosition):
 * a DN of dnLengthMax characters in one-character RDNs is the worst case, far below this.
 */
const cursorLengthMax = 1024 * 1024;
/** Hex digits of the search fingerprint a cursor carries: enough to tell searches apart, not a secret. */
const searchFingerprintHexDigits = 16;
/** Names `attributes` may hold besides attribute types (read.ts): all user, all operational, none. */
const attributeSelectors: readonly string[] = ["*", "+", "1.1"];
/**
 * Nesting levels of objects and lists a /v1 body may have. The deepest body a route takes (a
 * batch's modify: body, operations, operation, changes, change, values) has 6; much deeper
 * ones only ran recursive code (JSON.stringify, the core's messages) out of stack: a 500.
 */
export const bodyDepthMax = 16;
/** A UTF-16 code unit of a surrogate pair standing alone: in `u` mode a whole pair is one code point, not matched. */
const loneSurrogate = /\p{Surrogate}/u;
/** Digits of a count in a query parameter: `Number()` would also take "1e2", "0x10" and " 10". */
const countPattern = /^[0-9]{1,7}$/;

/**
 * Query parameters each /v1 route takes, by `METHOD url` as registered; a route not listed
 * takes none. Anything else is refused before the handler runs (docs/api.md, Conventions),
 * so that a misspelt option never goes unnoticed.
 */
const queryParameters: Readonly<Record<string, readonly string[]>> = {
  "GET /v1/entries/:dn": ["attributes"],
  "DELETE /v1/entries/:dn": ["subtree"],
  "GET /v1/conflicts": ["after", "limit"],
  "GET /v1/watch": ["after"],
  "GET /v1/locate": ["address"],
};

type Fields = Record<string, unknown>;

export function isRecord(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A body that is an object holding no field outside `allowed`, or the problem with it. */
export function checkBody(body: unknown, allowed: readonly string[]): Fields | Problem {
  if (!isRecord(body)) return problem("invalid-request", "the body must be a JSON object");
  const unknown = Object.keys(body).find((key) => !allowed.includes(key));
  if (unknown !== undefined)
    return problem("invalid-request", `unknown field '${unknown}' (allowed: ${allowed.join(", ")})`);
  return body;
}

/**
 * The problem with a parsed /v1 body as a whole, if any: nested deeper than `bodyDepthMax`, or
 * a string (a value or a key) that is not well-formed Unicode. JSON's `\ud800` escapes can
 * name a lone surrogate, which UTF-8 — and so the store — cannot hold: such a DN or value
 * would be stored as something other than what was sent. Iterative, as the body may be deep.
 */
export function checkBodyText(body: unknown): Problem | undefined {
  const pending: { readonly value: unknown; readonly depth: number }[] = [{ value: body, depth: 1 }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value, depth } = next;
    if (typeof value === "string") {
      if (loneSurrogate.test(value)) return illFormedText();
      continue;
    }
    if (typeof value !== "object" || value === null) continue;
    if (depth > bodyDepthMax)
      return problem(
        "invalid-request",
        `the body nests objects and lists deeper than ${bodyDepthMax} levels`,
      );
    for (const [key, item] of Object.entries(value)) {
      if (loneSurrogate.test(key)) return illFormedText();
      pending.push({ value: item, depth: depth + 1 });
    }
  }
  return undefined;
}

function illFormedText(): Problem {
  return problem(
    "invalid-request",
    "the body holds a string with a lone surrogate (such as \\ud800): not well-formed Unicode, which no DN or value can hold",
  );
}

export function isProblem(value: unknown): value is Problem {
  return isRecord(value) && typeof value.code === "string" && typeof value.status === "number";
}

function sendResult<T>(reply: FastifyReply, result: Result<T>, status = 200): FastifyReply {
  if (!result.ok) return sendProblem(reply, problemOf(result.error));
  return reply.code(status).send(result.value);
}

/** `attributes=cn,mail` as a list; absent means every user attribute. */
function attributeList(query: Fields): readonly string[] | undefined | Problem {
  const raw = query.attributes;
  if (raw === undefined) return undefined;
  if (typeof raw !== "string") return problem("invalid-request", "attributes must be given once");
  const names = raw === "" ? [] : raw.split(",").map((name) => name.trim());
  return checkAttributeSelection(names) ?? names;
}

/**
 * The problem with an attribute selection, if any: each name an attribute type or a selector.
 * The core would select nothing for a name no entry can hold; a create refuses the same name.
 */
function checkAttributeSelection(names: readonly unknown[]): Problem | undefined {
  const wrong = names.find(
    (name) => typeof name !== "string" || !(attributeSelectors.includes(name) || isAttributeType(name)),
  );
  if (wrong === undefined) return undefined;
  return problem(
    "invalid-request",
    `attributes: ${JSON.stringify(wrong)} is not an attribute type (nor *, + or 1.1)`,
  );
}

/** True for a DN that parses to the empty DN (the core then names nothing in its messages). */
function isEmptyDn(text: string): boolean {
  const dn = parseDn(text);
  return dn.ok && dn.value.rdns.length === 0;
}

/**
 * What the edge refuses in a write before the core sees it: an empty DN in the path, or an
 * empty new parent, for which the core's messages would name an empty DN.
 */
export function checkWriteNames(request: WriteRequest): Problem | undefined {
  if (request.op !== "add" && isEmptyDn(request.dn)) return emptyDnProblem();
  if (request.op === "modifyDn" && request.newParent !== undefined && isEmptyDn(request.newParent))
    return problem(
      "no-such-parent",
      "newParent is the empty DN: an entry must stay under a partition such as dc=example,dc=com",
      { matchedDn: "" },
    );
  return undefined;
}

/** An empty DN where an entry is named (a path, a batch operation's dn). */
function emptyDnProblem(): Problem {
  return problem(
    "no-such-entry",
    "the DN is empty, so it names no entry: name one such as cn=alice,dc=example,dc=com",
    { matchedDn: "" },
  );
}

export function outcomeBody(outcome: WriteOutcome): Fields {
  return { dn: outcome.dn, guid: outcome.guid, usn: outcome.usn, changed: outcome.entries };
}

/**
 * Session tokens: a UTD vector of what the client has written, as base64url JSON. A request
 * that carries one is served once this node's UTD covers it; every answer carries the token
 * grown by the write it made, so a client that hands it on reads its own writes anywhere.
 */
export function encodeSession(token: UtdVector): string {
  return Buffer.from(JSON.stringify(token), "utf8").toString("base64url");
}

/** The token of a client that has written nothing yet. */
const emptySession = encodeSession({});

export function decodeSession(text: string): UtdVector | Problem {
  const invalid = problem("invalid-request", `${sessionHeader} is not a session token this cluster issued`);
  if (text.length > sessionTokenLengthMax || !/^[A-Za-z0-9_-]*$/.test(text)) return invalid;
  try {
    const checked = validateUtd(JSON.parse(Buffer.from(text, "base64url").toString("utf8")), "session");
    return checked.ok ? checked.value : invalid;
  } catch {
    // Not JSON: the same answer as any other token this cluster did not issue.
    return invalid;
  }
}

/**
 * One of the API's own headers (a write concern, a session token, Last-Event-ID), or the
 * problem when it came more than once. Node joins repeated lines of a header into one ("local,
 * all"), as does a client or proxy (RFC 9110 §5.3), which would then be refused for what it
 * says or read as one of them. None of these headers' values holds a comma, so a comma, like a
 * second line, means a second value.
 */
export function header(request: FastifyRequest, name: string): string | undefined | Problem {
  const lines = request.raw.headersDistinct[name];
  if (lines === undefined) return undefined;
  const values = lines.flatMap((line) => line.split(","));
  if (values.length > 1)
    return problem(
      "invalid-request",
      `${name} holds ${values.length} values (the header sent more than once, or as a list): it takes one, so send it once`,
    );
  return lines[0];
}

/**
 * Search cursors: where the previous page ended (the core's SearchPosition, the key path of its
 * last entry) and how many entries the search has returned so far (for its sizeLimit). The
 * next page starts right there, so a page costs what it returns however far into the result
 * it is; not a snapshot (see docs/api.md). A cursor carries a fingerprint of the search it
 * pages (base, scope, filter, attributes): a position in another search would silently skip
 * entries, so such a cursor is refused.
 */
interface Cursor {
  readonly returned: number;
  readonly position: SearchPosition;
}

function encodeCursor(cursor: Cursor, search: string): string {
  return Buffer.from(JSON.stringify({ ...cursor, search }), "utf8").toString("base64url");
}

/** The fingerprint of what a search selects; equal fields as sent give an equal fingerprint. */
function searchFingerprint(body: Fields): string {
  const selected = [body.base, body.scope, body.filter, body.attributes];
  return createHash("sha256")
    .update(JSON.stringify(selected) ?? "")
    .digest("hex")
    .slice(0, searchFingerprintHexDigits);
}

/** The cursor sent, null for a first page. Its position is checked by the core (checkSearchRequest). */
function decodeCursor(cursor: unknown, search: string): Cursor | null | Problem {
  if (cursor === undefined) return null;
  const bad = problem("invalid-request", "bad cursor: pass nextCursor from the previous page unchanged");
  if (typeof cursor !== "string" || cursor.length > cursorLengthMax) return bad;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    // Not JSON: a cursor this node did not make.
    return bad;
  }
  if (!isRecord(parsed) || !Number.isSafeInteger(parsed.returned) || (parsed.returned as number) < 0)
    return bad;
  if (!Array.isArray(parsed.position)) return bad;
  if (parsed.search !== search)
    return problem(
      "invalid-request",
      "the cursor belongs to another search: page with the same base, scope, filter and attributes",
    );
  return { returned: parsed.returned as number, position: parsed.position as SearchPosition };
}

export function registerClientApi(app: FastifyInstance, service: DirectoryService): void {
  // JSON only: a text body is refused with 415 rather than read as a string.
  app.removeContentTypeParser("text/plain");
  // JSON.parse, but a body that is not UTF-8, a key given twice in one object, or `__proto__`,
  // is refused (json-body.ts). Read as bytes: fastify's string parser decodes bad UTF-8 as U+FFFD.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (_request, bytes, done) => {
    try {
      done(null, parseJsonBody(decodeJsonBody(bytes as Buffer)));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  // What each request's session token says, and what its write adds to it.
  const sessions: Sessions = new WeakMap();
  registerQueryCheck(app);
  registerEncodingCheck(app);
  registerBodyCheck(app);
  registerSessionHooks(app, service, sessions);
  const write = writer(service, sessions);
  registerEntryWrites(app, write);
  registerEntryReads(app, service);
  registerSearchRoute(app, service);
  registerConflictsRoute(app, service);
  registerBatchRoute(app, service, (request, token) =>
    sessions.set(request, utdMerge(sessions.get(request) ?? {}, token)),
  );

  app.get("/v1/status", async (_request, reply) => reply.send(service.status()));
  registerLocateRoute(app, () => service.locator?.() ?? null);

  registerWatchRoute(app, service);
}

/**
 * Refuses a query parameter the route does not take (the `queryParameters` table), before any
 * wait for a session: a malformed request is answered at once.
 */
function registerQueryCheck(app: FastifyInstance): void {
  app.addHook("onRequest", (request, reply, done) => {
    const url = request.routeOptions.url;
    if (url === undefined || !url.startsWith("/v1/")) return done();
    // HEAD is GET without a body: it takes GET's parameters.
    const method = request.method === "HEAD" ? "GET" : request.method;
    const allowed = queryParameters[`${method} ${url}`] ?? [];
    const query = request.query as Fields;
    const unknown = Object.keys(query).find((key) => !allowed.includes(key));
    if (unknown !== undefined) {
      const list = allowed.length === 0 ? "this route takes none" : `allowed: ${allowed.join(", ")}`;
      return void sendProblem(reply, problem("invalid-request", `unknown parameter '${unknown}' (${list})`));
    }
    // Every parameter takes one value (a list, such as attributes, is comma-separated): a
    // repeated one would otherwise be refused for its type, or read as one of its values.
    const repeated = Object.keys(query).find((key) => Array.isArray(query[key]));
    if (repeated === undefined) return done();
    const count = (query[repeated] as unknown[]).length;
    void sendProblem(
      reply,
      problem(
        "invalid-request",
        `parameter '${repeated}' given ${count} times: it takes one value, so give it once`,
      ),
    );
  });
}

/**
 * Refuses a /v1 body sent with a content coding (gzip, …) with 415: the node reads bodies as
 * they come, so a gzipped one would fail as "not valid JSON", and a plain one labelled gzip
 * would be read as if the label were not there (RFC 9110 §15.5.16).
 */
function registerEncodingCheck(app: FastifyInstance): void {
  app.addHook("onRequest", (request, reply, done) => {
    const coding = request.headers["content-encoding"];
    if (coding === undefined || coding.trim().toLowerCase() === "identity" || !request.url.startsWith("/v1/"))
      return done();
    // Only a body has a coding: a GET that names one anyway is served.
    const hasBody =
      request.headers["transfer-encoding"] !== undefined ||
      (request.headers["content-length"] ?? "0") !== "0";
    if (!hasBody) return done();
    void reply.header("accept-encoding", "identity");
    void sendProblem(
      reply,
      problem("unsupported-media-type", `content-encoding ${coding} is not taken: send the body as it is`),
    );
  });
}

/** Refuses a /v1 body too deep or not well-formed Unicode (`checkBodyText`) before any route reads it. */
function registerBodyCheck(app: FastifyInstance): void {
  app.addHook("preValidation", (request, reply, done) => {
    if (request.body === undefined || !request.url.startsWith("/v1/")) return done();
    const wrong = checkBodyText(request.body);
    if (wrong === undefined) return done();
    void sendProblem(reply, wrong);
  });
}

/** Per request, the session token it sent, merged with what its writes add. */
type Sessions = WeakMap<FastifyRequest, UtdVector>;

/** Answers a write request: its write concern checked, the write made, the session moved on. */
type Write = (
  http: FastifyRequest,
  reply: FastifyReply,
  request: WriteRequest,
  status?: number,
) => Promise<FastifyReply>;

/**
 * A request that sends a session token is served once this node has caught up with it (bounded
 * wait, then a retryable problem); every response carries the token its request ends with.
 */
function registerSessionHooks(app: FastifyInstance, service: DirectoryService, sessions: Sessions): void {
  // Callback hooks, not async ones: every request passes through them, and a request without
  // a session token (most of them) then costs no promise here.
  app.addHook("onRequest", (request, reply, done) => {
    if (!request.url.startsWith("/v1/") || request.url === "/v1/status") return done();
    if (!service.ready())
      return void sendProblem(reply, problem("not-ready", "this node is still performing its initial sync"));
    const text = header(request, sessionHeader);
    if (text === undefined) return done();
    if (isProblem(text)) return void sendProblem(reply, text);
    const token = decodeSession(text);
    if (isProblem(token)) return void sendProblem(reply, token);
    const impossible = service.unreachableSession(token);
    if (impossible !== null) return void sendProblem(reply, problem("invalid-request", impossible));
    sessions.set(request, token);
    sessionProblem(service, token).then(
      (found) => (found === null ? done() : void sendProblem(reply, found)),
      done,
    );
  });
  app.addHook("onSend", (request, reply, payload, done) => {
    if (carriesSession(request)) void reply.header(sessionHeader, answerSession(request, sessions));
    done(null, payload);
  });
}

/** Whether the answer to `request` carries a session token: every /v1 answer but status's (watch's stream sends no headers through fastify). */
function carriesSession(request: FastifyRequest): boolean {
  return request.url.startsWith("/v1/") && request.url !== "/v1/status";
}

/**
 * The session token an answer carries: the request's as its writes grew it. A request refused
 * before the session hook read its token (a parameter, a content coding, a path that does not
 * decode) hands back the token it sent, as a read does — the empty token would tell a client
 * that keeps the latest one that it has written nothing — or the empty one when it sent none
 * (or something that is no token).
 */
function answerSession(request: FastifyRequest, sessions: Sessions): string {
  const token = sessions.get(request);
  if (token !== undefined) return encodeSession(token);
  const sent = header(request, sessionHeader);
  if (sent === undefined || isProblem(sent)) return emptySession;
  const decoded = decodeSession(sent);
  return isProblem(decoded) ? emptySession : encodeSession(decoded);
}

/**
 * Null once this node covers `token`; else why not: `session-lost` when no node ever will (a
 * client that retried the retryable `session-behind` would retry for good), `session-behind`
 * when it may yet.
 */
async function sessionProblem(service: DirectoryService, token: UtdVector): Promise<Problem | null> {
  if (await service.catchUp(token, sessionWaitMs)) return null;
  const lost = await service.lostSession(token);
  if (lost !== null) return problem("session-lost", lost);
  return problem(
    "session-behind",
    `this node has not caught up with the session within ${sessionWaitMs} ms; retry, here or elsewhere`,
  );
}

function writer(service: DirectoryService, sessions: Sessions): Write {
  return async (
    http: FastifyRequest,
    reply: FastifyReply,
    request: WriteRequest,
    status = 200,
  ): Promise<FastifyReply> => {
    const concernHeader = header(http, writeConcernHeader);
    if (isProblem(concernHeader)) return sendProblem(reply, concernHeader);
    const concern = parseWriteConcern(concernHeader);
    if (!concern.ok) return sendProblem(reply, problemOf(concern.error));
    const named = checkWriteNames(request);
    if (named !== undefined) return sendProblem(reply, named);
    const result = await service.write(request, concern.value);
    if (!result.ok) return sendProblem(reply, problemOf(result.error));
    const { outcome, invocation } = result.value;
    sessions.set(http, utdMerge(sessions.get(http) ?? {}, { [invocation]: outcome.usn as Usn }));
    const reached = {
      requested: formatWriteConcern(concern.value.concern),
      met: result.value.concern.met,
      nodes: result.value.concern.nodes,
      sites: result.value.concern.sites,
    };
    if (!reached.met) {
      return sendProblem(
        reply,
        problem(
          "write-concern-not-met",
          `the write is applied on this node and keeps replicating, but did not reach ${reached.requested} within ${concern.value.timeoutMs} ms`,
          { outcome: outcomeBody(outcome), writeConcern: reached },
        ),
      );
    }
    return reply.code(status).send({ ...outcomeBody(outcome), writeConcern: reached });
  };
}

/** POST /v1/entries, PATCH and DELETE /v1/entries/:dn, POST /v1/entries/:dn/rename. */
function registerEntryWrites(app: FastifyInstance, write: Write): void {
  app.post("/v1/entries", async (request, reply) => {
    const body = checkBody(request.body, ["dn", "attributes"]);
    if (isProblem(body)) return sendProblem(reply, body);
    if (typeof body.dn !== "string")
      return sendProblem(reply, problem("invalid-request", "dn must be a string"));
    if (!isRecord(body.attributes))
      return sendProblem(reply, problem("invalid-request", "attributes must be an object of value lists"));
    for (const [type, values] of Object.entries(body.attributes)) {
      if (!Array.isArray(values) || values.some((value) => typeof value !== "string"))
        return sendProblem(reply, problem("invalid-value", `${type} must be a list of strings`));
    }
    const attributes = body.attributes as Record<string, string[]>;
    return write(request, reply, { op: "add", dn: body.dn, attributes }, 201);
  });

  app.patch<{ Params: { dn: string } }>("/v1/entries/:dn", async (request, reply) => {
    const body = checkBody(request.body, ["changes"]);
    if (isProblem(body)) return sendProblem(reply, body);
    if (!Array.isArray(body.changes))
      return sendProblem(reply, problem("invalid-request", "changes must be a list"));
    for (const change of body.changes) {
      const checked = checkBody(change, ["operation", "attribute", "values"]);
      if (isProblem(checked)) return sendProblem(reply, checked);
    }
    return write(request, reply, { op: "modify", dn: request.params.dn, changes: body.changes });
  });

  app.delete<{ Params: { dn: string }; Querystring: Fields }>("/v1/entries/:dn", async (request, reply) => {
    // The route takes no body: `{"subtree":true}` there would otherwise delete a leaf only.
    if (request.body !== undefined && !(isRecord(request.body) && Object.keys(request.body).length === 0))
      return sendProblem(
        reply,
        problem("invalid-request", "a delete takes no body: for a subtree, pass ?subtree=true"),
      );
    const subtree = request.query.subtree;
    if (subtree !== undefined && subtree !== "true" && subtree !== "false")
      return sendProblem(reply, problem("invalid-request", "subtree must be true or false"));
    return write(request, reply, { op: "delete", dn: request.params.dn, subtree: subtree === "true" });
  });

  app.post<{ Params: { dn: string } }>("/v1/entries/:dn/rename", async (request, reply) => {
    const body = checkBody(request.body, ["newRdn", "newParent", "deleteOldRdn"]);
    if (isProblem(body)) return sendProblem(reply, body);
    if (typeof body.newRdn !== "string")
      return sendProblem(reply, problem("invalid-request", "newRdn must be a string"));
    if (body.newParent !== undefined && typeof body.newParent !== "string")
      return sendProblem(reply, problem("invalid-request", "newParent must be a DN string"));
    if (body.deleteOldRdn !== undefined && typeof body.deleteOldRdn !== "boolean")
      return sendProblem(reply, problem("invalid-request", "deleteOldRdn must be true or false"));
    return write(request, reply, {
      op: "modifyDn",
      dn: request.params.dn,
      newRdn: body.newRdn,
      ...(body.newParent === undefined ? {} : { newParent: body.newParent }),
      ...(body.deleteOldRdn === undefined ? {} : { deleteOldRdn: body.deleteOldRdn }),
    });
  });
}

function registerEntryReads(app: FastifyInstance, service: DirectoryService): void {
  app.get<{ Params: { dn: string }; Querystring: Fields }>("/v1/entries/:dn", async (request, reply) => {
    const attributes = attributeList(request.query);
    if (isProblem(attributes)) return sendProblem(reply, attributes);
    if (isEmptyDn(request.params.dn)) return sendProblem(reply, emptyDnProblem());
    return sendResult(reply, service.get(request.params.dn, attributes));
  });
}

/** A search request as the edge checked it: where its page starts, how long it is, what it is. */
interface SearchPage {
  readonly body: Fields;
  readonly cursor: Cursor | null;
  readonly page: number;
  readonly sizeLimit: number;
  readonly fingerprint: string;
}

const emptyBaseDetail = "the base DN is empty: search under a partition such as dc=example,dc=com";
const searchFields = ["base", "scope", "filter", "attributes", "sizeLimit", "pageSize", "cursor"];

/** The body of POST /v1/search checked: its fields, limits, attribute names and cursor. */
function checkSearch(raw: unknown): SearchPage | Problem {
  const body = checkBody(raw, searchFields);
  if (isProblem(body)) return body;
  if (typeof body.base === "string" && isEmptyDn(body.base))
    return problem("no-such-entry", emptyBaseDetail, { matchedDn: "" });
  if (Array.isArray(body.attributes)) {
    const wrong = checkAttributeSelection(body.attributes);
    if (wrong !== undefined) return wrong;
  }
  const sizeLimit = body.sizeLimit ?? searchSizeLimitDefault;
  const pageSize = body.pageSize ?? sizeLimit;
  if (
    !Number.isSafeInteger(sizeLimit) ||
    (sizeLimit as number) < 1 ||
    (sizeLimit as number) > pagedSearchEntriesMax
  )
    return problem("invalid-request", `sizeLimit must be an integer 1..${pagedSearchEntriesMax}`);
  if (!Number.isSafeInteger(pageSize) || (pageSize as number) < 1)
    return problem("invalid-request", "pageSize must be a positive integer");
  const fingerprint = searchFingerprint(body);
  const cursor = decodeCursor(body.cursor, fingerprint);
  if (isProblem(cursor)) return cursor;
  const page = Math.min(pageSize as number, searchPageSizeMax, sizeLimit as number);
  return { body, cursor, page, sizeLimit: sizeLimit as number, fingerprint };
}

function registerSearchRoute(app: FastifyInstance, service: DirectoryService): void {
  app.post("/v1/search", async (request, reply) => {
    const checked = checkSearch(request.body);
    if (isProblem(checked)) return sendProblem(reply, checked);
    const { body, cursor, page, sizeLimit, fingerprint } = checked;
    const returned = cursor?.returned ?? 0;
    if (returned >= sizeLimit) return reply.send({ entries: [], truncated: false, nextCursor: null });
    const { base, scope, filter, attributes } = body;
    const result = service.search({
      base,
      scope,
      filter,
      attributes,
      // The core says whether a match follows the page's last entry (truncated) and where it was.
      sizeLimit: Math.min(page, sizeLimit - returned),
      ...(cursor === null ? {} : { after: cursor.position }),
    } as unknown as SearchRequest);
    if (!result.ok) return sendProblem(reply, problemOf(result.error));
    const { entries, truncated, next } = result.value;
    const total = returned + entries.length;
    const position = truncated && total < sizeLimit ? next : null;
    return reply.send({
      entries,
      truncated: truncated && position === null,
      nextCursor: position === null ? null : encodeCursor({ returned: total, position }, fingerprint),
    });
  });
}

function registerConflictsRoute(app: FastifyInstance, service: DirectoryService): void {
  app.get<{ Querystring: Fields }>("/v1/conflicts", async (request, reply) => {
    const { after, limit } = request.query;
    if (after !== undefined && (typeof after !== "string" || !/^[0-9a-f]{32}$/.test(after)))
      return sendProblem(reply, problem("invalid-request", "after must be a GUID (32 hex digits)"));
    const count =
      limit === undefined
        ? conflictsLimitDefault
        : typeof limit === "string" && countPattern.test(limit)
          ? Number(limit)
          : Number.NaN;
    if (!Number.isSafeInteger(count) || count < 1 || count > conflictsLimitMax)
      return sendProblem(
        reply,
        problem("invalid-request", `limit must be an integer 1..${conflictsLimitMax}`),
      );
    const result = service.conflicts((after as Guid | undefined) ?? null, count);
    if (!result.ok) return sendProblem(reply, problemOf(result.error));
    const last = result.value.at(-1);
    return reply.send({
      conflicts: result.value,
      next: result.value.length === count && last !== undefined ? last.guid : null,
    });
  });
}

/** Every route's path as a pattern, to tell a path with no route from a method a path does not take. */
interface RouteTable {
  /** The methods some route takes for this path (as sent, still percent-encoded), sorted; empty for none. */
  methodsFor(path: string): string[];
}

/**
 * Collects each route as it is registered (fastify's router answers only "no route", without
 * telling whether the path exists). Must run before the routes are registered.
 */
function routeTable(app: FastifyInstance): RouteTable {
  const routes: { pattern: RegExp; methods: readonly string[] }[] = [];
  app.addHook("onRoute", (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    routes.push({ pattern: pathPattern(route.url), methods });
  });
  return {
    methodsFor(path) {
      const methods = new Set(
        routes.filter((route) => route.pattern.test(path)).flatMap((route) => route.methods),
      );
      return [...methods].sort();
    },
  };
}

/** `/v1/entries/:dn/rename` as a regular expression: a parameter is one segment, maybe empty. */
function pathPattern(url: string): RegExp {
  const segments = url.split("/").map((segment) => {
    if (segment.startsWith(":")) return "[^/]*";
    if (segment === "*") return ".*";
    return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  });
  return new RegExp(`^${segments.join("/")}$`);
}

/**
 * Requests fastify refuses before routing (a URL that does not decode, a bad content-type
 * header): problem documents too. Passed as fastify's `frameworkErrors` option.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  // No hook runs for these: the session token is handed back here (answerSession).
  if (carriesSession(request)) void reply.header(sessionHeader, answerSession(request, new WeakMap()));
  void sendProblem(reply, problem("invalid-request", error.message));
}

/**
 * Fastify's own failures (bad JSON, body too large, wrong content type, no such route) as
 * problem documents, and anything unexpected as a 500 that says nothing of the internals.
 */
export function registerProblemHandlers(
  app: FastifyInstance,
  onInternalError: (error: unknown) => void,
): void {
  const routes = routeTable(app);
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0] ?? "";
    const allowed = routes.methodsFor(path);
    if (allowed.length === 0)
      return void sendProblem(reply, problem("not-found", `no route ${request.method} ${path}`));
    void reply.header("allow", allowed.join(", "));
    void sendProblem(
      reply,
      problem("method-not-allowed", `${path} takes ${allowed.join(", ")}, not ${request.method}`),
    );
  });
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const status = error.statusCode ?? 500;
    const code: ProblemCode =
      status === 413
        ? "payload-too-large"
        : status === 415
          ? "unsupported-media-type"
          : status === 405
            ? "method-not-allowed"
            : status >= 400 && status < 500
              ? "invalid-request"
              : "internal-error";
    if (code === "internal-error") onInternalError(error);
    const detail = code === "internal-error" ? "the node failed to handle this request" : error.message;
    void sendProblem(reply, problem(code, detail));
  });
}
