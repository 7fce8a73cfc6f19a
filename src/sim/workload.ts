import type { Guid, Usn } from "../core/ids.ts";
import type { WriteRequest } from "../core/replica/originating.ts";
import type { Stamp } from "../core/replication/stamp.ts";
import { type UtdVector, utdCoversVector } from "../core/replication/utd.ts";
import type { SimNode } from "./node.ts";
import type { WorkloadMix } from "./params.ts";
import type { World } from "./world.ts";

/**
 * Simulated clients. Each operation picks an up node and a target the sim knows by GUID
 * (resolved to the DN that node currently shows), so a history stays valid whatever the faults
 * did. Names come from a small pool so that concurrent adds collide. Every acknowledged write
 * goes into the ledger with the exact items it stored.
 */
export const dataPartition = "dc=example,dc=com";
const names = ["alpha", "beta", "gamma", "delta", "eps", "zeta"];
const causalRetriesMax = 10;
const causalRetryMs = 200;

type OperationKind = keyof WorkloadMix;

export class Workload {
  attempted = 0;
  acknowledged = 0;

  constructor(private readonly world: World) {}

  /** Schedules the safety phase's operations at random times in [0, until). */
  schedule(until: number): void {
    const { operations } = this.world.params;
    for (let index = 0; index < operations; index++) {
      const time = this.world.random.int(50, Math.max(51, until - 1));
      this.world.at(time, "op", () => this.runOne());
    }
  }

  private runOne(): void {
    this.attempted++;
    const handlers: Record<OperationKind, () => void> = {
      add: () => this.add(),
      sameDnAdd: () => this.sameDnAdd(),
      modify: () => this.modify(),
      link: () => this.link(),
      delete: () => this.remove(),
      rename: () => this.rename(),
      move: () => this.move(),
      readThenWrite: () => this.readThenWrite(),
    };
    handlers[this.pickKind()]();
  }

  private pickKind(): OperationKind {
    const mix = this.world.params.mix;
    const kinds = Object.keys(mix) as OperationKind[];
    const total = kinds.reduce((sum, kind) => sum + mix[kind], 0);
    let roll = this.world.random.float() * total;
    for (const kind of kinds) {
      roll -= mix[kind];
      if (roll < 0) return kind;
    }
    return "add";
  }

  private upNode(): SimNode | undefined {
    const up = this.world.nodes.filter((node) => node.up);
    return up.length === 0 ? undefined : this.world.random.pick(up);
  }

  private dnOn(node: SimNode, guid: Guid): string | undefined {
    return node.replica?.dnOf(guid);
  }

  private pickGuid(list: readonly Guid[]): Guid | undefined {
    return list.length === 0 ? undefined : this.world.random.pick(list);
  }

  /** Runs a write on a node and records it if acknowledged; returns the entry's GUID then. */
  private write(node: SimNode, request: WriteRequest, label: string): Guid | undefined {
    const machine = node.machine;
    if (machine === null) return undefined;
    let acknowledged: Guid | undefined;
    this.world.step(node, () => {
      const [result] = machine.write([request]);
      const outcome =
        result === undefined ? "none" : result.ok ? `ok ${result.value.guid.slice(0, 8)}` : result.error.code;
      this.world.trace.note(this.world.time, `${node.id} ${label} ${request.dn}: ${outcome}`);
      if (result === undefined || !result.ok || result.value.entries === 0) return [];
      this.acknowledged++;
      this.record(node, label, result.value.guid, result.value.usn);
      acknowledged = result.value.guid;
      return [];
    });
    return acknowledged;
  }

  private record(node: SimNode, op: string, guid: Guid, usn: Usn): void {
    recordWrite(this.world, node, op, guid, usn);
  }

  private parentDn(node: SimNode): string {
    const container = this.world.random.chance(0.3) ? undefined : this.pickGuid(this.world.ledger.containers);
    return (container === undefined ? undefined : this.dnOn(node, container)) ?? dataPartition;
  }

  private newEntry(parent: string): { request: WriteRequest; container: boolean } {
    const container = this.world.random.chance(0.35);
    const name = this.world.random.pick(names);
    const dn = container ? `ou=${name},${parent}` : `cn=${name},${parent}`;
    const objectClass = container ? ["organizationalUnit"] : ["groupOfNames"];
    return { request: { op: "add", dn, attributes: { objectClass, description: ["new"] } }, container };
  }

  private remember(guid: Guid | undefined, container: boolean): void {
    if (guid === undefined) return;
    this.world.ledger.guids.push(guid);
    if (container) this.world.ledger.containers.push(guid);
  }

  private add(): void {
    const node = this.upNode();
    if (node === undefined) return;
    const { request, container } = this.newEntry(this.parentDn(node));
    this.remember(this.write(node, request, "add"), container);
  }

  /** The same DN added on two nodes at the same instant: both must survive. */
  private sameDnAdd(): void {
    const up = this.world.nodes.filter((node) => node.up);
    if (up.length < 2) return;
    const first = this.world.random.pick(up);
    const second = this.world.random.pick(up.filter((node) => node !== first));
    const { request, container } = this.newEntry(dataPartition);
    this.remember(this.write(first, request, "same-dn add"), container);
    this.remember(this.write(second, request, "same-dn add"), container);
  }

  private target(node: SimNode): { guid: Guid; dn: string } | undefined {
    for (let attempt = 0; attempt < 5; attempt++) {
      const guid = this.pickGuid(this.world.ledger.guids);
      if (guid === undefined) return undefined;
      const dn = this.dnOn(node, guid);
      if (dn !== undefined) return { guid, dn };
    }
    return undefined;
  }

  private modify(): void {
    const node = this.upNode();
    const target = node === undefined ? undefined : this.target(node);
    if (node === undefined || target === undefined) return;
    const attribute = this.world.random.pick(["description", "telephoneNumber"]);
    const value = `v${this.world.random.int(0, 9)}`;
    const operation = this.world.random.pick(["replace", "replace", "add", "delete"] as const);
    const values = operation === "delete" ? [] : [value];
    this.write(
      node,
      { op: "modify", dn: target.dn, changes: [{ operation, attribute, values }] },
      `modify ${attribute}`,
    );
  }

  private link(): void {
    const node = this.upNode();
    const target = node === undefined ? undefined : this.target(node);
    if (node === undefined || target === undefined) return;
    const member = `cn=m${this.world.random.int(0, 5)},${dataPartition}`;
    const operation = this.world.random.chance(0.6) ? "add" : "delete";
    this.write(
      node,
      { op: "modify", dn: target.dn, changes: [{ operation, attribute: "member", values: [member] }] },
      `member ${operation}`,
    );
  }

  private remove(): void {
    const node = this.upNode();
    const target = node === undefined ? undefined : this.target(node);
    if (node === undefined || target === undefined) return;
    this.write(node, { op: "delete", dn: target.dn, subtree: this.world.random.chance(0.3) }, "delete");
  }

  private rename(): void {
    const node = this.upNode();
    const target = node === undefined ? undefined : this.target(node);
    if (node === undefined || target === undefined) return;
    const type = target.dn.slice(0, target.dn.indexOf("="));
    const newRdn = `${type}=${this.world.random.pick(names)}`;
    this.write(node, { op: "modifyDn", dn: target.dn, newRdn }, "rename");
  }

  private move(): void {
    const node = this.upNode();
    const target = node === undefined ? undefined : this.target(node);
    if (node === undefined || target === undefined) return;
    const newParent = this.parentDn(node);
    const newRdn = target.dn.slice(0, target.dn.indexOf(","));
    this.write(node, { op: "modifyDn", dn: target.dn, newRdn, newParent }, "move");
  }

  /**
   * A client reads an entry on one node, then writes it on another. It carries what it read as
   * a session vector and writes only once the second node has caught up with it (the session
   * token rule); the write must then beat the write it read, whatever the clocks say.
   */
  private readThenWrite(): void {
    const up = this.world.nodes.filter((node) => node.up && node.replica !== null);
    if (up.length < 2) return;
    const reader = this.world.random.pick(up);
    const target = this.target(reader);
    if (target === undefined || reader.replica === null) return;
    const observed = reader.sqlite.getItem(target.guid, "description", "")?.stamp;
    const token = reader.replica.utd();
    const writer = this.world.random.pick(up.filter((node) => node !== reader));
    this.causalWrite(writer, reader, target.guid, observed, token, 0);
  }

  private causalWrite(
    writer: SimNode,
    reader: SimNode,
    guid: Guid,
    observed: Stamp | undefined,
    token: UtdVector,
    attempt: number,
  ): void {
    const replica = writer.replica;
    if (replica === null || attempt > causalRetriesMax) return;
    if (!utdCoversVector(replica.utd(), token)) {
      // The node has not caught up with what the client saw: it would answer "retry".
      this.world.at(this.world.time + causalRetryMs, "causal retry", () =>
        this.causalWrite(writer, reader, guid, observed, token, attempt + 1),
      );
      return;
    }
    const dn = replica.dnOf(guid);
    if (dn === undefined) return;
    const value = `after-read-${this.world.random.int(0, 999_999)}`;
    const change = { operation: "replace" as const, attribute: "description", values: [value] };
    if (this.write(writer, { op: "modify", dn, changes: [change] }, "causal write") === undefined) return;
    const written = writer.sqlite.getItem(guid, "description", "")?.stamp;
    if (observed === undefined || written === undefined) return;
    this.world.ledger.causal.push({
      guid,
      attribute: "description",
      observed,
      written,
      readOn: reader.id,
      writtenOn: writer.id,
    });
  }
}

/**
 * Puts an acknowledged write in the ledger with exactly the items it stored. A subtree delete
 * stamps each entry with its own USN; the ledger keeps the top entry's.
 */
export function recordWrite(world: World, node: SimNode, op: string, guid: Guid, usn: Usn): void {
  const replica = node.replica;
  if (replica === null) return;
  const invocation = replica.invocationId;
  const items = node.sqlite
    .getItems(guid)
    .filter((item) => item.stamp.invocation === invocation && item.stamp.usn === usn)
    .map(({ attribute, key, value, stamp }) => ({ attribute, key, value, stamp }));
  world.ledger.writes.push({ node: node.id, op, guid, invocation, usn, items, at: world.time });
}
