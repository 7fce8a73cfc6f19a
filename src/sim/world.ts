import type { Canaries } from "../core/canaries.ts";
import { type Guid, type NodeId, nodeId } from "../core/ids.ts";
import type { NodeConfig } from "../core/node/machine.ts";
import { nodeConfigDefaults, type PullAdmission, type Send } from "../core/node/machine.ts";
import type { PeerMessage } from "../core/node/messages.ts";
import { EventQueue } from "./heap.ts";
import { Ledger } from "./ledger.ts";
import { SimNode, SimulatedCrash } from "./node.ts";
import type { SimParams } from "./params.ts";
import { SeededRandom } from "./ports.ts";
import { Trace } from "./trace.ts";

/**
 * The simulated world: one process, one seeded generator, simulated time. It delivers
 * messages between nodes through a faulty network (delay, loss, duplication, re-ordering,
 * partitions, swizzle-clogging), crashes and restarts nodes, skews their clocks, and restores
 * databases from older snapshots. Everything the nodes run is production code.
 */
export type SimEvent =
  | { readonly type: "wake"; readonly node: number }
  | {
      readonly type: "deliver";
      readonly from: number;
      readonly to: number;
      readonly message: PeerMessage;
      readonly messageId: number;
    }
  | { readonly type: "call"; readonly label: string; readonly run: () => void };

export interface Violation {
  readonly invariant: string;
  readonly message: string;
  readonly time: number;
}

export const simEpochMs = 1_790_000_000_000;
/** A seed that needs more events than this is stuck, not slow. */
export const eventsPerSeedMax = 3_000_000;

export class World {
  time = 0;
  readonly queue = new EventQueue<SimEvent>();
  readonly nodes: SimNode[];
  readonly ledger = new Ledger();
  readonly violations: Violation[] = [];
  readonly trace = new Trace();
  readonly random: SeededRandom;
  readonly stats = {
    events: 0,
    messagesSent: 0,
    messagesDelivered: 0,
    messagesDropped: 0,
    /** Network faults: messages lost on a cut link or to the loss rate, and messages duplicated. */
    messagesLost: 0,
    messagesDuplicated: 0,
    faults: 0,
    crashes: 0,
    invariantChecks: 0,
  };
  /** Active partitions: each is the set of nodes on one side. */
  private readonly partitions = new Map<number, ReadonlySet<number>>();
  private nextPartitionId = 1;
  /** Individually cut links (swizzle-clogging), as "a-b" with a < b, counted. */
  private readonly cutLinks = new Map<string, number>();
  private nextMessageId = 1;
  /** Message loss and duplication; off once the liveness phase has healed everything. */
  networkFaults = true;
  /** Message id → the receiving node's epoch when the first copy of a page was applied. */
  private readonly firstDelivery = new Map<number, { epoch: number }>();
  private readonly inbound: Map<number, number[]>;
  /** Sees every page a node received and applied (the site simulator counts transfers). */
  onPageDelivered: ((from: SimNode, to: SimNode, page: unknown) => void) | null = null;
  /** Drops the messages it returns true for, as if lost (the lost-notification probe). */
  dropMessage: ((from: SimNode, to: SimNode, message: PeerMessage) => boolean) | null = null;

  constructor(
    readonly params: SimParams,
    readonly canaries: Canaries,
  ) {
    this.random = new SeededRandom(params.seed ^ 0x5eed5eed);
    const hooks = {
      onResurrection: (node: SimNode, guid: Guid) =>
        this.violate("no-resurrection", `${node.id} made deleted entry ${guid} live again`),
    };
    this.nodes = params.placement.map(
      (site, index) => new SimNode(index, nodeId(`n${index}`), site, this, hooks, params.seed, simEpochMs),
    );
    this.inbound = new Map(this.nodes.map((node) => [node.index, [] as number[]]));
    for (const [a, b] of params.edges) {
      this.inbound.get(a)?.push(b);
      this.inbound.get(b)?.push(a);
    }
  }

  /** The nodes `index` pulls from, which are also the nodes it notifies (links are symmetric). */
  partnersOf(index: number): readonly number[] {
    return this.inbound.get(index) ?? [];
  }

  get replicaSet(): NodeId[] {
    return this.nodes.map((node) => node.id);
  }

  config(node: SimNode): NodeConfig {
    const partners = this.inbound.get(node.index) ?? [];
    return {
      ...nodeConfigDefaults,
      inbound: partners.map((index) => {
        const partner = this.nodes[index] as SimNode;
        const interval =
          partner.site === node.site ? this.params.intraPullIntervalMs : this.params.interPullIntervalMs;
        return { node: partner.id, pullIntervalMs: interval };
      }),
      outbound: partners.map((index) => (this.nodes[index] as SimNode).id),
      replicaSet: this.replicaSet,
      pullTimeoutMs: this.params.pullTimeoutMs,
      notifyDelayMs: this.params.notifyDelayMs,
      relayPullDelayMs: this.params.relayPullDelayMs,
      retryBackoffBaseMs: 200,
      retryBackoffMaxMs: 5_000,
      purgeIntervalMs: this.params.purgeIntervalMs,
      pageLimits: { entriesMax: this.params.pageEntriesMax, bytesMax: 256 * 1024 },
    };
  }

  violate(invariant: string, message: string): void {
    this.stats.invariantChecks++;
    this.violations.push({ invariant, message, time: this.time });
    this.trace.note(this.time, `VIOLATION ${invariant}: ${message}`);
  }

  at(time: number, label: string, run: () => void): void {
    this.queue.push(Math.max(time, this.time), { type: "call", label, run });
  }

  /** Runs events until `until` (inclusive) or until `stop` says so; false when the event budget ran out. */
  runUntil(until: number, stop: () => boolean = () => false): boolean {
    for (;;) {
      const next = this.queue.peekTime();
      if (next === undefined || next > until || stop()) {
        this.time = Math.max(this.time, Math.min(until, next ?? until));
        return true;
      }
      const scheduled = this.queue.pop();
      if (scheduled === undefined) return true;
      this.time = scheduled.time;
      if (++this.stats.events > eventsPerSeedMax) return false;
      this.handle(scheduled.event);
    }
  }

  private handle(event: SimEvent): void {
    switch (event.type) {
      case "wake":
        this.trace.mix(`${this.time}w${event.node}`);
        this.onWake(event.node);
        return;
      case "deliver":
        this.trace.mix(`${this.time}d${event.from}>${event.to}:${event.message.kind}`);
        this.onDeliver(event);
        return;
      case "call":
        this.trace.note(this.time, event.label);
        event.run();
        return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // nodes

  /** Runs `action` on an up node; a simulated crash inside it takes the node down. */
  step(node: SimNode, action: () => readonly Send[]): void {
    if (!node.up) return;
    const quarantined = node.replica?.isQuarantined();
    let sends: readonly Send[];
    try {
      sends = action();
      const now = node.replica?.isQuarantined();
      if (now !== quarantined) {
        // The replica's own event says why: it goes into the trace a failing seed prints.
        const event = node.replica?.events(1)[0];
        const why = event === undefined ? "" : `${event.kind}: ${event.detail}`;
        this.trace.note(this.time, `${node.id} ${now ? "quarantined" : "quarantine ended"}: ${why}`);
      }
    } catch (error) {
      if (!(error instanceof SimulatedCrash)) throw error;
      this.trace.note(this.time, `${node.id} crashed mid-write`);
      this.crash(node, this.random.int(100, 5_000));
      return;
    }
    for (const send of sends) this.send(node, send);
    this.afterStep(node);
    this.scheduleWake(node);
  }

  /** Runs after every step of an up node: a driver's own duties after a machine step (none here). */
  protected afterStep(_node: SimNode): void {}

  scheduleWake(node: SimNode): void {
    const machine = node.machine;
    if (machine === null) return;
    const wake = Math.max(machine.nextWakeAt(), this.time + 1);
    if (wake >= node.wakeAt) return;
    node.wakeAt = wake;
    this.queue.push(wake, { type: "wake", node: node.index });
  }

  private onWake(index: number): void {
    const node = this.nodes[index] as SimNode;
    if (!node.up || node.wakeAt !== this.time) return; // superseded by an earlier wake
    node.wakeAt = Number.POSITIVE_INFINITY;
    this.step(node, () => (node.machine as NonNullable<SimNode["machine"]>).tick());
    this.scheduleWake(node);
  }

  crash(node: SimNode, downMs: number | null): void {
    if (!node.up) return;
    this.stats.crashes++;
    node.crash();
    this.trace.note(this.time, `${node.id} down${downMs === null ? "" : ` for ${downMs} ms`}`);
    if (downMs !== null) this.at(this.time + downMs, `${node.id} restarts`, () => this.restart(node, false));
  }

  restart(node: SimNode, restored: boolean): void {
    if (node.up) return;
    node.restart(this.config(node), this.canaries, this.params.tombstoneLifetimeMs, restored);
    this.scheduleWake(node);
  }

  // -------------------------------------------------------------------------------------------
  // network

  linkCut(a: number, b: number): boolean {
    for (const side of this.partitions.values()) if (side.has(a) !== side.has(b)) return true;
    return this.cutLinks.has(linkKey(a, b));
  }

  partition(side: ReadonlySet<number>): number {
    const id = this.nextPartitionId++;
    this.partitions.set(id, side);
    return id;
  }

  heal(id: number): void {
    this.partitions.delete(id);
  }

  cutLink(a: number, b: number): void {
    const key = linkKey(a, b);
    this.cutLinks.set(key, (this.cutLinks.get(key) ?? 0) + 1);
  }

  restoreLink(a: number, b: number): void {
    const key = linkKey(a, b);
    const count = (this.cutLinks.get(key) ?? 0) - 1;
    if (count <= 0) this.cutLinks.delete(key);
    else this.cutLinks.set(key, count);
  }

  healAll(): void {
    this.partitions.clear();
    this.cutLinks.clear();
  }

  private send(from: SimNode, send: Send): void {
    const to = this.nodes.find((node) => node.id === send.to);
    if (to === undefined) return;
    this.stats.messagesSent++;
    const messageId = this.nextMessageId++;
    const lossRate = this.networkFaults ? this.params.lossRate : 0;
    const duplicateRate = this.networkFaults ? this.params.duplicateRate : 0;
    if (this.linkCut(from.index, to.index) || this.random.chance(lossRate)) {
      this.stats.messagesDropped++;
      this.stats.messagesLost++;
      return;
    }
    if (this.dropMessage?.(from, to, send.message) === true) {
      this.stats.messagesDropped++;
      return;
    }
    // A duplicated message arrives twice, each copy after its own delay (so maybe re-ordered).
    const copies = this.random.chance(duplicateRate) ? 2 : 1;
    if (copies === 2) this.stats.messagesDuplicated++;
    for (let copy = 0; copy < copies; copy++) {
      const event = {
        type: "deliver" as const,
        from: from.index,
        to: to.index,
        message: send.message,
        messageId,
      };
      this.queue.push(this.time + this.delay(from, to), event);
    }
  }

  /**
   * A pull admitted now, its page read from the store up to pageBuildDelayMs later (writes and
   * pages applied meanwhile are in it) and sent up to as much later again, as the runtime's
   * page worker reads a snapshot and hands the page back to the node's thread. A node that
   * crashed meanwhile never answers: the puller's pull times out.
   */
  private buildPageLater(node: SimNode, from: SimNode, message: PeerMessage): void {
    const machine = node.machine as NonNullable<SimNode["machine"]>;
    let admission: PullAdmission | undefined;
    this.step(node, () => {
      admission = machine.admitPull(from.id, message);
      return admission?.kind === "answer" ? [{ to: from.id, message: admission.message }] : [];
    });
    const admitted = admission;
    if (admitted?.kind !== "build") return;
    const { ticket } = admitted;
    const later = (): number => this.time + this.random.int(0, this.params.pageBuildDelayMs);
    this.at(later(), `page for ${from.id} read`, () => {
      if (node.machine !== machine) return;
      const page = node.readPage(ticket.request);
      this.at(later(), `page for ${from.id} sent`, () => {
        if (node.machine !== machine) return;
        this.step(node, () => [{ to: from.id, message: machine.pageMessage(ticket, page) }]);
      });
    });
  }

  private delay(from: SimNode, to: SimNode): number {
    const { min, max, interSiteExtra } = this.params.messageDelayMs;
    return this.random.int(min, max) + (from.site === to.site ? 0 : interSiteExtra);
  }

  private onDeliver(event: Extract<SimEvent, { type: "deliver" }>): void {
    const to = this.nodes[event.to] as SimNode;
    const from = this.nodes[event.from] as SimNode;
    if (!to.up || this.linkCut(event.from, event.to)) {
      this.stats.messagesDropped++;
      return;
    }
    this.stats.messagesDelivered++;
    const first = this.firstDelivery.get(event.messageId);
    const replica = to.replica as NonNullable<SimNode["replica"]>;
    const usnBefore = replica.usn;
    const machine = to.machine as NonNullable<SimNode["machine"]>;
    if (event.message.kind === "pull" && this.params.pageBuildDelayMs > 0) {
      this.buildPageLater(to, from, event.message);
      return;
    }
    this.step(to, () => machine.receive(from.id, event.message));
    if (event.message.kind !== "page" || !to.up) return;
    this.onPageDelivered?.(from, to, event.message.page);
    if (first === undefined) {
      this.firstDelivery.set(event.messageId, { epoch: to.epoch });
      return;
    }
    this.firstDelivery.delete(event.messageId);
    this.stats.invariantChecks++;
    // Applying the same page again must change nothing, unless a purge or a restore (which
    // move the node's epoch) removed what the first copy brought.
    if (first.epoch === to.epoch && replica.usn !== usnBefore) {
      this.violate("idempotence", `${to.id} changed state applying a second copy of a page from ${from.id}`);
    }
  }
}

function linkKey(a: number, b: number): string {
  return a < b ? `${a}-${b}` : `${b}-${a}`;
}
