import { parentPort, workerData } from "node:worker_threads";
import { readPageFrom } from "../core/replica/replica.ts";
import { SqliteStore } from "../store/sqlite-store.ts";
import { errorText } from "./log.ts";
import { builtPage, type PageWorkerReply, type PageWorkerRequest } from "./page-builder.ts";

/**
 * The page worker (a worker thread, started by PageBuilder): it builds the pages of pulls the
 * node admitted, from its own read-only connection to the node's store, and sends back each
 * page message as the bytes that go on the wire (JSON, gzipped for a puller that reads gzip).
 * Nothing here decides anything: the core's readPageFrom builds the page, the node's thread
 * did the admission and sends the answer.
 */
function serve(path: string): void {
  const port = parentPort;
  if (port === null) throw new Error("page-worker.ts runs as a worker thread");
  let store: SqliteStore;
  try {
    store = SqliteStore.openReader(path);
  } catch (error) {
    port.postMessage({ kind: "failed", error: errorText(error) } satisfies PageWorkerReply);
    return;
  }
  port.on("message", (request: PageWorkerRequest) => {
    let reply: PageWorkerReply;
    try {
      const built = builtPage(request.id, readPageFrom(store, request.request), request.reads);
      reply = { kind: "built", seq: request.seq, built };
      port.postMessage(reply, built.kind === "page" ? [built.body.buffer] : []);
      return;
    } catch (error) {
      reply = { kind: "error", seq: request.seq, error: errorText(error) };
    }
    port.postMessage(reply);
  });
  port.postMessage({ kind: "ready" } satisfies PageWorkerReply);
}

serve(String((workerData as { path?: unknown } | null)?.path ?? ""));
