import type { Guid } from "../core/ids.ts";
import type { ChangePage } from "../core/replication/page.ts";
import type { SimNode } from "./node.ts";
import { dataPartition, recordWrite } from "./workload.ts";
import type { World } from "./world.ts";

/** Probe writes: the first brings every watermark up to date, the second is measured. */
const probesCount = 2;
/** Probes of each loss per seed, each from another origin (a planted bug shows in few triangles). */
const triangleProbesMax = 3;
/** A pull interval no probe outlasts (the liveness bound is minutes; probes take seconds). */
const putOffIntervalMs = 10 * 60_000;
/** Simulated time for the wakes that land on the same millisecond as an arrival. */
const slackPerHopMs = 1;
/**
 * Before each probe, every partner link must have had a successful pull cycle since its last
 * failure: a link still backing off from the faults pulls on its retry schedule, not when told.
 */
const settleMsMax = 30_000;
const settleStepMs = 100;
/** A node's wake comes at least a millisecond after what woke it (World.scheduleWake). */
const wakeDelayMs = 1;

/**
 * After a converged run, with every fault healed and the network reliable: a write on one node
 * must reach every node within the time a chain of notifications takes along the shortest
 * partner path. The measured write comes after a quiet notification window, so no node on the
 * way batches it (a change after a quiet window is announced at once): each hop may take the
 * notification's trip, the end of a pull already under way (its request and answer) and a new
 * pull (request and answer): five trips at the longest message delay, and the building of both
 * pulls' pages. Convergence alone would not notice a change left waiting for a periodic pull, a
 * deferred relay or a batching window (the liveness bound is minutes); this does.
 * Skipped when a node is down or quarantined (it may not serve pulls), as after a long downtime.
 */
export function probeNotifications(world: World): void {
  if (world.nodes.some((node) => !node.up || node.replica?.isQuarantined() === true)) return;
  const origin = world.nodes[world.params.seed % world.nodes.length] as SimNode;
  const hops = hopsFrom(world, origin.index);
  for (let probe = 1; probe <= probesCount; probe++) {
    if (!settle(world)) {
      world.trace.note(world.time, "probe skipped: a partner link still fails after the heal");
      return;
    }
    if (probe === probesCount) quietWindow(world);
    const measured = measure(world, origin, hops, String(probe));
    if (probe < probesCount || measured === undefined) continue;
    checkAnnouncedAtOnce(world, origin, measured.notified);
    const { arrivals } = measured;
    for (const node of world.nodes) {
      const hop = hops[node.index] ?? -1;
      if (hop < 0) continue;
      const bound = hop * quietHopBoundMs(world);
      const arrival = arrivals.get(node.index);
      checkArrival(world, `a write on ${origin.id} reached ${node.id} (${hop} hops away)`, arrival, bound);
    }
  }
}

/**
 * The same after a lost notification: the origin's notifications to one partner that also
 * hears of the write through another partner (a triangle of links) are dropped. That partner
 * must still get the write within two hops plus twice the relay pull delay: the other
 * partner's relayed notification may be held back for up to the delay (a relay lease: the
 * partner said it hears the origin directly), and the partner then puts off the pull it asks
 * for by as much again. A relayed notification dropped rather than held back would leave the
 * write to a periodic pull, a minute later.
 */
export function probeLostNotifications(world: World): void {
  probeTriangles(world, "notifications", world.params.seed + 1);
}

/**
 * The same when the link between the origin and that partner fails outright as the write is
 * made (every message between them lost, both ways): the partner hears of the write only from
 * the relay, naming the origin, whose link still looked sound, so it tries the origin first.
 * It must still get the write within two hops, twice the relay pull delay (as above) and one
 * pull timeout (its pull from the origin going unanswered): a node that waits for the origin
 * and never falls back on the relay would leave the write to a periodic pull.
 */
export function probeLostLinks(world: World): void {
  probeTriangles(world, "link", world.params.seed + 2);
}

/** What a triangle probe loses between the origin and the target. */
type Loss = "notifications" | "link";

/** Up to triangleProbesMax probes of `loss`, from origins with a triangle, starting at `first`. */
function probeTriangles(world: World, loss: Loss, first: number): void {
  if (world.nodes.some((node) => !node.up || node.replica?.isQuarantined() === true)) return;
  let probes = 0;
  for (let step = 0; step < world.nodes.length && probes < triangleProbesMax; step++) {
    const origin = world.nodes[(first + step) % world.nodes.length] as SimNode;
    const found = triangle(world, origin);
    if (found === undefined) continue;
    if (!probeTriangle(world, loss, origin, found, probes)) return;
    probes++;
  }
}

/** One probe of `loss` from `origin`; false when the world did not settle for it. */
function probeTriangle(
  world: World,
  loss: Loss,
  origin: SimNode,
  { target, relay }: { readonly target: number; readonly relay: number },
  serial: number,
): boolean {
  if (!settle(world)) {
    world.trace.note(world.time, `lost-${loss} probe skipped: a partner link still fails`);
    return false;
  }
  const targetNode = world.nodes[target] as SimNode;
  const relayNode = world.nodes[relay] as SimNode;
  // A periodic pull would bring the write whatever the target does about the loss (and the
  // simulated intervals are short): for the probe the target pulls the origin and the relay on
  // a long interval, starting with a cycle from each now, so only its answer to the loss can.
  const restore = putOffPeriodicPulls(world, targetNode, [origin, relayNode]);
  pullCycle(world, targetNode, origin);
  // The last pull names the origin as heard directly: the relay holds back its relayed
  // notification (a relay lease), the case a loss costs most in.
  pullFromRelay(world, relayNode, targetNode);
  const relayDelays = 2 * perHopBoundMs(world) + 2 * world.params.relayPullDelayMs;
  const bound = loss === "link" ? relayDelays + world.params.pullTimeoutMs : relayDelays;
  world.dropMessage =
    loss === "link"
      ? (from, to) => (from === origin && to === targetNode) || (from === targetNode && to === origin)
      : (from, to, message) => from === origin && to === targetNode && message.kind === "notify";
  const measured = measure(world, origin, hopsFrom(world, origin.index), `lost-${loss}-${serial}`, bound);
  world.dropMessage = null;
  restore();
  if (measured === undefined) return true;
  const arrival = measured.arrivals.get(target);
  world.trace.note(
    world.time,
    `lost-${loss} probe ${origin.id} -> ${targetNode.id} via ${relayNode.id}: arrived after ${arrival} ms, bound ${bound} ms`,
  );
  const lost = loss === "link" ? `its link to ${origin.id}` : `its notifications from ${origin.id}`;
  checkArrival(world, `with ${lost} lost, a write on ${origin.id} reached ${targetNode.id}`, arrival, bound);
  return true;
}

/** A probe write that reached a node after `arrival` ms (undefined: never) within `boundMs`. */
function checkArrival(world: World, what: string, arrival: number | undefined, boundMs: number): void {
  world.stats.invariantChecks++;
  if (arrival !== undefined && arrival <= boundMs) return;
  world.violate(
    "notification-latency",
    `${what} ${arrival === undefined ? "not at all" : `after ${arrival} ms`}, more than ${boundMs} ms`,
  );
}

/**
 * Has `node` pull `partners` on a long interval until the returned function is called; that
 * puts the plan's intervals back and has `node` pull them at once, back on their schedule.
 */
function putOffPeriodicPulls(world: World, node: SimNode, partners: readonly SimNode[]): () => void {
  const machine = node.machine;
  if (machine === null) return () => {};
  const planned = world.config(node);
  const names = new Set(partners.map((partner) => partner.id));
  machine.reconfigure({
    ...planned,
    inbound: planned.inbound.map((inbound) =>
      names.has(inbound.node) ? { ...inbound, pullIntervalMs: putOffIntervalMs } : inbound,
    ),
  });
  return () => {
    if (node.machine !== machine) return;
    machine.reconfigure(planned);
    for (const partner of partners) world.step(node, () => machine.receive(partner.id, { kind: "notify" }));
  };
}

/** Has `node` pull a whole cycle from `partner` now (told to, as by a notification), and waits for it. */
function pullCycle(world: World, node: SimNode, partner: SimNode): void {
  const machine = node.machine;
  if (machine === null) return;
  world.step(node, () => machine.receive(partner.id, { kind: "notify" }));
  runUntilPage(world, (from, to, page) => from === partner && to === node && !page.more);
}

/** Runs, a millisecond at a time, until a delivered page matches `wanted`, at most a hop's bound. */
function runUntilPage(world: World, wanted: (from: SimNode, to: SimNode, page: ChangePage) => boolean): void {
  let done = false;
  const previous = world.onPageDelivered;
  world.onPageDelivered = (from, to, page) => {
    previous?.(from, to, page);
    if (wanted(from, to, page as ChangePage)) done = true;
  };
  const deadline = world.time + perHopBoundMs(world);
  for (let time = world.time + 1; !done && time <= deadline; time++) if (!world.runUntil(time)) break;
  world.onPageDelivered = previous;
}

/** A partner of `origin` (the target) that has another partner of `origin` (the relay) as its partner. */
function triangle(world: World, origin: SimNode): { target: number; relay: number } | undefined {
  const near = new Set(world.partnersOf(origin.index));
  const relayOf = (node: number) =>
    world.partnersOf(node).find((other) => other !== origin.index && near.has(other));
  for (const target of near) {
    const relay = relayOf(target);
    if (relay !== undefined) return { target, relay };
  }
  return undefined;
}

/**
 * Writes probe `serial` on `origin` and runs past `boundMs` (by default the chain of
 * notifications along the longest shortest path); returns when each node received it (ms
 * after the write).
 */
/**
 * The origin wrote after a quiet window: it must announce the write at its next wake, not at
 * the end of a batching window.
 */
function checkAnnouncedAtOnce(world: World, origin: SimNode, notified: ReadonlyMap<number, number>): void {
  if (world.partnersOf(origin.index).length === 0) return;
  world.stats.invariantChecks++;
  const after = notified.get(origin.index);
  if (after === undefined || after > wakeDelayMs) {
    world.violate(
      "notification-latency",
      `a write on ${origin.id} after a quiet window was announced ` +
        `${after === undefined ? "not at all" : `after ${after} ms`}, not at once`,
    );
  }
}

interface Measured {
  /** Per node, when the probe write arrived (ms after it was made). */
  readonly arrivals: Map<number, number>;
  /** Per node, when it first sent a notification after the write (ms after it was made). */
  readonly notified: Map<number, number>;
}

function measure(
  world: World,
  origin: SimNode,
  hops: readonly number[],
  name: string,
  boundMs = Math.max(...hops) * perHopBoundMs(world),
): Measured | undefined {
  const dn = `cn=notification-probe-${name},${dataPartition}`;
  const guid = probeWrite(world, origin, dn);
  world.trace.note(world.time, `probe ${dn} on ${origin.id}: ${guid ?? "refused"}`);
  if (guid === undefined) return undefined;
  const written = world.time;
  const arrivals = new Map<number, number>([[origin.index, 0]]);
  const notified = new Map<number, number>();
  const previous = world.onPageDelivered;
  world.onPageDelivered = (from, to, page) => {
    previous?.(from, to, page);
    if (!arrivals.has(to.index) && (page as ChangePage).entries.some((entry) => entry.guid === guid))
      arrivals.set(to.index, world.time - written);
  };
  // Sends are watched (and still dropped as the caller asks).
  const drop = world.dropMessage;
  world.dropMessage = (from, to, message) => {
    if (message.kind === "notify" && !notified.has(from.index))
      notified.set(from.index, world.time - written);
    return drop?.(from, to, message) ?? false;
  };
  // Past the bound, and long enough for deferred relay pulls to finish before the next probe.
  world.runUntil(written + boundMs + world.params.relayPullDelayMs + 1);
  world.onPageDelivered = previous;
  world.dropMessage = drop;
  return { arrivals, notified };
}

/**
 * A write on `relay`, and time until `target` pulled it: that pull said which nodes the target
 * hears directly, so the relay holds back, for the relay pull delay, notifications of changes
 * from those nodes only (a relay lease). The probe write that follows reaches the relay under
 * that lease when the delay is long against the messages': its relayed notification is held
 * back, not sent, the case a lost direct notification costs most in.
 */
function pullFromRelay(world: World, relay: SimNode, target: SimNode): void {
  const guid = probeWrite(world, relay, `cn=relay-lease-probe,${dataPartition}`);
  if (guid === undefined) return;
  runUntilPage(
    world,
    (from, to, page) => from === relay && to === target && page.entries.some((entry) => entry.guid === guid),
  );
}

/** Adds `dn` on `node` (recorded like any acknowledged write); its GUID, or undefined if refused. */
function probeWrite(world: World, node: SimNode, dn: string): Guid | undefined {
  const machine = node.machine;
  if (machine === null) return undefined;
  let guid: Guid | undefined;
  world.step(node, () => {
    const [result] = machine.write([
      { op: "add", dn, attributes: { objectClass: ["person"], sn: ["probe"] } },
    ]);
    if (result?.ok === true && result.value.entries > 0) {
      guid = result.value.guid;
      recordWrite(world, node, "probe", guid, result.value.usn);
    }
    return [];
  });
  return guid;
}

/** Runs until no node counts a failure against any partner; false if that takes too long. */
function settle(world: World): boolean {
  const healthy = () =>
    world.nodes.every((node) =>
      (node.machine?.partnerStatus() ?? []).every((status) => status.consecutiveFailures === 0),
    );
  const deadline = world.time + settleMsMax;
  for (let time = world.time; !healthy(); time += settleStepMs) {
    if (time > deadline || !world.runUntil(time)) return false;
  }
  return true;
}

/** Lets a whole notification window pass with nothing written: the next change goes at once. */
function quietWindow(world: World): void {
  world.runUntil(world.time + world.params.notifyDelayMs + 1);
}

/** Per hop, for a change that may wait for a batching window (a node notified just before). */
function perHopBoundMs(world: World): number {
  return world.params.notifyDelayMs + quietHopBoundMs(world);
}

/** Per hop, for a change after a quiet window: no batching delay. */
function quietHopBoundMs(world: World): number {
  const { max, interSiteExtra } = world.params.messageDelayMs;
  // Both pulls' pages may each wait to be read and then to be sent (pageBuildDelayMs each).
  const builds = 4 * world.params.pageBuildDelayMs;
  return 5 * (max + interSiteExtra) + builds + slackPerHopMs;
}

/** Hops from `origin` to every node over partner links; -1 for nodes it cannot reach. */
function hopsFrom(world: World, origin: number): number[] {
  const hops = world.nodes.map(() => -1);
  hops[origin] = 0;
  const queue = [origin];
  for (let at = 0; at < queue.length; at++) {
    const node = queue[at] as number;
    for (const partner of world.partnersOf(node)) {
      if (hops[partner] !== -1) continue;
      hops[partner] = (hops[node] as number) + 1;
      queue.push(partner);
    }
  }
  return hops;
}
