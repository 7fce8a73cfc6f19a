/**
 * The client's choices, without I/O (docs/client.md): the RFC 2782 order of SRV records, the
 * failover plan over tiers (own site, next-closest sites, generic records), the back-off
 * bookkeeping of failed servers given the time, and the merging of session tokens. The shell
 * (client.ts) resolves, connects and asks these functions what to do next.
 */

export interface SrvTarget {
  /** A host name or an IP address literal. */
  readonly target: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
}

/** Where a candidate server came from, in failover order. */
export type Tier =
  | { readonly kind: "site"; readonly site: string }
  | { readonly kind: "closest"; readonly site: string; readonly cost: number }
  | { readonly kind: "generic" }
  | { readonly kind: "urls" };

export interface Candidate {
  /** `host:port` as resolved (`[v6]:port` for IPv6): what back-off is kept by. */
  readonly key: string;
  readonly url: string;
  readonly tier: Tier;
}

/** A random number in [0, 1): the shell passes Math.random, tests a seeded source. */
export type RandomSource = () => number;

/**
 * RFC 2782 order: ascending priority; within a priority, repeated weighted random choice
 * (zero-weight records first in the running sum, so they are picked only rarely, as the RFC
 * says). A target of "." means "no service here" and is dropped.
 */
export function rfc2782Order<T extends SrvTarget>(records: readonly T[], random: RandomSource): T[] {
  const usable = records.filter((record) => record.target !== "." && record.target !== "");
  const priorities = [...new Set(usable.map((record) => record.priority))].sort((a, b) => a - b);
  const ordered: T[] = [];
  for (const priority of priorities) {
    const left = usable.filter((record) => record.priority === priority);
    // Zero weights at the beginning; otherwise the order as given (stable).
    left.sort((a, b) => Number(a.weight !== 0) - Number(b.weight !== 0));
    while (left.length > 0) {
      const total = left.reduce((sum, record) => sum + record.weight, 0);
      const pick = Math.min(total, Math.floor(random() * (total + 1)));
      let running = 0;
      let chosen = left.length - 1;
      for (const [index, record] of left.entries()) {
        running += record.weight;
        if (running >= pick) {
          chosen = index;
          break;
        }
      }
      ordered.push(...left.splice(chosen, 1));
    }
  }
  return ordered;
}

export interface BackoffPolicy {
  /** How long a server that failed once is skipped. */
  readonly baseMs: number;
  /** The ceiling: each further consecutive failure doubles the period up to this. */
  readonly maxMs: number;
}

/** A server that failed is skipped for 1 s, then 2 s, 4 s … up to 30 s while it keeps failing. */
export const backoffDefault: BackoffPolicy = { baseMs: 1_000, maxMs: 30_000 };

export interface Failure {
  readonly failures: number;
  readonly until: number;
  readonly reason: string;
}

/** Which servers failed, until when they are skipped, and why; times in ms from the caller's clock. */
export class FailureBook {
  private readonly failed = new Map<string, Failure>();

  constructor(readonly policy: BackoffPolicy = backoffDefault) {}

  /** Records a failure at `now`; the period doubles with each consecutive failure. */
  fail(key: string, now: number, reason: string): Failure {
    const failures = (this.failed.get(key)?.failures ?? 0) + 1;
    const period = Math.min(this.policy.maxMs, this.policy.baseMs * 2 ** Math.min(failures - 1, 30));
    const failure = { failures, until: now + period, reason };
    this.failed.set(key, failure);
    return failure;
  }

  /** A success forgets the server's failures. */
  succeed(key: string): void {
    this.failed.delete(key);
  }

  backedOff(key: string, now: number): Failure | undefined {
    const failure = this.failed.get(key);
    return failure !== undefined && failure.until > now ? failure : undefined;
  }

  get(key: string): Failure | undefined {
    return this.failed.get(key);
  }
}

/**
 * The order to try servers in at `now`: tiers in the order given (own site, closest sites by
 * cost, generic), each server once (its first tier wins), servers in back-off left out — and
 * appended at the end, soonest-retry first, so that a request still has somewhere to go when
 * every server failed recently. A server's back-off running out puts it back in its tier's
 * place: that is how a client returns to its own site when a server there recovers.
 */
export function plan(tiers: readonly (readonly Candidate[])[], book: FailureBook, now: number): Candidate[] {
  const seen = new Set<string>();
  const ready: Candidate[] = [];
  const waiting: { candidate: Candidate; until: number }[] = [];
  for (const tier of tiers) {
    for (const candidate of tier) {
      if (seen.has(candidate.key)) continue;
      seen.add(candidate.key);
      const failure = book.backedOff(candidate.key, now);
      if (failure === undefined) ready.push(candidate);
      else waiting.push({ candidate, until: failure.until });
    }
  }
  waiting.sort((a, b) => a.until - b.until);
  return [...ready, ...waiting.map((entry) => entry.candidate)];
}

/** The address part of a URL or key: brackets around an IPv6 literal. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Session tokens (docs/api.md): base64url JSON of a vector {invocation: USN}. Answers to
 * requests in flight at once can come back in any order, so the client keeps the per-invocation
 * maximum of every token it was handed rather than the last one. A token it cannot read (a
 * newer format) replaces the old one as is.
 */
export function mergeSession(held: string | null, received: string | null): string | null {
  if (received === null || received === "") return held;
  if (held === null || held === "") return received;
  const a = decodeVector(held);
  const b = decodeVector(received);
  if (a === null || b === null) return received;
  const merged: Record<string, number> = { ...a };
  for (const [invocation, usn] of Object.entries(b))
    merged[invocation] = Math.max(merged[invocation] ?? 0, usn);
  const sorted = Object.fromEntries(Object.entries(merged).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
  return Buffer.from(JSON.stringify(sorted), "utf8").toString("base64url");
}

function decodeVector(token: string): Record<string, number> | null {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return null;
    const entries = Object.entries(parsed);
    if (entries.some(([, usn]) => !Number.isSafeInteger(usn) || (usn as number) < 0)) return null;
    return parsed as Record<string, number>;
  } catch {
    return null;
  }
}

/** The failover tiers' SRV names for a zone (docs/client.md). */
export function siteSrvName(zone: string, site: string): string {
  return `_plexus._tcp.${site.toLowerCase()}._sites.${zone}`;
}

export function genericSrvName(zone: string): string {
  return `_plexus._tcp.${zone}`;
}
