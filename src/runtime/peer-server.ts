import { gzipSync } from "node:zlib";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { NodeId } from "../core/ids.ts";
import { type ClusterSecret, peerHeaders, ReplayGuard, signResponse, verifyRequest } from "./auth.ts";
import { errorText, type Logger } from "./log.ts";
import { compactAnswer, compactPageEncoding, pageEncodingHeader } from "./page-wire.ts";
import { peerPaths } from "./peer-client.ts";

/**
 * The receiving side of the transport between nodes, as a fastify plugin. Every route reads
 * its body raw, checks the signature over exactly those bytes before parsing anything, and
 * signs its answer. A request that fails the check gets 401 and a log line; it never reaches
 * the node. Answers of more than `compressBytesMin` are gzipped when the caller asks (pulls
 * across sites), everything else goes plain.
 */
export const peerBodyBytesMax = 8 * 1024 * 1024;
const compressBytesMin = 1024;

export type PeerAnswer =
  | { readonly status: 200; readonly body: unknown }
  /** An answer already serialised: JSON bytes, a page already in the encoding the caller reads. */
  | { readonly status: 200; readonly json: Uint8Array }
  | { readonly status: 204 };

export interface PeerHandler {
  /**
   * A PeerMessage from `from` (untrusted content); the answer goes back on the same exchange.
   * `compactPages`: the caller reads compact pages (page-wire.ts), for an answer given as `json`.
   */
  message(from: NodeId, body: unknown, compactPages: boolean): PeerAnswer | Promise<PeerAnswer>;
  /** A node asks to be registered (or to have its address updated) in the config partition. */
  join(from: NodeId, body: unknown): Promise<PeerAnswer | { status: 400 | 503; detail: string }>;
  /** This node's UTD report, for write concern and status. */
  utd(from: NodeId): PeerAnswer;
}

export function registerPeerRoutes(
  app: FastifyInstance,
  secret: ClusterSecret,
  handler: PeerHandler,
  log: Logger,
): void {
  const replays = new ReplayGuard();
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      "*",
      { parseAs: "buffer", bodyLimit: peerBodyBytesMax },
      (_request, body, done) => done(null, body),
    );
    const route = (
      path: string,
      run: (
        from: NodeId,
        body: unknown,
        compactPages: boolean,
      ) => Promise<PeerAnswer | { status: 400 | 503; detail: string }>,
    ): void => {
      scope.post(path, async (request, reply) => {
        const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const now = Date.now();
        let verified = verifyRequest(secret, "POST", path, request.headers, raw, now);
        if (verified.ok && !replays.accept(verified.signature, verified.timestampMs, now))
          verified = { ok: false, reason: "replayed request (this signature was already accepted)" };
        if (!verified.ok) {
          log.log("warn", "peer-request-refused", {
            path,
            remote: request.ip,
            claimed: String(request.headers[peerHeaders.node] ?? ""),
            reason: verified.reason,
          });
          return sendProblem(reply, 401, "unauthorized", verified.reason);
        }
        let parsed: unknown;
        try {
          parsed = raw.length === 0 ? null : JSON.parse(raw.toString("utf8"));
        } catch (error) {
          return sendSigned(reply, request, secret, verified.signature, 400, {
            code: "invalid-request",
            detail: `body is not JSON: ${errorText(error)}`,
          });
        }
        const compact = request.headers[pageEncodingHeader] === compactPageEncoding;
        const answer = await run(verified.node, parsed, compact);
        if (answer.status === 204) return sendSigned(reply, request, secret, verified.signature, 204, null);
        if (answer.status === 200 && "json" in answer)
          return sendSigned(reply, request, secret, verified.signature, 200, bufferOf(answer.json));
        if (answer.status === 200) {
          const body = compact ? compactAnswer(answer.body) : answer.body;
          return sendSigned(reply, request, secret, verified.signature, 200, body);
        }
        return sendSigned(reply, request, secret, verified.signature, answer.status, {
          code: answer.status === 400 ? "invalid-request" : "not-ready",
          detail: answer.detail,
        });
      });
    };
    route(peerPaths.messages, async (from, body, compactPages) => handler.message(from, body, compactPages));
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
  const accepts = String(request.headers["accept-encoding"] ?? "");
  if (payload.length >= compressBytesMin && /\bgzip\b/.test(accepts)) {
    payload = gzipSync(payload);
    void reply.header("content-encoding", "gzip");
  }
  void reply.header(peerHeaders.signature, signResponse(secret, status, requestSignature, payload));
  if (status !== 204) void reply.header("content-type", "application/json");
  return reply.code(status).send(payload);
}

/** The same bytes as a Buffer, not a copy. */
function bufferOf(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function sendProblem(reply: FastifyReply, status: number, code: string, detail: string): FastifyReply {
  return reply
    .code(status)
    .header("content-type", "application/problem+json")
    .send(JSON.stringify({ type: `urn:plexus:problem:${code}`, title: code, status, code, detail }));
}
