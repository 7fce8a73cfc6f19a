import type { FastifyReply } from "fastify";
import type { ErrorCode, PlexusError } from "../../core/result.ts";

/**
 * The one table from failure codes to HTTP: the core's codes, and the few that only the HTTP
 * edge can meet (a route that does not exist, a body that is not JSON, a node still syncing).
 * Every error answer is RFC 9457 `application/problem+json` with the stable `code` in it.
 */
export type HttpOnlyCode =
  | "not-found"
  | "method-not-allowed"
  | "request-timeout"
  | "payload-too-large"
  | "headers-too-large"
  | "unsupported-media-type"
  | "not-ready"
  | "session-behind"
  | "session-lost"
  | "position-gone"
  | "write-concern-not-met"
  | "internal-error";

export type ProblemCode = ErrorCode | HttpOnlyCode;

export const problemStatus: Readonly<Record<ProblemCode, number>> = {
  "invalid-dn": 400,
  "invalid-filter": 400,
  "invalid-attribute": 400,
  "invalid-value": 400,
  "invalid-request": 400,
  "invalid-page": 400,
  "invalid-config": 400,
  "limit-exceeded": 400,
  "no-such-entry": 404,
  "no-such-partition": 404,
  "no-such-parent": 422,
  "no-such-attribute": 422,
  "not-allowed-on-rdn": 422,
  "object-class-violation": 422,
  "cross-partition-move": 422,
  "move-into-own-subtree": 422,
  "entry-exists": 409,
  "partition-exists": 409,
  "not-leaf": 409,
  "attribute-or-value-exists": 409,
  "system-entry": 403,
  quarantined: 503,
  "not-a-server": 503,
  // This node cannot store anything now; another server can (the client moves on), and this one
  // can again once space is freed.
  "storage-full": 503,
  "not-found": 404,
  "method-not-allowed": 405,
  "request-timeout": 408,
  "payload-too-large": 413,
  "headers-too-large": 431,
  "unsupported-media-type": 415,
  "not-ready": 503,
  "session-behind": 503,
  // Gone for good, not behind: no node holds what the token or position names, nor ever will,
  // so retrying (here or elsewhere) cannot help; the client must start afresh.
  "session-lost": 410,
  "position-gone": 410,
  "write-concern-not-met": 504,
  "internal-error": 500,
};

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: ProblemCode;
  readonly detail: string;
  readonly matchedDn?: string;
  /** Extra members some problems carry (what a write concern reached, …). */
  readonly [extra: string]: unknown;
}

export function problem(code: ProblemCode, detail: string, extra: Record<string, unknown> = {}): Problem {
  return {
    type: `urn:plexus:problem:${code}`,
    title: code.replaceAll("-", " "),
    status: problemStatus[code],
    code,
    detail,
    ...extra,
  };
}

export function problemOf(error: PlexusError): Problem {
  return problem(
    error.code,
    error.message,
    error.matchedDn === undefined ? {} : { matchedDn: error.matchedDn },
  );
}

/** Problems a client may simply retry (after the Retry-After delay). */
export function isRetryable(code: ProblemCode): boolean {
  return (
    code === "quarantined" ||
    code === "not-ready" ||
    code === "session-behind" ||
    code === "not-a-server" ||
    code === "storage-full"
  );
}

/** The Retry-After of a retryable problem, in seconds. */
const retryAfterSeconds = 1;

/** Sends `value` as application/problem+json, with Retry-After when the client may retry it. */
export function sendProblem(reply: FastifyReply, value: Problem): FastifyReply {
  if (isRetryable(value.code)) void reply.header("retry-after", String(retryAfterSeconds));
  return reply.code(value.status).header("content-type", "application/problem+json").send(value);
}
