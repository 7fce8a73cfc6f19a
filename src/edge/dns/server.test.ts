import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { promises as dns } from "node:dns";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import * as dnsPacket from "dns-packet";
import fc from "fast-check";
import { compileZones } from "../../core/locator/zone.ts";
import { zoneWith } from "../../core/locator/zone-fixture.ts";
import { respond, udpPayloadBytesMax } from "./packets.ts";
import { type DnsServer, fixedZoneSource, startDnsServer, tcpConnectionsPerSourceMax } from "./server.ts";

/**
 * The DNS server against real clients: dig (Debian dnsutils, installed by .ci/run) and Node's
 * own resolver (c-ares), over UDP and TCP, plus malformed packets that must change nothing.
 */
const bigCount = 60;
const zone = compileZones(
  zoneWith("plexus.test", [
    "@ NS n1",
    "n1 A 127.0.0.1",
    "n2 A 127.0.0.2",
    "n2 AAAA ::2",
    "_plexus._tcp SRV 0 100 8001 n1",
    "_plexus._tcp SRV 0 100 8002 n2",
    "_plexus._tcp.hq._sites SRV 0 100 8001 n1",
    "_plexus._tcp.east._sites SRV 0 100 8002 n2",
    "txt TXT locator test",
    "_none._tcp SRV 0 0 0 .",
    ...Array.from(
      { length: bigCount },
      (_, index) => `_big._tcp SRV 0 ${index} ${9000 + index} host-${index}.plexus.test.`,
    ),
  ]),
).set;

const execFileAsync = promisify(execFile);
const hasDig = spawnSync("dig", ["-v"]).error === undefined;
const digSkip = hasDig ? false : "dig is not installed (Debian dnsutils; .ci/run installs it)";

async function dig(server: DnsServer, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(
    "dig",
    [`@${server.host}`, "-p", String(server.port), "+time=2", "+tries=1", ...args],
    { timeout: 10_000 },
  );
  return stdout;
}

function udpQuery(port: number, message: Buffer, waitMs = 300): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    const timer = setTimeout(() => {
      socket.close();
      resolve(null);
    }, waitMs);
    socket.on("message", (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    });
    socket.send(message, port, "127.0.0.1");
  });
}

/** The rcode of a response (dns-packet decodes it, its types do not say so). */
function rcodeOf(message: Buffer): string {
  return (dnsPacket.decode(message) as unknown as { rcode: string }).rcode;
}

function query(name: string, type: dnsPacket.RecordType, id = 1): Buffer {
  return dnsPacket.encode({ type: "query", id, flags: 0, questions: [{ name, type, class: "IN" }] });
}

describe("DNS server with real clients", { timeout: 60_000 }, () => {
  let server: DnsServer;

  before(async () => {
    server = await startDnsServer({ host: "127.0.0.1", port: 0, source: fixedZoneSource(zone) });
  });
  after(async () => {
    await server.close();
  });

  it("dig: SRV per site and generic, with glue in the additional section", { skip: digSkip }, async () => {
    const site = await dig(server, "_plexus._tcp.hq._sites.plexus.test", "SRV", "+norec");
    assert.match(site, /status: NOERROR/);
    assert.match(site, /flags: qr aa;/, "authoritative, no recursion available");
    assert.match(site, /SRV\s+0 100 8001 n1\.plexus\.test\./);
    assert.match(site, /ADDITIONAL SECTION:\nn1\.plexus\.test\.\s+\d+\s+IN\s+A\s+127\.0\.0\.1/);
    const generic = await dig(server, "_plexus._tcp.plexus.test", "SRV", "+short");
    assert.equal(generic.trim().split("\n").length, 2);
  });

  it('dig and Node\'s resolver: an SRV target of "." (no such service, RFC 2782) is the root', async (t) => {
    const resolver = new dns.Resolver({ timeout: 2_000, tries: 1 });
    resolver.setServers([`127.0.0.1:${server.port}`]);
    assert.deepEqual(await resolver.resolveSrv("_none._tcp.plexus.test"), [
      { name: "", port: 0, priority: 0, weight: 0 },
    ]);
    if (!hasDig) return t.skip(String(digSkip));
    const none = await dig(server, "_none._tcp.plexus.test", "SRV");
    assert.match(none, /status: NOERROR/);
    assert.match(none, /ANSWER SECTION:\n_none\._tcp\.plexus\.test\.\s+\d+\s+IN\s+SRV\s+0 0 0 \.\n/);
  });

  it("dig: NXDOMAIN, NODATA and REFUSED outside the zone", { skip: digSkip }, async () => {
    const missing = await dig(server, "nope.plexus.test", "A");
    assert.match(missing, /status: NXDOMAIN/);
    assert.match(missing, /AUTHORITY SECTION:\nplexus\.test\.\s+60\s+IN\s+SOA/);
    const nodata = await dig(server, "n1.plexus.test", "AAAA");
    assert.match(nodata, /status: NOERROR/);
    assert.match(nodata, /ANSWER: 0, AUTHORITY: 1/);
    const outside = await dig(server, "example.com", "A");
    assert.match(outside, /status: REFUSED/);
  });

  it("dig: a large answer is truncated over UDP (TC) and complete over TCP", { skip: digSkip }, async () => {
    const udp = await dig(server, "+notcp", "+ignore", "+norec", "_big._tcp.plexus.test", "SRV");
    assert.match(udp, /flags: qr aa tc;/);
    assert.match(udp, /ANSWER: 0,/);
    const tcp = await dig(server, "+tcp", "_big._tcp.plexus.test", "SRV");
    assert.match(tcp, new RegExp(`ANSWER: ${bigCount},`));
    const fallback = await dig(server, "_big._tcp.plexus.test", "SRV", "+short");
    assert.equal(fallback.trim().split("\n").length, bigCount, "dig retries over TCP by itself");
  });

  it("Node's resolver: SRV, A, TXT, NXDOMAIN, NODATA, and TCP fallback on a large answer", async () => {
    const resolver = new dns.Resolver({ timeout: 2_000, tries: 1 });
    resolver.setServers([`127.0.0.1:${server.port}`]);
    const srv = await resolver.resolveSrv("_plexus._tcp.east._sites.plexus.test");
    assert.deepEqual(srv, [{ name: "n2.plexus.test", port: 8002, priority: 0, weight: 100 }]);
    assert.deepEqual(await resolver.resolve4("n2.plexus.test"), ["127.0.0.2"]);
    assert.deepEqual(await resolver.resolveTxt("txt.plexus.test"), [["locator test"]]);
    await assert.rejects(resolver.resolve4("nope.plexus.test"), { code: "ENOTFOUND" });
    await assert.rejects(resolver.resolve6("n1.plexus.test"), { code: "ENODATA" });
    await assert.rejects(resolver.resolve4("example.com"), { code: "EREFUSED" });
    assert.equal((await resolver.resolveSrv("_big._tcp.plexus.test")).length, bigCount);
  });

  it("several queries on one TCP connection, split across writes", async () => {
    const frames = [query("n1.plexus.test", "A", 7), query("n2.plexus.test", "AAAA", 8)].map((message) => {
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(message.length, 0);
      return Buffer.concat([prefix, message]);
    });
    const bytes = Buffer.concat(frames);
    const replies = await new Promise<Buffer>((resolve, reject) => {
      const socket = connect(server.port, "127.0.0.1");
      let received = Buffer.alloc(0);
      socket.on("error", reject);
      socket.on("data", (chunk) => {
        received = Buffer.concat([received, chunk]);
        const first = received.readUInt16BE(0);
        if (
          received.length >= 2 + first + 2 &&
          received.length >= 4 + first + received.readUInt16BE(2 + first)
        ) {
          socket.destroy();
          resolve(received);
        }
      });
      // Byte by byte: framing must not assume one query per read.
      let offset = 0;
      const drip = setInterval(() => {
        socket.write(bytes.subarray(offset, offset + 5));
        offset += 5;
        if (offset >= bytes.length) clearInterval(drip);
      }, 2);
    });
    const first = dnsPacket.decode(replies.subarray(2, 2 + replies.readUInt16BE(0)));
    const second = dnsPacket.decode(replies.subarray(4 + replies.readUInt16BE(0)));
    assert.equal(first.id, 7);
    assert.equal(second.id, 8);
    assert.equal(second.answers?.[0]?.type, "AAAA");
  });

  it("a TCP connection that completes no query within the idle timeout is closed, trickle or not", async () => {
    const idleMs = 300;
    const strict = await startDnsServer({
      host: "127.0.0.1",
      port: 0,
      source: fixedZoneSource(zone),
      tcpIdleTimeoutMs: idleMs,
    });
    const socket = connect(strict.port, "127.0.0.1");
    socket.on("error", () => {});
    // A frame announcing 65,535 bytes, fed one byte at a time well inside the idle time: it
    // never completes, so the connection must not be held for it (one source could otherwise
    // keep every one of tcpConnectionsMax slots).
    const trickle = setInterval(() => socket.write(Buffer.from([0xff])), idleMs / 4);
    const startedAt = Date.now();
    try {
      const closedAfterMs = await new Promise<number>((resolve) => {
        socket.on("close", () => resolve(Date.now() - startedAt));
        setTimeout(() => resolve(Number.POSITIVE_INFINITY), idleMs * 8);
      });
      assert.ok(closedAfterMs < idleMs * 4, `closed after ${closedAfterMs} ms`);
    } finally {
      clearInterval(trickle);
      socket.destroy();
      await strict.close();
    }
  });

  it("one source address holds at most tcpConnectionsPerSourceMax TCP connections; another still gets in", async () => {
    const open = (localAddress: string) =>
      new Promise<{ socket: ReturnType<typeof connect>; closedAtOnce: boolean }>((resolve) => {
        const socket = connect({ port: server.port, host: "127.0.0.1", localAddress });
        socket.on("error", () => {});
        // A refused connection is accepted by the kernel, then closed by the server at once.
        socket.on("connect", () => {
          const timer = setTimeout(() => resolve({ socket, closedAtOnce: false }), 300);
          socket.once("close", () => {
            clearTimeout(timer);
            resolve({ socket, closedAtOnce: true });
          });
        });
      });
    const held = [];
    try {
      for (let index = 0; index < tcpConnectionsPerSourceMax; index++) held.push(await open("127.0.0.1"));
      assert.ok(
        held.every((connection) => !connection.closedAtOnce),
        "up to the limit they stay open",
      );
      const over = await open("127.0.0.1");
      held.push(over);
      assert.ok(over.closedAtOnce, "one more from the same address is closed at once");
      const other = await open("127.0.0.2");
      held.push(other);
      assert.ok(!other.closedAtOnce, "another address still gets a connection");
    } finally {
      for (const connection of held) connection.socket.destroy();
    }
  });

  it("malformed packets are ignored or get FORMERR; the server answers afterwards", async () => {
    assert.equal(
      await udpQuery(server.port, Buffer.from([1, 2, 3])),
      null,
      "a truncated header gets nothing",
    );
    const response = Buffer.from(query("n1.plexus.test", "A"));
    response[2] = (response[2] as number) | 0x80;
    assert.equal(await udpQuery(server.port, response), null, "a response is never answered");
    const lying = Buffer.from(query("n1.plexus.test", "A"));
    lying.writeUInt16BE(65_535, 4);
    const formerr = await udpQuery(server.port, lying);
    assert.ok(formerr !== null);
    assert.equal(rcodeOf(formerr), "FORMERR");
    const notimp = Buffer.from(query("n1.plexus.test", "A"));
    notimp[2] = (notimp[2] as number) | (2 << 3);
    const notimpReply = await udpQuery(server.port, notimp);
    assert.equal(notimpReply === null ? null : rcodeOf(notimpReply), "NOTIMP");
    const socket = createSocket("udp4");
    const random = fc.sample(fc.uint8Array({ minLength: 0, maxLength: 600 }), { numRuns: 300, seed: 42 });
    for (const bytes of random) socket.send(bytes, server.port, "127.0.0.1");
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.close();
    const garbage = connect(server.port, "127.0.0.1");
    garbage.on("error", () => {});
    garbage.end(Buffer.from([0xff, 0xff, 1, 2, 3]));
    const after = await udpQuery(server.port, query("n1.plexus.test", "A", 99), 2_000);
    assert.ok(after !== null, "still answering");
    assert.equal(dnsPacket.decode(after).answers?.[0]?.type, "A");
  });
});

describe("respond (packets in, packets out)", () => {
  it("never throws on any bytes, and answers fit the client's EDNS size", () => {
    const health = { unhealthy: new Set<string>() };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), (bytes) => {
        const reply = respond(Buffer.from(bytes), "udp", zone, health);
        assert.ok(reply === null || reply.length <= udpPayloadBytesMax);
      }),
      { numRuns: 2_000, seed: 7 },
    );
    const withEdns = dnsPacket.encode({
      type: "query",
      id: 3,
      questions: [{ name: "_big._tcp.plexus.test", type: "SRV" }],
      additionals: [{ type: "OPT", name: ".", udpPayloadSize: 4096 } as unknown as dnsPacket.Answer],
    });
    const reply = respond(withEdns, "udp", zone, health);
    assert.ok(reply !== null && reply.length <= udpPayloadBytesMax);
    const decoded = dnsPacket.decode(reply);
    assert.ok(decoded.flag_tc);
    const opt = decoded.additionals?.find((record) => record.type === "OPT") as
      | { udpPayloadSize: number }
      | undefined;
    assert.equal(opt?.udpPayloadSize, udpPayloadBytesMax, "OPT in the answer says what this server takes");
  });

  /** A query written byte by byte: `labels` as sent on the wire, then QTYPE, QCLASS and an optional OPT. */
  function wireQuery(labels: readonly Buffer[], qtype = 1, opt: Buffer | null = null): Buffer {
    const header = Buffer.from([0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, opt === null ? 0 : 1]);
    const name = Buffer.concat([
      ...labels.flatMap((label) => [Buffer.from([label.length]), label]),
      Buffer.from([0]),
    ]);
    const tail = Buffer.alloc(4);
    tail.writeUInt16BE(qtype, 0);
    tail.writeUInt16BE(1, 2);
    return Buffer.concat([header, name, tail, ...(opt === null ? [] : [opt])]);
  }
  const health = { unhealthy: new Set<string>() };
  const labelsOf = (...labels: (string | number[])[]): Buffer[] => labels.map((label) => Buffer.from(label));

  it("a label holding a dot or bytes that are not text is that label, not several, and is echoed as sent", () => {
    // One label "n1.plexus.test" is a name in the root zone, not n1 in plexus.test: this server
    // holds no such name. Read as text, it would be answered with n1's address and a rewritten question.
    for (const [labels, rcode] of [
      [labelsOf("n1.plexus.test"), "REFUSED"],
      [labelsOf("n1.plexus", "test"), "REFUSED"],
      [labelsOf("a.b", "plexus", "test"), "NXDOMAIN"],
      [labelsOf([0xff, 0xfe], "plexus", "test"), "NXDOMAIN"],
      [labelsOf(".", "plexus", "test"), "NXDOMAIN"],
      [labelsOf("n1", "plexus\n", "test"), "REFUSED"],
    ] as const) {
      const message = wireQuery(labels);
      const reply = respond(message, "udp", zone, health);
      assert.ok(reply !== null);
      const decoded = dnsPacket.decode(reply);
      assert.equal(rcodeOf(reply), rcode, JSON.stringify(labels.map(String)));
      assert.equal(decoded.answers?.length, 0);
      assert.deepEqual(
        reply.subarray(12, message.length),
        message.subarray(12),
        "the question comes back byte for byte (resolvers match it)",
      );
      if (rcode === "NXDOMAIN") {
        assert.ok(decoded.flag_aa);
        assert.equal(decoded.authorities?.[0]?.type, "SOA");
      }
    }
    const plain = respond(wireQuery(labelsOf("N1", "Plexus", "test")), "udp", zone, health);
    assert.ok(plain !== null);
    assert.equal(dnsPacket.decode(plain).answers?.[0]?.type, "A", "ordinary names, any case, still answer");
  });

  it("MAILA and MAILB get NOTIMP; an OPT record not owned by the root is FORMERR (RFC 6891)", () => {
    for (const qtype of [253, 254]) {
      const reply = respond(wireQuery(labelsOf("n1", "plexus", "test"), qtype), "udp", zone, health);
      assert.ok(reply !== null);
      assert.equal(rcodeOf(reply), "NOTIMP", `qtype ${qtype}`);
    }
    const unknown = respond(wireQuery(labelsOf("n1", "plexus", "test"), 65_280), "udp", zone, health);
    assert.ok(unknown !== null);
    assert.equal(rcodeOf(unknown), "NOERROR", "an unknown type at an existing name is NODATA");
    const rootOpt = Buffer.from([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    const namedOpt = Buffer.from([1, 0x78, 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    const good = respond(wireQuery(labelsOf("n1", "plexus", "test"), 1, rootOpt), "udp", zone, health);
    assert.ok(good !== null);
    assert.equal(rcodeOf(good), "NOERROR");
    const bad = respond(wireQuery(labelsOf("n1", "plexus", "test"), 1, namedOpt), "udp", zone, health);
    assert.ok(bad !== null);
    assert.equal(rcodeOf(bad), "FORMERR");
  });

  it("drops a source over its rate", async () => {
    const limited = await startDnsServer({
      host: "127.0.0.1",
      port: 0,
      source: fixedZoneSource(zone),
      queriesPerSecondPerSource: 5,
    });
    try {
      const socket = createSocket("udp4");
      let answers = 0;
      socket.on("message", () => answers++);
      for (let index = 0; index < 50; index++)
        socket.send(query("n1.plexus.test", "A", index), limited.port, "127.0.0.1");
      await new Promise((resolve) => setTimeout(resolve, 300));
      socket.close();
      assert.ok(answers >= 5 && answers <= 12, `burst of 10 then 5/s: got ${answers} answers of 50`);
      assert.ok(limited.stats().rateLimited >= 38);
    } finally {
      await limited.close();
    }
  });
});
