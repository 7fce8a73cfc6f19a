import { compareStamps } from "../core/replication/stamp.ts";
import { utdCovers } from "../core/replication/utd.ts";
import { Ledger } from "./ledger.ts";
import type { SimNode } from "./node.ts";
import type { World } from "./world.ts";

/**
 * The fault schedule of the safety phase: crashes (some in the middle of applying a page),
 * partitions (a random cut, one node, one site), swizzle-clogging, clock skew, drift and jumps,
 * restores from an older snapshot, and one node down for longer than the tombstone lifetime.
 * Partitions stay shorter than the tombstone lifetime: a longer one is the long-downtime case,
 * which strict mode exists for.
 */
export class Faults {
  injected = 0;
  /** The node kept down past the tombstone lifetime, and when it comes back. */
  longDown: { node: SimNode; until: number } | null = null;

  /** Set once the run is over: faults still scheduled then strike no more. */
  private stopped = false;

  constructor(private readonly world: World) {}

  /** Faults scheduled for later do nothing from now on (the run's checks are done). */
  stop(): void {
    this.stopped = true;
  }

  schedule(until: number): void {
    const { faults } = this.world.params;
    const random = this.world.random;
    for (let index = 0; index < faults.crashes; index++) {
      this.at(random.int(0, until), () => this.crash(random.chance(faults.midApplyShare)));
    }
    for (let index = 0; index < faults.partitions; index++)
      this.at(random.int(0, until), () => this.partition());
    for (let index = 0; index < faults.swizzles; index++) this.at(random.int(0, until), () => this.swizzle());
    for (let index = 0; index < faults.clockEvents; index++)
      this.at(random.int(0, until), () => this.clock());
    for (let index = 0; index < faults.restores; index++) {
      const taken = random.int(0, Math.max(0, until - 5_000));
      this.at(taken, () => this.snapshotThenRestore(random.int(2_000, 30_000)));
    }
    if (faults.longDowntime) this.at(random.int(0, Math.floor(until / 3)), () => this.downPastLifetime());
  }

  private at(time: number, run: () => void): void {
    this.world.at(time, "fault", () => {
      if (this.stopped) return;
      this.injected++;
      this.world.stats.faults++;
      run();
    });
  }

  private upNode(): SimNode | undefined {
    const up = this.world.nodes.filter((node) => node.up && node !== this.longDown?.node);
    return up.length === 0 ? undefined : this.world.random.pick(up);
  }

  private crash(midApply: boolean): void {
    const node = this.upNode();
    if (node === undefined) return;
    const random = this.world.random;
    if (midApply) {
      // The next writes strike after a few rows: usually in the middle of applying a page.
      node.armCrash(random.int(1, 12));
      this.world.trace.note(this.world.time, `${node.id} will crash mid-write`);
      return;
    }
    this.world.crash(node, random.int(100, 20_000));
  }

  private partition(): void {
    const random = this.world.random;
    const nodes = this.world.nodes;
    const shape = random.pick(["cut", "node", "site"] as const);
    let side: Set<number>;
    if (shape === "node") side = new Set([random.int(0, nodes.length - 1)]);
    else if (shape === "site") {
      const site = random.int(0, this.world.params.sites - 1);
      side = new Set(nodes.filter((node) => node.site === site).map((node) => node.index));
    } else side = new Set(nodes.filter(() => random.chance(0.5)).map((node) => node.index));
    const durationMs = random.int(1_000, Math.min(60_000, this.world.params.tombstoneLifetimeMs / 3));
    const id = this.world.partition(side);
    this.world.trace.note(
      this.world.time,
      `partition (${shape}) {${[...side].join(",")}} for ${durationMs} ms`,
    );
    this.world.at(this.world.time + durationMs, `partition ${id} heals`, () => this.world.heal(id));
  }

  /** Cut partner links one by one, then restore them in a random order (FoundationDB's swizzle). */
  private swizzle(): void {
    const random = this.world.random;
    const edges = this.world.params.edges.filter(() => random.chance(0.5));
    let time = this.world.time;
    for (const [a, b] of edges) {
      time += random.int(100, 2_000);
      this.world.at(time, `swizzle cuts ${a}-${b}`, () => {
        if (this.stopped) return;
        // Each cut link is a fault of its own; the swizzle event itself counted once already.
        this.injected++;
        this.world.stats.faults++;
        this.world.cutLink(a, b);
      });
    }
    const order = [...edges].sort(() => random.float() - 0.5);
    for (const [a, b] of order) {
      time += random.int(100, 3_000);
      this.world.at(time, `swizzle restores ${a}-${b}`, () => this.world.restoreLink(a, b));
    }
  }

  private clock(): void {
    const node = this.world.random.pick(this.world.nodes);
    const { maxSkewMs } = this.world.params;
    node.clock.offsetMs = this.world.random.int(-maxSkewMs, maxSkewMs);
    node.clock.driftPpm = this.world.random.int(-500, 500);
    this.world.trace.note(
      this.world.time,
      `${node.id} clock offset ${node.clock.offsetMs} ms, drift ${node.clock.driftPpm} ppm`,
    );
  }

  private snapshotThenRestore(afterMs: number): void {
    const node = this.upNode();
    if (node === undefined) return;
    const snapshot = node.snapshot();
    this.world.trace.note(this.world.time, `${node.id} snapshot at USN ${node.replica?.usn}`);
    this.world.at(this.world.time + afterMs, `${node.id} restored from its snapshot`, () => {
      if (this.stopped) return;
      this.world.crash(node, null);
      node.restoreFrom(snapshot);
      this.excuseLostWrites();
      this.world.restart(node, true);
    });
  }

  /**
   * A restore to an older backup loses the writes that only the restored node held: the
   * backup is older. After each restore, every acknowledged write that no node holds any more
   * (up or down: a down node's disk still counts) is excused, and only those.
   */
  private excuseLostWrites(): void {
    const ledger = this.world.ledger;
    for (const write of ledger.writes) {
      const key = Ledger.key(write.invocation, write.usn);
      if (ledger.excused.has(key)) continue;
      if (!this.world.nodes.some((node) => holds(node, write))) ledger.excused.add(key);
    }
  }

  /**
   * Only a node whose absence leaves the others connected: a partition of the rest for longer
   * than the tombstone lifetime is beyond what tombstones can bridge (a replica cut off from
   * all others that long purges its own deletions before anyone has them — as in Active
   * Directory), and until the topology routes around dead partners the graph is fixed.
   */
  private othersStayConnected(removed: number): boolean {
    const others = this.world.nodes.map((node) => node.index).filter((index) => index !== removed);
    const first = others[0];
    if (first === undefined) return false;
    const reached = new Set([first]);
    const stack = [first];
    for (let current = stack.pop(); current !== undefined; current = stack.pop()) {
      for (const [a, b] of this.world.params.edges) {
        const next = a === current ? b : b === current ? a : undefined;
        if (next === undefined || next === removed || reached.has(next)) continue;
        reached.add(next);
        stack.push(next);
      }
    }
    return reached.size === others.length;
  }

  private downPastLifetime(): void {
    const candidates = this.world.nodes.filter((node) => node.up && this.othersStayConnected(node.index));
    if (candidates.length === 0) return;
    const node = this.world.random.pick(candidates);
    // Strict mode measures the absence on the node's own clock, so the downtime must exceed the
    // lifetime even after the worst clock change (the skew range, twice).
    const { tombstoneLifetimeMs, maxSkewMs } = this.world.params;
    const until =
      this.world.time + tombstoneLifetimeMs + 2 * maxSkewMs + this.world.random.int(10_000, 60_000);
    this.longDown = { node, until };
    this.world.crash(node, null);
    this.world.trace.note(this.world.time, `${node.id} down past the tombstone lifetime, until ${until}`);
    this.world.at(until, `${node.id} back after the tombstone lifetime`, () => {
      this.longDown = null;
      this.world.restart(node, false);
      this.world.trace.note(
        this.world.time,
        `${node.id} quarantined on return: ${node.replica?.isQuarantined()}`,
      );
    });
  }
}

/** Whether a node's store holds a write: its UTD covers it, or every item it wrote is there or beaten. */
export function holds(node: SimNode, write: World["ledger"]["writes"][number]): boolean {
  const stored = node.sqlite.readMeta();
  if (stored === undefined) return false;
  if (
    utdCovers(node.sqlite.readUtd(), write) ||
    (stored.invocation === write.invocation && stored.usn >= write.usn)
  ) {
    return true;
  }
  return write.items.every((item) => {
    const found = node.sqlite.getItem(write.guid, item.attribute, item.key);
    return found !== undefined && compareStamps(found.stamp, item.stamp) >= 0;
  });
}
