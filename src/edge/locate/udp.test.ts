import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import type { NodeId } from "../../core/ids.ts";
import { checkTopology, type SiteName, type TopologyConfig } from "../../core/topology/model.ts";
import {
  answerBytesMax,
  encodeAnswer,
  type LocateUdp,
  parsePing,
  requestBytesMax,
  startLocateUdp,
} from "./udp.ts";

const checked = checkTopology({
  sites: [{ name: "east" }, { name: "west" }],
  links: [{ name: "ew", sites: ["east", "west"], cost: 5 }],
  subnets: [
    { cidr: "127.0.0.0/8", site: "east" },
    { cidr: "10.0.0.0/8", site: "west" },
  ],
});
assert.ok(checked.ok);
const topology: TopologyConfig = checked.value;
const view = { topology, node: "e1" as NodeId, site: "east" as SiteName };

describe("the UDP ping", { timeout: 20_000 }, () => {
  let server: LocateUdp;

  before(async () => {
    server = await startLocateUdp("127.0.0.1", 0, () => view);
  });

  after(async () => {
    await server.close();
  });

  /** Sends each datagram and collects what comes back within waitMs. */
  const exchange = async (datagrams: Buffer[], waitMs = 300): Promise<Record<string, unknown>[]> => {
    const socket = createSocket("udp4");
    const answers: Record<string, unknown>[] = [];
    socket.on("message", (message) => answers.push(JSON.parse(message.toString("utf8"))));
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    for (const datagram of datagrams) socket.send(datagram, server.port, "127.0.0.1");
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    socket.close();
    return answers;
  };

  it("answers a ping with the locate answer for the sender, or for the address asked about", async () => {
    const [own, other] = await exchange([
      Buffer.from(JSON.stringify({ v: 1, id: 7 })),
      Buffer.from(JSON.stringify({ v: 1, id: 8, address: "10.1.1.1" })),
    ]);
    assert.equal(own?.id, 7);
    assert.equal(own?.clientSite, "east");
    assert.equal(own?.inClientSite, true);
    assert.equal(other?.id, 8);
    assert.equal(other?.clientSite, "west");
    assert.deepEqual(other?.closestSites, [{ site: "east", cost: 5, servers: 0 }]);
  });

  it("ignores malformed, oversized and unknown requests, and keeps serving", async () => {
    const junk = [
      Buffer.alloc(0),
      Buffer.from("not json"),
      Buffer.from("[1,2]"),
      Buffer.from(JSON.stringify({ v: 2, id: 1 })),
      Buffer.from(JSON.stringify({ v: 1, id: -1 })),
      Buffer.from(JSON.stringify({ v: 1, id: 1, extra: true })),
      Buffer.from(JSON.stringify({ v: 1, id: 1, address: 5 })),
      Buffer.alloc(requestBytesMax + 1, 0x20),
    ];
    assert.deepEqual(await exchange(junk), []);
    assert.equal((await exchange([Buffer.from(JSON.stringify({ v: 1, id: 3 }))]))[0]?.id, 3);
  });

  it("ignores an address that is not one IP address, as GET /v1/locate refuses it", async () => {
    // A name, a zone index or a prefix would otherwise place the client by whatever part of it
    // the subnet matcher reads, where the HTTP route answers 400.
    const notAddresses = ["not-an-ip", "10.1.1.1%eth0", "10.1.1.1/8", "010.001.001.001", ""];
    for (const address of notAddresses)
      assert.equal(parsePing(Buffer.from(JSON.stringify({ v: 1, id: 1, address }))), null, address);
    const datagrams = notAddresses.map((address) => Buffer.from(JSON.stringify({ v: 1, id: 1, address })));
    assert.deepEqual(await exchange(datagrams), []);
    assert.equal(parsePing(Buffer.from(JSON.stringify({ v: 1, id: 2, address: "::ffff:10.1.1.1" })))?.id, 2);
  });

  it("drops a source over its rate", async () => {
    const many = Array.from({ length: 200 }, (_, id) => Buffer.from(JSON.stringify({ v: 1, id })));
    const answers = await exchange(many, 500);
    assert.ok(answers.length > 0 && answers.length < 200, `${answers.length} answers`);
  });

  it("never reads a random datagram as a request unless it is one, and keeps answers under the size bound", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const parsed = parsePing(Buffer.from(bytes));
        if (parsed !== null) assert.ok(Number.isInteger(parsed.id));
      }),
    );
    const names = Array.from({ length: 8 }, (_, index) => `${"s".repeat(60)}${index}`);
    const wide = checkTopology({
      sites: [{ name: "home" }, ...names.map((name) => ({ name }))],
      links: names.map((name, index) => ({ name: `l${index}`, sites: ["home", name], cost: index + 1 })),
    });
    assert.ok(wide.ok);
    const datagram = encodeAnswer(1, {
      address: "10.0.0.1",
      clientSite: "home" as SiteName,
      subnet: null,
      node: "n".repeat(60) as NodeId,
      nodeSite: "home" as SiteName,
      inClientSite: true,
      closestSites: names.map((name, cost) => ({ site: name as SiteName, cost, servers: 99 })),
    });
    assert.ok(datagram.length <= answerBytesMax);
  });
});
