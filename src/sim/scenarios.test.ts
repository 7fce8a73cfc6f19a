import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { unwrap } from "../core/result.ts";
import { Scenario } from "./scenario.ts";

/**
 * Named scenarios: the stories the replication contract must survive, told step by step on
 * the simulator. Each ends with the same invariants the random seeds are checked against.
 */
const base = "dc=example,dc=com";
const minute = 60_000;
const person = { objectClass: ["person"] };

function assertClean(scenario: Scenario): void {
  assert.equal(scenario.settle(), true, "the replicas did not converge");
  const { violations } = scenario.finalCheck();
  assert.deepEqual(violations, []);
}

describe("scenarios", () => {
  it("concurrent modify on two nodes: the later write wins everywhere", () => {
    const scenario = new Scenario(2);
    unwrap(scenario.write(0, { op: "add", dn: `cn=x,${base}`, attributes: person }));
    scenario.settle();
    const cut = scenario.partition([0]);
    unwrap(
      scenario.write(0, {
        op: "modify",
        dn: `cn=x,${base}`,
        changes: [{ operation: "replace", attribute: "description", values: ["from 0"] }],
      }),
    );
    scenario.advance(1000);
    unwrap(
      scenario.write(1, {
        op: "modify",
        dn: `cn=x,${base}`,
        changes: [{ operation: "replace", attribute: "description", values: ["from 1"] }],
      }),
    );
    scenario.heal(cut);
    assertClean(scenario);
    for (const node of [0, 1])
      assert.deepEqual(unwrap(scenario.get(node, `cn=x,${base}`)).attributes.description, ["from 1"]);
  });

  it("delete versus modify: the entry stays deleted", () => {
    const scenario = new Scenario(3);
    unwrap(scenario.write(0, { op: "add", dn: `cn=x,${base}`, attributes: person }));
    scenario.settle();
    const cut = scenario.partition([0]);
    unwrap(scenario.write(0, { op: "delete", dn: `cn=x,${base}` }));
    unwrap(
      scenario.write(1, {
        op: "modify",
        dn: `cn=x,${base}`,
        changes: [{ operation: "replace", attribute: "description", values: ["late"] }],
      }),
    );
    scenario.heal(cut);
    assertClean(scenario);
    for (const node of [0, 1, 2]) assert.equal(scenario.get(node, `cn=x,${base}`).ok, false);
  });

  it("same-DN adds on two nodes: both survive, one under a conflict name", () => {
    const scenario = new Scenario(2);
    const cut = scenario.partition([0]);
    unwrap(
      scenario.write(0, {
        op: "add",
        dn: `cn=twin,${base}`,
        attributes: { ...person, description: ["made on 0"] },
      }),
    );
    scenario.advance(10);
    unwrap(
      scenario.write(1, {
        op: "add",
        dn: `cn=twin,${base}`,
        attributes: { ...person, description: ["made on 1"] },
      }),
    );
    scenario.heal(cut);
    assertClean(scenario);
    const twins = scenario.dns(0).filter((dn) => dn.startsWith("cn=twin"));
    assert.equal(twins.length, 2);
    assert.ok(twins.includes(`cn=twin,${base}`));
    assert.ok(
      twins.some((dn) => /^cn=twin\\0ACNF:[0-9a-f]{32},dc=example,dc=com$/.test(dn)),
      twins.join(" | "),
    );
    assert.deepEqual(scenario.dns(1), scenario.dns(0));
  });

  it("an entry added under a parent deleted concurrently lands in LostAndFound", () => {
    const scenario = new Scenario(2);
    unwrap(
      scenario.write(0, {
        op: "add",
        dn: `ou=doomed,${base}`,
        attributes: { objectClass: ["organizationalUnit"] },
      }),
    );
    scenario.settle();
    const cut = scenario.partition([0]);
    unwrap(scenario.write(0, { op: "delete", dn: `ou=doomed,${base}` }));
    unwrap(scenario.write(1, { op: "add", dn: `cn=child,ou=doomed,${base}`, attributes: person }));
    scenario.heal(cut);
    assertClean(scenario);
    for (const node of [0, 1]) assert.ok(scenario.dns(node).includes(`cn=child,cn=LostAndFound,${base}`));
  });

  it("concurrent group-membership adds on three nodes: every member is kept", () => {
    const scenario = new Scenario(3);
    unwrap(
      scenario.write(0, {
        op: "add",
        dn: `cn=staff,${base}`,
        attributes: { objectClass: ["groupOfNames"], member: [`cn=a,${base}`] },
      }),
    );
    scenario.settle();
    const cuts = [scenario.partition([0]), scenario.partition([1])];
    for (const node of [0, 1, 2]) {
      unwrap(
        scenario.write(node, {
          op: "modify",
          dn: `cn=staff,${base}`,
          changes: [{ operation: "add", attribute: "member", values: [`cn=m${node},${base}`] }],
        }),
      );
    }
    for (const cut of cuts) scenario.heal(cut);
    assertClean(scenario);
    const members = [...(unwrap(scenario.get(2, `cn=staff,${base}`)).attributes.member ?? [])].sort();
    assert.deepEqual(members, [`cn=a,${base}`, `cn=m0,${base}`, `cn=m1,${base}`, `cn=m2,${base}`]);
  });

  it("a partition healed after an hour of divergent writes on both sides", () => {
    const scenario = new Scenario(4, {
      placement: [0, 0, 1, 1],
      sites: 2,
      intraPullIntervalMs: 10_000,
      interPullIntervalMs: 30_000,
    });
    const cut = scenario.partition([0, 1]);
    for (let minuteIndex = 0; minuteIndex < 60; minuteIndex++) {
      unwrap(
        scenario.write(minuteIndex % 2, {
          op: "add",
          dn: `cn=east${minuteIndex},${base}`,
          attributes: person,
        }),
      );
      unwrap(
        scenario.write(2 + (minuteIndex % 2), {
          op: "add",
          dn: `cn=west${minuteIndex},${base}`,
          attributes: person,
        }),
      );
      // Both sides also fight over one entry's name and one attribute.
      unwrap(
        scenario.write(0, {
          op: "modify",
          dn: base,
          changes: [{ operation: "replace", attribute: "description", values: [`east ${minuteIndex}`] }],
        }),
      );
      unwrap(
        scenario.write(3, {
          op: "modify",
          dn: base,
          changes: [{ operation: "replace", attribute: "description", values: [`west ${minuteIndex}`] }],
        }),
      );
      scenario.advance(minute);
    }
    scenario.heal(cut);
    assertClean(scenario);
    const dns = scenario.dns(2);
    assert.equal(dns.filter((dn) => /^cn=(east|west)\d+,/.test(dn)).length, 120);
    for (const node of [0, 1, 3]) assert.deepEqual(scenario.dns(node), dns);
  });

  it("a node restored from an old backup takes a new invocation id and loses nothing others have", () => {
    const scenario = new Scenario(3);
    unwrap(scenario.write(1, { op: "add", dn: `cn=before,${base}`, attributes: person }));
    scenario.settle();
    const backup = scenario.snapshot(1);
    const invocation = scenario.node(1).replica?.invocationId;
    unwrap(scenario.write(1, { op: "add", dn: `cn=after-backup,${base}`, attributes: person }));
    scenario.settle();
    scenario.restore(1, backup);
    assert.notEqual(scenario.node(1).replica?.invocationId, invocation);
    unwrap(scenario.write(1, { op: "add", dn: `cn=after-restore,${base}`, attributes: person }));
    assertClean(scenario);
    for (const node of [0, 1, 2]) {
      for (const name of ["before", "after-backup", "after-restore"])
        assert.ok(scenario.dns(node).includes(`cn=${name},${base}`), `${name} on ${node}`);
    }
  });

  it("a node back after longer than the tombstone lifetime does not bring deleted entries back", () => {
    const lifetime = 10 * minute;
    const scenario = new Scenario(3, { tombstoneLifetimeMs: lifetime, purgeIntervalMs: minute });
    unwrap(scenario.write(0, { op: "add", dn: `cn=doomed,${base}`, attributes: person }));
    unwrap(scenario.write(0, { op: "add", dn: `cn=keeper,${base}`, attributes: person }));
    scenario.settle();
    scenario.crash(2);
    unwrap(scenario.write(0, { op: "delete", dn: `cn=doomed,${base}` }));
    scenario.advance(lifetime + 3 * minute); // node 0 and 1 purge the tombstone by age
    assert.equal(scenario.node(0).sqlite.counts().tombstones, 0);
    scenario.restart(2);
    assertClean(scenario);
    for (const node of [0, 1, 2]) {
      assert.equal(scenario.dns(node).includes(`cn=doomed,${base}`), false, `doomed is back on ${node}`);
      assert.ok(scenario.dns(node).includes(`cn=keeper,${base}`));
    }
    const events = scenario.node(2).replica?.events() ?? [];
    assert.ok(events.some((event) => event.kind === "quarantined"));
    assert.ok(events.some((event) => event.kind === "lingering-removed"));
  });
});
