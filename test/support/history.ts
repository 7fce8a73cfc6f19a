import fc from "fast-check";
import type { Canaries } from "../../src/core/canaries.ts";
import { nodeId } from "../../src/core/ids.ts";
import type { WriteRequest } from "../../src/core/replica/originating.ts";
import { Replica } from "../../src/core/replica/replica.ts";
import type { ChangePage } from "../../src/core/replication/page.ts";
import { unwrap } from "../../src/core/result.ts";
import { ManualClock, SeededRandom } from "../../src/sim/ports.ts";
import { convergedState } from "../../src/sim/state.ts";
import { SqliteStore } from "../../src/store/sqlite-store.ts";
import { recordingStore, WriteLog } from "./recording-store.ts";
import { epoch, type TestReplica } from "./replicas.ts";

/**
 * Random operation histories on 2–5 replicas: writes of every kind from a small name pool (so
 * that names collide), pulls in random order with random page sizes, pages re-delivered late
 * and twice, and clock skew. Entries are picked by index into what the acting replica can see,
 * so every history is valid input whatever happened before.
 */
export type Step =
  | {
      readonly kind: "add";
      readonly at: number;
      readonly parent: number;
      readonly name: number;
      readonly type: "cn" | "ou";
    }
  | {
      readonly kind: "modify";
      readonly at: number;
      readonly entry: number;
      readonly operation: "add" | "delete" | "replace";
      readonly value: number;
    }
  | {
      readonly kind: "link";
      readonly at: number;
      readonly entry: number;
      readonly member: number;
      readonly add: boolean;
    }
  | { readonly kind: "delete"; readonly at: number; readonly entry: number; readonly subtree: boolean }
  | { readonly kind: "rename"; readonly at: number; readonly entry: number; readonly name: number }
  | { readonly kind: "move"; readonly at: number; readonly entry: number; readonly parent: number }
  | {
      readonly kind: "pull";
      readonly at: number;
      readonly from: number;
      readonly pageSize: number;
      /** Origin filter, a bit per replica: leave out what those replicas' current invocations wrote. */
      readonly exclude?: number;
    }
  | { readonly kind: "replay"; readonly at: number; readonly page: number }
  | { readonly kind: "clock"; readonly at: number; readonly skewMs: number };

const names = ["a", "b", "c", "d"];
const base = "dc=example,dc=com";
const tenMinutesMs = 10 * 60_000;

export function stepArbitrary(options: { readonly filtered?: boolean } = {}): fc.Arbitrary<Step> {
  const at = fc.nat(4);
  const pick = fc.nat(50);
  const pullFields = {
    kind: fc.constant("pull" as const),
    at,
    from: fc.nat(4),
    pageSize: fc.integer({ min: 1, max: 8 }),
  };
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("add" as const),
        at,
        parent: pick,
        name: fc.nat(names.length - 1),
        type: fc.constantFrom("cn" as const, "ou" as const),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("modify" as const),
        at,
        entry: pick,
        operation: fc.constantFrom("add" as const, "delete" as const, "replace" as const),
        value: fc.nat(3),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("link" as const),
        at,
        entry: pick,
        member: fc.nat(3),
        add: fc.boolean(),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ kind: fc.constant("delete" as const), at, entry: pick, subtree: fc.boolean() }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("rename" as const),
        at,
        entry: pick,
        name: fc.nat(names.length - 1),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ kind: fc.constant("move" as const), at, entry: pick, parent: pick }),
    },
    {
      weight: 5,
      arbitrary:
        options.filtered === true ? fc.record({ ...pullFields, exclude: fc.nat(31) }) : fc.record(pullFields),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("replay" as const), at, page: fc.nat(200) }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("clock" as const),
        at,
        skewMs: fc.integer({ min: -tenMinutesMs, max: tenMinutesMs }),
      }),
    },
  );
}

export interface History {
  readonly replicas: TestReplica[];
  readonly log: WriteLog;
  /** Every page any replica produced, with the replica it was made for. */
  readonly pages: Array<{ page: ChangePage; destination: number }>;
  /** Failures of the idempotence check (a page re-applied to a replica that had applied it changed it). */
  readonly idempotenceFailures: string[];
  /** Whether each attempted write succeeded (for coverage statistics). */
  readonly outcomes: boolean[];
}

export function newHistory(count: number, seed: number, canaries: Canaries = {}): History {
  const log = new WriteLog();
  const replicas: TestReplica[] = [];
  for (let index = 0; index < count; index++) {
    const store = SqliteStore.open({ path: ":memory:" });
    const clock = new ManualClock(epoch);
    const name = nodeId(`node-${index}`);
    const replica = Replica.create(
      recordingStore(store, log),
      { clock, random: new SeededRandom(seed * 31 + index) },
      name,
      { canaries },
    );
    replicas.push({ replica, clock, store, name });
  }
  unwrap((replicas[0] as TestReplica).replica.createPartition(base));
  const history: History = { replicas, log, pages: [], idempotenceFailures: [], outcomes: [] };
  // Every replica starts with the partition, so that concurrent writes begin at once.
  settle(history);
  history.pages.length = 0;
  return history;
}

/** Live DNs in the data partition as the replica sees them, in a stable order. */
function visible(replica: Replica): string[] {
  const result = replica.search({ base, scope: "sub", attributes: ["1.1"], sizeLimit: 10_000 });
  return result.ok ? result.value.entries.map((entry) => entry.dn) : [];
}

function choose(list: readonly string[], index: number): string | undefined {
  return list.length === 0 ? undefined : list[index % list.length];
}

const lostAndFound = `cn=LostAndFound,${base}`;

function requestFor(step: Step, all: readonly string[]): WriteRequest | undefined {
  const dns = all;
  const entries = all.filter((dn) => dn !== base && dn !== lostAndFound);
  switch (step.kind) {
    case "add": {
      const parent = choose(dns, step.parent);
      if (parent === undefined) return undefined;
      const objectClass = step.type === "ou" ? "organizationalUnit" : "groupOfNames";
      return {
        op: "add",
        dn: `${step.type}=${names[step.name]},${parent}`,
        attributes: { objectClass: [objectClass] },
      };
    }
    case "modify": {
      const dn = choose(entries, step.entry);
      if (dn === undefined) return undefined;
      const values = step.operation === "delete" ? [] : [`v${step.value}`];
      return { op: "modify", dn, changes: [{ operation: step.operation, attribute: "description", values }] };
    }
    case "link": {
      const dn = choose(entries, step.entry);
      if (dn === undefined) return undefined;
      return {
        op: "modify",
        dn,
        changes: [
          {
            operation: step.add ? "add" : "delete",
            attribute: "member",
            values: [`cn=m${step.member},${base}`],
          },
        ],
      };
    }
    case "delete": {
      const dn = choose(entries, step.entry);
      return dn === undefined ? undefined : { op: "delete", dn, subtree: step.subtree };
    }
    case "rename": {
      const dn = choose(entries, step.entry);
      if (dn === undefined) return undefined;
      return { op: "modifyDn", dn, newRdn: `${dn.slice(0, 2)}=${names[step.name]}` };
    }
    case "move": {
      const dn = choose(entries, step.entry);
      const parent = choose(dns, step.parent);
      if (dn === undefined || parent === undefined) return undefined;
      return { op: "modifyDn", dn, newRdn: dn.slice(0, dn.indexOf(",")), newParent: parent };
    }
    default:
      return undefined;
  }
}

/** Runs one step. Writes that fail (name taken, not a leaf …) are ordinary and ignored. */
export function runStep(history: History, step: Step): void {
  const actor = history.replicas[step.at % history.replicas.length] as TestReplica;
  const at = step.at % history.replicas.length;
  switch (step.kind) {
    case "pull": {
      const source = history.replicas[step.from % history.replicas.length] as TestReplica;
      if (source === actor) return;
      const exclude = history.replicas
        .filter((_, index) => ((step.exclude ?? 0) & (1 << index)) !== 0)
        .map((replica) => replica.replica.invocationId);
      for (let guard = 0; guard < 10_000; guard++) {
        const request = actor.replica.changeRequest(source.name, { entriesMax: step.pageSize }, exclude);
        const page = unwrap(source.replica.getChanges(request));
        history.pages.push({ page, destination: at });
        if (unwrap(actor.replica.applyChanges(page)).cycleComplete) return;
      }
      throw new Error("pull did not finish");
    }
    case "replay": {
      const old = history.pages[step.page % Math.max(1, history.pages.length)];
      if (old === undefined || history.replicas[old.destination] === undefined) return;
      const target = history.replicas[old.destination] as TestReplica;
      if (target.name === old.page.source) return;
      const before = convergedState(target.store);
      unwrap(target.replica.applyChanges(old.page));
      // The target applied this page before: applying it again must change nothing.
      const after = convergedState(target.store);
      if (JSON.stringify(before) !== JSON.stringify(after))
        history.idempotenceFailures.push(`page to ${target.name}`);
      return;
    }
    case "clock":
      actor.clock.set(epoch + step.skewMs);
      return;
    default: {
      const request = requestFor(step, visible(actor.replica));
      if (request !== undefined) history.outcomes.push(actor.replica.writeOne(request).ok);
    }
  }
}

/** Full mesh pulls until nothing changes. */
export function settle(history: History): void {
  for (let round = 0; round < 50; round++) {
    const before = history.replicas.map((r) => r.replica.usn).join(",");
    history.replicas.forEach((_, index) => {
      history.replicas.forEach((_, from) => {
        runStep(history, { kind: "pull", at: index, from, pageSize: 50 });
      });
    });
    if (history.replicas.map((r) => r.replica.usn).join(",") === before) return;
  }
  throw new Error("did not settle in 50 rounds");
}
