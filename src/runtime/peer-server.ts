import { gzipSync } from "node:zlib";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { NodeId } from "../core/ids.ts";
import { type ClusterSecret, peerHeaders, ReplayGuard, signResponse, verifyRequest } from "./auth.ts";
import { errorText, type Logger } from "./log.ts";
import { compactAnswer, compactPageEncoding, gzipBytesMin, pageEncodingHeader } from "./page-wire.ts";
import { peerPaths } from "./peer-client.ts";

/**
 * The receiving side of the transport between nodes, as a fastify plugin. Every route reads
 * its body raw, checks the signature over exactly those bytes before parsing anything, and
 * signs its answer. A request that fails the check gets 401 and a log line; it never reaches
 * the node. Answers of `gzipBytesMin` or more are gzipped when the caller asks (pulls
 * across sites), everything else goes plain.
 */
export const peerBodyBytesMax = 8 * 1024 * 1024;

/** A message refused: bad (400), or not now (503: still syncing, or `storage-full`). */
export interface PeerRefusal {
  readonly status: 400 | 503;
  readonly detail: string;
  readonly code?: "storage-full";
}

export type PeerAnswer =
  | { readonly status: 200; readonly body: unknown }
  /**
   * An answer already serialised: JSON bytes, a page already in the encoding the caller reads;
   * `gzipped` when they were compressed already (the caller accepts gzip).
   */
  | { readonly status: 200; readonly json: Uint8Array; readonly gzipped: boolean }
  | { readonly status: 204 };

/** What a caller reads besides plain JSON answers (from its request headers). */
export interface AnswerEncodings {
  /** Compact pages (page-wire.ts). */
  readonly compactPages: boolean;
  /** gzip, for answers of gzipBytesMin or more. */
  readonly gzip: boolean;
}

export interface PeerHandler {
  /**
   * A PeerMessage from `from` (untrusted content); the answer goes back on the same exchange.
   * `reads`: what the caller reads besides plain JSON, for an answer given as `json`.
   */
  message(
    from: NodeId,
    body: unknown,
    reads: AnswerEncodings,
  ): PeerAnswer | PeerRefusal | Promise<PeerAnswer>;
  /** A node asks to be registered (or to have its address updated) in the config partition. */
  join(from: NodeId, body: unknown): Promise<PeerAnswer | PeerRefusal>;
  /** This node's UTD report, for write concern and status. */
  utd(from: NodeId): PeerAnswer;
}

/** Refused peer requests logged per window at most; the others are counted, and the count logged. */
export const refusedLogsPerWindowMax = 20;
export const refusedLogWindowMs = 10_000;

/**
 * Logs of refused requests, bounded: anyone who can reach the port can send unsigned requests
 * as fast as it likes, and each would otherwise write a log line. The first
 * refusedLogsPerWindowMax of each window are logged; the next line logged says how many were not.
 */
export class RefusalLog {
  private windowStart = Number.NEGATIVE_INFINITY;
  private logged = 0;
  private suppressed = 0;

  constructor(private readonly log: Logger) {}

  refused(fields: Record<string, unknown>, nowMs: number): void {
    if (nowMs - this.windowStart >= refusedLogWindowMs) {
      this.windowStart = nowMs;
      this.logged = 0;
    }
    if (this.logged >= refusedLogsPerWindowMax) {
      this.suppressed++;
      return;
    }
    this.logged++;
    const unlogged = this.suppressed;
    this.suppressed = 0;
    this.log.log("warn", "peer-request-refused", unlogged > 0 ? { ...fields, unlogged } : fields);
  }
}

export function registerPeerRoutes(
  app: FastifyInstance,
  secret: ClusterSecret,
  handler: PeerHandler,
  log: Logger,
): void {
  const replays = new ReplayGuard();
  const refusals = new RefusalLog(log);
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      "*",
      { parseAs: "buffer", bodyLimit: peerBodyBytesMax },
      (_request, body, done) => done(null, body),
    );
    const route = (
      path: string,
      run: (from: NodeId, body: unknown, reads: AnswerEncodings) => Promise<PeerAnswer | PeerRefusal>,
    ): void => {
      scope.post(path, async (request, reply) => {
        const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const now = Date.now();
        let verified = verifyRequest(secret, "POST", path, request.headers, raw, now);
        if (verified.ok && !replays.accept(verified.signature, verified.timestampMs, now))
          verified = { ok: false, reason: "replayed request (this signature was already accepted)" };
        if (!verified.ok) {
          refusals.refused(
            {
              path,
              remote: request.ip,
              claimed: String(request.headers[peerHeaders.node] ?? ""),
              reason: verified.reason,
            },
            now,
          );
          return sendProblem(reply, 401, "unauthorized", verified.reason);
        }
        let parsed: unknown;
        try {
          parsed = raw.length === 0 ? null : JSON.parse(raw.toString("utf8"));
        } catch (error) {
          const problem = problemDocument(400, "invalid-request", `body is not JSON: ${errorText(error)}`);
          return sendSigned(reply, request, secret, verified.signature, 400, problem);
        }
        const reads: AnswerEncodings = {
          compactPages: request.headers[pageEncodingHeader] === compactPageEncoding,
          gzip: acceptsGzip(request),
        };
        const answer = await run(verified.node, parsed, reads);
        if (answer.status === 204) return sendSigned(reply, request, secret, verified.signature, 204, null);
        if (answer.status === 200 && "json" in answer) {
          const json = bufferOf(answer.json);
          if (!answer.gzipped) return sendSigned(reply, request, secret, verified.signature, 200, json);
          void reply.header("content-encoding", "gzip");
          return sendPayload(reply, secret, verified.signature, 200, json);
        }
        if (answer.status === 200) {
          const body = reads.compactPages ? compactAnswer(answer.body) : answer.body;
          return sendSigned(reply, request, secret, verified.signature, 200, body);
        }
        const code = answer.code ?? (answer.status === 400 ? "invalid-request" : "not-ready");
        const problem = problemDocument(answer.status, code, answer.detail);
        return sendSigned(reply, request, secret, verified.signature, answer.status, problem);
      });
    };
    route(peerPaths.messages, async (from, body, reads) => handler.message(from, body, reads));
    route(peerPaths.join, (from, body) => handler.join(from, body));
    route(peerPaths.utd, async (from) => handler.utd(from));
  });
}

function sendSigned(
  reply: FastifyReply,
  request: FastifyRequest,
  secret: ClusterSecret,
  requestSignature: string,
  status: number,
  /** The answer, or its JSON bytes already. */
  body: unknown,
): FastifyReply {
  let payload: Buffer =
    status === 204
      ? Buffer.alloc(0)
      : Buffer.isBuffer(body)
        ? body
        : Buffer.from(JSON.stringify(body), "utf8");
  if (payload.length >= gzipBytesMin && acceptsGzip(request)) {
    payload = gzipSync(payload);
    void reply.header("content-encoding", "gzip");
  }
  return sendPayload(reply, secret, requestSignature, status, payload);
}

/** Sends `payload` as it is (compressed already if it is to be), signed. */
function sendPayload(
  reply: FastifyReply,
  secret: ClusterSecret,
  requestSignature: string,
  status: number,
  payload: Buffer,
): FastifyReply {
  void reply.header(peerHeaders.signature, signResponse(secret, status, requestSignature, payload));
  if (status !== 204)
    void reply.header("content-type", status >= 400 ? "application/problem+json" : "application/json");
  return reply.code(status).send(payload);
}

function acceptsGzip(request: FastifyRequest): boolean {
  return /\bgzip\b/.test(String(request.headers["accept-encoding"] ?? ""));
}

/** The same bytes as a Buffer, not a copy. */
function bufferOf(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** An error answer, signed or not, as the client API's problem documents (RFC 9457) are. */
function problemDocument(status: number, code: string, detail: string): Record<string, unknown> {
  return { type: `urn:plexus:problem:${code}`, title: code, status, code, detail };
}

function sendProblem(reply: FastifyReply, status: number, code: string, detail: string): FastifyReply {
  return reply
    .code(status)
    .header("content-type", "application/problem+json")
    .send(JSON.stringify(problemDocument(status, code, detail)));
}
