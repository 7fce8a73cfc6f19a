import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type Candidate,
  FailureBook,
  mergeSession,
  plan,
  rfc2782Order,
  type SrvTarget,
  type Tier,
} from "./select.ts";

/** A seeded xorshift source: the same sequence on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}

const srv = (target: string, priority: number, weight: number): SrvTarget => ({
  target,
  port: 1,
  priority,
  weight,
});

describe("rfc2782Order", () => {
  it("orders by priority first, whatever the weights", () => {
    const records = [srv("c", 20, 100), srv("a", 10, 0), srv("b", 10, 5), srv("d", 30, 1000)];
    for (let seed = 1; seed < 50; seed++) {
      const order = rfc2782Order(records, seeded(seed)).map((record) => record.priority);
      assert.deepEqual(order, [10, 10, 20, 30]);
    }
  });

  it("drops the '.' target (no service)", () => {
    assert.deepEqual(
      rfc2782Order([srv(".", 0, 0), srv("a", 0, 0)], Math.random).map((record) => record.target),
      ["a"],
    );
  });

  it("picks first in proportion to weight, and a zero weight rarely", () => {
    const records = [srv("zero", 0, 0), srv("light", 0, 10), srv("heavy", 0, 30)];
    const random = seeded(42);
    const first = new Map<string, number>();
    const rounds = 4_000;
    for (let round = 0; round < rounds; round++) {
      const target = rfc2782Order(records, random)[0]?.target as string;
      first.set(target, (first.get(target) ?? 0) + 1);
    }
    // Expected shares: heavy 30/41, light 10/41, zero 1/41 (it wins only a draw of exactly 0).
    const share = (target: string): number => (first.get(target) ?? 0) / rounds;
    assert.ok(Math.abs(share("heavy") - 30 / 41) < 0.04, `heavy ${share("heavy")}`);
    assert.ok(Math.abs(share("light") - 10 / 41) < 0.04, `light ${share("light")}`);
    assert.ok(share("zero") < 0.06, `zero ${share("zero")}`);
  });

  it("is a permutation of the usable records with non-decreasing priority (property)", () => {
    const record = fc.record({
      target: fc.constantFrom("a", "b", "c", "d", "e", "."),
      port: fc.integer({ min: 1, max: 65535 }),
      priority: fc.integer({ min: 0, max: 3 }),
      weight: fc.integer({ min: 0, max: 100 }),
    });
    fc.assert(
      fc.property(fc.array(record, { maxLength: 12 }), fc.integer(), (records, seed) => {
        const order = rfc2782Order(records, seeded(seed));
        const usable = records.filter((item) => item.target !== ".");
        assert.equal(order.length, usable.length);
        assert.deepEqual(new Set(order), new Set(usable));
        for (let index = 1; index < order.length; index++)
          assert.ok((order[index - 1] as SrvTarget).priority <= (order[index] as SrvTarget).priority);
      }),
    );
  });
});

const site: Tier = { kind: "site", site: "a" };
const closest: Tier = { kind: "closest", site: "b", cost: 10 };
const generic: Tier = { kind: "generic" };
const candidate = (key: string, tier: Tier): Candidate => ({ key, url: `http://${key}`, tier });

describe("FailureBook and plan", () => {
  const tiers = [
    [candidate("a1:1", site), candidate("a2:1", site)],
    [candidate("b1:1", closest)],
    [candidate("a1:1", generic), candidate("b1:1", generic), candidate("c1:1", generic)],
  ];
  const keys = (list: Candidate[]): string[] => list.map((item) => `${item.key}/${item.tier.kind}`);

  it("tries the own site, then the closest sites, then generic records, each server once", () => {
    assert.deepEqual(keys(plan(tiers, new FailureBook(), 0)), [
      "a1:1/site",
      "a2:1/site",
      "b1:1/closest",
      "c1:1/generic",
    ]);
  });

  it("skips failed servers during their back-off and puts them last, soonest retry first", () => {
    const book = new FailureBook({ baseMs: 100, maxMs: 1_000 });
    book.fail("a2:1", 0, "refused");
    book.fail("a1:1", 10, "refused");
    assert.deepEqual(keys(plan(tiers, book, 50)), ["b1:1/closest", "c1:1/generic", "a2:1/site", "a1:1/site"]);
    // a2's back-off ran out at 100: back in its own place, before the other site.
    assert.deepEqual(keys(plan(tiers, book, 100)), [
      "a2:1/site",
      "b1:1/closest",
      "c1:1/generic",
      "a1:1/site",
    ]);
    assert.deepEqual(keys(plan(tiers, book, 110)), keys(plan(tiers, new FailureBook(), 0)));
  });

  it("doubles the back-off with each consecutive failure up to the ceiling; a success forgets", () => {
    const book = new FailureBook({ baseMs: 100, maxMs: 1_000 });
    const periods = [0, 1, 2, 3, 4, 5].map(() => {
      const failure = book.fail("x", 0, "timeout");
      return failure.until;
    });
    assert.deepEqual(periods, [100, 200, 400, 800, 1_000, 1_000]);
    book.succeed("x");
    assert.equal(book.backedOff("x", 0), undefined);
    assert.equal(book.fail("x", 0, "timeout").until, 100);
  });

  it("every candidate appears exactly once, ready ones before backed-off ones (property)", () => {
    const keyArb = fc.constantFrom("a", "b", "c", "d", "e");
    fc.assert(
      fc.property(
        fc.array(fc.array(keyArb, { maxLength: 4 }), { maxLength: 4 }),
        fc.array(fc.tuple(keyArb, fc.integer({ min: 0, max: 100 })), { maxLength: 6 }),
        fc.integer({ min: 0, max: 3_000 }),
        (tierKeys, failures, now) => {
          const book = new FailureBook({ baseMs: 500, maxMs: 2_000 });
          for (const [key, at] of failures) book.fail(key, at, "x");
          const result = plan(
            tierKeys.map((list) => list.map((key) => candidate(key, generic))),
            book,
            now,
          );
          assert.deepEqual(new Set(result.map((item) => item.key)), new Set(tierKeys.flat()));
          assert.equal(result.length, new Set(tierKeys.flat()).size);
          const firstWaiting = result.findIndex((item) => book.backedOff(item.key, now) !== undefined);
          if (firstWaiting >= 0)
            assert.ok(
              result.slice(firstWaiting).every((item) => book.backedOff(item.key, now) !== undefined),
            );
        },
      ),
    );
  });
});

describe("mergeSession", () => {
  const token = (vector: Record<string, number>): string =>
    Buffer.from(JSON.stringify(vector), "utf8").toString("base64url");
  const read = (text: string | null): unknown =>
    JSON.parse(Buffer.from(text ?? "", "base64url").toString("utf8"));

  it("keeps the per-invocation maximum of the tokens it was handed", () => {
    const merged = mergeSession(token({ x: 5, y: 1 }), token({ y: 3, z: 2 }));
    assert.deepEqual(read(merged), { x: 5, y: 3, z: 2 });
    assert.deepEqual(read(mergeSession(token({ x: 9 }), token({ x: 2 }))), { x: 9 });
  });

  it("keeps what it holds when the answer has none, and takes an unreadable one as is", () => {
    assert.equal(mergeSession("held", null), "held");
    assert.equal(mergeSession(null, "new"), "new");
    assert.equal(mergeSession(token({ x: 1 }), "not json"), "not json");
  });
});
