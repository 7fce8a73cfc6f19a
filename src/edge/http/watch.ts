import type { FastifyInstance } from "fastify";
import { type DirectoryService, header, isProblem, sendProblem } from "./api.ts";
import { type Problem, problem } from "./problems.ts";

/**
 * GET /v1/watch: changes as server-sent events from a position (docs/api.md). Each event is an
 * entry as of its latest change here, in USN order; a slow reader holds its own stream back,
 * never this node's memory; a closing node ends every stream first.
 */

/** Watch streams open at once; more get 503 (each holds a socket and a listener). */
export const watchersMax = 1_000;
/** Events read per step of a watch stream. */
const watchBatchMax = 500;
/** A comment line this often keeps proxies and clients from closing an idle stream. */
const watchKeepaliveMs = 15_000;
/** Batches one pump writes at most before it yields (a reader that keeps up, on a busy node). */
const watchBatchesPerPumpMax = 1_000_000;

type Fields = Record<string, unknown>;

const streamHeaders = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  // A stream is never followed by another request on its connection; closing it with the
  // stream lets a stopping node drain instead of waiting for a keep-alive timeout.
  connection: "close",
};

/** Digits of a position: 15 keeps every one an exact JavaScript number. */
const positionPattern = /^[0-9]{1,15}$/;

/**
 * Where a watch starts: after `Last-Event-ID` when sent, else after `?after`, else now (`usn`,
 * this node's USN). The header wins because a browser's EventSource reconnects with the URL it
 * was opened with plus the header: preferring `?after` would replay from there on every
 * reconnect. An empty header counts as absent (an EventSource sends none until it has an id).
 * Unknown parameters were refused by the client API's query check (api.ts) before this runs.
 */
function startPosition(after: unknown, lastEventId: unknown, usn: number): number | Problem {
  const header = lastEventId === "" ? undefined : lastEventId;
  for (const given of [after, header])
    if (given !== undefined && (typeof given !== "string" || !positionPattern.test(given)))
      return problem("invalid-request", "after (or Last-Event-ID) must be a USN");
  const given = header ?? after;
  if (given === undefined) return usn;
  const position = Number(given);
  // A position beyond this node's USN was never handed out here: it comes from another node
  // (positions are per node) or from before this node was restored from a backup. Waiting for
  // the USN to pass it would skip, unseen, every change until then. Equal is fine: USNs only
  // grow, so a position read from this node is never beyond what position() says afterwards.
  if (position > usn)
    return problem(
      "invalid-request",
      `${header === undefined ? "after" : "Last-Event-ID"} ${position} is beyond this node's USN, which is only ${usn}: ` +
        "positions are per node; start again from a position this node gave (or none, for from now)",
    );
  return position;
}

export function registerWatchRoute(app: FastifyInstance, service: DirectoryService): void {
  let watchers = 0;
  const streams = new Set<NodeJS.WritableStream & { end(): unknown }>();
  // Open streams would hold the server open for ever: a closing node ends them first.
  app.addHook("preClose", async () => {
    for (const stream of streams) stream.end();
  });
  app.get<{ Querystring: Fields }>("/v1/watch", async (request, reply) => {
    const lastEventId = header(request, "last-event-id");
    if (isProblem(lastEventId)) return sendProblem(reply, lastEventId);
    const start = startPosition(request.query.after, lastEventId, service.position());
    if (typeof start !== "number") return sendProblem(reply, start);
    // HEAD gets a stream's headers and no stream: Node sends no body for HEAD, so the headers of
    // a stream that never ends would never go out either, and the request would hold a slot.
    if (request.method === "HEAD") return reply.code(200).headers(streamHeaders).send();
    if (watchers >= watchersMax)
      return sendProblem(
        reply,
        problem("not-ready", `this node already serves ${watchersMax} watch streams`),
      );
    const raw = reply.raw;
    // A client gone while its session token was waited for: its response's "close" has passed,
    // so a stream opened now would never be closed, and hold a slot and a listener for ever.
    if (raw.destroyed) return reply.hijack();
    watchers++;
    let position = start;
    reply.hijack();
    raw.writeHead(200, streamHeaders);
    // Sent at once, so that the client has its headers before the first change.
    raw.write(`: watching changes after USN ${position}\n\n`);
    streams.add(raw);
    let closed = false;
    let pumping = false;
    const pump = async (): Promise<void> => {
      if (pumping || closed) return;
      pumping = true;
      try {
        for (let step = 0; step < watchBatchesPerPumpMax && !closed; step++) {
          const events = service.changesSince(position, watchBatchMax);
          for (const event of events) {
            raw.write(`id: ${event.usn}\nevent: change\ndata: ${JSON.stringify(event)}\n\n`);
            position = event.usn;
          }
          // A slow reader holds the stream back rather than this node's memory.
          if (raw.writableNeedDrain) await new Promise((resolve) => raw.once("drain", resolve));
          if (events.length < watchBatchMax) break;
        }
      } finally {
        pumping = false;
      }
    };
    const unsubscribe = service.onChange(() => void pump());
    const keepalive = setInterval(() => raw.write(": keepalive\n\n"), watchKeepaliveMs);
    raw.on("close", () => {
      closed = true;
      watchers--;
      streams.delete(raw);
      unsubscribe();
      clearInterval(keepalive);
    });
    await pump();
  });
}
