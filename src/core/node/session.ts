import type { InvocationId, NodeId, Usn } from "../ids.ts";
import { type UtdVector, utdGet } from "../replication/utd.ts";
import type { TopologyConfig } from "../topology/model.ts";

/**
 * Session tokens that can never be met. A token is a UTD vector of the writes a client has
 * seen; a node serves it once its own UTD covers it. A change counts as lost when its instance
 * is one a server of the topology has published and no server's UTD report covers it: the
 * instance's own server covers every change it issued while the instance is current, so the
 * change was issued by an instance since replaced (restored or rolled back) and went before
 * any partner pulled it. An instance no server lists (a server not heard of yet, or another
 * cluster's) may still come, and so may a change while a server does not answer: the runtime
 * then keeps the answer `session-behind`. The runtime gathers the reports; this decides.
 */

/** Every invocation a server of the topology has published, with that server's name. */
export function publishedInvocations(config: Pick<TopologyConfig, "servers"> | null): Map<string, NodeId> {
  const origins = new Map<string, NodeId>();
  for (const server of config?.servers ?? [])
    for (const invocation of server.invocations ?? []) origins.set(invocation, server.node);
  return origins;
}

/** The token's changes this node lacks whose instance some server has published: the ones a survey can judge. */
export function judgeableGaps(
  token: UtdVector,
  own: UtdVector,
  published: ReadonlyMap<string, NodeId>,
): [InvocationId, Usn][] {
  return Object.entries(token).filter(
    ([invocation, usn]) => usn > utdGet(own, invocation as InvocationId) && published.has(invocation),
  ) as [InvocationId, Usn][];
}

/**
 * Why the token can never be met, given `gaps` (judgeableGaps) and the UTD of every server of
 * the topology (this node's own included), or null when some server holds each gap.
 */
export function lostSessionReason(
  gaps: readonly (readonly [InvocationId, Usn])[],
  published: ReadonlyMap<string, NodeId>,
  reports: readonly UtdVector[],
): string | null {
  for (const [invocation, usn] of gaps) {
    const held = Math.max(...reports.map((utd) => utdGet(utd, invocation)));
    if (held >= usn) continue;
    return (
      `the session token names USN ${usn} of instance ${invocation} of server ${published.get(invocation)}, ` +
      `which no server of this cluster holds (the most any holds is USN ${held}) and none ever will: that ` +
      "instance's database was replaced (restored from an older backup, wiped and joined again, or found rolled back) before a " +
      "partner pulled those writes, so they were lost with it. Drop the token (start a new session) and " +
      "check whether those writes need making again"
    );
  }
  return null;
}
