import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { Agent, request } from "undici";
import type { NodeId } from "../core/ids.ts";
import { type ClusterSecret, peerHeaders, signedHeaders, verifyResponse } from "./auth.ts";
import { errorText } from "./log.ts";
import { compactPageEncoding, pageEncodingHeader, plainAnswer } from "./page-wire.ts";

/**
 * The sending side of the transport between nodes: signed POSTs of JSON bodies with undici.
 * Every call is bounded in time; pulls and checks share a bounded number of slots so that a
 * burst of partners (or a slow one) cannot open unbounded connections; each call stands on its
 * own, so a dead partner costs its own timeout and nothing else. Answers must carry a valid
 * signature bound to the request, and are decompressed only after that check.
 */
export const peerPaths = {
  messages: "/peer/v1/messages",
  join: "/peer/v1/join",
  utd: "/peer/v1/utd",
} as const;

/** An answer's wire size, compressed or not: a page is bounded by pageBytesMaxLimit (64 MiB) plus JSON. */
export const peerResponseBytesMax = 96 * 1024 * 1024;
const inflate = promisify(gunzip);
/** Connections kept per partner origin. */
const connectionsPerOrigin = 4;

export type PeerReply =
  | {
      readonly ok: true;
      readonly status: number;
      readonly body: unknown;
      /** The answer's size on the wire (compressed when it came gzipped), for the metrics. */
      readonly bytes: number;
    }
  | {
      readonly ok: false;
      readonly reason: string;
      /** The HTTP status, when the partner answered (401: it refused our signature). */
      readonly status?: number;
    };

export interface PeerClientOptions {
  readonly self: NodeId;
  readonly secret: ClusterSecret;
  /** Requests in flight at once; further ones wait for a slot. */
  readonly inFlightMax: number;
}

export class PeerClient {
  private readonly agent = new Agent({ connections: connectionsPerOrigin, keepAliveTimeout: 10_000 });
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly options: PeerClientOptions) {}

  get queued(): number {
    return this.waiting.length;
  }

  get active(): number {
    return this.inFlight;
  }

  /** POSTs `body` to `baseUrl + path`; `compress` asks for a gzip answer (inter-site links). */
  async post(
    baseUrl: string,
    path: string,
    body: unknown,
    timeoutMs: number,
    compress = false,
  ): Promise<PeerReply> {
    await this.acquire();
    // One timer per exchange, cleared when it ends. AbortSignal.timeout() leaves its timer
    // running after the answer: every exchange's timer fired pullTimeoutMs later and built a
    // DOMException with a stack trace (≈ 2 % of a partner's CPU under load).
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    try {
      return await this.send(baseUrl, path, body, timeoutMs, compress, abort.signal);
    } catch (error) {
      return { ok: false, reason: errorText(error) };
    } finally {
      clearTimeout(timer);
      this.release();
    }
  }

  /** Abandons requests in flight (their callers get a failure) and closes every connection. */
  async close(): Promise<void> {
    await this.agent.destroy();
  }

  private async send(
    baseUrl: string,
    path: string,
    body: unknown,
    timeoutMs: number,
    compress: boolean,
    signal: AbortSignal,
  ): Promise<PeerReply> {
    const payload = Buffer.from(JSON.stringify(body), "utf8");
    const signed = signedHeaders(
      this.options.secret,
      { method: "POST", path, node: this.options.self, body: payload },
      Date.now(),
    );
    const signature = signed[peerHeaders.signature];
    const response = await request(new URL(path, baseUrl), {
      method: "POST",
      dispatcher: this.agent,
      body: payload,
      headers: {
        "content-type": "application/json",
        [pageEncodingHeader]: compactPageEncoding,
        ...signed,
        ...(compress ? { "accept-encoding": "gzip" } : {}),
      },
      signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const raw = await readBounded(response.body, peerResponseBytesMax);
    if (raw === null) {
      response.body.destroy();
      return { ok: false, reason: `answer larger than ${peerResponseBytesMax} bytes` };
    }
    const answerSignature = response.headers[peerHeaders.signature];
    if (
      !verifyResponse(
        this.options.secret,
        response.statusCode,
        signature,
        typeof answerSignature === "string" ? answerSignature : undefined,
        raw,
      )
    ) {
      return {
        ok: false,
        reason: `unsigned or badly signed answer (HTTP ${response.statusCode})`,
        status: response.statusCode,
      };
    }
    if (response.statusCode === 204) return { ok: true, status: 204, body: null, bytes: raw.length };
    const encoding = response.headers["content-encoding"];
    // Inflated on libuv's thread pool, not the event loop: a gzip bomb (1 MB that inflates to
    // gigabytes) took up to ~200 ms of the node's thread per attempt before it hit the bound.
    const text =
      encoding === "gzip"
        ? (await inflate(raw, { maxOutputLength: peerResponseBytesMax })).toString("utf8")
        : raw.toString("utf8");
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      return { ok: false, reason: `answer is not JSON: ${errorText(error)}` };
    }
    if (response.statusCode >= 300) {
      const detail =
        typeof parsed === "object" && parsed !== null && "detail" in parsed ? String(parsed.detail) : "";
      return {
        ok: false,
        reason: `HTTP ${response.statusCode} ${detail}`.trim(),
        status: response.statusCode,
      };
    }
    const plain = plainAnswer(parsed);
    if (!plain.ok) return { ok: false, reason: plain.error.message };
    return { ok: true, status: response.statusCode, body: plain.value, bytes: raw.length };
  }

  private acquire(): Promise<void> {
    if (this.inFlight < this.options.inFlightMax) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Hands the slot straight to the next waiter, so the count never exceeds the bound. */
  private release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.inFlight--;
  }
}

async function readBounded(stream: AsyncIterable<Uint8Array>, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += chunk.byteLength;
    if (size > limit) return null;
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
