import type { NodeId } from "../../src/core/ids.ts";
import { nodeId } from "../../src/core/ids.ts";
import type { ReplicaOptions } from "../../src/core/replica/replica.ts";
import { Replica } from "../../src/core/replica/replica.ts";
import type { PageLimits } from "../../src/core/replication/page.ts";
import { unwrap } from "../../src/core/result.ts";
import { ManualClock, SeededRandom } from "../../src/sim/ports.ts";
import { SqliteStore } from "../../src/store/sqlite-store.ts";

/** A replica on an in-memory SQLite store with a manual clock and a seeded random source. */
export interface TestReplica {
  readonly replica: Replica;
  readonly clock: ManualClock;
  readonly store: SqliteStore;
  readonly name: NodeId;
}

export const epoch = 1_790_000_000_000;

export function makeReplica(
  name: string,
  seed: number,
  options: ReplicaOptions & { clock?: ManualClock } = {},
): TestReplica {
  const store = SqliteStore.open({ path: ":memory:" });
  const clock = options.clock ?? new ManualClock(epoch);
  const replica = Replica.create(store, { clock, random: new SeededRandom(seed) }, nodeId(name), options);
  return { replica, clock, store, name: nodeId(name) };
}

/** A fresh directory: `first` creates the data partition; the others start empty. */
export function makeDirectory(
  names: readonly string[],
  seed = 1,
  options: ReplicaOptions = {},
): TestReplica[] {
  const replicas = names.map((name, index) => makeReplica(name, seed * 1000 + index, options));
  const first = replicas[0];
  if (first !== undefined) unwrap(first.replica.createPartition("dc=example,dc=com"));
  return replicas;
}

/** Runs one whole pull cycle: `destination` pulls pages from `source` until the source has no more. */
export function pull(destination: Replica, source: Replica, limits: Partial<PageLimits> = {}): number {
  let pages = 0;
  for (let guard = 0; guard < 100_000; guard++) {
    const page = unwrap(source.getChanges(destination.changeRequest(source.nodeId, limits)));
    const outcome = unwrap(destination.applyChanges(page));
    pages++;
    if (outcome.cycleComplete) return pages;
  }
  throw new Error("pull did not finish");
}

/** Pulls every ordered pair until a full round changes nothing. */
export function syncAll(replicas: readonly TestReplica[], limits: Partial<PageLimits> = {}): void {
  for (let round = 0; round < 50; round++) {
    const before = replicas.map((r) => r.replica.usn).join(",");
    for (const destination of replicas) {
      for (const source of replicas) {
        if (destination !== source) pull(destination.replica, source.replica, limits);
      }
    }
    if (replicas.map((r) => r.replica.usn).join(",") === before) return;
  }
  throw new Error("syncAll did not converge in 50 rounds");
}

/** The lingering-object check a quarantined replica runs against a reference, page by page. */
export function lingeringCheck(replica: Replica, reference: Replica, pageSize = 100): number {
  let removed = 0;
  let settles: ReturnType<Replica["utd"]> | undefined;
  let after: Parameters<Replica["lingeringCandidates"]>[0] = null;
  for (let guard = 0; guard < 1_000_000; guard++) {
    const candidates = replica.lingeringCandidates(after, pageSize);
    const answer = reference.answerLingeringCheck(candidates.map((candidate) => candidate.guid));
    const applied = unwrap(replica.applyLingeringAnswer(candidates, answer));
    settles ??= applied.settles;
    removed += applied.removed;
    if (candidates.length < pageSize) break;
    after = candidates.at(-1)?.guid ?? null;
  }
  unwrap(replica.endQuarantine(reference.nodeId, settles));
  return removed;
}
