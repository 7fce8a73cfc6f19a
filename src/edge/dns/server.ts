import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { createServer, type Server, type Socket as TcpSocket } from "node:net";
import { performance } from "node:perf_hooks";
import type { Health } from "../../core/locator/answer.ts";
import type { ZoneSet } from "../../core/locator/records.ts";
import { errorText, type Logger, silentLogger } from "../../runtime/log.ts";
import { queryHeader, respond, type Transport } from "./packets.ts";
import { dnsQueriesPerSecondPerSourceDefault, RateLimiter } from "./rate-limit.ts";

/**
 * The locator's authoritative DNS server: UDP and TCP on the same port (a client told to retry
 * over TCP asks the same port). It only carries packets: answers come from `respond` over the
 * zones its source holds. Answers are cached by the query's bytes after the ID (the same
 * question, flags and EDNS options get the same answer) until the source's generation moves.
 */
export interface ZoneView {
  /** Changes whenever the zones or the health view change: cached answers are dropped then. */
  readonly generation: number;
  readonly zones: ZoneSet;
  readonly health: Health;
}

export interface ZoneSource {
  view(): ZoneView;
}

export interface DnsServerOptions {
  readonly host: string;
  /** 0 picks a free port (the same one for UDP and TCP). */
  readonly port: number;
  readonly source: ZoneSource;
  readonly log?: Logger;
  /** Queries a second per source address; 0 turns the limit off. */
  readonly queriesPerSecondPerSource?: number;
  readonly tcpIdleTimeoutMs?: number;
}

export interface DnsServerStats {
  readonly queries: number;
  readonly answered: number;
  readonly cacheHits: number;
  readonly rateLimited: number;
  readonly ignored: number;
  readonly tcpConnections: number;
}

export interface DnsServer {
  readonly host: string;
  readonly port: number;
  /** `host:port` (IPv6 hosts in brackets), for `dig -p` and for status. */
  readonly address: string;
  stats(): DnsServerStats;
  close(): Promise<void>;
}

/** A TCP connection that sends no complete query for this long is closed (RFC 7766 suggests seconds). */
export const tcpIdleTimeoutMsDefault = 10_000;
export const tcpConnectionsMax = 256;
/**
 * TCP connections one source address holds at most, so that one client cannot take every slot
 * for the idle time (RFC 7766 section 6.2.2 leaves the limit to the server).
 */
export const tcpConnectionsPerSourceMax = 32;
/** Queries answered on one TCP connection before it is closed; the client opens another. */
export const tcpQueriesPerConnectionMax = 10_000;
/**
 * Answers a TCP client has not read yet, at most: one that keeps asking without reading is
 * disconnected rather than buffered for.
 */
export const tcpUnreadBytesMax = 1024 * 1024;
/** Cached answers kept; the cache starts again when full. */
export const answerCacheEntriesMax = 10_000;
/** Queries longer than this are answered but not cached (their key would be large). */
const cacheableQueryBytesMax = 512;
/** Free ports tried before giving up when the UDP port is taken over TCP. */
const bindAttemptsMax = 16;

class AnswerCache {
  private readonly entries = new Map<string, Buffer>();
  private generation = -1;

  get(key: string, generation: number): Buffer | undefined {
    if (generation !== this.generation) {
      this.entries.clear();
      this.generation = generation;
      return undefined;
    }
    return this.entries.get(key);
  }

  set(key: string, response: Buffer): void {
    if (this.entries.size >= answerCacheEntriesMax) this.entries.clear();
    this.entries.set(key, response);
  }
}

class UdpTcpDnsServer implements DnsServer {
  readonly address: string;
  private counters = { queries: 0, answered: 0, cacheHits: 0, rateLimited: 0, ignored: 0 };
  private readonly caches: Record<Transport, AnswerCache> = {
    udp: new AnswerCache(),
    tcp: new AnswerCache(),
  };
  private readonly limiter: RateLimiter;
  private readonly connections = new Set<TcpSocket>();
  /** Open TCP connections per source address (tcpConnectionsPerSourceMax). */
  private readonly perSource = new Map<string, number>();
  private closing: Promise<void> | null = null;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly udp: Socket,
    private readonly tcp: Server,
    private readonly options: DnsServerOptions,
  ) {
    this.address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    this.limiter = new RateLimiter(options.queriesPerSecondPerSource ?? dnsQueriesPerSecondPerSourceDefault);
    udp.on("message", (message, remote) => this.onDatagram(message, remote));
    udp.on("error", (error) => this.log().log("warn", "dns-udp-error", { error: errorText(error) }));
    tcp.on("connection", (socket) => this.onConnection(socket));
    tcp.on("error", (error) => this.log().log("warn", "dns-tcp-error", { error: errorText(error) }));
  }

  stats(): DnsServerStats {
    return { ...this.counters, tcpConnections: this.connections.size };
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const socket of this.connections) socket.destroy();
      this.tcp.close(() => this.udp.close(() => resolve()));
    });
    return this.closing;
  }

  private log(): Logger {
    return this.options.log ?? silentLogger;
  }

  /** The response to a message from `source`, or null (rate-limited, not a query, unreadable). */
  private answer(message: Buffer, transport: Transport, source: string): Buffer | null {
    this.counters.queries++;
    if (!this.limiter.allow(source, performance.now())) {
      this.counters.rateLimited++;
      return null;
    }
    const header = queryHeader(message);
    if (header === null) {
      this.counters.ignored++;
      return null;
    }
    let view: ZoneView;
    try {
      view = this.options.source.view();
    } catch (error) {
      this.log().log("error", "dns-zone-source-failed", { error: errorText(error) });
      return null;
    }
    const cache = this.caches[transport];
    const key = message.length <= cacheableQueryBytesMax ? message.toString("latin1", 2) : null;
    const cached = key === null ? undefined : cache.get(key, view.generation);
    if (cached !== undefined) {
      this.counters.cacheHits++;
      this.counters.answered++;
      const response = Buffer.from(cached);
      response.writeUInt16BE(header.id, 0);
      return response;
    }
    const response = respond(message, transport, view.zones, view.health);
    if (response === null) {
      this.counters.ignored++;
      return null;
    }
    if (key !== null) cache.set(key, response);
    this.counters.answered++;
    return response;
  }

  private onDatagram(message: Buffer, remote: RemoteInfo): void {
    const response = this.guarded(() => this.answer(message, "udp", remote.address));
    if (response !== null) this.udp.send(response, remote.port, remote.address);
  }

  private guarded(step: () => Buffer | null): Buffer | null {
    try {
      return step();
    } catch (error) {
      // A bug here must cost one answer, never the process.
      this.log().log("error", "dns-answer-failed", { error: errorText(error) });
      return null;
    }
  }

  private onConnection(socket: TcpSocket): void {
    const source = socket.remoteAddress ?? "";
    const held = this.perSource.get(source) ?? 0;
    if (
      this.connections.size >= tcpConnectionsMax ||
      held >= tcpConnectionsPerSourceMax ||
      this.closing !== null
    ) {
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    this.perSource.set(source, held + 1);
    let pending: Buffer = Buffer.alloc(0);
    let answered = 0;
    socket.setNoDelay(true);
    // Restarted by complete queries only, not by any byte (socket.setTimeout): a client that
    // trickles a frame it never finishes would otherwise hold its slot for ever.
    const idle = setTimeout(() => socket.destroy(), this.options.tcpIdleTimeoutMs ?? tcpIdleTimeoutMsDefault);
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      clearTimeout(idle);
      this.connections.delete(socket);
      const left = (this.perSource.get(source) ?? 1) - 1;
      if (left > 0) this.perSource.set(source, left);
      else this.perSource.delete(source);
    });
    socket.on("data", (chunk: Buffer) => {
      if (answered >= tcpQueriesPerConnectionMax) return;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      // Each pass consumes one framed query; the per-connection cap bounds the loop.
      while (pending.length >= 2 && answered < tcpQueriesPerConnectionMax) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const message = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        answered++;
        idle.refresh();
        const response = this.guarded(() => this.answer(message, "tcp", source));
        if (response !== null) {
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(response.length, 0);
          socket.write(Buffer.concat([prefix, response]));
          if (socket.writableLength > tcpUnreadBytesMax) {
            socket.destroy();
            return;
          }
        }
      }
      if (answered >= tcpQueriesPerConnectionMax) socket.end();
    });
  }
}

function listenUdp(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: host.includes(":") ? "udp6" : "udp4" });
    socket.once("error", reject);
    socket.bind(port, host, () => {
      socket.off("error", reject);
      resolve(socket);
    });
  });
}

function listenTcp(host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host, port }, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

/** Binds UDP and TCP on one port (a free one when `port` is 0) and serves until close(). */
export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  let lastError: unknown = null;
  for (let attempt = 0; attempt < (options.port === 0 ? bindAttemptsMax : 1); attempt++) {
    const udp = await listenUdp(options.host, options.port);
    const port = udp.address().port;
    try {
      const tcp = await listenTcp(options.host, port);
      const server = new UdpTcpDnsServer(options.host, port, udp, tcp, options);
      options.log?.log("info", "dns-serving", { address: server.address });
      return server;
    } catch (error) {
      lastError = error;
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    }
  }
  throw new Error(`cannot listen for DNS on ${options.host}:${options.port}: ${errorText(lastError)}`);
}

/** A source over fixed zones (tests, tools): generation 0, everyone healthy. */
export function fixedZoneSource(zones: ZoneSet, health: Health = { unhealthy: new Set() }): ZoneSource {
  const view: ZoneView = { generation: 0, zones, health };
  return { view: () => view };
}
