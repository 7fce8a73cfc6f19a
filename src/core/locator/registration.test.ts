import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeId } from "../ids.ts";
import type { WriteRequest } from "../replica/originating.ts";
import type { EntryView } from "../replica/read.ts";
import { checkTopology, type SiteName, type TopologyConfig } from "../topology/model.ts";
import { answerQuestion } from "./answer.ts";
import { coveringSites } from "./coverage.ts";
import {
  decommissionedGraceMs,
  healthOf,
  type LocatorSettings,
  locatorSettingsDefault,
  missingOwnEntries,
  type NodeEndpoint,
  registrationWrites,
  scavenge,
  wantedRecords,
} from "./registration.ts";
import { compileZones, dnsAttributes } from "./zone.ts";

function topology(raw: unknown): TopologyConfig {
  const checked = checkTopology(raw);
  assert.ok(checked.ok, checked.ok ? "" : checked.error.message);
  return checked.value;
}

/** hq and east have servers; branch (cost 5 to east, 20 to hq) and far (behind branch) have none. */
const config = topology({
  sites: [{ name: "hq" }, { name: "east" }, { name: "branch" }, { name: "far" }, { name: "island" }],
  links: [
    { name: "hq-east", sites: ["hq", "east"], cost: 10 },
    { name: "hq-branch", sites: ["hq", "branch"], cost: 20 },
    { name: "east-branch", sites: ["east", "branch"], cost: 5 },
    { name: "branch-far", sites: ["branch", "far"], cost: 1 },
  ],
  servers: [
    { node: "h1", site: "hq", addresses: ["10.0.0.1"], httpPort: 8001 },
    { node: "e1", site: "east", addresses: ["10.0.1.1"], httpPort: 8002 },
  ],
});

const settings: LocatorSettings = {
  ...locatorSettingsDefault,
  zone: "corp.test",
  refreshMs: 1_000,
  scavengeAfterMs: 5_000,
};
const e1: NodeEndpoint = {
  node: "e1" as NodeId,
  site: "east" as SiteName,
  address: "10.0.1.1",
  httpPort: 8002,
  ldapPort: null,
};

/** Applies adds, replaces and deletes to a list of entries: a tiny directory for the plans. */
function apply(entries: EntryView[], writes: readonly WriteRequest[]): EntryView[] {
  let next = [...entries];
  for (const write of writes) {
    if (write.op === "add")
      next.push({ dn: write.dn, guid: write.dn as never, attributes: { ...write.attributes } });
    else if (write.op === "delete") next = next.filter((entry) => entry.dn !== write.dn);
    else if (write.op === "modify")
      next = next.map((entry) => {
        if (entry.dn !== write.dn) return entry;
        const attributes: Record<string, readonly string[]> = { ...entry.attributes };
        for (const change of write.changes) attributes[change.attribute] = change.values ?? [];
        return { ...entry, attributes };
      });
  }
  return next;
}

function pass(
  entries: EntryView[],
  self: NodeEndpoint,
  nowMs: number,
): { entries: EntryView[]; writes: WriteRequest[] } {
  const compiled = compileZones(entries);
  const writes = registrationWrites(
    compiled.records,
    compiled.set.zones.has(settings.zone),
    wantedRecords(config, self, settings),
    self.node,
    settings,
    nowMs,
  );
  return { entries: apply(entries, writes), writes };
}

describe("site coverage", () => {
  it("an empty site is covered by its least-cost served site, across empty sites too", () => {
    const covering = coveringSites(config);
    assert.equal(covering.get("branch"), "east");
    assert.equal(covering.get("far"), "east");
    assert.equal(covering.has("island"), false, "no link: nobody covers it");
    assert.equal(covering.has("hq"), false);
  });

  it("a site whose servers have not registered yet stays covered by the next one", () => {
    const covering = coveringSites(config, (node) => node !== "e1");
    assert.equal(covering.get("east"), "hq");
    assert.equal(covering.get("branch"), "hq");
  });
});

describe("registration", () => {
  it("wants A, NS, generic and per-site SRV records, covered sites included, and no _ldap without LDAP", () => {
    const names = wantedRecords(config, e1, settings).map((record) => `${record.type} ${record.name}`);
    assert.deepEqual(names, [
      "A e1",
      "NS @",
      "SRV _plexus._tcp",
      "SRV _plexus._tcp.east._sites",
      "SRV _plexus._tcp.branch._sites",
      "SRV _plexus._tcp.far._sites",
    ]);
    const withLdap = wantedRecords(config, { ...e1, ldapPort: 389 }, settings);
    assert.ok(withLdap.some((record) => record.name === "_ldap._tcp.branch._sites"));
  });

  it("a node the topology no longer lists wants nothing, and deletes what it had", () => {
    const gone = topology({ ...config, servers: config.servers.filter((server) => server.node !== "e1") });
    assert.deepEqual(wantedRecords(gone, e1, settings), []);
    const entries = pass([], e1, 0).entries;
    const compiled = compileZones(entries);
    const writes = registrationWrites(compiled.records, true, [], e1.node, settings, 10);
    assert.equal(writes.length, 6);
    assert.ok(writes.every((write) => write.op === "delete"));
  });

  it("creates the zone and records once, refreshes them when due, and is then quiet", () => {
    const first = pass([], e1, 1_000);
    assert.equal(first.writes[0]?.op, "add");
    assert.equal(first.writes.length, 7, "zone + 6 records");
    const again = pass(first.entries, e1, 1_500);
    assert.equal(again.writes.length, 0, "nothing due yet");
    const refreshed = pass(again.entries, e1, 2_000);
    assert.equal(refreshed.writes.length, 6);
    assert.ok(refreshed.writes.every((write) => write.op === "modify"));
    const srv = answerQuestion(compileZones(refreshed.entries).set, {
      name: "_plexus._tcp.branch._sites.corp.test",
      type: "SRV",
      class: "IN",
    });
    assert.equal(srv.answers.length, 1);
    assert.equal(srv.additional.length, 1, "glue for e1.corp.test");
  });

  it("lists its own wanted records another node deleted, to answer until they are written back", () => {
    const registered = pass([], e1, 1_000).entries;
    const wanted = wantedRecords(config, e1, settings);
    const held = compileZones(registered);
    assert.deepEqual(missingOwnEntries(held.records, true, wanted, e1.node, settings, 2_000), []);
    // Another node's scavenging removed the generic SRV record, as a heal after a long cut does.
    const srvDn = registered.find(
      (entry) => entry.attributes[dnsAttributes.recordId]?.[0] === "e1 SRV _plexus._tcp",
    );
    const left = registered.filter((entry) => entry !== srvDn);
    const missing = missingOwnEntries(compileZones(left).records, true, wanted, e1.node, settings, 2_000);
    assert.deepEqual(
      missing.map((entry) => entry.dn),
      [srvDn?.dn],
    );
    const answer = answerQuestion(compileZones([...left, ...missing]).set, {
      name: "_plexus._tcp.corp.test",
      type: "SRV",
      class: "IN",
    });
    assert.equal(answer.answers.length, 1, "answered again");
    assert.deepEqual(missingOwnEntries([], false, wanted, e1.node, settings, 2_000), [], "no zone: nothing");
  });

  it("changes a record whose data changed and deletes the records it no longer wants", () => {
    const first = pass([], e1, 0).entries;
    const moved = pass(first, { ...e1, httpPort: 9000, site: "hq" as SiteName }, 10);
    const ops = moved.writes.map((write) => write.op).sort();
    assert.ok(ops.includes("modify"));
    assert.equal(ops.filter((op) => op === "delete").length, 3, "east, branch and far site records");
    assert.equal(ops.filter((op) => op === "add").length, 1, "the hq site record");
  });
});

describe("scavenging", () => {
  const h1: NodeEndpoint = {
    node: "h1" as NodeId,
    site: "hq" as SiteName,
    address: "10.0.0.1",
    httpPort: 8001,
    ldapPort: null,
  };
  const both = pass(pass([], e1, 0).entries, h1, 0).entries;

  it("deletes another node's records once not refreshed for scavengeAfterMs, never its own", () => {
    const records = compileZones(both).records;
    assert.equal(scavenge(records, config, e1.node, settings, settings.scavengeAfterMs - 1).length, 0);
    const stale = scavenge(records, config, e1.node, settings, settings.scavengeAfterMs);
    assert.ok(stale.length > 0);
    assert.ok(stale.every((found) => found.node === "h1" && found.reason === "stale"));
  });

  it("deletes a decommissioned node's records after the grace, and leaves operators' records alone", () => {
    const gone = topology({ ...config, servers: config.servers.filter((server) => server.node !== "h1") });
    const operator = {
      dn: "cn=mine,dc=corp.test,cn=dns",
      guid: "op" as never,
      attributes: {
        objectClass: ["plexusDnsRecord"],
        cn: ["mine"],
        [dnsAttributes.name]: ["www"],
        [dnsAttributes.type]: ["A"],
        [dnsAttributes.data]: ["10.1.1.1"],
      },
    };
    const records = compileZones([...both, operator]).records;
    const patient = { ...settings, scavengeAfterMs: 10 * decommissionedGraceMs };
    assert.equal(scavenge(records, gone, e1.node, patient, decommissionedGraceMs - 1).length, 0);
    const found = scavenge(records, gone, e1.node, patient, decommissionedGraceMs);
    assert.equal(found.length, 4, "h1's A, NS, generic and hq SRV records");
    assert.ok(found.every((item) => item.node === "h1" && item.reason === "decommissioned"));
  });

  it("health: partners at or over the failure threshold are unhealthy", () => {
    const health = healthOf(
      [
        { partner: "a" as NodeId, consecutiveFailures: 3 },
        { partner: "b" as NodeId, consecutiveFailures: 2 },
      ],
      3,
    );
    assert.deepEqual([...health.unhealthy], ["a"]);
  });
});
