import { assert } from "../assert.ts";
import { type Canaries, noCanaries } from "../canaries.ts";
import { makeSchema, type Schema } from "../directory/schema.ts";
import type { Guid, InvocationId, Millis, NodeId, Usn } from "../ids.ts";
import type { Clock, Random } from "../ports.ts";
import {
  type ChangePage,
  type ChangeRequest,
  type PageLimits,
  pageBytesMaxDefault,
  pageEntriesMaxDefault,
} from "../replication/page.ts";
import { type UtdVector, utdGet, utdMerge, utdWith } from "../replication/utd.ts";
import {
  utdEntriesMax,
  validateChangeRequest,
  validateLingeringAnswer,
  validatePage,
  validateUtd,
} from "../replication/validate.ts";
import { fail, ok, type Result } from "../result.ts";
import type { ReplicaEvent, ReplicaMeta, Store, StoreCounts } from "../store.ts";
import { ReplicaContext, type ReplicaSettings, tombstoneLifetimeMsDefault } from "./context.ts";
import { type ApplyOutcome, applyPage, filteredWatermark } from "./inbound.ts";
import { entryDn } from "./lookup.ts";
import { createPartition, originate, type WriteOutcome, type WriteRequest } from "./originating.ts";
import { buildPage, currentUtd } from "./outbound.ts";
import {
  type ConflictView,
  type EntryView,
  getEntry,
  listConflicts,
  type SearchRequest,
  type SearchResult,
  search,
} from "./read.ts";
import { checkAttributeList, checkSearchRequest, checkWriteRequest } from "./requests.ts";
import {
  answerLingeringCheck,
  applyLingeringAnswer,
  checkPurgeHorizon,
  endQuarantine,
  isQuarantined,
  type LingeringAnswer,
  type LingeringCandidate,
  lingeringCandidates,
  type PurgeOutcome,
  purgeTombstones,
} from "./tombstones.ts";

export interface ReplicaPorts {
  readonly clock: Clock;
  readonly random: Random;
}

export interface ReplicaOptions {
  readonly schema?: Schema;
  readonly settings?: Partial<ReplicaSettings>;
  /** Planted bugs, for the simulator only. */
  readonly canaries?: Canaries;
}

export interface OpenOptions extends ReplicaOptions {
  /**
   * The database may be an older copy of itself (restored from a backup, or a file that does
   * not match the data directory's instance marker). The replica then takes a new invocation id
   * before it does anything, so that no USN it hands out can collide with one already sent.
   */
  readonly restored?: boolean;
}

/** Writes in one batch (one transaction), e.g. one group commit. */
export const writeBatchMax = 10_000;

/**
 * After taking a new invocation id on a partner's claim (detectRollback), how long a claim on
 * that new id is refused rather than obeyed. A true one needs the database to go back again, to
 * a copy made after the first claim, within this time: a second disaster of the same node in
 * the hour. A false one (a broken or hostile partner) then retires one id an hour at most,
 * instead of one per message.
 */
export const rollbackClaimSpacingMs = 60 * 60 * 1000;

/**
 * One replica of the directory over one Store: the deterministic heart of a Plexus node.
 * Synchronous; no I/O of its own. Every public method that changes state runs in exactly one
 * store transaction, so a crash leaves either all of its effects or none.
 */
export class Replica {
  /** changesIn's counts: by partition, and those of no one partition. */
  private readonly partitionChanges = new Map<string, number>();
  private unplacedChanges = 0;

  private constructor(private readonly ctx: ReplicaContext) {}

  /** Initialises an empty store as a new replica with a fresh invocation id. */
  static create(store: Store, ports: ReplicaPorts, nodeId: NodeId, options: ReplicaOptions = {}): Replica {
    if (store.readMeta() !== undefined)
      throw new Error(`the store already holds replica ${store.readMeta()?.nodeId}`);
    const now = ports.clock.now();
    const ctx = makeContext(store, ports, options, {
      nodeId,
      invocation: "" as InvocationId,
      usn: 0 as Usn,
      createdAt: now,
      lastInboundSuccess: now,
    });
    ctx.transact(() => {
      ctx.updateMeta({ invocation: ctx.newInvocationId() });
      ctx.event("created", `replica ${nodeId} created with invocation ${ctx.meta.invocation}`);
    });
    return new Replica(ctx);
  }

  /** Opens a store that already holds a replica. */
  static open(store: Store, ports: ReplicaPorts, options: OpenOptions = {}): Replica {
    const meta = store.readMeta();
    if (meta === undefined) throw new Error("the store holds no replica; create one first");
    const replica = new Replica(makeContext(store, ports, options, meta));
    if (options.restored === true) replica.takeNewInvocationId("opened from a restored copy");
    return replica;
  }

  get nodeId(): NodeId {
    return this.ctx.meta.nodeId;
  }

  get invocationId(): InvocationId {
    return this.ctx.meta.invocation;
  }

  get usn(): Usn {
    return this.ctx.meta.usn;
  }

  get meta(): ReplicaMeta {
    return this.ctx.meta;
  }

  /**
   * Entry changes committed here in `partition` (normalised DN) since this replica was opened,
   * plus those whose partition is not told (a lingering-object check's removals): a reader of
   * one partition (the DNS locator compiles its zones from the dns partition) reads it again
   * when this moved, not at every change of the directory as `usn` would have it.
   */
  changesIn(partition: string): number {
    return (this.partitionChanges.get(partition) ?? 0) + this.unplacedChanges;
  }

  private countChange(partition: string): void {
    this.partitionChanges.set(partition, (this.partitionChanges.get(partition) ?? 0) + 1);
  }

  /**
   * The USN of the newest change made here (not applied from elsewhere) under the current
   * invocation id, 0 before the first: applied changes take USNs too, so `usn` runs ahead of it,
   * and a partner that lacks none of this replica's own changes has at least this in its UTD.
   */
  get originatedUsn(): Usn {
    return (this.ctx.store.heldStamps()[this.ctx.meta.invocation] ?? 0) as Usn;
  }

  /** This replica's UTD including its own invocation at its current USN. */
  utd(): UtdVector {
    return currentUtd(this.ctx);
  }

  // -------------------------------------------------------------------------------------------
  // client operations

  /** Runs a batch of writes in one transaction; each succeeds or fails on its own. */
  write(requests: readonly WriteRequest[]): Result<WriteOutcome>[] {
    if (requests.length > writeBatchMax) {
      return requests.map(() => fail("limit-exceeded", `a batch holds at most ${writeBatchMax} writes`));
    }
    // A quarantined replica may hold entries deleted elsewhere; a write acknowledged on one would
    // be discarded when the lingering-object check removes it. So it takes no writes until then.
    if (isQuarantined(this.ctx)) {
      return requests.map(() =>
        fail(
          "quarantined",
          "this replica may hold entries deleted elsewhere and takes no writes until a lingering-object check has run; write to another server",
        ),
      );
    }
    const results = this.ctx.transact(() =>
      requests.map((request) => {
        const checked = checkWriteRequest(request);
        return checked.ok ? originate(this.ctx, checked.value) : checked;
      }),
    );
    for (const result of results)
      if (result.ok && result.value.entries > 0) this.countChange(result.value.partition);
    return results;
  }

  writeOne(request: WriteRequest): Result<WriteOutcome> {
    const [result] = this.write([request]);
    return result ?? fail("invalid-request", "no write");
  }

  createPartition(dn: string): Result<{ partition: string; usn: Usn }> {
    const created = this.ctx.transact(() => createPartition(this.ctx, dn));
    if (created.ok) this.countChange(created.value.partition);
    return created;
  }

  get(dn: string, attributes?: readonly string[]): Result<EntryView> {
    if (typeof dn !== "string") return fail("invalid-request", "dn must be a string");
    const checked = checkAttributeList(attributes);
    if (!checked.ok) return checked;
    return getEntry(this.ctx.store, dn, checked.value);
  }

  search(request: SearchRequest): Result<SearchResult> {
    const checked = checkSearchRequest(request);
    if (!checked.ok) return checked;
    return search(this.ctx.store, checked.value);
  }

  /** The DN under which a live entry is shown, or undefined for a tombstone or unknown GUID. */
  dnOf(guid: Guid): string | undefined {
    const row = this.ctx.store.getEntry(guid);
    return row === undefined || row.deleted ? undefined : entryDn(this.ctx.store, row);
  }

  conflicts(after: Guid | null = null, limit = 1000): ConflictView[] {
    return listConflicts(this.ctx.store, after, limit);
  }

  // -------------------------------------------------------------------------------------------
  // replication

  /**
   * The request this replica sends to pull the next page from `partner`. `exclude` names the
   * invocations whose changes this replica pulls from other partners (reverse-path pulling
   * between sites); a filter that gives one of them back restarts the watermark from zero.
   */
  changeRequest(
    partner: NodeId,
    limits: Partial<PageLimits> = {},
    exclude: readonly InvocationId[] = [],
  ): ChangeRequest {
    return {
      destination: this.ctx.meta.nodeId,
      destinationInvocation: this.ctx.meta.invocation,
      from: this.ctx.transact(() => filteredWatermark(this.ctx, partner, exclude)),
      utd: this.utd(),
      purgeHorizon: this.ctx.horizon("purged"),
      limits: {
        entriesMax: limits.entriesMax ?? pageEntriesMaxDefault,
        bytesMax: limits.bytesMax ?? pageBytesMaxDefault,
      },
    };
  }

  /** Answers a pull. The request is untrusted input; it is validated first. */
  getChanges(request: unknown): Result<ChangePage> {
    return this.ctx.transact(() => {
      const admitted = this.admitPull(request);
      return admitted.ok ? this.readPage(admitted.value) : admitted;
    });
  }

  /**
   * The first half of getChanges: checks a pull request and records what it says about the
   * puller (its UTD, its purge horizon), in one transaction. The page itself may then be built
   * by readPage, here or on another connection to the same store (readPageFrom): it depends
   * only on the store's committed state and the request.
   */
  admitPull(request: unknown): Result<ChangeRequest> {
    const checked = validateChangeRequest(request);
    if (!checked.ok) return checked;
    if (checked.value.destination === this.ctx.meta.nodeId)
      return fail("invalid-request", "a replica does not pull from itself");
    return this.ctx.transact(() => {
      const request = checked.value;
      const rollback = this.detectRollback(request.utd, request.destination, "invalid-request");
      if (!rollback.ok) return rollback;
      checkPurgeHorizon(this.ctx, request.purgeHorizon, request.destination);
      // The freshest view of the destination's UTD for purge decisions: a destination restored
      // from a backup shows its regressed UTD here before it ever completes a pull from us.
      this.ctx.recordPeerReport({
        node: request.destination,
        invocation: request.destinationInvocation,
        utd: request.utd,
        usn: utdGet(request.utd, request.destinationInvocation),
        receivedAt: this.ctx.now(),
      });
      return isQuarantined(this.ctx) ? quarantinedRefusal() : ok(request);
    });
  }

  /**
   * The second half of getChanges: the page for a request admitPull accepted. Reads only;
   * refused when the replica was quarantined since (a page built later than its admission).
   */
  readPage(request: ChangeRequest): Result<ChangePage> {
    return this.ctx.transact(() => pageOrRefusal(this.ctx, request));
  }

  /** Applies a page pulled from a partner in one transaction. The page is untrusted input. */
  applyChanges(page: unknown): Result<ApplyOutcome> {
    const checked = validatePage(page, this.ctx.schema);
    if (!checked.ok) return checked;
    if (checked.value.source === this.ctx.meta.nodeId)
      return fail("invalid-page", "a page from this replica itself");
    const applied = this.ctx.transact((): Result<ApplyOutcome> => {
      const rollback = this.detectRollback(checked.value.utd, checked.value.source, "invalid-page");
      if (!rollback.ok) return rollback;
      // Before this page's UTD is merged: afterwards the UTD would cover what was never received.
      if (checkPurgeHorizon(this.ctx, checked.value.purgeHorizon, checked.value.source)) {
        this.lingeringReferenceHint = checked.value.source;
      }
      return ok(applyPage(this.ctx, checked.value));
    });
    if (applied.ok) for (const partition of applied.value.partitionsChanged) this.countChange(partition);
    return applied;
  }

  /** Records another replica's UTD (relayed or reported) for tombstone purge decisions. */
  recordPeerUtd(node: NodeId, invocation: InvocationId, utd: unknown): Result<void> {
    const checked = validateUtd(utd, "peer UTD");
    if (!checked.ok) return checked;
    return this.ctx.transact(() => {
      const rollback = this.detectRollback(checked.value, node, "invalid-page");
      if (!rollback.ok) return rollback;
      this.ctx.recordPeerReport({
        node,
        invocation,
        utd: checked.value,
        usn: utdGet(checked.value, invocation),
        receivedAt: this.ctx.now(),
      });
      return ok(undefined);
    });
  }

  /**
   * Rollback safety: a partner that has seen more of our current invocation's USNs than we
   * have means this database is an older copy of itself. Take a new invocation id at once so
   * that no USN we hand out from now on can collide with one the partner already holds.
   *
   * Unless the current invocation id was itself taken on such a claim less than
   * rollbackClaimSpacingMs ago, in this process: then the message is refused with `code`.
   * Partners learn a new invocation id only from this replica, at USNs it has reached, so a
   * claim beyond them is true only if the database went back again since; a broken or hostile
   * partner that echoes every new id back above our USN otherwise made us take one more per
   * message, and each retired id stays in every replica's UTD for good (until the UTDs passed
   * utdEntriesMax and every partner refused them). The claims of other partners on the ids
   * retired before cost nothing: only the current id is compared.
   */
  private detectRollback(
    utd: UtdVector,
    partner: NodeId,
    code: "invalid-page" | "invalid-request",
  ): Result<void> {
    const { invocation, usn } = this.ctx.meta;
    const seen = utdGet(utd, invocation);
    if (seen <= usn) return ok(undefined);
    const now = this.ctx.now();
    const sinceTaken = this.sinceTakenOnClaim(now);
    if (sinceTaken !== null) {
      return fail(
        code,
        `${partner} claims USN ${seen} of invocation ${invocation}, which this replica took ${sinceTaken} ms ago on another partner's claim and has used only up to USN ${usn}; it takes no other id on a claim for ${rollbackClaimSpacingMs} ms`,
      );
    }
    this.ctx.event(
      "rollback-detected",
      `${partner} has seen USN ${seen} of invocation ${invocation}, this replica only ${usn}`,
    );
    this.takeNewInvocationId(`USN rollback detected by ${partner}`);
    if (this.ctx.meta.invocation !== invocation)
      this.claimTaken = { invocation: this.ctx.meta.invocation, at: now };
    return ok(undefined);
  }

  /**
   * The invocation id this process last took on a partner's claim, and when (in memory only: a
   * restore of the whole data directory restarts the process, which then obeys the next claim).
   */
  private claimTaken: { readonly invocation: InvocationId; readonly at: Millis } | null = null;

  /**
   * Milliseconds since the current invocation id was taken on a claim, if that was less than
   * rollbackClaimSpacingMs ago; otherwise null. A clock set back since cannot tell: null.
   */
  private sinceTakenOnClaim(now: Millis): number | null {
    const taken = this.claimTaken;
    if (taken === null || taken.invocation !== this.ctx.meta.invocation) return null;
    const since = now - taken.at;
    return since >= 0 && since < rollbackClaimSpacingMs ? since : null;
  }

  /**
   * Starts a new database instance identity; the old one's changes stay known up to our USN,
   * unless recording it would take the UTD past the bound every partner checks UTDs against
   * (one entry is kept for the new id, added when the UTD is sent): a replica whose UTD grew
   * past it would never replicate again, while one that does not record the old id only gets
   * the old id's changes it has sent once more.
   */
  takeNewInvocationId(reason: string): void {
    if (this.ctx.canaries.reuseUsnAfterRestore === true) return;
    this.ctx.transact(() => {
      const old = this.ctx.meta.invocation;
      const stored = this.ctx.utd();
      const known = Math.max(utdGet(stored, old), this.ctx.meta.usn) as Usn;
      const retired = utdWith(stored, old, known);
      if (Object.keys(retired).length < utdEntriesMax) this.ctx.setUtd(retired);
      this.ctx.updateMeta({ invocation: this.ctx.newInvocationId() });
      this.ctx.event("invocation-changed", `${old} -> ${this.ctx.meta.invocation}: ${reason}`);
    });
  }

  // -------------------------------------------------------------------------------------------
  // tombstones and strict mode

  purgeTombstones(replicas: readonly NodeId[]): PurgeOutcome {
    return this.ctx.transact(() => purgeTombstones(this.ctx, replicas));
  }

  isQuarantined(): boolean {
    return isQuarantined(this.ctx);
  }

  lingeringCandidates(after: Guid | null, limit: number): LingeringCandidate[] {
    return lingeringCandidates(this.ctx, after, limit);
  }

  /** The reference's side of a lingering-object check, for a page of another replica's candidates. */
  answerLingeringCheck(guids: readonly Guid[]): LingeringAnswer & { utd: UtdVector; settles: UtdVector } {
    // What a check against this replica settles: every deletion its UTD covers (it holds the
    // tombstone or purged it) and, unless it is quarantined itself, every deletion it knows
    // was purged. The latter matters once restores have left a retired invocation's lost
    // changes beyond every UTD for good.
    const utd = this.utd();
    const settles = isQuarantined(this.ctx) ? utd : utdMerge(utd, this.ctx.horizon("purged"));
    return { ...answerLingeringCheck(this.ctx, guids), utd, settles };
  }

  /**
   * Applies a reference's answer to one page of this replica's candidates. The answer is
   * untrusted input: a malformed one is refused whole and changes nothing.
   */
  applyLingeringAnswer(
    candidates: readonly LingeringCandidate[],
    answer: unknown,
  ): Result<{ removed: number; settles: UtdVector }> {
    const checked = validateLingeringAnswer(answer, this.ctx.schema);
    if (!checked.ok) return checked;
    const { utd, settles, ...rest } = checked.value;
    const removed = this.ctx.transact(() => applyLingeringAnswer(this.ctx, candidates, rest, utd));
    this.unplacedChanges++;
    return ok({ removed, settles });
  }

  /**
   * Ends the quarantine once a full lingering-object check against `reference` has run, given
   * what the reference's first answer said the check settles.
   */
  endQuarantine(reference: NodeId, settles: unknown): Result<void> {
    const settled = validateUtd(settles, "settled vector");
    if (!settled.ok) return settled;
    this.ctx.transact(() => endQuarantine(this.ctx, reference, settled.value));
    if (!isQuarantined(this.ctx)) this.lingeringReferenceHint = null;
    return ok(undefined);
  }

  /**
   * Ends the quarantine of a replica that is the only one of its directory: nobody else holds
   * entries whose deletions it could have missed, so every requirement counts as settled.
   */
  endQuarantineAlone(): void {
    this.ctx.transact(() => {
      let settled = this.ctx.horizon("checked");
      for (const required of this.ctx.requiredHorizons()) settled = utdMerge(settled, required);
      this.ctx.setHorizon("checked", settled);
      this.ctx.event("quarantine-ended", "this replica is the only one of its directory");
    });
    this.lingeringReferenceHint = null;
  }

  /** The purge horizon this replica advertises. */
  purgeHorizon(): UtdVector {
    return this.ctx.horizon("purged");
  }

  /**
   * The partner whose purge horizon quarantined this replica (in memory only): the best
   * reference for the lingering-object check, since its UTD covers what that horizon requires.
   */
  get lingeringReference(): NodeId | null {
    return this.lingeringReferenceHint;
  }

  private lingeringReferenceHint: NodeId | null = null;

  // -------------------------------------------------------------------------------------------
  // introspection

  events(limit = 100): ReplicaEvent[] {
    return this.ctx.store.listEvents(limit);
  }

  counts(): StoreCounts {
    return this.ctx.store.counts();
  }

  close(): void {
    this.ctx.store.close();
  }
}

/** What a page reader has in place of a clock and randomness: building a page uses neither. */
const pageReaderPorts: ReplicaPorts = {
  clock: {
    now: () => {
      throw new Error("a page reader has no clock: building a page must not read the time");
    },
  },
  random: {
    bytes: () => {
      throw new Error("a page reader has no randomness: building a page must not draw any");
    },
  },
};

/**
 * Builds the page for a request that the replica's admitPull accepted, on another connection
 * to the same store (a node serves pulls from a worker thread): read only, in one snapshot of
 * the committed state, which is what the replica itself would answer at that moment (a
 * refusal if it has been quarantined since the pull was admitted).
 */
export function readPageFrom(
  store: Store,
  request: ChangeRequest,
  options: ReplicaOptions = {},
): Result<ChangePage> {
  return store.transaction(() => {
    const meta = store.readMeta();
    assert(meta !== undefined, "a page reader opens the store of an existing replica");
    return pageOrRefusal(makeContext(store, pageReaderPorts, options, meta), request);
  });
}

/** A quarantined replica sends nothing, even for a pull it admitted before it was quarantined. */
function pageOrRefusal(ctx: ReplicaContext, request: ChangeRequest): Result<ChangePage> {
  return isQuarantined(ctx) ? quarantinedRefusal() : ok(buildPage(ctx, request));
}

function quarantinedRefusal(): Result<never> {
  return fail(
    "quarantined",
    "this replica may hold entries deleted elsewhere (it missed purged deletions, or it is a restored copy); it sends nothing until a lingering-object check has run",
  );
}

function makeContext(
  store: Store,
  ports: ReplicaPorts,
  options: ReplicaOptions,
  meta: ReplicaMeta,
): ReplicaContext {
  const settings: ReplicaSettings = {
    tombstoneLifetimeMs: options.settings?.tombstoneLifetimeMs ?? tombstoneLifetimeMsDefault,
  };
  return new ReplicaContext(
    store,
    ports.clock,
    ports.random,
    options.schema ?? makeSchema(),
    settings,
    options.canaries ?? noCanaries,
    meta,
  );
}
