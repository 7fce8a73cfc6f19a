import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import {
  formatWriteConcern,
  parseWriteConcern,
  type WriteConcernRequest,
} from "../../core/node/write-concern.ts";
import type { WriteRequest } from "../../core/replica/originating.ts";
import type { UtdVector } from "../../core/replication/utd.ts";
import {
  checkBody,
  checkWriteNames,
  type DirectoryService,
  header,
  isProblem,
  isRecord,
  outcomeBody,
  writeConcernHeader,
} from "./api.ts";
import { type Problem, problem, problemOf, sendProblem } from "./problems.ts";

/**
 * `POST /v1/batch` (docs/api.md): many writes in one request, one result each, in order. Each
 * operation is its own write — the batch is not atomic — but they enter the node's write queue
 * together and in order, so they share group commits (one transaction and fsync for up to the
 * queue's batch) and an operation may rely on an earlier one (a parent created before its
 * child). What `plexus import` sends.
 */
export const batchOperationsMax = 1_000;

type Fields = Record<string, unknown>;
type OperationResult = Fields & { readonly status: number };

/** One operation of a batch as a write request, or why it is not one. */
export function batchWriteRequest(operation: unknown): WriteRequest | Problem {
  if (!isRecord(operation)) return problem("invalid-request", "an operation must be a JSON object");
  const { op, dn } = operation;
  if (typeof dn !== "string") return problem("invalid-request", "dn must be a string");
  switch (op) {
    case "create":
      return createRequest(operation, dn);
    case "modify": {
      const body = checkBody(operation, ["op", "dn", "changes"]);
      if (isProblem(body)) return body;
      if (!Array.isArray(body.changes) || body.changes.length === 0)
        return problem("invalid-request", "changes must be a non-empty list");
      const wrong = body.changes.map((change) => checkBody(change, ["operation", "attribute", "values"]));
      return wrong.find(isProblem) ?? { op: "modify", dn, changes: body.changes };
    }
    case "delete": {
      const body = checkBody(operation, ["op", "dn", "subtree"]);
      if (isProblem(body)) return body;
      if (body.subtree !== undefined && typeof body.subtree !== "boolean")
        return problem("invalid-request", "subtree must be true or false");
      return { op: "delete", dn, subtree: body.subtree === true };
    }
    case "rename":
      return renameRequest(operation, dn);
    default:
      return problem("invalid-request", "op must be create, modify, delete or rename");
  }
}

function createRequest(operation: Fields, dn: string): WriteRequest | Problem {
  const body = checkBody(operation, ["op", "dn", "attributes"]);
  if (isProblem(body)) return body;
  if (!isRecord(body.attributes))
    return problem("invalid-request", "attributes must be an object of value lists");
  for (const [type, values] of Object.entries(body.attributes))
    if (!Array.isArray(values) || values.some((value) => typeof value !== "string"))
      return problem("invalid-value", `${type} must be a list of strings`);
  return { op: "add", dn, attributes: body.attributes as Record<string, string[]> };
}

function renameRequest(operation: Fields, dn: string): WriteRequest | Problem {
  const body = checkBody(operation, ["op", "dn", "newRdn", "newParent", "deleteOldRdn"]);
  if (isProblem(body)) return body;
  const { newRdn, newParent, deleteOldRdn } = body;
  if (typeof newRdn !== "string") return problem("invalid-request", "newRdn must be a string");
  if (newParent !== undefined && typeof newParent !== "string")
    return problem("invalid-request", "newParent must be a DN string");
  if (deleteOldRdn !== undefined && typeof deleteOldRdn !== "boolean")
    return problem("invalid-request", "deleteOldRdn must be true or false");
  return {
    op: "modifyDn",
    dn,
    newRdn,
    ...(newParent === undefined ? {} : { newParent }),
    ...(deleteOldRdn === undefined ? {} : { deleteOldRdn }),
  };
}

/** One write of the batch: its result, and what it adds to the session token. */
async function applyOne(
  service: DirectoryService,
  request: WriteRequest,
  concern: WriteConcernRequest,
): Promise<{ result: OperationResult; token: UtdVector }> {
  const named = checkWriteNames(request);
  if (named !== undefined) return { result: named, token: {} };
  const written = await service.write(request, concern);
  if (!written.ok) return { result: problemOf(written.error), token: {} };
  const { outcome, invocation } = written.value;
  const reached = {
    requested: formatWriteConcern(concern.concern),
    met: written.value.concern.met,
    nodes: written.value.concern.nodes,
    sites: written.value.concern.sites,
  };
  const token = { [invocation]: outcome.usn };
  if (reached.met)
    return {
      result: { status: request.op === "add" ? 201 : 200, ...outcomeBody(outcome), writeConcern: reached },
      token,
    };
  const missed = problem(
    "write-concern-not-met",
    `the write is applied on this node and keeps replicating, but did not reach ${reached.requested} within ${concern.timeoutMs} ms`,
    { outcome: outcomeBody(outcome), writeConcern: reached },
  );
  return { result: missed, token };
}

/**
 * Registers the route. `addToSession` grows the request's session token by what a write
 * applied, as the single-write routes do.
 */
export function registerBatchRoute(
  app: FastifyInstance,
  service: DirectoryService,
  addToSession: (request: FastifyRequest, token: UtdVector) => void,
): void {
  app.post("/v1/batch", async (request, reply): Promise<FastifyReply> => {
    const body = checkBody(request.body, ["operations"]);
    if (isProblem(body)) return sendProblem(reply, body);
    const { operations } = body;
    if (!Array.isArray(operations) || operations.length === 0 || operations.length > batchOperationsMax)
      return sendProblem(
        reply,
        problem("invalid-request", `operations must be a list of 1..${batchOperationsMax} operations`),
      );
    const concernHeader = header(request, writeConcernHeader);
    if (isProblem(concernHeader)) return sendProblem(reply, concernHeader);
    const concern = parseWriteConcern(concernHeader);
    if (!concern.ok) return sendProblem(reply, problemOf(concern.error));
    // As for a single write: a concern the servers could never meet refuses the whole request.
    const attainable = service.concernAttainable(concern.value);
    if (!attainable.ok) return sendProblem(reply, problemOf(attainable.error));
    // Every write is queued before any is awaited: in order, into the same group commits.
    const pending = operations.map((operation) => {
      const write = batchWriteRequest(operation);
      return isProblem(write)
        ? Promise.resolve({ result: write as OperationResult, token: {} })
        : applyOne(service, write, concern.value);
    });
    const results = await Promise.all(pending);
    for (const { token } of results) addToSession(request, token);
    return reply.code(200).send({ results: results.map(({ result }) => result) });
  });
}
