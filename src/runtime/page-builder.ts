import { Worker } from "node:worker_threads";
import { gzipSync } from "node:zlib";
import type { PullTicket } from "../core/node/machine.ts";
import type { ChangePage, ChangeRequest } from "../core/replication/page.ts";
import type { PlexusError, Result } from "../core/result.ts";
import { errorText, type Logger } from "./log.ts";
import { encodePage, gzipBytesMin } from "./page-wire.ts";
import type { AnswerEncodings } from "./peer-server.ts";

/**
 * Builds the pages of admitted pulls on a worker thread (src/runtime/page-worker.ts), which
 * reads the store through its own read-only connection: SQLite's WAL lets it read beside the
 * node's writes, and the node's own thread, which commits the client writes, no longer reads,
 * encodes and serialises every entry once per partner. The page is the one the node's thread
 * would build at that moment (core: Replica.admitPull, readPageFrom).
 *
 * When the worker cannot start, fails, or has too many pages queued, `build` answers
 * undefined and the node builds the page itself, as it did before: a pull is never refused
 * for the worker's sake.
 */

/** Pages queued on the worker at most; beyond, the node's thread builds them (a burst of pulls). */
export const pageBuildsQueuedMax = 16;
/** A page the worker has not built within this is abandoned, and the worker with it. */
export const pageBuildTimeoutMs = 30_000;
/** The worker opens the store and loads its code (tsx) within this, or is given up. */
export const pageWorkerStartTimeoutMs = 30_000;

/** Node thread → worker. */
export interface PageWorkerRequest {
  readonly seq: number;
  /** The pull's message id: the page message answers it. */
  readonly id: number;
  readonly request: ChangeRequest;
  /** What the puller reads: compact pages, gzip. */
  readonly reads: AnswerEncodings;
}

/** Worker → node thread. */
export type PageWorkerReply =
  | { readonly kind: "ready" }
  | { readonly kind: "failed"; readonly error: string }
  | { readonly kind: "built"; readonly seq: number; readonly built: BuiltPage }
  | { readonly kind: "error"; readonly seq: number; readonly error: string };

/** An admitted pull's answer as the worker built it. */
export type BuiltPage =
  | {
      readonly kind: "page";
      /** The page message as JSON, in the encoding the puller asked for (gzipped when `gzipped`). */
      readonly body: Uint8Array<ArrayBuffer>;
      /** The puller accepts gzip and the page is gzipBytesMin or more. */
      readonly gzipped: boolean;
      readonly more: boolean;
    }
  /** The replica was quarantined after it admitted the pull: it sends nothing (readPageFrom). */
  | { readonly kind: "refused"; readonly error: PlexusError };

/** The answer to pull `id`, as the bytes the node sends (compact or plain page). */
export function pageMessageBytes(id: number, page: ChangePage, compact: boolean): Uint8Array<ArrayBuffer> {
  const message = { kind: "page", id, page: compact ? encodePage(page) : page };
  // TextEncoder gives the bytes an ArrayBuffer of their own, which can be transferred.
  return new TextEncoder().encode(JSON.stringify(message));
}

/** The answer to an admitted pull as the worker sends it back: gzipped too when the puller reads gzip. */
export function builtPage(id: number, page: Result<ChangePage>, reads: AnswerEncodings): BuiltPage {
  if (!page.ok) return { kind: "refused", error: { code: page.error.code, message: page.error.message } };
  const json = pageMessageBytes(id, page.value, reads.compactPages);
  const more = page.value.more;
  if (!reads.gzip || json.length < gzipBytesMin) return { kind: "page", body: json, gzipped: false, more };
  const zipped = gzipSync(json);
  // A Buffer of its own (not a slice of the shared pool), so that it can be transferred.
  const body = new Uint8Array(zipped.buffer, zipped.byteOffset, zipped.byteLength).slice();
  return { kind: "page", body, gzipped: true, more };
}

/** Bounds of one worker, and its entry point (tests stand in workers that misbehave). */
export interface PageWorkerOptions {
  /** Default pageBuildTimeoutMs. */
  readonly buildTimeoutMs?: number;
  /** Default pageWorkerStartTimeoutMs. */
  readonly startTimeoutMs?: number;
  /** Default page-worker-boot.mjs beside this file. */
  readonly script?: URL;
}

interface Pending {
  readonly resolve: (page: BuiltPage | undefined) => void;
  readonly timer: NodeJS.Timeout;
}

export class PageBuilder {
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private state: "starting" | "ready" | "gone" = "starting";

  private constructor(
    private readonly worker: Worker,
    private readonly log: Logger,
    private readonly buildTimeoutMs: number,
    startTimeoutMs: number,
  ) {
    const startTimer = setTimeout(
      () => this.giveUp(`the worker did not start within ${startTimeoutMs} ms`),
      startTimeoutMs,
    );
    worker.on("message", (reply: PageWorkerReply) => {
      if (reply.kind === "ready" || reply.kind === "failed") clearTimeout(startTimer);
      this.onReply(reply);
    });
    worker.on("error", (error) => this.giveUp(errorText(error)));
    worker.on("exit", (code) => {
      clearTimeout(startTimer);
      if (this.state !== "gone") this.giveUp(`the worker exited (code ${code})`);
    });
    worker.unref();
  }

  /** Starts the worker for the store file at `path`; pages are built on it once it is ready. */
  static start(path: string, log: Logger, options: PageWorkerOptions = {}): PageBuilder {
    const script = options.script ?? new URL("./page-worker-boot.mjs", import.meta.url);
    const worker = new Worker(script, { workerData: { path } });
    return new PageBuilder(
      worker,
      log,
      options.buildTimeoutMs ?? pageBuildTimeoutMs,
      options.startTimeoutMs ?? pageWorkerStartTimeoutMs,
    );
  }

  /** Whether `build` may answer a page now (else the caller builds it itself). */
  get available(): boolean {
    return this.state === "ready" && this.pending.size < pageBuildsQueuedMax;
  }

  /** The page for an admitted pull, or undefined when the worker cannot build it. */
  build(ticket: PullTicket, reads: AnswerEncodings): Promise<BuiltPage | undefined> {
    if (!this.available) return Promise.resolve(undefined);
    this.seq += 1;
    const seq = this.seq;
    return new Promise((resolve) => {
      const timer = setTimeout(
        () => this.giveUp(`a page took over ${this.buildTimeoutMs} ms`),
        this.buildTimeoutMs,
      );
      this.pending.set(seq, { resolve, timer });
      const request: PageWorkerRequest = { seq, id: ticket.id, request: ticket.request, reads };
      this.worker.postMessage(request);
    });
  }

  /** Stops the worker; pages still being built are answered by the caller. */
  async close(): Promise<void> {
    if (this.state === "gone") return;
    this.state = "gone";
    this.settleAll();
    await this.worker.terminate();
  }

  private onReply(reply: PageWorkerReply): void {
    switch (reply.kind) {
      case "ready":
        if (this.state === "starting") this.state = "ready";
        return;
      case "failed":
        this.giveUp(reply.error);
        return;
      case "built":
        this.settle(reply.seq, reply.built);
        return;
      case "error":
        // One page failed (a read error): the node's thread builds it; the worker stays.
        this.log.log("warn", "page-build-failed", { error: reply.error });
        this.settle(reply.seq, undefined);
        return;
      default: {
        const unknown: never = reply;
        throw new Error(`unknown page worker reply: ${JSON.stringify(unknown)}`);
      }
    }
  }

  private settle(seq: number, page: BuiltPage | undefined): void {
    const pending = this.pending.get(seq);
    if (pending === undefined) return;
    this.pending.delete(seq);
    clearTimeout(pending.timer);
    pending.resolve(page);
  }

  private settleAll(): void {
    for (const seq of [...this.pending.keys()]) this.settle(seq, undefined);
  }

  /** The worker is of no more use: its pages go back to the node's thread, for good. */
  private giveUp(reason: string): void {
    if (this.state === "gone") return;
    this.state = "gone";
    this.log.log("warn", "page-worker-stopped", { reason });
    this.settleAll();
    void this.worker.terminate();
  }
}
