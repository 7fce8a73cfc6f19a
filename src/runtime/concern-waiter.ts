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
 * Writes waiting for their write concern share one polling loop: each round asks every server
 * that some waiting write still needs for its UTD (one signed report per server, however many
 * writes wait on it), lets the core decide for each write whether the reports meet its concern,
 * and answers the writes that are met. A write also gets its answer at its deadline, whatever a
 * slow server is doing. Only reports asked for after a write was committed count for it.
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
  private polling = false;
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
      void this.poll();
    });
  }

  /** Answers every waiting write with what it reached; no new waits start. */
  close(): void {
    this.closed = true;
    for (const waiter of [...this.waiters]) this.finish(waiter);
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

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      // Bounded: every waiter leaves by its deadline, and then the loop ends.
      while (this.waiters.size > 0 && !this.closed) {
        const askedAt = monotonicClock.now();
        await Promise.all(
          this.needed().map(async (server) => {
            const utd = await this.ask(server);
            if (utd !== null)
              this.reports.set(server.node, { node: server.node, site: server.site, utd, askedAt });
          }),
        );
        for (const waiter of [...this.waiters]) if (this.outcome(waiter).met) this.finish(waiter);
        if (this.waiters.size > 0) await new Promise((resolve) => setTimeout(resolve, this.pollMs));
      }
    } finally {
      this.polling = false;
    }
  }
}
