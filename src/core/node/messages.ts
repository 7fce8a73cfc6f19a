import { type Guid, isGuid, isNodeId, type NodeId } from "../ids.ts";
import type { ChangePage, ChangeRequest } from "../replication/page.ts";
import { type ErrorCode, fail, ok, type Result } from "../result.ts";

/**
 * Messages between nodes. Every transport (the simulator's network, HTTP in the runtime)
 * carries exactly these; a node validates each one it receives before acting on it.
 */
export type PeerMessage =
  /** Destination → source: the next page after my watermark, please. `notify`: the link
   * wants notifications, so tell me of your next changes even if your plan does not name me.
   * `hears`: the other partners this destination pulls from over healthy links; for the
   * relay pull delay the source may hold back notifying it of changes that came only from
   * those (it would put off the pull anyway: NodeMachine.hearsDirectly, NodeMachine.holdBack). */
  | {
      readonly kind: "pull";
      readonly id: number;
      readonly request: ChangeRequest;
      readonly notify?: boolean;
      readonly hears?: readonly NodeId[];
    }
  /** Source → destination: the answer to pull `id`. */
  | { readonly kind: "page"; readonly id: number; readonly page: ChangePage }
  /** Source → destination: pull `id` was refused (quarantined, invalid request …). */
  | { readonly kind: "refused"; readonly id: number; readonly code: ErrorCode; readonly message: string }
  /** Source → its partners: I have changes you may want; pull soon. `via`: every change
   * announced came in pages from these nodes (a destination that pulls from them too hears of
   * the changes from them directly, and need not hurry to fetch them a second time here). */
  | { readonly kind: "notify"; readonly via?: readonly NodeId[] }
  /** Quarantined replica → healthy partner: which of these entries do you not hold? */
  | { readonly kind: "lingering-check"; readonly id: number; readonly guids: readonly Guid[] }
  /** Partner → quarantined replica: these are absent here, these are tombstones, this is my UTD. */
  | { readonly kind: "lingering-answer"; readonly id: number; readonly answer: unknown };

export type PeerMessageKind = PeerMessage["kind"];

/** Nodes a notification may name as having brought its changes (a node's partners are fewer). */
export const notifyViaMax = 1000;

/** Entries asked about in one lingering-object check message. */
export const lingeringCheckBatchMax = 1000;

/**
 * A page moves the watermark of the source it names, and a pull has its UTD and purge horizon
 * recorded as its destination's: only the node itself may send either. Why a page from `from`
 * names another source, or null.
 */
export function pageSourceProblem(from: NodeId, page: unknown): string | null {
  const source = isRecord(page) ? page.source : undefined;
  return source === from ? null : `a page from ${from} names ${String(source).slice(0, 64)} as its source`;
}

/** Why a pull from `from` asks for changes in another node's name (pageSourceProblem), or null. */
export function pullDestinationProblem(from: NodeId, request: unknown): string | null {
  const destination = isRecord(request) ? request.destination : undefined;
  return destination === from
    ? null
    : `a pull from ${from} names ${String(destination).slice(0, 64)} as its destination`;
}

/** A JSON object (not null, not a list): what a message and its parts must be. */
function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isMessageId(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isNodeIdList(value: unknown): value is NodeId[] {
  return Array.isArray(value) && value.length > 0 && value.length <= notifyViaMax && value.every(isNodeId);
}

function isGuidList(value: unknown): value is Guid[] {
  return Array.isArray(value) && value.length <= lingeringCheckBatchMax && value.every(isGuid);
}

/**
 * Checks a message's envelope. The bodies of pulls and pages are checked by the replica that
 * handles them (getChanges and applyChanges take untrusted input); the UTD of a lingering
 * answer is checked when it is used.
 */
export function checkPeerMessage(value: unknown): Result<PeerMessage> {
  if (!isRecord(value)) return fail("invalid-request", "a peer message must be an object");
  const { kind, id } = value;
  switch (kind) {
    case "notify":
      if (value.via === undefined) return ok({ kind });
      return isNodeIdList(value.via)
        ? ok({ kind, via: value.via })
        : fail("invalid-request", `a notify's via must be a list of 1 to ${notifyViaMax} node ids`);
    case "pull":
      if (!isMessageId(id)) return badId(kind);
      if (value.notify !== undefined && typeof value.notify !== "boolean")
        return fail("invalid-request", "a pull's notify must be true or false");
      if (value.hears !== undefined && !isNodeIdList(value.hears))
        return fail("invalid-request", `a pull's hears must be a list of 1 to ${notifyViaMax} node ids`);
      return ok({
        kind,
        id,
        request: value.request as ChangeRequest,
        ...(value.notify === true ? { notify: true } : {}),
        ...(value.hears === undefined ? {} : { hears: value.hears }),
      });
    case "page":
      return isMessageId(id) ? ok({ kind, id, page: value.page as ChangePage }) : badId(kind);
    case "refused":
      if (!isMessageId(id) || typeof value.code !== "string" || typeof value.message !== "string")
        return badId(kind);
      return ok({ kind, id, code: value.code as ErrorCode, message: value.message.slice(0, 1000) });
    case "lingering-check":
      if (!isMessageId(id) || !isGuidList(value.guids))
        return fail("invalid-request", "bad lingering-check message");
      return ok({ kind, id, guids: value.guids });
    case "lingering-answer":
      // The answer is checked by the replica that applies it.
      return isMessageId(id) ? ok({ kind, id, answer: value.answer }) : badId(kind);
    default:
      return fail("invalid-request", `unknown peer message kind '${String(kind)}'`);
  }
}

function badId(kind: string): Result<never> {
  return fail("invalid-request", `a ${kind} message needs a numeric id`);
}
