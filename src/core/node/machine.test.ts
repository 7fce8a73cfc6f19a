import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { makeDirectory, type TestReplica } from "../../../test/support/replicas.ts";
import { type Canaries, noCanaries } from "../canaries.ts";
import { configPartition } from "../directory/partition.ts";
import type { NodeId } from "../ids.ts";
import { unwrap } from "../result.ts";
import {
  type NodeConfig,
  NodeMachine,
  nodeConfigDefaults,
  recentPullerNotifyMs,
  type Send,
} from "./machine.ts";
import type { PeerMessage } from "./messages.ts";

/**
 * The node state machine on its own: a hand-driven clock and a test that plays the network,
 * so every decision (pull, retry, back-off, notify, answer) can be watched one step at a time.
 */
class Harness {
  time = 0;
  readonly machines = new Map<NodeId, NodeMachine>();

  constructor(
    replicas: readonly TestReplica[],
    overrides: Partial<NodeConfig> = {},
    canaries: Canaries = noCanaries,
  ) {
    const names = replicas.map((replica) => replica.name);
    for (const replica of replicas) {
      const others = names.filter((name) => name !== replica.name);
      const config: NodeConfig = {
        ...nodeConfigDefaults,
        inbound: others.map((node) => ({ node, pullIntervalMs: 5_000 })),
        outbound: others,
        replicaSet: names,
        ...overrides,
      };
      this.machines.set(
        replica.name,
        new NodeMachine(replica.replica, { now: () => this.time }, config, canaries),
      );
    }
  }

  machine(name: NodeId): NodeMachine {
    const machine = this.machines.get(name);
    assert.ok(machine !== undefined);
    return machine;
  }

  /** Delivers messages (and the answers they cause) until the network is quiet. */
  deliver(from: NodeId, sends: readonly Send[], dropKinds: readonly string[] = []): number {
    const queue = sends.map((send) => ({ from, send }));
    let delivered = 0;
    for (let guard = 0; queue.length > 0 && guard < 10_000; guard++) {
      const next = queue.shift();
      if (next === undefined || dropKinds.includes(next.send.message.kind)) continue;
      delivered++;
      const answers = this.machine(next.send.to).receive(next.from, next.send.message);
      for (const send of answers) queue.push({ from: next.send.to, send });
    }
    return delivered;
  }

  tickAll(): void {
    for (const [name, machine] of this.machines) this.deliver(name, machine.tick());
  }
}

function pair(): { a: TestReplica; b: TestReplica } {
  const [a, b] = makeDirectory(["node-a", "node-b"]);
  assert.ok(a !== undefined && b !== undefined);
  return { a, b };
}

/**
 * Three nodes that all pull from each other, ticked until the partition has reached every one
 * and the relayed notifications of its arrival (put off by relayPullDelayMs) have been pulled.
 */
function settledTrio(
  overrides: Partial<NodeConfig>,
  canaries: Canaries = noCanaries,
): {
  a: TestReplica;
  b: TestReplica;
  c: TestReplica;
  harness: Harness;
} {
  const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
  assert.ok(a !== undefined && b !== undefined && c !== undefined);
  const harness = new Harness([a, b, c], overrides, canaries);
  for (const time of [0, 1_000, 2_000]) {
    harness.time = time;
    harness.tickAll();
  }
  return { a, b, c, harness };
}

/** a adds cn=`cn`; after the notify delay only b hears of it, and pulls it; 20 ms pass again. */
function writtenOnAPulledByB(harness: Harness, a: TestReplica, b: TestReplica, cn: string): void {
  harness
    .machine(a.name)
    .write([{ op: "add", dn: `cn=${cn},dc=example,dc=com`, attributes: { objectClass: ["person"] } }]);
  harness.time += 20;
  harness.deliver(
    a.name,
    harness
      .machine(a.name)
      .tick()
      .filter((send) => send.to === b.name),
  );
  harness.time += 20;
}

describe("node state machine", () => {
  it("pulls from every partner at once, then waits for the interval", () => {
    const { a, b } = pair();
    const harness = new Harness([a, b]);
    harness.tickAll();
    assert.ok(b.replica.get("dc=example,dc=com").ok, "b pulled the partition from a");
    // What b received, b passes on: the first change after a quiet window, at once.
    assert.equal(harness.machine(b.name).nextWakeAt(), 0);
    harness.tickAll();
    assert.equal(harness.machine(b.name).nextWakeAt(), 5_000);
    assert.deepEqual(harness.machine(b.name).tick(), [], "nothing is due before the interval");
  });

  it("a write after a quiet window notifies at once, later ones in the window at its end; partners pull at once", () => {
    const { a, b } = pair();
    const harness = new Harness([a, b], { notifyDelayMs: 20 });
    harness.tickAll();
    harness.time = 100;
    const add = (cn: string) =>
      harness
        .machine(a.name)
        .write([{ op: "add", dn: `cn=${cn},dc=example,dc=com`, attributes: { objectClass: ["person"] } }]);
    assert.ok(add("x")[0]?.ok);
    assert.equal(harness.machine(a.name).nextWakeAt(), 100, "nothing to batch it with: at once");
    const first = harness.machine(a.name).tick();
    assert.deepEqual(
      first.map((send) => send.message.kind),
      ["notify"],
    );
    harness.deliver(a.name, first);
    assert.ok(b.replica.get("cn=x,dc=example,dc=com").ok);
    // Two more writes within the window that the notification began share its end.
    harness.time = 105;
    assert.ok(add("y")[0]?.ok);
    harness.time = 112;
    assert.ok(add("z")[0]?.ok);
    assert.equal(harness.machine(a.name).nextWakeAt(), 120);
    assert.deepEqual(harness.machine(a.name).tick(), [], "not before the window ends");
    harness.time = 120;
    const second = harness.machine(a.name).tick();
    assert.equal(second.length, 1, "one notification for both");
    harness.deliver(a.name, second);
    assert.ok(b.replica.get("cn=y,dc=example,dc=com").ok && b.replica.get("cn=z,dc=example,dc=com").ok);
    // A write after the window is quiet again goes at once.
    harness.time = 200;
    assert.ok(add("w")[0]?.ok);
    assert.equal(harness.machine(a.name).nextWakeAt(), 200);
  });

  it("a lost answer times out, is counted as a failure, and backs off exponentially", () => {
    const { a, b } = pair();
    const harness = new Harness([a, b], { pullTimeoutMs: 1_000, retryBackoffBaseMs: 500 });
    const pulls = harness
      .machine(b.name)
      .tick()
      .filter((send) => send.message.kind === "pull");
    assert.equal(pulls.length, 1);
    harness.time = 1_000;
    harness.machine(b.name).tick();
    let status = harness.machine(b.name).partnerStatus()[0];
    assert.equal(status?.consecutiveFailures, 1);
    assert.equal(status?.lastFailure, "timed out");
    assert.equal(harness.machine(b.name).nextWakeAt(), 1_500);
    harness.time = 1_500;
    harness.machine(b.name).tick(); // retry, lost again
    harness.time = 2_500;
    harness.machine(b.name).tick();
    status = harness.machine(b.name).partnerStatus()[0];
    assert.equal(status?.consecutiveFailures, 2);
    assert.equal(harness.machine(b.name).nextWakeAt(), 3_500, "second back-off is twice the first");
  });

  it("a refused pull and an unreachable partner are failures with their reason", () => {
    const { a, b } = pair();
    const harness = new Harness([a, b]);
    const [pull] = harness.machine(b.name).tick();
    assert.ok(pull !== undefined && pull.message.kind === "pull");
    harness
      .machine(b.name)
      .receive(a.name, { kind: "refused", id: pull.message.id, code: "quarantined", message: "busy" });
    assert.equal(harness.machine(b.name).partnerStatus()[0]?.lastFailure, "quarantined: busy");
    harness.time = 10_000;
    const [again] = harness.machine(b.name).tick();
    assert.ok(again !== undefined);
    harness.machine(b.name).undeliverable(a.name, again.message);
    assert.equal(harness.machine(b.name).partnerStatus()[0]?.lastFailure, "unreachable");
  });

  it("reconfigure with a shorter interval pulls on the new interval, not the old one", () => {
    const { a, b } = pair();
    const config = (pullIntervalMs: number): NodeConfig => ({
      ...nodeConfigDefaults,
      inbound: [{ node: a.name, pullIntervalMs }],
      outbound: [],
      replicaSet: [a.name, b.name],
    });
    let time = 0;
    const minute = 60_000;
    const machine = new NodeMachine(b.replica, { now: () => time }, config(15 * minute));
    const [pull] = machine.tick();
    assert.ok(pull !== undefined && pull.message.kind === "pull");
    const page = a.replica.getChanges(pull.message.request);
    assert.ok(page.ok);
    machine.receive(a.name, { kind: "page", id: pull.message.id, page: page.value });
    assert.equal(machine.nextWakeAt(), 15 * minute, "the next pull a whole interval after the cycle");
    time = 10_000;
    // An operator sets the link's interval from 15 minutes to 1.
    machine.reconfigure(config(minute));
    assert.equal(machine.nextWakeAt(), minute, "one new interval after the last cycle");
    machine.reconfigure(config(30 * minute));
    assert.equal(machine.nextWakeAt(), minute, "a longer one waits for the pull already due");
    time = 2 * minute;
    machine.reconfigure(config(minute));
    assert.deepEqual(
      machine.tick().map((send) => send.to),
      [a.name],
      "a pull the new interval made overdue goes at once",
    );
  });

  it("counts every page it does not apply, a late one too, but fails the partner only for its pull's own", () => {
    const { a, b } = pair();
    let time = 0;
    const machine = new NodeMachine(
      b.replica,
      { now: () => time },
      {
        ...nodeConfigDefaults,
        inbound: [{ node: a.name, pullIntervalMs: 5_000 }],
        outbound: [],
        replicaSet: [a.name, b.name],
      },
    );
    const [pull] = machine.tick();
    assert.ok(pull !== undefined && pull.message.kind === "pull");
    const page = a.replica.getChanges(pull.message.request);
    assert.ok(page.ok);
    const broken = { ...page.value, entries: "not a list" };
    // The pull timed out; its page arrives afterwards, and does not pass the checks.
    machine.undeliverable(a.name, pull.message);
    time = 100;
    machine.receive(a.name, { kind: "page", id: pull.message.id, page: broken });
    assert.equal(machine.rejectedPageCount, 1, "the late page was not applied");
    assert.equal(
      machine.partnerStatus()[0]?.consecutiveFailures,
      1,
      "its pull had failed already: not twice",
    );
    time = 10_000;
    const [again] = machine.tick();
    assert.ok(again !== undefined && again.message.kind === "pull");
    machine.receive(a.name, { kind: "page", id: again.message.id, page: broken });
    assert.equal(machine.rejectedPageCount, 2);
    assert.equal(machine.partnerStatus()[0]?.consecutiveFailures, 2, "the pull's own page failed it");
  });

  it("takes a page only from the source it names, and serves a pull only to its own destination", () => {
    const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    const machine = new NodeMachine(
      b.replica,
      { now: () => 0 },
      {
        ...nodeConfigDefaults,
        inbound: [
          { node: a.name, pullIntervalMs: 5_000 },
          { node: c.name, pullIntervalMs: 5_000 },
        ],
        outbound: [a.name, c.name],
        replicaSet: [a.name, b.name, c.name],
      },
    );
    const pulls = machine.tick();
    const toC = pulls.find((send) => send.to === c.name);
    assert.ok(toC !== undefined && toC.message.kind === "pull");
    // c answers its pull with a page that a made and that names a: it would move a's watermark.
    const page = a.replica.getChanges({ ...toC.message.request });
    assert.ok(page.ok);
    machine.receive(c.name, { kind: "page", id: toC.message.id, page: page.value });
    assert.equal(machine.rejectedPageCount, 1);
    const cStatus = machine.partnerStatus().find((status) => status.partner === c.name);
    assert.equal(cStatus?.consecutiveFailures, 1);
    assert.match(cStatus?.lastFailure ?? "", /names node-a as its source/);
    // c asks for changes in a's name: refused, not served (a's UTD would be recorded from it).
    const request = a.replica.changeRequest(b.name, {});
    const [answer] = machine.receive(c.name, { kind: "pull", id: 7, request });
    assert.equal(answer?.message.kind, "refused");
    assert.match(
      answer?.message.kind === "refused" ? answer.message.message : "",
      /names node-a as its destination/,
    );
  });

  it("reconfigure keeps a staying partner's failures and in-flight pull, and pulls a new one at once", () => {
    const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    const config = (inbound: NodeId[]): NodeConfig => ({
      ...nodeConfigDefaults,
      inbound: inbound.map((node) => ({ node, pullIntervalMs: 5_000 })),
      outbound: [],
      replicaSet: [a.name, b.name, c.name],
    });
    let time = 0;
    const machine = new NodeMachine(b.replica, { now: () => time }, config([a.name]));
    const [first] = machine.tick();
    assert.ok(first !== undefined && first.message.kind === "pull");
    machine.undeliverable(a.name, first.message);
    time = 100;
    machine.reconfigure(config([a.name, c.name]));
    const sends = machine.tick();
    assert.deepEqual(
      sends.map((send) => send.to),
      [c.name],
      "the new partner is pulled at once; the failing one stays on its back-off",
    );
    assert.equal(machine.partnerStatus().find((status) => status.partner === a.name)?.consecutiveFailures, 1);
    machine.reconfigure(config([a.name]));
    assert.deepEqual(
      machine.partnerStatus().map((status) => status.partner),
      [a.name],
    );
    const [late] = sends;
    assert.ok(late !== undefined && late.message.kind === "pull");
    const page = c.replica.getChanges(late.message.request);
    assert.ok(page.ok);
    assert.deepEqual(
      machine.receive(c.name, { kind: "page", id: late.message.id, page: page.value }),
      [],
      "a removed partner's late page drives nothing",
    );
  });

  it("batches ordinary changes within the window, announces urgent ones at once, passed on at once", () => {
    const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    // A line: a notifies b, b notifies c; each pulls from its left neighbour.
    const line = (outbound: NodeId[], inbound: NodeId[]): NodeConfig => ({
      ...nodeConfigDefaults,
      notifyDelayMs: 20,
      inbound: inbound.map((node) => ({ node, pullIntervalMs: 60_000 })),
      outbound,
      replicaSet: [a.name, b.name, c.name],
    });
    const harness = new Harness([]);
    harness.machines.set(a.name, new NodeMachine(a.replica, { now: () => harness.time }, line([b.name], [])));
    harness.machines.set(
      b.name,
      new NodeMachine(b.replica, { now: () => harness.time }, line([c.name], [a.name])),
    );
    harness.machines.set(c.name, new NodeMachine(c.replica, { now: () => harness.time }, line([], [b.name])));
    harness.tickAll();
    harness.time = 1_000;
    harness.tickAll();
    const dn = "cn=u,dc=example,dc=com";
    const notified = (name: NodeId) =>
      harness
        .machine(name)
        .tick()
        .filter((send) => send.message.kind === "notify");
    harness.machine(a.name).write([{ op: "add", dn, attributes: { objectClass: ["person"], sn: ["u"] } }]);
    assert.equal(notified(a.name).length, 1, "the first change after a quiet window goes at once");
    harness.time += 5;
    harness
      .machine(a.name)
      .write([{ op: "modify", dn, changes: [{ operation: "replace", attribute: "sn", values: ["v"] }] }]);
    assert.deepEqual(notified(a.name), [], "an ordinary change within the window waits for its end");
    harness.time += 15;
    assert.equal(notified(a.name).length, 1);
    harness.time += 5;
    harness
      .machine(a.name)
      .write([{ op: "modify", dn, changes: [{ operation: "replace", attribute: "sn", values: ["w"] }] }]);
    assert.deepEqual(notified(a.name), [], "the window began with the last notification");
    harness.time += 1_000;
    harness.machine(a.name).write([
      {
        op: "modify",
        dn,
        changes: [{ operation: "replace", attribute: "userPassword", values: ["s3cret"] }],
      },
    ]);
    const urgent = notified(a.name);
    assert.equal(urgent.length, 1, "a password change is announced at once");
    // b pulls the urgent change and tells c at once too.
    harness.deliver(a.name, urgent);
    assert.equal(notified(b.name).length, 1, "the partner passes an urgent change on at once");
  });

  it("counts the writes and pages that changed something urgent, such as the config partition", () => {
    const { a, b } = pair();
    assert.ok(a.replica.createPartition(configPartition).ok);
    const harness = new Harness([a, b]);
    harness.tickAll();
    const counts = () => [
      harness.machine(a.name).urgentChangeCount,
      harness.machine(b.name).urgentChangeCount,
    ];
    const start = counts();
    const user = {
      op: "add" as const,
      dn: "cn=v,dc=example,dc=com",
      attributes: { objectClass: ["person"], sn: ["v"] },
    };
    harness.machine(a.name).write([user]);
    harness.time += nodeConfigDefaults.notifyDelayMs;
    harness.tickAll();
    assert.ok(b.replica.get(user.dn).ok, "b pulled the data write");
    assert.deepEqual(counts(), start, "a data write is not urgent: the topology is not read again");
    const site = {
      op: "add" as const,
      dn: `cn=extra,${configPartition}`,
      attributes: { objectClass: ["organizationalUnit"] },
    };
    const written = harness.machine(a.name).write([site]);
    assert.ok(written[0]?.ok, "the config write is accepted");
    harness.tickAll();
    assert.ok(b.replica.get(site.dn).ok, "b pulled the config write");
    assert.deepEqual(
      counts(),
      [(start[0] ?? 0) + 1, (start[1] ?? 0) + 1],
      "the write and the applied page count",
    );
    const refused = harness.machine(a.name).write([site]);
    assert.equal(refused[0]?.ok, false, "adding it again fails");
    assert.equal(
      harness.machine(a.name).urgentChangeCount,
      (start[0] ?? 0) + 1,
      "a failed write does not count",
    );
  });

  it("does not notify a partner of changes that all came from it, but does once others wait too", () => {
    const [a, b, c] = makeDirectory(["node-a", "node-b", "node-c"]);
    assert.ok(a !== undefined && b !== undefined && c !== undefined);
    const harness = new Harness([a, b, c], { notifyDelayMs: 20 });
    harness.tickAll();
    harness.time = 1_000;
    harness.tickAll();
    const notifiedBy = (name: NodeId): NodeId[] =>
      harness
        .machine(name)
        .tick()
        .filter((send) => send.message.kind === "notify")
        .map((send) => send.to)
        .sort();
    const add = (name: string) => ({
      op: "add" as const,
      dn: `cn=${name},dc=example,dc=com`,
      attributes: { objectClass: ["person"], sn: [name] },
    });
    // b applies a's write (a page from a alone): it tells c, not a.
    harness.machine(a.name).write([add("one")]);
    harness.time += 20;
    const fromA = harness.machine(a.name).tick();
    harness.deliver(
      a.name,
      fromA.filter((send) => send.to === b.name),
    );
    assert.ok(b.replica.get("cn=one,dc=example,dc=com").ok);
    harness.time += 20;
    assert.deepEqual(notifiedBy(b.name), [c.name], "a holds what it sent");
    // A page from a and a write of b's own in one notification: a must hear of b's write.
    harness.machine(a.name).write([add("two")]);
    harness.time += 20;
    harness.deliver(
      a.name,
      harness
        .machine(a.name)
        .tick()
        .filter((send) => send.to === b.name),
    );
    harness.machine(b.name).write([add("three")]);
    harness.time += 20;
    assert.deepEqual(notifiedBy(b.name), [a.name, c.name].sort());
    // Pages from a and from c in one notification: each hears of what the other brought, and
    // which partner brought it.
    for (const [writer, cn] of [
      [a.name, "four"],
      [c.name, "five"],
    ] as const) {
      harness.machine(writer).write([add(cn)]);
      harness.time += 20;
      harness.deliver(
        writer,
        harness
          .machine(writer)
          .tick()
          .filter((send) => send.to === b.name),
      );
    }
    harness.time += 20;
    const told = harness
      .machine(b.name)
      .tick()
      .filter((send) => send.message.kind === "notify")
      .map((send) => [send.to, send.message]);
    assert.deepEqual(
      told.sort(),
      [
        [a.name, { kind: "notify", via: [c.name] }],
        [c.name, { kind: "notify", via: [a.name] }],
      ],
      "each is told who brought the changes it lacks",
    );
  });

  it("notifies a node that pulled asking for it, though its plan does not name it, for a while", () => {
    const { a, b } = pair();
    const harness = new Harness([]);
    // a's plan names no one to notify; b pulls from a over a link that wants notifications.
    const aConfig: NodeConfig = {
      ...nodeConfigDefaults,
      inbound: [],
      outbound: [],
      replicaSet: [a.name, b.name],
    };
    const bConfig: NodeConfig = {
      ...nodeConfigDefaults,
      inbound: [{ node: a.name, pullIntervalMs: 60_000, notify: true }],
      outbound: [],
      replicaSet: [a.name, b.name],
    };
    harness.machines.set(a.name, new NodeMachine(a.replica, { now: () => harness.time }, aConfig));
    harness.machines.set(b.name, new NodeMachine(b.replica, { now: () => harness.time }, bConfig));
    harness.tickAll();
    const notifies = () =>
      harness
        .machine(a.name)
        .tick()
        .filter((send) => send.message.kind === "notify");
    const write = (cn: string) =>
      harness
        .machine(a.name)
        .write([
          { op: "add", dn: `cn=${cn},dc=example,dc=com`, attributes: { objectClass: ["person"], sn: [cn] } },
        ]);
    harness.time = 1_000;
    write("first");
    harness.time += nodeConfigDefaults.notifyDelayMs;
    assert.deepEqual(
      notifies().map((send) => send.to),
      [b.name],
    );
    harness.time += recentPullerNotifyMs + 1;
    write("second");
    harness.time += nodeConfigDefaults.notifyDelayMs;
    assert.deepEqual(notifies(), [], "no pull for longer than the window: no notification");
  });

  it("pulls what a partner passed on from the node it came from, a relay delay later, unless that link fails", () => {
    const relayPullDelayMs = 500;
    const pullTimeoutMs = 1_000;
    const { a, b, c, harness } = settledTrio({ notifyDelayMs: 20, relayPullDelayMs, pullTimeoutMs });
    const dn = (cn: string) => `cn=${cn},dc=example,dc=com`;
    /** a writes; only b hears of it from a (a's notification to c is lost); b passes it on. */
    const relayed = (cn: string): Send[] => {
      harness
        .machine(a.name)
        .write([{ op: "add", dn: dn(cn), attributes: { objectClass: ["person"], sn: [cn] } }]);
      harness.time += 20;
      const fromA = harness.machine(a.name).tick();
      harness.deliver(
        a.name,
        fromA.filter((send) => send.to === b.name),
      );
      assert.ok(b.replica.get(dn(cn)).ok, "b pulled it from a");
      harness.time += 20;
      const fromB = harness.machine(b.name).tick();
      const toC = (send: Send) => send.to === c.name && send.message.kind === "notify";
      harness.deliver(
        b.name,
        fromB.filter((send) => !toC(send)),
      );
      const notified = fromB.filter(toC);
      assert.deepEqual(
        notified.map((send) => send.message),
        [{ kind: "notify", via: [a.name] }],
        "b tells c where the change came from",
      );
      return notified;
    };

    // c said in its last pull from b that it hears a directly; once that has lapsed, b tells it again.
    harness.time += relayPullDelayMs;
    const first = relayed("first");
    const c3 = harness.machine(c.name);
    assert.deepEqual(c3.receive(b.name, first[0]?.message), [], "c hears from a itself: no pull yet");
    assert.equal(c3.nextWakeAt(), harness.time + relayPullDelayMs);
    harness.time += relayPullDelayMs - 1;
    assert.deepEqual(c3.tick(), [], "not before the relay delay");
    harness.time += 1;
    const late = c3.tick();
    assert.deepEqual(
      late.map((send) => [send.to, send.message.kind]),
      [[a.name, "pull"]],
      "then c pulls from a, where the change came from, not from b",
    );
    harness.deliver(c.name, late);
    assert.ok(c.replica.get(dn("first")).ok, "and has the change, though a's notification was lost");
    harness.time += pullTimeoutMs + 1;
    assert.deepEqual(
      c3.tick().filter((send) => send.message.kind === "pull"),
      [],
      "a's cycle brought what b passed on: no pull from b",
    );

    // c's pulls from a now fail: a relayed notification is acted on at once.
    harness.time += 60_000;
    const due = c3.tick();
    const pullFromA = due.find((send) => send.to === a.name);
    assert.ok(pullFromA !== undefined, "c's periodic pull from a");
    c3.undeliverable(a.name, pullFromA.message);
    harness.deliver(
      c.name,
      due.filter((send) => send.to !== a.name),
    );
    // c had just told b it hears a: it pulls from b again at once, saying it no longer does.
    const again = c3.tick();
    assert.deepEqual(
      again.map((send) => [send.to, send.message.kind === "pull" && send.message.hears]),
      [[b.name, undefined]],
    );
    harness.deliver(c.name, again);
    const second = relayed("second");
    const pulled = c3.receive(b.name, second[0]?.message);
    assert.deepEqual(
      pulled.map((send) => [send.to, send.message.kind]),
      [[b.name, "pull"]],
      "a failing direct link gets no trust: c pulls from b at once",
    );
    harness.deliver(c.name, pulled);
    assert.ok(c.replica.get(dn("second")).ok);
  });

  it("pulls from the relay after all when the node a change came from fails or does not answer", () => {
    const relayPullDelayMs = 500;
    const pullTimeoutMs = 1_000;
    /** a writes; only b hears of it and pulls it; c is told by b, naming a; c's pull from a is due. */
    const relayedToC = (canaries: Canaries = noCanaries) => {
      const { a, b, c, harness } = settledTrio({ relayPullDelayMs, pullTimeoutMs }, canaries);
      harness.time += relayPullDelayMs;
      writtenOnAPulledByB(harness, a, b, "passed-on");
      const machine = harness.machine(c.name);
      assert.deepEqual(machine.receive(b.name, { kind: "notify", via: [a.name] }), []);
      harness.time += relayPullDelayMs;
      const direct = machine.tick();
      assert.deepEqual(
        direct.map((send) => [send.to, send.message.kind]),
        [[a.name, "pull"]],
      );
      const has = () => c.replica.get("cn=passed-on,dc=example,dc=com").ok;
      return { b, c, harness, machine, pull: direct[0] as Send, has };
    };

    const refused = relayedToC();
    refused.machine.undeliverable(refused.pull.to, refused.pull.message);
    const fromB = refused.machine.tick();
    assert.deepEqual(
      fromB.map((send) => [send.to, send.message.kind]),
      [[refused.b.name, "pull"]],
      "a cannot be reached: c pulls from b at once",
    );
    refused.harness.deliver(refused.c.name, fromB);
    assert.ok(refused.has());

    const silent = relayedToC();
    silent.harness.time += pullTimeoutMs - 1;
    assert.deepEqual(silent.machine.tick(), [], "a may still answer");
    silent.harness.time += 1;
    const late = silent.machine.tick();
    assert.deepEqual(
      late.map((send) => [send.to, send.message.kind]),
      [[silent.b.name, "pull"]],
      "a's pull timed out: c pulls from b",
    );
    silent.harness.deliver(silent.c.name, late);
    assert.ok(silent.has());

    // The planted bug: the relay is never pulled, and the change waits for the periodic pull.
    const planted = relayedToC({ skipRelayWait: true });
    planted.machine.undeliverable(planted.pull.to, planted.pull.message);
    assert.deepEqual(planted.machine.tick(), []);
    assert.ok(!planted.has());
  });

  it("a cycle from the node a change came from counts only if it began after the relay's word", () => {
    const relayPullDelayMs = 500;
    const { a, b, c, harness } = settledTrio({ relayPullDelayMs, pullTimeoutMs: 1_000 });
    const machine = harness.machine(c.name);
    harness.time += relayPullDelayMs;
    // c is pulling from a when b's word comes: that cycle may have been read before the change.
    const early = machine.receive(a.name, { kind: "notify" });
    assert.deepEqual(
      early.map((send) => [send.to, send.message.kind]),
      [[a.name, "pull"]],
    );
    harness.time += 1;
    assert.deepEqual(machine.receive(b.name, { kind: "notify", via: [a.name] }), []);
    harness.deliver(c.name, early);
    const wordAt = harness.time;
    assert.equal(machine.nextWakeAt(), wordAt + relayPullDelayMs, "a again, a relay delay after the word");
    harness.time = wordAt + relayPullDelayMs;
    const again = machine.tick();
    assert.deepEqual(
      again.map((send) => [send.to, send.message.kind]),
      [[a.name, "pull"]],
    );
    // Had the early cycle counted, nothing would be waiting for this one.
    machine.undeliverable(a.name, (again[0] as Send).message);
    assert.deepEqual(
      machine.tick().map((send) => [send.to, send.message.kind]),
      [[b.name, "pull"]],
      "the cycle that counts failed: c pulls from b",
    );
  });

  it("holds back from a partner that said it hears the origin directly, for the relay pull delay", () => {
    const relayPullDelayMs = 500;
    const { a, b, c, harness } = settledTrio({ notifyDelayMs: 20, relayPullDelayMs });
    const dn = (cn: string) => `cn=${cn},dc=example,dc=com`;
    const cMachine = harness.machine(c.name);
    const bMachine = harness.machine(b.name);
    /** c pulls from b now (its pull says whom c hears directly). */
    const cPullsB = (): Send[] => {
      const pull = cMachine.receive(b.name, { kind: "notify" });
      assert.deepEqual(
        pull.map((send) => send.to),
        [b.name],
      );
      harness.deliver(c.name, pull);
      return pull;
    };
    const toC = (): PeerMessage[] =>
      bMachine
        .tick()
        .filter((send) => send.to === c.name && send.message.kind === "notify")
        .map((send) => send.message);
    /** a writes, b pulls it from a; what b then tells c. */
    const relayed = (cn: string): PeerMessage[] => {
      writtenOnAPulledByB(harness, a, b, cn);
      return toC();
    };
    harness.time += 10_000;
    const [pull] = cPullsB();
    assert.deepEqual(pull?.message.kind === "pull" && pull.message.hears, [a.name], "c says it hears a");
    assert.deepEqual(relayed("quiet"), [], "b holds back a's change: c hears of it from a");
    harness.time += relayPullDelayMs;
    assert.deepEqual(
      relayed("told"),
      [{ kind: "notify", via: [a.name] }],
      "after the delay, b tells c again",
    );
    // b's own changes are always told.
    cPullsB();
    bMachine.write([{ op: "add", dn: dn("own"), attributes: { objectClass: ["person"] } }]);
    harness.time += 20;
    assert.deepEqual(toC(), [{ kind: "notify" }]);
    // Once c's link to a fails, c's next pull says nothing of a, and b tells it of a's changes.
    harness.time += 60_000;
    const due = cMachine.tick();
    const fromA = due.find((send) => send.to === a.name);
    assert.ok(fromA !== undefined);
    cMachine.undeliverable(a.name, fromA.message);
    harness.deliver(
      c.name,
      due.filter((send) => send !== fromA),
    );
    const [again] = cPullsB();
    assert.ok(again?.message.kind === "pull" && again.message.hears === undefined, "c no longer hears a");
    assert.deepEqual(relayed("failing"), [{ kind: "notify", via: [a.name] }]);
  });

  it("sends a held-back notification when the lease ends, unless the puller pulled a whole cycle meanwhile", () => {
    const relayPullDelayMs = 500;
    const { a, b, c, harness } = settledTrio({ notifyDelayMs: 20, relayPullDelayMs });
    const bMachine = harness.machine(b.name);
    const cPullsB = () =>
      harness.deliver(c.name, harness.machine(c.name).receive(b.name, { kind: "notify" }));
    const toC = () =>
      bMachine
        .tick()
        .filter((send) => send.to === c.name && send.message.kind === "notify")
        .map((send) => send.message);
    const aWritesBPulls = (cn: string) => writtenOnAPulledByB(harness, a, b, cn);
    harness.time += 10_000;
    const leaseFrom = harness.time;
    cPullsB();
    aWritesBPulls("held");
    assert.deepEqual(toC(), [], "held back while c's word holds");
    assert.equal(bMachine.nextWakeAt(), leaseFrom + relayPullDelayMs, "b wakes when it ends");
    harness.time = leaseFrom + relayPullDelayMs;
    assert.deepEqual(
      toC(),
      [{ kind: "notify", via: [a.name] }],
      "then c is told (had a's own notification been lost)",
    );
    // A whole pull cycle from c meanwhile brought the changes: nothing is sent.
    const again = harness.time;
    cPullsB();
    aWritesBPulls("pulled");
    assert.deepEqual(toC(), []);
    cPullsB();
    harness.time = again + 10 * relayPullDelayMs;
    assert.deepEqual(toC(), [], "the cycle from c took it");
    assert.ok(bMachine.nextWakeAt() > harness.time);
  });

  it("a page read before a notification was held back does not cancel it (pages built off the node's thread)", () => {
    const relayPullDelayMs = 500;
    /** c's pull reaches b, which admits it and reads its page; a's write reaches b before the page is sent. */
    const run = (canaries: Canaries) => {
      const { a, b, c, harness } = settledTrio({ notifyDelayMs: 20, relayPullDelayMs }, canaries);
      const bMachine = harness.machine(b.name);
      harness.time += 10_000;
      const leaseFrom = harness.time;
      const [pull] = harness.machine(c.name).receive(b.name, { kind: "notify" });
      assert.ok(pull?.message.kind === "pull" && pull.message.hears !== undefined);
      const admission = bMachine.admitPull(c.name, pull.message);
      assert.ok(admission?.kind === "build");
      const page = unwrap(b.replica.readPage(admission.ticket.request));
      assert.equal(page.more, false, "the page ends c's cycle");
      writtenOnAPulledByB(harness, a, b, "after-the-read");
      const toC = () =>
        bMachine
          .tick()
          .filter((send) => send.to === c.name && send.message.kind === "notify")
          .map((send) => send.message);
      assert.deepEqual(toC(), [], "held back: c said it hears a");
      bMachine.pageServed(admission.ticket, page.more);
      harness.deliver(b.name, [{ to: c.name, message: { kind: "page", id: admission.ticket.id, page } }]);
      assert.equal(
        c.replica.get("cn=after-the-read,dc=example,dc=com").ok,
        false,
        "the page did not bring it",
      );
      harness.time = leaseFrom + relayPullDelayMs;
      return toC();
    };
    assert.deepEqual(run(noCanaries), [{ kind: "notify", via: ["node-a"] }], "told when the lease ends");
    assert.deepEqual(run({ clearHeldAfterAdmission: true }), [], "the planted defect loses it");
  });

  it("answers a malformed or non-pull message to admitPull with undefined, and refuses a bad request", () => {
    const { b, c, harness } = settledTrio({});
    const bMachine = harness.machine(b.name);
    assert.equal(bMachine.admitPull(c.name, { kind: "notify" }), undefined);
    assert.equal(bMachine.admitPull(c.name, { kind: "pull" }), undefined);
    assert.equal(bMachine.admitPull(c.name, "not a message"), undefined);
    const admission = bMachine.admitPull(c.name, { kind: "pull", id: 7, request: { destination: c.name } });
    assert.ok(admission?.kind === "answer" && admission.message.kind === "refused");
    assert.equal(admission.message.id, 7, "the refusal answers that pull");
  });

  it("when a link fails, pulls at once from the partners it recently said it hears that node from", () => {
    const relayPullDelayMs = 500;
    /** c's periodic pulls after a minute: b's is answered, a's is not (yet). */
    const periodic = () => {
      const { a, b, c, harness } = settledTrio({ relayPullDelayMs });
      const machine = harness.machine(c.name);
      harness.time += 60_000;
      const due = machine.tick();
      const fromA = due.find((send) => send.to === a.name);
      const fromB = due.find((send) => send.to === b.name);
      assert.ok(fromA !== undefined && fromB?.message.kind === "pull");
      assert.deepEqual(fromB.message.hears, [a.name], "c tells b it hears a");
      harness.deliver(c.name, [fromB]);
      assert.deepEqual(machine.tick(), [], "nothing more is due");
      return { b, harness, machine, lost: () => machine.undeliverable(a.name, fromA.message) };
    };
    const soon = periodic();
    soon.harness.time += 10;
    soon.lost();
    assert.equal(
      soon.machine.nextWakeAt(),
      soon.harness.time,
      "b may be holding back a's changes: pull from b now",
    );
    assert.deepEqual(
      soon.machine.tick().map((send) => [send.to, send.message.kind]),
      [[soon.b.name, "pull"]],
    );
    // A claim lapses: with pulls a minute apart, a failure found later moves no pull.
    const { a, b, c, harness } = settledTrio({ relayPullDelayMs });
    const slow = new NodeMachine(
      c.replica,
      { now: () => harness.time },
      {
        ...nodeConfigDefaults,
        relayPullDelayMs,
        inbound: [a.name, b.name].map((node) => ({ node, pullIntervalMs: 60_000 })),
        outbound: [a.name, b.name],
        replicaSet: [a.name, b.name, c.name],
      },
    );
    harness.machines.set(c.name, slow);
    harness.time += 1_000;
    harness.deliver(c.name, slow.tick());
    harness.time += 60_000;
    const due = slow.tick();
    const fromA = due.find((send) => send.to === a.name);
    assert.ok(fromA !== undefined);
    harness.deliver(
      c.name,
      due.filter((send) => send !== fromA),
    );
    harness.time += relayPullDelayMs + nodeConfigDefaults.pullTimeoutMs + 1;
    slow.undeliverable(a.name, fromA.message);
    assert.ok(slow.nextWakeAt() > harness.time, "the claim had lapsed: no extra pull from b");
  });

  it("a relayed notification during a pull puts off the next cycle; a direct one does not", () => {
    const relayPullDelayMs = 500;
    const { a, b, c, harness } = settledTrio({ relayPullDelayMs });
    const machine = harness.machine(c.name);
    const pullFrom = (partner: NodeId, notification: Parameters<NodeMachine["receive"]>[1]) => {
      harness.time += 10;
      const pull = machine.receive(partner, { kind: "notify" });
      assert.deepEqual(
        pull.map((send) => [send.to, send.message.kind]),
        [[partner, "pull"]],
      );
      // While the pull is under way, another notification arrives; then the answer.
      assert.deepEqual(machine.receive(partner, notification), [], "no second pull while one is under way");
      harness.deliver(c.name, pull);
      return harness.time;
    };
    const relayedAt = pullFrom(b.name, { kind: "notify", via: [a.name] });
    assert.equal(machine.nextWakeAt(), relayedAt + relayPullDelayMs, "the relayed one waits");
    harness.time = relayedAt + relayPullDelayMs;
    harness.deliver(c.name, machine.tick());
    const directAt = pullFrom(b.name, { kind: "notify" });
    assert.equal(machine.nextWakeAt(), directAt, "a direct one starts the next cycle at once");
  });

  it("with relayPullDelayMs 0, pulls what a partner passed on at once", () => {
    const { a, b, c, harness } = settledTrio({ relayPullDelayMs: 0 });
    const pulls = harness.machine(c.name).receive(b.name, { kind: "notify", via: [a.name] });
    assert.deepEqual(
      pulls.map((send) => [send.to, send.message.kind]),
      [[b.name, "pull"]],
    );
  });

  it("malformed messages are dropped without effect", () => {
    const { a, b } = pair();
    const harness = new Harness([a, b]);
    const machine = harness.machine(a.name);
    for (const junk of [
      null,
      5,
      "pull",
      {},
      { kind: "pull" },
      { kind: "page", id: -1 },
      { kind: "lingering-check", id: 1, guids: ["x"] },
      { kind: "notify", via: "node-b" },
      { kind: "notify", via: [] },
      { kind: "notify", via: ["Not A Node!"] },
      { kind: "notify", via: [7] },
      { kind: "nope" },
    ]) {
      assert.deepEqual(machine.receive(b.name, junk), []);
    }
    // A page from a node that is not an inbound partner is ignored.
    assert.deepEqual(machine.receive("node-z" as NodeId, { kind: "page", id: 1, page: {} }), []);
    // A pull whose `hears` is not a list of node ids is dropped; with a good one it is answered.
    const request = b.replica.changeRequest(a.name);
    for (const hears of ["node-b", [], ["Not A Node!"], [7], Array.from({ length: 1001 }, () => "node-c")])
      assert.deepEqual(machine.receive(b.name, { kind: "pull", id: 9, request, hears }), []);
    assert.deepEqual(
      machine
        .receive(b.name, { kind: "pull", id: 9, request, hears: ["node-c"] })
        .map((send) => send.message.kind),
      ["page"],
    );
  });

  it("a directory of one ends a quarantine by itself", () => {
    const [solo] = makeDirectory(["node-a"]);
    assert.ok(solo !== undefined);
    // Quarantine it as a partner's horizon would: require a deletion it never saw.
    const refused = solo.replica.getChanges({
      ...solo.replica.changeRequest("node-x" as NodeId),
      destination: "node-x",
      purgeHorizon: { ["f".repeat(32)]: 5 },
    });
    assert.equal(refused.ok ? "answered" : refused.error.code, "quarantined");
    assert.equal(solo.replica.isQuarantined(), true);
    const harness = new Harness([solo]);
    harness.tickAll();
    assert.equal(solo.replica.isQuarantined(), false);
  });
});
