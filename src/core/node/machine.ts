import { type Canaries, noCanaries } from "../canaries.ts";
import type { Guid, InvocationId, NodeId } from "../ids.ts";
import type { WriteOutcome, WriteRequest } from "../replica/originating.ts";
import type { Replica } from "../replica/replica.ts";
import type { LingeringCandidate } from "../replica/tombstones.ts";
import type { ChangePage, ChangeRequest, PageLimits } from "../replication/page.ts";
import { isUrgentWrite } from "../replication/urgent.ts";
import type { UtdVector } from "../replication/utd.ts";
import type { PlexusError, Result } from "../result.ts";
import {
  checkPeerMessage,
  lingeringCheckBatchMax,
  type PeerMessage,
  pageSourceProblem,
  pullDestinationProblem,
} from "./messages.ts";

/**
 * The node state machine: when to pull from which partner, what to answer, when to notify,
 * when to purge, and the lingering-object check of a quarantined replica. Drivers (the
 * simulator and the runtime) call `tick`, `receive`, `undeliverable` and `write`, send the
 * messages it returns, and call `tick` again no later than `nextWakeAt()`. It owns no timer,
 * socket or clock: time comes from the Monotonic port, in milliseconds that never go back.
 */
export interface Monotonic {
  now(): number;
}

/** A partner this node pulls from, and how often it pulls when nothing prompts it sooner. */
export interface InboundPartner {
  readonly node: NodeId;
  readonly pullIntervalMs: number;
  /** Invocations whose changes come along another path (reverse-path pulling between sites):
   * this partner leaves them out. None by default. */
  readonly exclude?: readonly InvocationId[];
  /** The link wants notifications: pulls ask this partner to notify us of its next changes. */
  readonly notify?: boolean;
}

/**
 * A node that pulled from this one asking for notifications is notified for this long after
 * its last pull, even if this node's plan does not name it: nodes whose views of stale
 * partners differ may disagree on who is a bridgehead, and a pull says who actually is.
 */
export const recentPullerNotifyMs = 10 * 60_000;

export interface NodeConfig {
  /** Partners this node pulls from. */
  readonly inbound: readonly InboundPartner[];
  /** Partners this node tells when it has changes (they pull from it). */
  readonly outbound: readonly NodeId[];
  /** Every replica of the directory, this one included: tombstone purge needs all of them. */
  readonly replicaSet: readonly NodeId[];
  readonly pullTimeoutMs: number;
  /**
   * Notifications go out at most once per this window: a change after a quiet window is
   * announced at once, the changes that follow it within the window share one notification at
   * its end (a node under load notifies once per window, an isolated write waits for nothing).
   */
  readonly notifyDelayMs: number;
  /**
   * How long a node waits before pulling changes that a partner only passed on from a node it
   * also pulls from, and that link works: that node tells it of them itself, so an immediate
   * pull would mostly fetch them twice. 0 pulls at once. Bounds the extra latency when the
   * direct notification is lost.
   */
  readonly relayPullDelayMs: number;
  readonly retryBackoffBaseMs: number;
  readonly retryBackoffMaxMs: number;
  readonly purgeIntervalMs: number;
  readonly pageLimits: PageLimits;
}

export const pullIntervalMsDefault = 60_000;

export const nodeConfigDefaults: Omit<NodeConfig, "inbound" | "outbound" | "replicaSet"> = {
  pullTimeoutMs: 10_000,
  notifyDelayMs: 20,
  relayPullDelayMs: 500,
  retryBackoffBaseMs: 1_000,
  retryBackoffMaxMs: 60_000,
  purgeIntervalMs: 60 * 60_000,
  pageLimits: { entriesMax: 500, bytesMax: 1024 * 1024 },
};

/** How far page sizes grow within one pull cycle (the request limit allows 10,000). */
export const pageEntriesGrowthMax = 5_000;

export interface Send {
  readonly to: NodeId;
  readonly message: PeerMessage;
}

/** Relayed notifications held back from one puller (see NodeMachine.holdBack). */
interface HeldRelays {
  readonly via: ReadonlySet<NodeId>;
  readonly at: number;
}

/** An admitted pull whose page is still to be built (NodeMachine.admitPull). */
export interface PullTicket {
  readonly from: NodeId;
  /** The pull message's id, for the page message that answers it. */
  readonly id: number;
  readonly request: ChangeRequest;
  /** What was held back from the puller when the pull was admitted. */
  readonly held: HeldRelays | undefined;
}

/** A pull, admitted: the answer to send at once, or the page to build. */
export type PullAdmission =
  | { readonly kind: "answer"; readonly message: PeerMessage }
  | { readonly kind: "build"; readonly ticket: PullTicket };

/** What `repl status` shows per inbound partner. Times are Monotonic milliseconds. */
export interface PartnerStatus {
  readonly partner: NodeId;
  readonly lastSuccessAt: number | null;
  readonly lastFailureAt: number | null;
  readonly lastFailure: string | null;
  readonly consecutiveFailures: number;
  readonly pulling: boolean;
}

interface InFlight {
  readonly id: number;
  readonly sentAt: number;
  readonly kind: "pull" | "lingering";
}

interface PartnerState {
  readonly pullIntervalMs: number;
  /** Entries asked for per page; grows while a cycle keeps saying "more", so that a pull
   * from a busy partner catches up instead of chasing its changes for ever. */
  pageEntries: number;
  inFlight: InFlight | null;
  dueAt: number;
  /**
   * A notification arrived while a cycle was running: start another one when it ends, but
   * not before this time (a deferred relay notification); null when none arrived.
   */
  againAt: number | null;
  consecutiveFailures: number;
  lastSuccessAt: number | null;
  lastFailureAt: number | null;
  lastFailure: string | null;
  /** When the pull cycle under way began (its first request); null between cycles. */
  cycleStartedAt: number | null;
  /**
   * Changes this partner passed on from others, pulled from those others instead (see
   * `pullDirectlyInstead`): this partner is pulled after all at `dueAt`, unless each of them
   * completes a pull cycle begun after the notification first.
   */
  relayWait: RelayWait | null;
}

interface RelayWait {
  /** When the last relayed notification it stands for arrived. */
  readonly since: number;
  /** The partners named that have not completed a cycle begun since then. */
  readonly waitingOn: Set<NodeId>;
  readonly dueAt: number;
}

interface LingeringCheck {
  readonly partner: NodeId;
  after: Guid | null;
  candidates: readonly LingeringCandidate[];
  settles: UtdVector | null;
}

/** A puller's word that it hears some partners directly, good until `until`. */
interface RelayLease {
  readonly hears: ReadonlySet<NodeId>;
  readonly until: number;
}

function refusal(id: number, error: PlexusError): PeerMessage {
  return { kind: "refused", id, code: error.code, message: error.message };
}

export class NodeMachine {
  private readonly partners = new Map<NodeId, PartnerState>();
  private nextId = 1;
  private notifyAt: number | null = null;
  /** When the last round of notifications went out: the current batching window began then. */
  private lastNotifiedAt: number | null = null;
  /**
   * Where the changes the next notification announces came from: the partners whose pages
   * brought them, or "own" once this node originated one of them.
   */
  private notifySources: Set<NodeId> | "own" | null = null;
  /** Nodes that pulled asking for notifications, and until when they get them. */
  private readonly recentPullers = new Map<NodeId, number>();
  /**
   * Pullers that said which other partners they hear directly (a pull's `hears`), and until
   * when that holds: a relayed notification of changes from those only is held back till then.
   */
  private readonly relayLeases = new Map<NodeId, RelayLease>();
  /**
   * Relayed notifications held back by a lease: sent when it ends, unless the puller pulled
   * a whole cycle from here meanwhile (which brought the changes they announced).
   */
  private readonly heldRelays = new Map<NodeId, HeldRelays>();
  /** What this node last told each partner it hears directly, and when (see `failed`). */
  private readonly hearsClaims = new Map<
    NodeId,
    { readonly hears: ReadonlySet<NodeId>; readonly at: number }
  >();
  private purgeAt: number;
  private urgentChanges = 0;
  private pagesRejected = 0;
  private lingering: LingeringCheck | null = null;
  private lastLingeringReference: NodeId | null = null;

  constructor(
    readonly replica: Replica,
    private readonly clock: Monotonic,
    private config: NodeConfig,
    private readonly canaries: Canaries = noCanaries,
  ) {
    const now = clock.now();
    for (const partner of config.inbound) {
      this.partners.set(
        partner.node,
        freshPartner(now, partner.pullIntervalMs, config.pageLimits.entriesMax),
      );
    }
    this.purgeAt = now + config.purgeIntervalMs;
  }

  /** Runs whatever is due: timeouts, pulls, notifications, purge, the lingering check. */
  tick(): Send[] {
    const now = this.clock.now();
    const out: Send[] = [];
    for (const [partner, state] of this.partners) {
      if (state.inFlight !== null && now - state.inFlight.sentAt >= this.config.pullTimeoutMs) {
        this.failed(partner, state, now, "timed out");
      }
      if (state.inFlight === null && now >= pullDueAt(state) && this.lingering?.partner !== partner) {
        out.push(this.startPull(partner, state, now));
      }
    }
    if (this.notifyAt !== null && now >= this.notifyAt) {
      this.notifyAt = null;
      this.lastNotifiedAt = now;
      const sources = this.notifySources;
      this.notifySources = null;
      for (const partner of this.notifyTargets(now)) {
        const message = notificationFor(partner, sources);
        if (message !== null && !this.holdBack(partner, message, now))
          out.push({ to: partner, message: this.withHeld(partner, message) });
      }
    }
    for (const [partner, held] of this.heldRelays) {
      if (held.at > now) continue;
      this.heldRelays.delete(partner);
      out.push({ to: partner, message: { kind: "notify", via: [...held.via].sort() } });
    }
    if (now >= this.purgeAt) {
      this.purgeAt = now + this.config.purgeIntervalMs;
      this.replica.purgeTombstones(this.config.replicaSet);
    }
    out.push(...this.continueLingeringCheck(now));
    return out;
  }

  /**
   * How many client write batches and applied pages carried an urgent change (see
   * replication/urgent.ts): every change to the config partition is one, so the topology can
   * only have changed when this count moved.
   */
  get urgentChangeCount(): number {
    return this.urgentChanges;
  }

  /**
   * How many pages this replica did not apply (checks failed), the pull's own answer or a late
   * one alike: only the former counts as a failure of the partner, so the count says what a
   * late page came to.
   */
  get rejectedPageCount(): number {
    return this.pagesRejected;
  }

  /** The Monotonic time by which `tick` must run again. */
  nextWakeAt(): number {
    let wake = this.purgeAt;
    for (const state of this.partners.values()) {
      wake = Math.min(
        wake,
        state.inFlight === null ? pullDueAt(state) : state.inFlight.sentAt + this.config.pullTimeoutMs,
      );
    }
    if (this.notifyAt !== null) wake = Math.min(wake, this.notifyAt);
    for (const held of this.heldRelays.values()) wake = Math.min(wake, held.at);
    return wake;
  }

  /** A message from another node. Untrusted: a malformed one is dropped and changes nothing. */
  receive(from: NodeId, raw: unknown): Send[] {
    const checked = checkPeerMessage(raw);
    if (!checked.ok) return [];
    const message = checked.value;
    const now = this.clock.now();
    switch (message.kind) {
      case "pull": {
        const admission = this.admit(from, message, now);
        if (admission.kind === "answer") return [{ to: from, message: admission.message }];
        return [
          {
            to: from,
            message: this.pageMessage(admission.ticket, this.replica.readPage(admission.ticket.request)),
          },
        ];
      }
      case "page":
        return this.onPage(from, message.id, message.page, now);
      case "refused": {
        const state = this.partners.get(from);
        if (state?.inFlight?.id === message.id)
          this.failed(from, state, now, `${message.code}: ${message.message}`);
        return [];
      }
      case "notify":
        return this.onNotify(from, message.via, now);
      case "lingering-check": {
        // Even a quarantined replica is a sound reference: the check relies only on what it
        // lacks and on its UTD, and settles no more than the horizon it advertises.
        const answer: PeerMessage = {
          kind: "lingering-answer",
          id: message.id,
          answer: this.replica.answerLingeringCheck(message.guids),
        };
        return [{ to: from, message: answer }];
      }
      case "lingering-answer":
        return this.onLingeringAnswer(from, message, now);
    }
  }

  /**
   * The transport could not deliver `message` to `to`, or got no answer it could use: `reason`
   * says why (connection refused, HTTP 401 …), as the partner's last failure.
   */
  undeliverable(to: NodeId, message: PeerMessage, reason = "unreachable"): void {
    const state = this.partners.get(to);
    if (state === undefined || !("id" in message) || state.inFlight?.id !== message.id) return;
    this.failed(to, state, this.clock.now(), reason);
  }

  /** Client writes, in one transaction; partners are notified after the batching delay. */
  write(requests: readonly WriteRequest[]): Result<WriteOutcome>[] {
    const results = this.replica.write(requests);
    const changed = results.filter((result) => result.ok && result.value.entries > 0);
    if (changed.length > 0) {
      const urgent = requests.some((request, index) => results[index]?.ok === true && isUrgentWrite(request));
      if (urgent) this.urgentChanges++;
      this.changed(this.clock.now(), urgent, "own");
    }
    return results;
  }

  /**
   * Takes a new configuration (the topology changed, or a partner went stale). Partners that
   * stay keep their state — watermark progress, failures, back-off, a pull in flight — so that
   * a reconfiguration never restarts a cycle or forgets a failing partner; new partners are
   * pulled at once; a removed partner's late answers are dropped like any stranger's. A
   * lingering-object check against a removed partner is abandoned and starts again elsewhere.
   */
  reconfigure(config: NodeConfig): void {
    const now = this.clock.now();
    const next = new Map<NodeId, PartnerState>();
    for (const partner of config.inbound) {
      const kept = this.partners.get(partner.node);
      next.set(
        partner.node,
        kept === undefined
          ? freshPartner(now, partner.pullIntervalMs, config.pageLimits.entriesMax)
          : { ...kept, pullIntervalMs: partner.pullIntervalMs, dueAt: sooner(kept, partner.pullIntervalMs) },
      );
    }
    this.partners.clear();
    for (const [node, state] of next) this.partners.set(node, state);
    if (this.lingering !== null && !this.partners.has(this.lingering.partner)) this.lingering = null;
    this.config = config;
  }

  partnerStatus(): PartnerStatus[] {
    return [...this.partners].map(([partner, state]) => ({
      partner,
      lastSuccessAt: state.lastSuccessAt,
      lastFailureAt: state.lastFailureAt,
      lastFailure: state.lastFailure,
      consecutiveFailures: state.consecutiveFailures,
      pulling: state.inFlight !== null,
    }));
  }

  // -------------------------------------------------------------------------------------------

  private startPull(partner: NodeId, state: PartnerState, now: number): Send {
    const id = this.nextId++;
    state.inFlight = { id, sentAt: now, kind: "pull" };
    state.againAt = null;
    state.cycleStartedAt ??= now;
    // This cycle brings whatever the partner passed on.
    state.relayWait = null;
    const inbound = this.config.inbound.find((candidate) => candidate.node === partner);
    const request = this.replica.changeRequest(
      partner,
      { ...this.config.pageLimits, entriesMax: state.pageEntries },
      inbound?.exclude,
    );
    const notify = inbound?.notify === true;
    const hears = this.heardDirectly(partner);
    if (hears.length > 0) this.hearsClaims.set(partner, { hears: new Set(hears), at: now });
    else this.hearsClaims.delete(partner);
    return {
      to: partner,
      message: {
        kind: "pull",
        id,
        request,
        ...(notify ? { notify } : {}),
        ...(hears.length > 0 ? { hears } : {}),
      },
    };
  }

  private onPage(from: NodeId, id: number, page: unknown, now: number): Send[] {
    const state = this.partners.get(from);
    if (state === undefined) return []; // only inbound partners may send pages
    const answered = state.inFlight?.id === id && state.inFlight.kind === "pull";
    const stranger = pageSourceProblem(from, page);
    if (stranger !== null) {
      this.pagesRejected++;
      if (answered) this.failed(from, state, now, `invalid-page: ${stranger}`);
      return [];
    }
    const outcome = this.replica.applyChanges(page);
    if (!outcome.ok) {
      this.pagesRejected++;
      if (answered) this.failed(from, state, now, `${outcome.error.code}: ${outcome.error.message}`);
      return [];
    }
    if (outcome.value.urgent) this.urgentChanges++;
    if (outcome.value.entriesChanged > 0) this.changed(now, outcome.value.urgent, from);
    // A late or duplicated page was merged; it does not drive the cycle.
    if (!answered) return [];
    state.inFlight = null;
    if (!outcome.value.cycleComplete) {
      state.pageEntries = Math.min(state.pageEntries * 2, pageEntriesGrowthMax);
      return [this.startPull(from, state, now)];
    }
    state.pageEntries = this.config.pageLimits.entriesMax;
    state.consecutiveFailures = 0;
    state.lastSuccessAt = now;
    this.cycleCompleted(from, state.cycleStartedAt ?? now);
    state.cycleStartedAt = null;
    state.dueAt = Math.min(state.againAt ?? Number.POSITIVE_INFINITY, now + state.pullIntervalMs);
    return [];
  }

  private onNotify(from: NodeId, via: readonly NodeId[] | undefined, now: number): Send[] {
    const state = this.partners.get(from);
    if (state === undefined) return [];
    const direct = via !== undefined && this.hearsDirectly(from, via);
    if (direct && this.pullsWhole(via)) {
      this.pullDirectlyInstead(state, via, now);
      return [];
    }
    const at = direct ? now + this.config.relayPullDelayMs : now;
    if (state.inFlight !== null) {
      state.againAt = Math.min(state.againAt ?? at, at);
      return [];
    }
    // A partner that keeps failing is retried on its back-off schedule, not on every notify.
    if (state.consecutiveFailures === 0) state.dueAt = Math.min(state.dueAt, at);
    return now >= state.dueAt ? [this.startPull(from, state, now)] : [];
  }

  /**
   * Whether the changes `from` passed on from the partners `via` also come straight from
   * them: this node pulls from each, and each one's last pull cycle succeeded (a failing link
   * gets no such trust). Then they notify this node themselves (or its regular pulls bring the
   * changes), and pulling them from `from` at once would mostly move them a second time.
   */
  private hearsDirectly(from: NodeId, via: readonly NodeId[] | undefined): boolean {
    if (via === undefined || via.length === 0 || this.config.relayPullDelayMs === 0) return false;
    if (this.canaries.deferEveryRelay === true) return true;
    return via.every((node) => node !== from && this.isHeardDirectly(node));
  }

  /**
   * Whether this node's pulls from each of `nodes` bring everything that node holds (no
   * origins left out, as between sites): then what a relay got from them comes from them too.
   */
  private pullsWhole(nodes: readonly NodeId[]): boolean {
    return nodes.every((node) => {
      const inbound = this.config.inbound.find((candidate) => candidate.node === node);
      return inbound !== undefined && (inbound.exclude === undefined || inbound.exclude.length === 0);
    });
  }

  /**
   * Answers a notification of changes `from` passed on from partners this node hears directly
   * by pulling those partners rather than `from`: they hold the changes (they sent them), and
   * under load `from` is usually a page ahead of this node, so a pull from it brought that page
   * a second time. Each is pulled within the relay pull delay, should its own notification have
   * been lost. `from` is still pulled if one of them has not completed a pull cycle begun after
   * this notification within the relay pull delay and a pull timeout, or fails first (see
   * `failed`): a change is never left to the periodic pull.
   */
  private pullDirectlyInstead(state: PartnerState, via: readonly NodeId[], now: number): void {
    const at = now + this.config.relayPullDelayMs;
    for (const node of via) {
      const direct = this.partners.get(node);
      if (direct === undefined) continue;
      if (direct.inFlight !== null) direct.againAt = Math.min(direct.againAt ?? at, at);
      else direct.dueAt = Math.min(direct.dueAt, at);
    }
    if (this.canaries.skipRelayWait === true) return;
    state.relayWait = {
      since: now,
      waitingOn: new Set([...(state.relayWait?.waitingOn ?? []), ...via]),
      dueAt: at + this.config.pullTimeoutMs,
    };
  }

  /** `node`'s pull cycle begun at `began` succeeded: relayed changes it was to bring came. */
  private cycleCompleted(node: NodeId, began: number): void {
    for (const state of this.partners.values()) {
      const wait = state.relayWait;
      if (wait === null || began < wait.since || !wait.waitingOn.delete(node)) continue;
      if (wait.waitingOn.size === 0) state.relayWait = null;
    }
  }

  private isHeardDirectly(node: NodeId): boolean {
    const direct = this.partners.get(node);
    return direct !== undefined && direct.consecutiveFailures === 0 && direct.lastSuccessAt !== null;
  }

  /** The partners other than `except` this node hears directly; none when relays are not put off. */
  private heardDirectly(except: NodeId): NodeId[] {
    if (this.config.relayPullDelayMs === 0) return [];
    return [...this.partners.keys()].filter((node) => node !== except && this.isHeardDirectly(node)).sort();
  }

  /**
   * A pull's first half, for a caller that builds the page elsewhere (the runtime builds pages
   * on a worker thread, from its own connection to the store): undefined when `raw` is not a
   * well-formed pull (give it to receive, which drops it), else the answer to send at once (a
   * refusal), or a ticket whose request the caller builds the page for (readPageFrom) and then
   * hands back to pageServed. receive() does all of it in one go.
   */
  admitPull(from: NodeId, raw: unknown): PullAdmission | undefined {
    const checked = checkPeerMessage(raw);
    if (!checked.ok || checked.value.kind !== "pull") return undefined;
    return this.admit(from, checked.value, this.clock.now());
  }

  /**
   * A pull's second half: its page was built and goes out; `more` is the page's. The last page
   * of a cycle brings everything held back from the puller when the pull was admitted (the
   * page was read after that); what was held back since stays held.
   */
  pageServed(ticket: PullTicket, more: boolean): void {
    if (more) return;
    const heldSinceAdmission = this.heldRelays.get(ticket.from) !== ticket.held;
    if (!heldSinceAdmission || this.canaries.clearHeldAfterAdmission === true)
      this.heldRelays.delete(ticket.from);
  }

  /**
   * The answer to an admitted pull once its page was read (here, or on another connection with
   * readPageFrom): the page, after pageServed; or the refusal, when the replica was
   * quarantined since the pull was admitted.
   */
  pageMessage(ticket: PullTicket, page: Result<ChangePage>): PeerMessage {
    if (!page.ok) return refusal(ticket.id, page.error);
    this.pageServed(ticket, page.value.more);
    return { kind: "page", id: ticket.id, page: page.value };
  }

  private admit(from: NodeId, message: Extract<PeerMessage, { kind: "pull" }>, now: number): PullAdmission {
    const stranger = pullDestinationProblem(from, message.request);
    if (stranger !== null)
      return { kind: "answer", message: refusal(message.id, { code: "invalid-request", message: stranger }) };
    if (message.notify === true) this.recentPullers.set(from, now + recentPullerNotifyMs);
    // A pull without `hears` takes back whatever the puller said before.
    if (message.hears === undefined || this.config.relayPullDelayMs === 0) this.relayLeases.delete(from);
    else
      this.relayLeases.set(from, {
        hears: new Set(message.hears),
        until: now + this.config.relayPullDelayMs,
      });
    const admitted = this.replica.admitPull(message.request);
    if (!admitted.ok) return { kind: "answer", message: refusal(message.id, admitted.error) };
    const ticket = { from, id: message.id, request: admitted.value, held: this.heldRelays.get(from) };
    return { kind: "build", ticket };
  }

  /**
   * Holds back a notification `partner` need not have yet: one of changes that came from `via`
   * only, when it said, in a pull within the relay pull delay, that it hears each of them
   * directly (it would put off the pull anyway). The notification goes out when that word
   * ends, so a lost direct notification still costs at most two relay pull delays; a whole
   * pull cycle from `partner` meanwhile cancels it. Should one of those links fail first,
   * the partner pulls at once from every node it said so to (see `failed`).
   */
  private holdBack(partner: NodeId, message: PeerMessage, now: number): boolean {
    if (message.kind !== "notify" || message.via === undefined) return false;
    const lease = this.relayLeases.get(partner);
    if (lease === undefined) return false;
    if (lease.until <= now) {
      this.relayLeases.delete(partner);
      return false;
    }
    const covered =
      this.canaries.ignoreRelayHears === true || message.via.every((node) => lease.hears.has(node));
    if (!covered) return false;
    if (this.canaries.dropHeldRelays === true) return true;
    // A new object each time, never changed in place: pageServed tells by identity whether
    // anything was held back since a pull was admitted.
    const held = this.heldRelays.get(partner);
    this.heldRelays.set(partner, {
      via: new Set([...(held?.via ?? []), ...message.via]),
      at: held?.at ?? lease.until,
    });
    return true;
  }

  /** A notification that goes out now also announces what was held back from `partner`. */
  private withHeld(partner: NodeId, message: PeerMessage): PeerMessage {
    const held = this.heldRelays.get(partner);
    if (held === undefined || message.kind !== "notify") return message;
    this.heldRelays.delete(partner);
    // A notification without `via` (changes of this node's own) has the partner pull at once.
    if (message.via === undefined) return message;
    return { kind: "notify", via: [...new Set([...message.via, ...held.via])].sort() };
  }

  /** The plan's outbound partners and the recent pullers that asked to be told. */
  private notifyTargets(now: number): NodeId[] {
    const targets = new Set(this.config.outbound);
    for (const [node, until] of this.recentPullers) {
      if (until < now) this.recentPullers.delete(node);
      else targets.add(node);
    }
    return [...targets];
  }

  /**
   * Partners hear of an urgent change at once, and of any other at the end of the batching
   * window that began with the last notification, or at once when that window is over.
   */
  private changed(now: number, urgent: boolean, source: NodeId | "own"): void {
    if (this.config.outbound.length === 0 && this.recentPullers.size === 0) return;
    if (source === "own") this.notifySources = "own";
    else if (this.notifySources === null) this.notifySources = new Set([source]);
    else if (this.notifySources !== "own") this.notifySources.add(source);
    let windowEnd = this.lastNotifiedAt === null ? now : this.lastNotifiedAt + this.config.notifyDelayMs;
    if (this.canaries.batchEveryNotification === true) windowEnd = now + this.config.notifyDelayMs;
    const at = urgent ? now : Math.max(now, windowEnd);
    this.notifyAt = Math.min(this.notifyAt ?? at, at);
  }

  private failed(partner: NodeId, state: PartnerState, now: number, reason: string): void {
    if (state.inFlight?.kind === "lingering" && this.lingering?.partner === partner) this.lingering = null;
    state.inFlight = null;
    state.cycleStartedAt = null;
    state.consecutiveFailures++;
    state.lastFailureAt = now;
    state.lastFailure = reason;
    const backoff = this.config.retryBackoffBaseMs * 2 ** Math.min(state.consecutiveFailures - 1, 20);
    state.dueAt = now + Math.min(backoff, this.config.retryBackoffMaxMs);
    if (state.consecutiveFailures === 1) this.pullFromRelays(partner, now);
    // Changes passed on from `partner`, waiting for it to bring them: fetch them from the relay now.
    for (const other of this.partners.values()) {
      const wait = other.relayWait;
      if (wait?.waitingOn.has(partner)) other.relayWait = { ...wait, dueAt: now };
    }
  }

  /**
   * The link to `lost` just failed: partners this node recently said it hears `lost` directly
   * (a pull's `hears`) may be holding back notifications of the changes they got from it, so
   * pull from them now rather than wait for the hold to end. A claim counts for the relay pull
   * delay after it reached the partner, which may be up to the pull timeout after it was sent.
   */
  private pullFromRelays(lost: NodeId, now: number): void {
    const window = this.config.relayPullDelayMs + this.config.pullTimeoutMs;
    for (const [partner, claim] of this.hearsClaims) {
      if (now - claim.at > window) {
        this.hearsClaims.delete(partner);
        continue;
      }
      const state = this.partners.get(partner);
      if (!claim.hears.has(lost) || state === undefined) continue;
      this.hearsClaims.delete(partner);
      if (state.inFlight !== null) state.againAt = now;
      else if (state.consecutiveFailures === 0) state.dueAt = Math.min(state.dueAt, now);
    }
  }

  // -------------------------------------------------------------------------------------------
  // lingering-object check (strict mode, restored copies)

  private continueLingeringCheck(now: number): Send[] {
    if (!this.replica.isQuarantined()) return [];
    const others = this.config.replicaSet.filter((node) => node !== this.replica.nodeId);
    if (others.length === 0) {
      // A directory of one has nobody to ask, and no deletion anyone else could have purged.
      this.replica.endQuarantineAlone();
      return [];
    }
    if (this.lingering !== null) return [];
    const partner = this.healthiestPartner();
    if (partner === undefined) return [];
    this.lingering = { partner, after: null, candidates: [], settles: null };
    return this.askNextLingeringBatch(now);
  }

  /**
   * The partner whose horizon caused the quarantine if it is free; else the least failing
   * one, avoiding the last reference (a check against it did not settle everything).
   */
  private healthiestPartner(): NodeId | undefined {
    const hinted = this.replica.lingeringReference;
    const hintedState = hinted === null ? undefined : this.partners.get(hinted);
    if (hinted !== null && hintedState !== undefined && hintedState.inFlight === null) return hinted;
    let best: [NodeId, PartnerState] | undefined;
    for (const entry of this.partners) {
      if (entry[1].inFlight !== null) continue;
      if (entry[0] === this.lastLingeringReference && this.partners.size > 1) continue;
      if (best === undefined || entry[1].consecutiveFailures < best[1].consecutiveFailures) best = entry;
    }
    return best?.[0];
  }

  /** Sends the next page of this replica's entries (possibly empty: the answer still carries the horizon). */
  private askNextLingeringBatch(now: number): Send[] {
    const check = this.lingering;
    if (check === null) return [];
    const state = this.partners.get(check.partner);
    if (state === undefined) return [];
    check.candidates = this.replica.lingeringCandidates(check.after, lingeringCheckBatchMax);
    const id = this.nextId++;
    state.inFlight = { id, sentAt: now, kind: "lingering" };
    const guids = check.candidates.map((candidate) => candidate.guid);
    return [{ to: check.partner, message: { kind: "lingering-check", id, guids } }];
  }

  private onLingeringAnswer(
    from: NodeId,
    message: Extract<PeerMessage, { kind: "lingering-answer" }>,
    now: number,
  ): Send[] {
    const check = this.lingering;
    const state = this.partners.get(from);
    if (check === null || check.partner !== from || state?.inFlight?.id !== message.id) return [];
    state.inFlight = null;
    const applied = this.replica.applyLingeringAnswer(check.candidates, message.answer);
    if (!applied.ok) {
      this.failed(from, state, now, `bad lingering answer: ${applied.error.message}`);
      return [];
    }
    // The first answer's view: the smallest, so it never claims what later pages missed.
    check.settles ??= applied.value.settles;
    if (check.candidates.length < lingeringCheckBatchMax) {
      this.replica.endQuarantine(check.partner, check.settles);
      this.lastLingeringReference = check.partner;
      this.lingering = null;
      return [];
    }
    check.after = check.candidates.at(-1)?.guid ?? null;
    return this.askNextLingeringBatch(now);
  }
}

/**
 * What `partner` is told of the changes that came from `sources`: nothing when all came from
 * it (it holds them: it sent them; an echo would only make it pull an empty page, and commit
 * it); else a notification naming the partners that brought them, so that one that pulls from
 * those partners itself need not hurry (NodeMachine.hearsDirectly). Changes this node
 * originated name nobody.
 */
function notificationFor(partner: NodeId, sources: ReadonlySet<NodeId> | "own" | null): PeerMessage | null {
  if (sources === null || sources === "own") return { kind: "notify" };
  const via = [...sources].filter((node) => node !== partner).sort();
  return via.length === 0 ? null : { kind: "notify", via };
}

function freshPartner(now: number, pullIntervalMs: number, pageEntries: number): PartnerState {
  return {
    pullIntervalMs,
    pageEntries,
    inFlight: null,
    dueAt: now,
    againAt: null,
    consecutiveFailures: 0,
    lastSuccessAt: null,
    lastFailureAt: null,
    lastFailure: null,
    cycleStartedAt: null,
    relayWait: null,
  };
}

/**
 * When a kept partner's next pull is due under a new interval: a shorter one (a link's interval
 * lowered) counts from the last completed cycle, as if it had always applied, rather than
 * waiting out the rest of the old one (up to a whole 15-minute interval for a link set to 1
 * minute); a longer one keeps the pull already due. A failing partner keeps its back-off.
 */
function sooner(state: PartnerState, pullIntervalMs: number): number {
  if (state.consecutiveFailures > 0 || state.lastSuccessAt === null) return state.dueAt;
  return Math.min(state.dueAt, state.lastSuccessAt + pullIntervalMs);
}

/**
 * When a pull from a partner is next due: on its schedule, or earlier when changes it passed
 * on were not brought by the partners they came from (a failing partner keeps its back-off).
 */
function pullDueAt(state: PartnerState): number {
  if (state.relayWait === null || state.consecutiveFailures > 0) return state.dueAt;
  return Math.min(state.dueAt, state.relayWait.dueAt);
}
