import { parentPort, workerData } from "node:worker_threads";
import { readPageFrom } from "../core/replica/replica.ts";
import { SqliteStore } from "../store/sqlite-store.ts";
import { errorText } from "./log.ts";
import { type PageWorkerReply, type PageWorkerRequest, pageMessageBytes } from "./page-builder.ts";

/**
 * The page worker (a worker thread, started by PageBuilder): it builds the pages of pulls the
 * node admitted, from its own read-only connection to the node's store, and sends back each
 * page message as the JSON bytes that go on the wire. Nothing here decides anything: the core's
 * readPageFrom builds the page, the node's thread did the admission and sends the answer.
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
      const page = readPageFrom(store, request.request);
      const body = pageMessageBytes(request.id, page, request.compact);
      reply = { kind: "built", seq: request.seq, body, more: page.more, entries: page.entries.length };
      port.postMessage(reply, [body.buffer]);
      return;
    } catch (error) {
      reply = { kind: "error", seq: request.seq, error: errorText(error) };
    }
    port.postMessage(reply);
  });
  port.postMessage({ kind: "ready" } satisfies PageWorkerReply);
}

serve(String((workerData as { path?: unknown } | null)?.path ?? ""));
