import { type ChildProcess, fork } from "node:child_process";
import { availableParallelism } from "node:os";
import type { CanaryName } from "../core/canaries.ts";
import { runSeed, type SeedResult } from "./run.ts";

/**
 * Runs many seeds, in parallel worker processes. Each seed stays single-threaded and
 * deterministic inside one worker; only the order in which results arrive varies.
 */
export interface SeedSummary {
  readonly seed: number;
  readonly canary: CanaryName | null;
  readonly nodes: number;
  readonly sites: number;
  readonly operations: number;
  readonly acknowledged: number;
  readonly faults: number;
  readonly networkFaults: number;
  readonly messages: number;
  readonly invariantChecks: number;
  readonly simulatedMs: number;
  readonly wallMs: number;
  readonly traceHash: string;
  readonly violations: ReadonlyArray<{
    readonly invariant: string;
    readonly message: string;
    readonly time: number;
  }>;
  readonly traceTail: readonly string[];
}

export function summarize(result: SeedResult): SeedSummary {
  return {
    seed: result.seed,
    canary: result.canary,
    nodes: result.params.nodes,
    sites: result.params.sites,
    operations: result.operations,
    acknowledged: result.acknowledged,
    faults: result.faults,
    networkFaults: result.networkFaults,
    messages: result.messages,
    invariantChecks: result.invariantChecks,
    simulatedMs: result.simulatedMs,
    wallMs: result.wallMs,
    traceHash: result.traceHash,
    violations: result.violations.slice(0, 20),
    traceTail: result.violations.length > 0 ? result.traceTail : [],
  };
}

export interface BatchOptions {
  readonly seeds: readonly number[];
  readonly canary?: CanaryName | null;
  readonly workers?: number;
  /** Stop handing out seeds once one has a violation (canary hunting). */
  readonly stopAtFirstViolation?: boolean;
  readonly onResult?: (summary: SeedSummary) => void;
}

type WorkerRequest = { readonly seed: number; readonly canary: CanaryName | null } | { readonly stop: true };
type WorkerReply = { readonly summary: SeedSummary } | { readonly error: string; readonly seed: number };

const workerScript = new URL("./worker.ts", import.meta.url);

export async function runBatch(options: BatchOptions): Promise<SeedSummary[]> {
  const queue = [...options.seeds];
  const results: SeedSummary[] = [];
  const count = Math.max(1, Math.min(options.workers ?? availableParallelism(), queue.length));
  let stopped = false;
  const take = (): number | undefined => (stopped ? undefined : queue.shift());
  const accept = (summary: SeedSummary): void => {
    results.push(summary);
    options.onResult?.(summary);
    if (options.stopAtFirstViolation === true && summary.violations.length > 0) stopped = true;
  };
  if (count === 1) {
    for (let seed = take(); seed !== undefined; seed = take())
      accept(summarize(runSeed(seed, { canary: options.canary ?? null })));
    return results;
  }
  await Promise.all(Array.from({ length: count }, () => runWorker(options.canary ?? null, take, accept)));
  return results;
}

function runWorker(
  canary: CanaryName | null,
  take: () => number | undefined,
  accept: (summary: SeedSummary) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = fork(workerScript, [], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const next = (): void => {
      const seed = take();
      const request: WorkerRequest = seed === undefined ? { stop: true } : { seed, canary };
      child.send(request);
    };
    child.on("message", (reply: WorkerReply) => {
      if ("error" in reply) {
        child.kill();
        reject(new Error(`seed ${reply.seed} crashed the simulator: ${reply.error}`));
        return;
      }
      accept(reply.summary);
      next();
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`simulator worker exited with ${code}`)),
    );
    next();
  });
}
