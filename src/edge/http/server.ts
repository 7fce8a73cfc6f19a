import type { Server } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { FastifyHttpOptions } from "fastify";
import { dnLengthMax } from "../../core/directory/dn.ts";
import { sessionTokenLengthMax } from "./api.ts";
import { type ProblemCode, problem } from "./problems.ts";

/**
 * What the HTTP server itself must allow, and how it answers what it refuses before fastify
 * sees a request. A DN travels in the path (docs/api.md), so the path and the request head
 * must hold the longest DN the core accepts, percent-encoded.
 */

/** UTF-8 bytes one UTF-16 code unit of a DN takes at most: 3 for a BMP character (a surrogate pair is 4 bytes for 2 units). */
const utf8BytesPerCodeUnitMax = 3;
/** Characters one byte takes percent-encoded (`%E4`). */
const percentEncodedCharsPerByte = 3;
/**
 * Characters of the longest DN path segment: every one of the core's dnLengthMax code units as
 * percent-encoded UTF-8 (73,728). Fastify's default, 100, refused DNs the core had stored.
 */
export const dnPathSegmentLengthMax = dnLengthMax * utf8BytesPerCodeUnitMax * percentEncodedCharsPerByte;
/** Bytes of a request head besides its DN segment and session token: the rest of the URL, other headers. */
const requestHeadOtherBytesMax = 16 * 1024;
/**
 * Bytes of the request line and headers together (Node counts both against `maxHeaderSize`,
 * default 16 KiB): a maximal encoded DN, a maximal session token, and room for the rest.
 * Beyond it Node's parser stops reading, and the client gets `431 headers-too-large`.
 */
export const requestHeadBytesMax = dnPathSegmentLengthMax + sessionTokenLengthMax + requestHeadOtherBytesMax;

/**
 * Milliseconds a client has to send a whole request, head and body. Fastify's default, 0, let
 * a client that sent fewer body bytes than its Content-Length hold its connection (and the
 * request's memory) for ever; beyond this it gets `408 request-timeout`. Generous: an 8 MiB
 * body (`clientBodyBytesMax`) needs only 70 KB/s. Node checks every
 * `connectionsCheckingInterval` (30 s by default), so the answer comes up to that much later.
 */
export const requestReceiveMsMax = 120_000;

/** The problem for an error Node's HTTP parser met before fastify had a request. */
function connectionProblemCode(errorCode: string): ProblemCode {
  if (errorCode === "HPE_HEADER_OVERFLOW") return "headers-too-large";
  if (errorCode === "ERR_HTTP_REQUEST_TIMEOUT") return "request-timeout";
  return "invalid-request";
}

const connectionProblemDetail: Readonly<Record<string, string>> = {
  "headers-too-large": `the request line and headers exceed ${requestHeadBytesMax} bytes`,
  "request-timeout": "the request did not arrive in time",
  "invalid-request": "the request is not well-formed HTTP/1.1",
};

/**
 * Fastify's `clientErrorHandler`: a problem document written straight to the socket, as there
 * is no request to reply to, then the connection closed (its stream position is unknown).
 * Replaces fastify's default, which answers plain `application/json` without a `code`.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  // A reset connection, or one already gone: nobody is left to answer.
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const code = connectionProblemCode(error.code ?? "");
  const value = problem(code, connectionProblemDetail[code] ?? "the request was refused");
  const body = JSON.stringify(value);
  if (socket.writable)
    socket.write(
      `HTTP/1.1 ${value.status} ${STATUS_CODES[value.status] ?? ""}\r\n` +
        "Content-Type: application/problem+json\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        "Connection: close\r\n\r\n" +
        body,
    );
  socket.destroy(error);
}

/** The options of the node's fastify server that these limits set (spread into its construction). */
export const httpServerOptions = {
  routerOptions: { maxParamLength: dnPathSegmentLengthMax },
  http: { maxHeaderSize: requestHeadBytesMax },
  requestTimeout: requestReceiveMsMax,
  clientErrorHandler,
} satisfies Partial<FastifyHttpOptions<Server>>;
