import type { FastifyInstance } from "fastify";
import { type DirectoryService, header, isProblem } from "./api.ts";
import { type Problem, problem, sendProblem } from "./problems.ts";

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
 * A position as the stream's event ids give it: the invocation id of this node's database
 * instance, a colon, the USN. USNs alone are not enough across a restore: the restored copy
 * hands out again, for other changes, the USNs its old instance gave after the backup.
 */
const taggedPositionPattern = /^([0-9a-f]{32}):([0-9]{1,15})$/;

/** What a watch needs of the node to place a position: its USN now and its instances. */
type Positions = Pick<DirectoryService, "position" | "invocation" | "formerInvocation">;

/** A stream's event id (and the position to resume from): `INVOCATION:USN`. */
export function eventId(invocation: string, usn: number): string {
  return `${invocation}:${usn}`;
}

/**
 * Where a watch starts: after `Last-Event-ID` when sent, else after `?after`, else now (`usn`,
 * this node's USN). The header wins because a browser's EventSource reconnects with the URL it
 * was opened with plus the header: preferring `?after` would replay from there on every
 * reconnect. An empty header counts as absent (an EventSource sends none until it has an id).
 * Unknown parameters were refused by the client API's query check (api.ts) before this runs.
 */
export function startPosition(after: unknown, lastEventId: unknown, node: Positions): number | Problem {
  const header = lastEventId === "" ? undefined : lastEventId;
  const name = header === undefined ? "after" : "Last-Event-ID";
  for (const given of [after, header])
    if (
      given !== undefined &&
      (typeof given !== "string" || !(positionPattern.test(given) || taggedPositionPattern.test(given)))
    )
      return problem(
        "invalid-request",
        "after (or Last-Event-ID) must be a USN, or an event id (INVOCATION:USN)",
      );
  const given = (header ?? after) as string | undefined;
  const usn = node.position();
  if (given === undefined) return usn;
  const tagged = taggedPositionPattern.exec(given);
  const instance = tagged?.[1];
  if (instance !== undefined && instance !== node.invocation())
    return foreignInstance(name, given, instance, node);
  const position = Number(tagged?.[2] ?? given);
  // A position beyond this node's USN was never handed out here: it comes from another node
  // (positions are per node) or from before this node was restored from a backup. Waiting for
  // the USN to pass it would skip, unseen, every change until then. Equal is fine: USNs only
  // grow, so a position read from this node is never beyond what position() says afterwards.
  if (position > usn)
    return problem(
      "invalid-request",
      `${name} ${position} is beyond this node's USN, which is only ${usn}: ` +
        "positions are per node; start again from a position this node gave (or none, for from now)",
    );
  return position;
}

/**
 * A position of another database instance than this node runs now. One of its own former
 * instances (it was restored from a backup, or found it runs on an older copy) has USNs that
 * the current one hands out again for other changes: resuming there could skip changes
 * unseen, so the position is gone. Any other instance is another node's: positions are per node.
 */
function foreignInstance(name: string, given: string, instance: string, node: Positions): Problem {
  const fresh = "start again from 0 (everything) or with no position (from now)";
  if (node.formerInvocation(instance))
    return problem(
      "position-gone",
      `${name} ${given} is a position of instance ${instance} of this node's database, which it no longer ` +
        `runs (now ${node.invocation()}: restored from a backup, or found to be an older copy); its USNs after ` +
        `the copy was made were given again to other changes, so no stream can resume there: ${fresh}`,
    );
  return problem(
    "invalid-request",
    `${name} ${given} is a position of instance ${instance}, which is not this node's (${node.invocation()}): ` +
      `positions are per node; ${fresh}`,
  );
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
    const start = startPosition(request.query.after, lastEventId, service);
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
    // A change told of while the pump runs (it may be waiting for the reader to drain, past its
    // last read): the pump reads again before it stops, else that change would wait, unsent,
    // for the next one.
    let told = false;
    const pump = async (): Promise<void> => {
      told = true;
      if (pumping || closed) return;
      pumping = true;
      try {
        for (let step = 0; step < watchBatchesPerPumpMax && !closed && told; step++) {
          told = false;
          const events = service.changesSince(position, watchBatchMax);
          for (const event of events) {
            const id = eventId(service.invocation(), event.usn);
            raw.write(`id: ${id}\nevent: change\ndata: ${JSON.stringify(event)}\n\n`);
            position = event.usn;
          }
          // A slow reader holds the stream back rather than this node's memory.
          if (raw.writableNeedDrain) await new Promise((resolve) => raw.once("drain", resolve));
          if (events.length === watchBatchMax) told = true;
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
