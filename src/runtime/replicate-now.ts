import type { NodeId } from "../core/ids.ts";
import type { PartnerStatus } from "../core/node/machine.ts";

/**
 * `POST /v1/replicate` (`plexus repl sync`): pull from inbound partners now, as if each had
 * just sent a notification, and wait (bounded) until each of those pulls has ended. The node
 * machine still decides: a partner in its failure back-off is not asked again before its
 * retry time (an operator's "now" must not turn into a retry storm), and a pull already under
 * way is followed by another one as soon as it ends.
 */
export const replicateTimeoutMsMax = 60_000;
export const replicateTimeoutMsDefault = 10_000;
const replicatePollMs = 10;

/** What the node hands this helper: its machine's partners and a way to nudge one. */
export interface ReplicatePort {
  partners(): readonly PartnerStatus[];
  /** Delivers a notification from `partner` to the machine (which may start a pull). */
  nudge(partner: NodeId): void;
  /** Monotonic milliseconds, the clock of PartnerStatus. */
  now(): number;
  stopped(): boolean;
  wallTimeOf(monotonicMs: number): string;
}

export type PullResult =
  | { readonly node: NodeId; readonly result: "success"; readonly at: string }
  | { readonly node: NodeId; readonly result: "failure"; readonly at: string; readonly error: string | null }
  | { readonly node: NodeId; readonly result: "timeout" }
  /** The topology changed while it was asked: no longer an inbound partner, not waited for. */
  | { readonly node: NodeId; readonly result: "no-longer-partner" }
  | {
      readonly node: NodeId;
      readonly result: "backing-off";
      readonly consecutiveFailures: number;
      readonly lastFailure: string | null;
    };

/** Pulls from `from` (or every inbound partner) and resolves with how each pull ended. */
export async function replicateNow(
  port: ReplicatePort,
  from: NodeId | null,
  timeoutMs: number,
): Promise<PullResult[]> {
  const startedAt = port.now();
  const targets = port.partners().filter((status) => from === null || status.partner === from);
  const backingOff = new Map<NodeId, PartnerStatus>();
  for (const status of targets) {
    if (status.consecutiveFailures > 0 && !status.pulling) backingOff.set(status.partner, status);
    else port.nudge(status.partner);
  }
  // A pull already under way when asked may predate the latest changes: its success does not
  // count, the one the machine starts right after it (the notification's "again") does.
  const busy = new Set(targets.filter((status) => status.pulling).map((status) => status.partner));
  const after = new Map<NodeId, number>(targets.map((status) => [status.partner, startedAt]));
  const ended = (status: PartnerStatus): PullResult | null => {
    const node = status.partner;
    const threshold = after.get(node) ?? startedAt;
    const success = status.lastSuccessAt ?? -1;
    const failure = status.lastFailureAt ?? -1;
    if (Math.max(success, failure) <= threshold) return null;
    if (busy.delete(node) && success > failure) {
      after.set(node, success);
      return null;
    }
    if (success > threshold && success >= failure)
      return { node, result: "success", at: port.wallTimeOf(success) };
    return { node, result: "failure", at: port.wallTimeOf(failure), error: status.lastFailure };
  };
  const deadline = startedAt + timeoutMs;
  const waiting = targets.filter((status) => !backingOff.has(status.partner)).map((status) => status.partner);
  const results = new Map<NodeId, PullResult>();
  while (waiting.length > results.size && port.now() < deadline && !port.stopped()) {
    await new Promise((resolve) => setTimeout(resolve, replicatePollMs));
    const now = new Map(port.partners().map((status) => [status.partner, status]));
    for (const node of waiting) {
      if (results.has(node)) continue;
      const status = now.get(node);
      // Waiting on a partner the machine has dropped would only end at the timeout, reported
      // as a pull still running.
      const result = status === undefined ? { node, result: "no-longer-partner" as const } : ended(status);
      if (result !== null) results.set(node, result);
    }
  }
  return targets.map((status): PullResult => {
    const off = backingOff.get(status.partner);
    if (off !== undefined)
      return {
        node: off.partner,
        result: "backing-off",
        consecutiveFailures: off.consecutiveFailures,
        lastFailure: off.lastFailure,
      };
    return results.get(status.partner) ?? { node: status.partner, result: "timeout" };
  });
}
