import { performance } from "node:perf_hooks";
import { Http1Connection } from "./http1.ts";

/**
 * Client side of `npm run bench`: bounded write load over HTTP (bench/http1.ts, one connection
 * per concurrent writer), latency percentiles, and watch streams (GET /v1/watch, server-sent
 * events) that record when each entry arrives on a node. Only the client API is used.
 */

export const benchPartition = "dc=example,dc=com";
/** One request may take this long before it counts as an error (the load keeps going). */
const requestTimeoutMs = 30_000;

export interface LoadBounds {
  readonly concurrency: number;
  /** Writes at most. */
  readonly count: number;
  /** Wall time at most; no new write starts after it. */
  readonly wallMsMax: number;
}

export interface LoadResult {
  readonly concurrency: number;
  /** Writes answered 201 (acknowledged, durable on the node). */
  readonly acknowledged: number;
  readonly errors: number;
  readonly wallMs: number;
  readonly writesPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** performance.now() when the last acknowledgement arrived. */
  readonly lastAckAt: number;
  /** The first error's status and body, to say why when errors > 0. */
  readonly firstError: string | null;
  /** CPU time of this process (the load generator) per request: what it took from the cores it shares. */
  readonly clientCpuMsPerRequest: number;
}

/** The p-th percentile (0..100) of sorted values, nearest rank; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** A user entry like the peers' bulk loads write (inetOrgPerson with a handful of attributes). */
export function userEntry(uid: string): { dn: string; attributes: Record<string, string[]> } {
  return {
    dn: `uid=${uid},${benchPartition}`,
    attributes: {
      objectClass: ["inetOrgPerson", "person"],
      uid: [uid],
      cn: [`User ${uid}`],
      sn: [uid],
      givenName: ["User"],
      mail: [`${uid}@example.com`],
    },
  };
}

interface Call {
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly body?: string;
  /** The status that counts as success. */
  readonly expect: number;
}

/**
 * Adds `count` entries named `${prefix}${index}` with `concurrency` writers, each on its own
 * connection, write concern `local` (the node's default: durable on this node when acknowledged).
 */
export function writeLoad(url: string, prefix: string, bounds: LoadBounds): Promise<LoadResult> {
  return load(url, bounds, (index) => ({
    method: "POST",
    path: "/v1/entries",
    body: JSON.stringify(userEntry(`${prefix}${index}`)),
    expect: 201,
  }));
}

/** GET requests per second at `concurrency` on a cheap route: what HTTP alone costs on this box. */
export function readLoad(url: string, path: string, bounds: LoadBounds): Promise<LoadResult> {
  return load(url, bounds, () => ({ method: "GET", path, expect: 200 }));
}

/**
 * A watch stream on one node: records, for each DN that arrives, when it first arrived
 * (performance.now() in this process). Closed by close(); bounded by the node's own limits.
 */
export class Watch {
  readonly arrivals = new Map<string, number>();
  /** DNs starting with the tracked prefix that arrived, and when the last of them did. */
  tracked = 0;
  lastTrackedAt = 0;
  private prefix: string | null = null;
  private readonly abort = new AbortController();
  private readonly waiters = new Set<() => void>();
  private done: Promise<void> = Promise.resolve();

  private constructor(readonly name: string) {}

  /** Opens the stream from the node's current position; resolves once the headers arrived. */
  static async open(name: string, url: string): Promise<Watch> {
    const watch = new Watch(name);
    const response = await fetch(`${url}/v1/watch`, { signal: watch.abort.signal });
    if (response.status !== 200 || response.body === null)
      throw new Error(`watch on ${name}: HTTP ${response.status}`);
    watch.done = watch.read(response.body);
    return watch;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffered = "";
    try {
      for await (const chunk of body) {
        buffered += decoder.decode(chunk, { stream: true });
        const events = buffered.split("\n\n");
        buffered = events.pop() ?? "";
        const now = performance.now();
        for (const event of events) this.take(event, now);
        for (const wake of this.waiters) wake();
      }
    } catch {
      // Aborted by close(), or the node went away: the arrivals so far stand.
    }
  }

  private take(event: string, now: number): void {
    const data = event.split("\n").find((line) => line.startsWith("data: "));
    if (data === undefined) return;
    const parsed = JSON.parse(data.slice("data: ".length)) as { dn: string | null };
    if (parsed.dn === null || this.arrivals.has(parsed.dn)) return;
    this.arrivals.set(parsed.dn, now);
    if (this.prefix !== null && parsed.dn.startsWith(this.prefix)) {
      this.tracked++;
      this.lastTrackedAt = now;
    }
  }

  /** Counts from now on the DNs that start with `prefix` (tracked, lastTrackedAt). */
  track(prefix: string): void {
    this.prefix = prefix;
    this.tracked = 0;
    this.lastTrackedAt = 0;
  }

  /** Resolves true once `check()` holds (looked at after each chunk), false after `timeoutMs`. */
  until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (result: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve(result);
      };
      const wake = (): void => {
        if (check()) finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.waiters.add(wake);
    });
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}

/**
 * Runs `call(index)` for index 0.. with `concurrency` callers, each on its own keep-alive
 * connection, until the count or the time is up.
 */
async function load(url: string, bounds: LoadBounds, call: (index: number) => Call): Promise<LoadResult> {
  const connections = Array.from({ length: bounds.concurrency }, () => new Http1Connection(url));
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  let firstError: string | null = null;
  let lastAckAt = 0;
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const deadline = started + bounds.wallMsMax;
  const caller = async (connection: Http1Connection): Promise<void> => {
    while (next < bounds.count && performance.now() < deadline) {
      const { expect, ...request } = call(next++);
      const sent = performance.now();
      try {
        const answer = await connection.request(request.method, request.path, request.body, requestTimeoutMs);
        if (answer.status === expect) {
          lastAckAt = performance.now();
          latencies.push(lastAckAt - sent);
        } else {
          errors++;
          firstError ??= `${answer.status} ${answer.body.slice(0, 300)}`;
        }
      } catch (error) {
        errors++;
        firstError ??= String(error);
      }
    }
  };
  try {
    await Promise.all(connections.map(caller));
  } finally {
    for (const connection of connections) connection.close();
  }
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  return {
    concurrency: bounds.concurrency,
    acknowledged: latencies.length,
    errors,
    wallMs,
    writesPerSec: (latencies.length / wallMs) * 1000,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    lastAckAt,
    firstError,
    clientCpuMsPerRequest: (cpu.user + cpu.system) / 1000 / Math.max(1, latencies.length + errors),
  };
}
