import { connect, type Socket } from "node:net";

/**
 * The load generator's HTTP/1.1 client: one keep-alive connection, one request at a time, the
 * request written as one buffer and the answer parsed just enough to find its status and body
 * (Content-Length or chunked). `npm run bench` runs the load generator on the same 2 cores as
 * the nodes it measures, so every microsecond it spends per request is taken from them: undici
 * spent ≈ 0.15 ms of CPU per write here, as much as a replicating partner. Like wrk, this client
 * does the least a correct HTTP/1.1 client can do. Only loopback URLs are used.
 */

/** An answer larger than this is refused (the bench's answers are a few hundred bytes). */
const answerBytesMax = 16 * 1024 * 1024;
/** Header block larger than this is refused. */
const headerBytesMax = 64 * 1024;

export interface Answer {
  readonly status: number;
  readonly body: string;
}

interface Pending {
  readonly resolve: (answer: Answer) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** How far an answer has been read. */
type ReadState =
  | { readonly kind: "head" }
  | { readonly kind: "length"; readonly status: number; readonly bodyStart: number; readonly length: number }
  | { readonly kind: "chunked"; readonly status: number; chunks: Buffer[]; offset: number };

export class Http1Connection {
  private socket: Socket | null = null;
  private connecting: Promise<Socket> | null = null;
  private buffered: Buffer = Buffer.alloc(0);
  private state: ReadState = { kind: "head" };
  private pending: Pending | null = null;
  private readonly host: string;
  private readonly port: number;

  constructor(url: string) {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:") throw new Error(`http1: only http: URLs, not ${parsed.protocol}`);
    this.host = parsed.hostname;
    this.port = Number(parsed.port || 80);
  }

  /** Sends one request and resolves with its answer; rejects on a broken connection or timeout. */
  async request(method: string, path: string, body: string | undefined, timeoutMs: number): Promise<Answer> {
    if (this.pending !== null) throw new Error("http1: one request at a time per connection");
    const socket = await this.open();
    const payload = body === undefined ? "" : body;
    const head =
      `${method} ${path} HTTP/1.1\r\nhost: ${this.host}:${this.port}\r\n` +
      (body === undefined
        ? "\r\n"
        : `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\n\r\n`);
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`http1: no answer in ${timeoutMs} ms`)), timeoutMs);
      this.pending = { resolve, reject, timer };
      socket.write(head + payload);
    });
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
  }

  private open(): Promise<Socket> {
    if (this.socket !== null) return Promise.resolve(this.socket);
    this.connecting ??= new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: this.host, port: this.port, noDelay: true });
      socket.once("connect", () => {
        this.socket = socket;
        this.connecting = null;
        resolve(socket);
      });
      socket.once("error", (error) => {
        this.connecting = null;
        reject(error);
      });
      socket.on("data", (chunk: Buffer) => this.take(chunk));
      socket.on("error", (error) => this.fail(error));
      socket.on("close", () => {
        if (this.socket === socket) this.socket = null;
        this.fail(new Error("http1: connection closed"));
      });
    });
    return this.connecting;
  }

  private fail(error: Error): void {
    const pending = this.pending;
    this.pending = null;
    this.buffered = Buffer.alloc(0);
    this.state = { kind: "head" };
    this.close();
    if (pending === null) return;
    clearTimeout(pending.timer);
    pending.reject(error);
  }

  private finish(answer: Answer): void {
    const pending = this.pending;
    this.pending = null;
    this.state = { kind: "head" };
    if (pending === null) return;
    clearTimeout(pending.timer);
    pending.resolve(answer);
  }

  private take(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    if (this.buffered.length > answerBytesMax) {
      this.fail(new Error("http1: answer too large"));
      return;
    }
    try {
      this.advance();
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Reads as much of the answer as has arrived; finishes it when whole. */
  private advance(): void {
    if (this.state.kind === "head") {
      const end = this.buffered.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.buffered.length > headerBytesMax) throw new Error("http1: header block too large");
        return;
      }
      this.state = parseHead(this.buffered.toString("latin1", 0, end), end + 4);
    }
    const state = this.state;
    if (state.kind === "length") {
      const bodyEnd = state.bodyStart + state.length;
      if (this.buffered.length < bodyEnd) return;
      const body = this.buffered.toString("utf8", state.bodyStart, bodyEnd);
      this.buffered = this.buffered.subarray(bodyEnd);
      this.finish({ status: state.status, body });
      return;
    }
    if (state.kind === "chunked") this.advanceChunks(state);
  }

  private advanceChunks(state: Extract<ReadState, { kind: "chunked" }>): void {
    for (;;) {
      const lineEnd = this.buffered.indexOf("\r\n", state.offset);
      if (lineEnd < 0) return;
      const size = Number.parseInt(this.buffered.toString("latin1", state.offset, lineEnd), 16);
      if (!Number.isFinite(size) || size < 0) throw new Error("http1: bad chunk size");
      const dataEnd = lineEnd + 2 + size;
      if (size === 0) {
        // The last chunk; no trailers are expected, so the answer ends with one more CRLF.
        if (this.buffered.length < dataEnd + 2) return;
        const body = Buffer.concat(state.chunks).toString("utf8");
        this.buffered = this.buffered.subarray(dataEnd + 2);
        this.finish({ status: state.status, body });
        return;
      }
      if (this.buffered.length < dataEnd + 2) return;
      state.chunks.push(this.buffered.subarray(lineEnd + 2, dataEnd));
      state.offset = dataEnd + 2;
    }
  }
}

function parseHead(head: string, bodyStart: number): ReadState {
  const lines = head.split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
  if (status?.[1] === undefined) throw new Error(`http1: bad status line ${JSON.stringify(lines[0])}`);
  let length: number | null = null;
  let chunked = false;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-length") length = Number(value);
    else if (name === "transfer-encoding") chunked = value.toLowerCase().includes("chunked");
  }
  const code = Number(status[1]);
  // These answers have no body whatever their headers say (RFC 9112, section 6.3).
  if (code === 204 || code === 304 || (code >= 100 && code < 200))
    return { kind: "length", status: code, bodyStart, length: 0 };
  if (chunked) return { kind: "chunked", status: code, chunks: [], offset: bodyStart };
  if (length === null || !Number.isSafeInteger(length) || length < 0)
    throw new Error("http1: answer without a usable content-length");
  return { kind: "length", status: code, bodyStart, length };
}
