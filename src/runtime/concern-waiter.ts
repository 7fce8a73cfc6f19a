import type { InvocationId, NodeId, Usn } from "../core/ids.ts";
import {
  type ConcernOutcome,
  evaluateWriteConcern,
  type ReplicaProgress,
  serversToAsk,
  type WriteConcernRequest,
} from "../core/node/write-concern.ts";
import { type UtdVector, utdGet } from "../core/replication/utd.ts";
import { monotonicClock } from "./ports.ts";

/**
 * Writes waiting for their write concern share their reports: every server that some waiting
 * write still needs is asked for its UTD, at most one request to it at a time however many
 * writes wait on it, and again pollMs after each answer while it is still needed. Each answer
 * lets the core decide at once, for every waiting write, whether the reports meet its concern,
 * and the writes that are met are answered. Servers are asked each on their own: a server that
 * does not answer (a site cut off) delays nothing but its own next report, so a write whose
 * concern the others can meet is answered when they do. A write also gets its answer at its
 * deadline, whatever a slow server is doing. Only reports asked for after a write was committed
 * count for it.
 */
export interface Server {
  readonly node: NodeId;
  readonly site: string;
}

interface Waiter {
  readonly request: WriteConcernRequest;
  readonly write: { readonly invocation: InvocationId; readonly usn: Usn };
  readonly self: Server;
  readonly servers: readonly Server[];
  readonly since: number;
  readonly resolve: (outcome: ConcernOutcome) => void;
  readonly timer: NodeJS.Timeout;
}

interface Report extends ReplicaProgress {
  readonly askedAt: number;
}

/** Writes waiting at once; beyond this a write is answered with what it reached so far. */
export const concernWaitersMax = 10_000;

export class ConcernWaiter {
  private readonly waiters = new Set<Waiter>();
  private readonly reports = new Map<NodeId, Report>();
  /** Servers with a report request under way (one each at most). */
  private readonly asking = new Set<NodeId>();
  /** Servers waiting out pollMs before they are asked again. */
  private readonly resting = new Map<NodeId, NodeJS.Timeout>();
  private closed = false;

  constructor(
    /** A server's current UTD, or null when it does not answer in time. */
    private readonly ask: (server: Server) => Promise<UtdVector | null>,
    private readonly pollMs: number,
  ) {}

  get waiting(): number {
    return this.waiters.size;
  }

  wait(
    request: WriteConcernRequest,
    write: { invocation: InvocationId; usn: Usn },
    self: Server,
    servers: readonly Server[],
  ): Promise<ConcernOutcome> {
    const since = monotonicClock.now();
    const now = evaluateWriteConcern(request.concern, write, self, servers, []);
    if (now.met || this.closed || this.waiters.size >= concernWaitersMax) return Promise.resolve(now);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        request,
        write,
        self,
        servers,
        since,
        resolve,
        timer: setTimeout(() => this.finish(waiter), request.timeoutMs),
      };
      this.waiters.add(waiter);
      this.askNeeded();
    });
  }

  /** Answers every waiting write with what it reached; no new waits start. */
  close(): void {
    this.closed = true;
    for (const waiter of [...this.waiters]) this.finish(waiter);
    for (const timer of this.resting.values()) clearTimeout(timer);
    this.resting.clear();
  }

  private outcome(waiter: Waiter): ConcernOutcome {
    const reports = [...this.reports.values()].filter((report) => report.askedAt >= waiter.since);
    return evaluateWriteConcern(waiter.request.concern, waiter.write, waiter.self, waiter.servers, reports);
  }

  private finish(waiter: Waiter): void {
    if (!this.waiters.delete(waiter)) return;
    clearTimeout(waiter.timer);
    waiter.resolve(this.outcome(waiter));
  }

  /** Servers some waiting write still needs a (newer) report from. */
  private needed(): Server[] {
    const wanted = new Map<NodeId, Server>();
    for (const waiter of this.waiters) {
      for (const server of serversToAsk(waiter.request.concern, waiter.self, waiter.servers)) {
        const report = this.reports.get(server.node);
        const covered =
          report !== undefined &&
          report.askedAt >= waiter.since &&
          report.utd !== null &&
          utdGet(report.utd, waiter.write.invocation) >= waiter.write.usn;
        if (!covered) wanted.set(server.node, server);
      }
    }
    return [...wanted.values()];
  }

  /** Asks every server a waiting write still needs, unless it is being asked or resting. */
  private askNeeded(): void {
    if (this.closed) return;
    for (const server of this.needed()) {
      if (this.asking.has(server.node) || this.resting.has(server.node)) continue;
      this.asking.add(server.node);
      void this.askOnce(server);
    }
  }

  /**
   * One report from `server`; then every waiting write is decided again, and the server rests
   * pollMs before it may be asked again. Bounded: every waiter leaves by its deadline, after
   * which no server is needed and nothing more is asked.
   */
  private async askOnce(server: Server): Promise<void> {
    const askedAt = monotonicClock.now();
    try {
      const utd = await this.ask(server);
      if (utd !== null) this.reports.set(server.node, { node: server.node, site: server.site, utd, askedAt });
    } finally {
      this.asking.delete(server.node);
    }
    for (const waiter of [...this.waiters]) if (this.outcome(waiter).met) this.finish(waiter);
    if (this.closed || this.waiters.size === 0) return;
    const timer = setTimeout(() => {
      this.resting.delete(server.node);
      this.askNeeded();
    }, this.pollMs);
    this.resting.set(server.node, timer);
    this.askNeeded();
  }
}
