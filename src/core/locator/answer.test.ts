import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { answerQuestion, cnameChainMax, type Health, unhealthyPriorityPenalty } from "./answer.ts";
import type { DnsRecord } from "./records.ts";
import { compileZones, dnsAttributes } from "./zone.ts";
import { recordEntry, zoneEntry, zoneWith } from "./zone-fixture.ts";

const entries = [
  ...zoneWith(
    "plexus.test",
    [
      "@ NS n1",
      "n1 A 10.0.0.1",
      "n2 A 10.0.0.2",
      "n2 AAAA 2001:db8::2",
      "_plexus._tcp SRV 0 100 8080 n1 node=n1",
      "_plexus._tcp SRV 0 100 8081 n2 node=n2",
      "_plexus._tcp.hq._sites SRV 0 100 8080 n1 node=n1",
      "www CNAME n1",
      "out CNAME www.example.org.",
      "loop1 CNAME loop2",
      "loop2 CNAME loop1",
      "note TXT hello world",
      "bad A 999.1.1.1",
      "n1 CNAME n2",
    ],
    { plexusDnsTtl: "600", plexusDnsSoaMinimum: "30" },
  ),
  ...zoneWith("sub.plexus.test", ["x A 10.9.9.9"]),
];
const compiled = compileZones(entries);
const zones = compiled.set;

function ask(name: string, type: string, health?: Health) {
  return answerQuestion(zones, { name, type, class: "IN" }, health);
}

function srvPriorities(records: readonly DnsRecord[]): number[] {
  return records.flatMap((record) => (record.type === "SRV" ? [record.priority] : []));
}

describe("compileZones", () => {
  it("reports records it cannot serve and serves the rest", () => {
    assert.ok(compiled.problems.some((problem) => problem.includes("IPv4")));
    assert.ok(compiled.problems.some((problem) => problem.includes("CNAME cannot share")));
    assert.equal(zones.zones.size, 2);
    assert.equal(ask("n1.plexus.test", "A").answers.length, 1);
  });
});

describe("answerQuestion", () => {
  it("answers SRV with glue for the targets, authoritatively", () => {
    const answer = ask("_plexus._tcp.plexus.test.", "SRV");
    assert.equal(answer.rcode, "NOERROR");
    assert.ok(answer.authoritative);
    assert.equal(answer.answers.length, 2);
    assert.deepEqual(answer.additional.map((record) => record.type).sort(), ["A", "A", "AAAA"]);
  });

  it("matches names case-insensitively", () => {
    assert.equal(ask("_PLEXUS._TCP.HQ._SITES.Plexus.Test", "srv").answers.length, 1);
  });

  it("NXDOMAIN for a name that does not exist, with the SOA at the negative TTL", () => {
    const answer = ask("nope.plexus.test", "A");
    assert.equal(answer.rcode, "NXDOMAIN");
    assert.equal(answer.answers.length, 0);
    const soa = answer.authority[0];
    assert.equal(soa?.type, "SOA");
    assert.equal(soa?.ttl, 30, "min(SOA TTL 600, minimum 30)");
  });

  it("NODATA (NOERROR, empty, SOA) for a name with other types and for empty non-terminals", () => {
    for (const [name, type] of [
      ["n1.plexus.test", "AAAA"],
      ["_tcp.plexus.test", "SRV"],
      ["_sites.plexus.test", "A"],
    ] as const) {
      const answer = ask(name, type);
      assert.equal(answer.rcode, "NOERROR", name);
      assert.equal(answer.answers.length, 0, name);
      assert.equal(answer.authority[0]?.type, "SOA", name);
    }
  });

  it("REFUSED outside the served zones and for zone transfers; the longest zone wins", () => {
    assert.equal(ask("example.com", "A").rcode, "REFUSED");
    assert.equal(ask("plexus.test", "AXFR").rcode, "REFUSED");
    assert.equal(answerQuestion(zones, { name: "n1.plexus.test", type: "A", class: "CH" }).rcode, "REFUSED");
    assert.equal(ask("x.sub.plexus.test", "A").answers.length, 1);
    assert.equal(ask("y.sub.plexus.test", "A").authority[0]?.name, "sub.plexus.test");
  });

  it("follows CNAMEs inside the zones, stops at outside targets and at loops", () => {
    const www = ask("www.plexus.test", "A");
    assert.deepEqual(
      www.answers.map((record) => record.type),
      ["CNAME", "A"],
    );
    const out = ask("out.plexus.test", "A");
    assert.equal(out.rcode, "NOERROR");
    assert.deepEqual(
      out.answers.map((record) => record.type),
      ["CNAME"],
    );
    const loop = ask("loop1.plexus.test", "A");
    assert.equal(loop.rcode, "NOERROR");
    assert.deepEqual(
      loop.answers.map(
        (record) => `${record.name} ${record.type} ${record.type === "CNAME" ? record.target : ""}`,
      ),
      ["loop1.plexus.test CNAME loop2.plexus.test", "loop2.plexus.test CNAME loop1.plexus.test"],
      "a loop is answered with each of its records once (RFC 2181 section 5), not repeated to the chain limit",
    );
    assert.ok(loop.answers.length <= cnameChainMax + 1);
  });

  it("ANY returns every record at the name; the apex has SOA and NS", () => {
    assert.deepEqual(
      ask("plexus.test", "ANY")
        .answers.map((record) => record.type)
        .sort(),
      ["NS", "SOA"],
    );
  });

  it("moves an unreachable node's SRV records to a worse priority, never out of the answer", () => {
    const health: Health = { unhealthy: new Set(["n1"]) };
    const answer = ask("_plexus._tcp.plexus.test", "SRV", health);
    assert.deepEqual(srvPriorities(answer.answers).sort(), [0, unhealthyPriorityPenalty]);
    const everyone: Health = { unhealthy: new Set(["n1", "n2"]) };
    assert.equal(ask("_plexus._tcp.plexus.test", "SRV", everyone).answers.length, 2);
  });

  it("never throws and always gives an rcode, whatever the question", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), fc.string({ maxLength: 12 }), (name, type) => {
        const answer = answerQuestion(zones, { name, type, class: "IN" });
        assert.ok(["NOERROR", "NXDOMAIN", "REFUSED", "NOTIMP"].includes(answer.rcode));
      }),
    );
  });

  it("serves one TTL per RRset, the lowest of its records' (RFC 2181 section 5.2)", () => {
    // Nodes register with their own --dns-ttl, and an operator's record without a TTL takes the
    // zone's: the same name and type then holds records written with different TTLs.
    const withTtl = (id: string, line: string, ttl: string) => {
      const entry = recordEntry("mixed.test", id, line);
      return { ...entry, attributes: { ...entry.attributes, [dnsAttributes.ttl]: [ttl] } };
    };
    const mixed = compileZones([
      zoneEntry("mixed.test", { plexusDnsTtl: "300" }),
      recordEntry("mixed.test", "operator-ns", "@ NS ns1.example.net."),
      withTtl("n1-ns", "@ NS n1 node=n1", "60"),
      withTtl("n1-srv", "_plexus._tcp SRV 0 100 8080 n1 node=n1", "60"),
      withTtl("n2-srv", "_plexus._tcp SRV 0 100 8081 n2 node=n2", "120"),
      withTtl("n1-a", "n1 A 10.0.0.1", "600"),
      withTtl("n1-a-again", "n1 A 10.0.0.1", "30"),
      withTtl("n1-aaaa", "n1 AAAA 2001:db8::1", "900"),
      withTtl("n2-a", "n2 A 10.0.0.2", "45"),
    ]).set;
    const ttls = (name: string, type: string) =>
      answerQuestion(mixed, { name, type, class: "IN" }).answers.map((record) => record.ttl);
    assert.deepEqual(ttls("mixed.test", "NS"), [60, 60]);
    assert.deepEqual(ttls("_plexus._tcp.mixed.test", "SRV"), [60, 60]);
    assert.deepEqual(ttls("n1.mixed.test", "A"), [30], "a duplicate record lowers its RRset's TTL");
    assert.deepEqual(ttls("n1.mixed.test", "AAAA"), [900], "another type at the name keeps its own");
    const glue = answerQuestion(mixed, { name: "_plexus._tcp.mixed.test", type: "SRV", class: "IN" });
    assert.deepEqual(glue.additional.map((record) => `${record.type} ${record.ttl}`).sort(), [
      "A 30",
      "A 45",
      "AAAA 900",
    ]);
  });

  it('takes an SRV target of "." : the service is decidedly not available (RFC 2782)', () => {
    const none = compileZones(
      zoneWith("none.test", ["_ldap._tcp SRV 0 0 0 .", "_ftp._tcp SRV 0 0 21 ftp.example.net."]),
    );
    assert.deepEqual(none.problems, []);
    const answer = answerQuestion(none.set, { name: "_ldap._tcp.none.test", type: "SRV", class: "IN" });
    assert.equal(answer.rcode, "NOERROR");
    const [record] = answer.answers;
    assert.ok(record?.type === "SRV");
    assert.deepEqual([record.priority, record.weight, record.port, record.target], [0, 0, 0, ""]);
    assert.deepEqual(answer.additional, []);
  });
});
