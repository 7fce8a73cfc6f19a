import { topologyContainers } from "../core/topology/entries.ts";
import { type Environment, nodeUrl, UsageError } from "./cli-support.ts";
import {
  checkBaseUrl,
  failureReason,
  httpFetch,
  type NodeApi,
  ProblemError,
  sessionHeaderName,
  UnreachableError,
  writeConcernHeaderName,
} from "./remote.ts";

/**
 * The two requests LDIF import and export make that the entry commands' client
 * (src/cli/remote.ts) does not: a write batch, and one search page at a time (an export
 * streams, it never holds the subtree). Failures are remote.ts's exceptions, so that the
 * commands end the same way.
 */

export interface WriteOptions {
  readonly session?: string | undefined;
  readonly writeConcern?: string | undefined;
  readonly timeoutMs?: number | undefined;
}

/** A batch's request timeout: its writes wait for their concern, and a full batch is slow on a busy node. */
export const batchRequestTimeoutMs = 120_000;
export const searchPageRequestTimeoutMs = 60_000;

export interface BatchOperationResult {
  readonly status: number;
  readonly code?: string;
  readonly detail?: string;
}

export interface SearchPage {
  readonly entries: Array<{ dn: string; attributes: Record<string, string[]> }>;
  readonly truncated: boolean;
  readonly nextCursor: string | null;
}

/** The node's base URL from --url or PLEXUS_URL, checked; a bad one is a usage error. */
export function baseUrlOf(flag: string | undefined, env: Environment): string {
  try {
    return checkBaseUrl(nodeUrl(flag, env));
  } catch (error) {
    throw error instanceof UsageError ? error : new UsageError((error as Error).message);
  }
}

function headersOf(options: WriteOptions): Record<string, string> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (options.session !== undefined) headers[sessionHeaderName] = options.session;
  if (options.writeConcern !== undefined || options.timeoutMs !== undefined)
    headers[writeConcernHeaderName] =
      `${options.writeConcern ?? "local"}${options.timeoutMs === undefined ? "" : `; timeout=${options.timeoutMs}`}`;
  return headers;
}

/** POSTs JSON to the node; resolves with the answer's body and session token, throws on a problem. */
async function postJson<T>(
  baseUrl: string,
  path: string,
  body: unknown,
  options: WriteOptions,
  timeoutMs: number,
): Promise<{ body: T; session: string | null }> {
  let response: Response;
  let parsed: unknown;
  try {
    response = await httpFetch(`${baseUrl}${path}`, {
      method: "POST",
      headers: headersOf(options),
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    parsed = await response.json();
  } catch (error) {
    throw new UnreachableError(baseUrl, failureReason(error));
  }
  const session = response.headers.get(sessionHeaderName);
  if (!response.ok) {
    const problem = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>;
    const code = typeof problem.code === "string" ? problem.code : `http-${response.status}`;
    const detail = typeof problem.detail === "string" ? problem.detail : `HTTP ${response.status}`;
    throw new ProblemError(code, detail, response.status, problem, session);
  }
  return { body: parsed as T, session };
}

export async function postBatch(
  baseUrl: string,
  operations: readonly unknown[],
  options: WriteOptions,
): Promise<{ results: BatchOperationResult[]; session: string | null }> {
  const answer = await postJson<{ results: BatchOperationResult[] }>(
    baseUrl,
    "/v1/batch",
    { operations },
    options,
    batchRequestTimeoutMs,
  );
  if (!Array.isArray(answer.body?.results) || answer.body.results.length !== operations.length)
    throw new UnreachableError(baseUrl, "answered a batch without one result per operation");
  return { results: answer.body.results, session: answer.session };
}

export async function searchPage(
  baseUrl: string,
  request: Record<string, unknown>,
  session: string | undefined,
): Promise<{ page: SearchPage; session: string | null }> {
  const answer = await postJson<SearchPage>(
    baseUrl,
    "/v1/search",
    request,
    { session },
    searchPageRequestTimeoutMs,
  );
  return { page: answer.body, session: answer.session };
}

/**
 * The entry whose GUID names a cluster: the founding node creates the topology's sites
 * container with a random GUID, and every node that joins replicates it, so all nodes of one
 * cluster answer the same GUID and another cluster a different one. (A partition root will not
 * do: its GUID is derived from the partition's name, the same in every cluster.)
 */
const clusterMarkerDn = topologyContainers.sites;

/**
 * Which directory the node at `api` serves, for an import checkpoint: `cluster GUID`, the same
 * on every node of the cluster, or `url URL` when the node has no sites container to read.
 * Throws remote.ts's exceptions when the node does not answer or refuses otherwise.
 */
export async function directoryTargetOf(api: NodeApi): Promise<string> {
  try {
    const answer = await api.get(clusterMarkerDn, ["1.1"], {});
    return `cluster ${answer.body.guid}`;
  } catch (error) {
    if (error instanceof ProblemError && error.code === "no-such-entry") return `url ${api.url}`;
    throw error;
  }
}
