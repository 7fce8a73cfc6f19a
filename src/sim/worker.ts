import type { CanaryName } from "../core/canaries.ts";
import { summarize } from "./batch.ts";
import { runSeed } from "./run.ts";

/** A simulator worker process: runs the seeds its parent sends, one at a time, and replies. */
type Request = { readonly seed: number; readonly canary: CanaryName | null } | { readonly stop: true };

process.on("message", (request: Request) => {
  if ("stop" in request) {
    process.disconnect();
    return;
  }
  try {
    process.send?.({ summary: summarize(runSeed(request.seed, { canary: request.canary })) });
  } catch (error) {
    process.send?.({
      seed: request.seed,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
  }
});
