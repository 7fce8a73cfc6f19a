import type { FastifyInstance } from "fastify";
import { isNodeId, type NodeId } from "../../core/ids.ts";
import type { PullResult } from "../../runtime/replicate-now.ts";
import { replicateTimeoutMsDefault, replicateTimeoutMsMax } from "../../runtime/replicate-now.ts";
import { type Problem, problem } from "./problems.ts";

/**
 * `POST /v1/replicate` (docs/api.md): replicate now from this node's inbound partners. The
 * edge checks the body; the node decides which pulls start and reports how each ended.
 */
export interface ReplicateService {
  /** The node's inbound partners now. */
  inboundPartners(): readonly NodeId[];
  replicate(from: NodeId | null, timeoutMs: number): Promise<PullResult[]>;
}

type Fields = Record<string, unknown>;

function isRecord(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The body's `from` and `timeoutMs`, or the problem with it. An absent body is `{}`. */
export function checkReplicateBody(
  body: unknown,
  partners: readonly NodeId[],
): { from: NodeId | null; timeoutMs: number } | Problem {
  const fields = body === undefined || body === null ? {} : body;
  if (!isRecord(fields)) return problem("invalid-request", "the body must be a JSON object");
  const unknown = Object.keys(fields).find((key) => key !== "from" && key !== "timeoutMs");
  if (unknown !== undefined)
    return problem("invalid-request", `unknown field '${unknown}' (allowed: from, timeoutMs)`);
  const timeoutMs = fields.timeoutMs ?? replicateTimeoutMsDefault;
  if (
    !Number.isSafeInteger(timeoutMs) ||
    (timeoutMs as number) < 1 ||
    (timeoutMs as number) > replicateTimeoutMsMax
  )
    return problem("invalid-request", `timeoutMs must be an integer 1..${replicateTimeoutMsMax}`);
  if (fields.from === undefined) return { from: null, timeoutMs: timeoutMs as number };
  if (!isNodeId(fields.from)) return problem("invalid-request", "from must be a node name");
  if (!partners.includes(fields.from))
    return problem(
      "invalid-request",
      `${fields.from} is not an inbound partner of this node (partners: ${partners.join(", ") || "none"})`,
    );
  return { from: fields.from, timeoutMs: timeoutMs as number };
}

export function registerReplicateRoute(app: FastifyInstance, service: ReplicateService): void {
  app.post("/v1/replicate", async (request, reply) => {
    const checked = checkReplicateBody(request.body, service.inboundPartners());
    if ("code" in checked)
      return reply.code(checked.status).header("content-type", "application/problem+json").send(checked);
    const pulls = await service.replicate(checked.from, checked.timeoutMs);
    return reply.send({ pulls });
  });
}
