import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { answerQuestion, cnameChainMax, type Health, unhealthyPriorityPenalty } from "./answer.ts";
import type { DnsRecord } from "./records.ts";
import { compileZones } from "./zone.ts";
import { zoneWith } from "./zone-fixture.ts";

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
});
