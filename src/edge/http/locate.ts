import type { FastifyInstance } from "fastify";
import type { NodeId } from "../../core/ids.ts";
import { locate } from "../../core/locator/ping.ts";
import { parseAddress } from "../../core/topology/address.ts";
import type { SiteName, TopologyConfig } from "../../core/topology/model.ts";
import { problem, sendProblem } from "./problems.ts";

/**
 * `GET /v1/locate[?address=IP]` (docs/api.md): site discovery over HTTP. The answer is the
 * core's (core/locator/ping.ts) for the address the request came from, or for `address` when
 * given — a proxy forwarding for a client, or a test placing itself in a site.
 */
export interface LocatorView {
  readonly topology: TopologyConfig;
  readonly node: NodeId;
  readonly site: SiteName;
}

/** Null while the node has no topology yet (joining). */
export type LocatorSource = () => LocatorView | null;

const addressLengthMax = 64;

/** One IP address, as the core's subnet matching reads it; anything else would place the client nowhere. */
function isAddress(given: unknown): given is string {
  if (typeof given !== "string" || given.length > addressLengthMax) return false;
  return parseAddress(given) !== null;
}

export function registerLocateRoute(app: FastifyInstance, source: LocatorSource): void {
  app.get<{ Querystring: Record<string, unknown> }>("/v1/locate", async (request, reply) => {
    // Unknown parameters are refused by the client API's query check (api.ts) before this runs.
    const given = request.query.address;
    if (given !== undefined && !isAddress(given))
      return sendProblem(reply, problem("invalid-request", "address must be one IPv4 or IPv6 address"));
    const view = source();
    if (view === null) return sendProblem(reply, problem("not-ready", "this node has no topology yet"));
    const address = given ?? request.socket.remoteAddress ?? "";
    return reply.send(locate(view.topology, address, { node: view.node, site: view.site }));
  });
}
