// A stand-in page worker for src/runtime/page-builder.test.ts: it says it is ready (unless its
// store path is "never-ready") and then answers nothing, like a worker stuck in a read that
// does not end. The page builder must give up on it after its timeouts.
import { parentPort, workerData } from "node:worker_threads";

if (workerData?.path !== "never-ready") parentPort?.postMessage({ kind: "ready" });
parentPort?.on("message", () => {});
