import type { WriteOutcome, WriteRequest } from "../core/replica/originating.ts";
import type { EntryView } from "../core/replica/read.ts";
import { fail, type Result, unwrap } from "../core/result.ts";
import { Invariants } from "./invariants.ts";
import type { SimNode } from "./node.ts";
import type { SimParams } from "./params.ts";
import { scenarioParams } from "./params.ts";
import type { ConvergedEntry } from "./state.ts";
import { dataPartition, recordWrite } from "./workload.ts";
import { type Violation, World } from "./world.ts";

/**
 * A hand-written simulation: the same world, nodes, network and invariants as the random
 * seeds, driven step by step by a test that reads like the story it tells. Writes are
 * recorded in the ledger, so the end-state invariants (no acknowledged write lost, causality,
 * convergence) check scenarios exactly as they check random seeds.
 */
export class Scenario {
  readonly world: World;
  private readonly invariants: Invariants;

  constructor(nodes: number, overrides: Partial<SimParams> = {}) {
    this.world = new World(scenarioParams(nodes, overrides), {});
    this.invariants = new Invariants(this.world);
    for (const node of this.world.nodes)
      node.create(this.world.config(node), {}, this.world.params.tombstoneLifetimeMs);
    unwrap(this.replica(0).createPartition(dataPartition));
    for (const node of this.world.nodes) this.world.scheduleWake(node);
    this.settle();
  }

  node(index: number): SimNode {
    const node = this.world.nodes[index];
    if (node === undefined) throw new RangeError(`no node ${index}`);
    return node;
  }

  private replica(index: number): NonNullable<SimNode["replica"]> {
    const replica = this.node(index).replica;
    if (replica === null) throw new Error(`node ${index} is down`);
    return replica;
  }

  /** A client write on one node, acknowledged (and recorded) when it changed something. */
  write(index: number, request: WriteRequest): Result<WriteOutcome> {
    const node = this.node(index);
    const machine = node.machine;
    if (machine === null) return fail("invalid-request", `node ${index} is down`);
    let result: Result<WriteOutcome> | undefined;
    this.world.step(node, () => {
      [result] = machine.write([request]);
      return [];
    });
    if (result === undefined) return fail("invalid-request", "no result");
    if (result.ok && result.value.entries > 0)
      recordWrite(this.world, node, request.op, result.value.guid, result.value.usn);
    return result;
  }

  get(index: number, dn: string): Result<EntryView> {
    return this.replica(index).get(dn);
  }

  /** Live DNs under the data partition on one node, sorted. */
  dns(index: number): string[] {
    const found = unwrap(
      this.replica(index).search({ base: dataPartition, attributes: ["1.1"], sizeLimit: 10_000 }),
    );
    return found.entries.map((entry) => entry.dn).sort();
  }

  /** Lets simulated time pass (messages flow, timers fire). */
  advance(ms: number): void {
    if (!this.world.runUntil(this.world.time + ms))
      throw new Error("the scenario ran out of its event budget");
  }

  /** Runs until every replica has every change every other one has; false if the bound passed. */
  settle(boundMs = 10 * 60_000): boolean {
    const deadline = this.world.time + boundMs;
    while (this.world.time < deadline) {
      this.advance(500);
      if (this.invariants.utdsCrossCovered()) return true;
    }
    return false;
  }

  partition(side: readonly number[]): number {
    return this.world.partition(new Set(side));
  }

  heal(id: number): void {
    this.world.heal(id);
  }

  crash(index: number): void {
    this.world.crash(this.node(index), null);
  }

  restart(index: number): void {
    this.world.restart(this.node(index), false);
  }

  snapshot(index: number): Uint8Array {
    return this.node(index).snapshot();
  }

  /** The node goes down and comes back on an older copy of its database (declared restored). */
  restore(index: number, snapshot: Uint8Array): void {
    const node = this.node(index);
    this.world.crash(node, null);
    node.restoreFrom(snapshot);
    this.world.restart(node, true);
  }

  setClockOffset(index: number, offsetMs: number): void {
    this.node(index).clock.offsetMs = offsetMs;
  }

  /** The end-state invariants, after settling. */
  finalCheck(): { violations: readonly Violation[]; state: readonly ConvergedEntry[] } {
    const state = this.invariants.final();
    return { violations: this.world.violations, state };
  }
}
