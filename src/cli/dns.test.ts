import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../test/support/in-process-node.ts";
import { locatorSettingsDefault } from "../core/locator/registration.ts";
import { dnsCommand, dnsStartOptions, dnsStartUsage, parseHostPort } from "./dns.ts";

/** `plexus start`'s DNS flags, and `plexus dns list | add | delete` against a node in this process. */
describe("plexus start DNS flags", () => {
  it("defaults: DNS on the node's host, port 0, the default zone and settings", () => {
    const options = dnsStartOptions({}, {}, "127.0.0.1");
    assert.equal(options?.host, "127.0.0.1");
    assert.equal(options?.port, 0);
    assert.deepEqual(options?.settings, locatorSettingsDefault);
  });

  it("the scavenging age defaults to twice a refresh age that exceeds its default, as --help says", () => {
    const options = dnsStartOptions({ "dns-refresh-seconds": "4000" }, {}, "127.0.0.1");
    assert.equal(options?.settings.scavengeAfterMs, 8_000_000);
    assert.match(
      dnsStartUsage.replace(/\s+/g, " "),
      /default 3600, or twice --dns-refresh-seconds when that is more/,
    );
  });

  it("flags win over the config file; off turns DNS off", () => {
    const options = dnsStartOptions(
      { dns: "[::1]:0", zone: "Corp.Test.", "dns-priority": "5", "dns-rate": "0" },
      { zone: "other.test", dnsWeight: 7 },
      "127.0.0.1",
    );
    assert.equal(options?.host, "::1");
    assert.equal(options?.settings.zone, "corp.test");
    assert.equal(options?.settings.priority, 5);
    assert.equal(options?.settings.weight, 7);
    assert.equal(options?.queriesPerSecondPerSource, 0);
    assert.equal(dnsStartOptions({ dns: "off" }, {}, "127.0.0.1"), undefined);
  });

  it("refuses bad values with a sentence", () => {
    for (const [values, message] of [
      [{ dns: "localhost:53" }, /--dns must be HOST:PORT/],
      [{ dns: "127.0.0.1:70000" }, /--dns must be HOST:PORT/],
      [{ zone: "a b" }, /--zone/],
      [{ "dns-priority": "-1" }, /--dns-priority/],
      [{ "dns-refresh-seconds": "100", "dns-scavenge-seconds": "50" }, /more than --dns-refresh-seconds/],
    ] as const)
      assert.throws(() => dnsStartOptions(values, {}, "127.0.0.1"), message);
    // With DNS off too: a wrong setting is not kept for the day it is turned on.
    assert.throws(() => dnsStartOptions({ dns: "off", zone: "bad..zone" }, {}, "127.0.0.1"), /--zone/);
    assert.throws(() => dnsStartOptions({ dns: "off" }, { dnsTtl: -5 }, "127.0.0.1"), /dns-ttl/);
    assert.equal(dnsStartOptions({ dns: "off" }, { zone: "corp.test", dnsTtl: 30 }, "127.0.0.1"), undefined);
    assert.equal(parseHostPort("[::1]:53")?.port, 53);
    assert.equal(parseHostPort("::1:53"), null);
  });
});

describe("plexus dns", { timeout: 30_000 }, () => {
  let node: InProcessNode;
  let env: Record<string, string>;

  before(async () => {
    node = await startInProcessNode("d1", "hq", {
      partitions: [],
      dns: {
        host: "127.0.0.1",
        port: 0,
        settings: { ...locatorSettingsDefault, zone: "corp.test" },
        queriesPerSecondPerSource: 0,
      },
    });
    env = { PLEXUS_URL: node.url };
  });

  after(async () => {
    await node.close();
  });

  const run = async (args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = "";
    let err = "";
    const code = await dnsCommand(
      args,
      { write: (text: string) => (out += text) },
      { write: (text: string) => (err += text) },
      env,
    );
    return { code, out, err };
  };

  it("adds, lists and deletes a record; the node's own registrations are listed too", async () => {
    assert.equal(
      (await run(["add", "_x._tcp", "SRV", "0", "5", "80", "www", "--zone", "corp.test", "--id", "x"])).code,
      0,
    );
    const listed = await eventuallyListed(run, "_x._tcp");
    assert.match(listed, /_x\._tcp\t-\tSRV\t0 5 80 www\t; id x/);
    assert.match(listed, /_plexus\._tcp\.hq\._sites\t60\tSRV\t.*; node d1, refreshed/);
    assert.equal((await run(["delete", "x", "--zone", "corp.test"])).code, 0);
    assert.doesNotMatch((await run(["list", "--zone", "corp.test"])).out, /_x\._tcp/);
  });

  it("checks a record before sending it: bad usage is exit code 2", async () => {
    for (const args of [
      ["add", "www", "A", "300.1.1.1"],
      ["add", "www", "SOA", "x"],
      ["add", "www.other.test.", "A", "192.0.2.1"],
      ["add", "www"],
      ["frobnicate"],
    ]) {
      const { code } = await run([...args, "--zone", "corp.test"]);
      assert.equal(code, 2, args.join(" "));
    }
    assert.equal((await run(["delete", "no-such-id", "--zone", "corp.test"])).code, 1, "the node refuses");
  });

  it("refuses a CNAME beside other data, other data beside a CNAME, and a CNAME at the apex", async () => {
    const zone = ["--zone", "corp.test"];
    assert.equal((await run(["add", "www", "A", "192.0.2.80", "--id", "www-a", ...zone])).code, 0);
    const cnameBesideA = await run(["add", "www", "CNAME", "other.example.", ...zone]);
    assert.equal(cnameBesideA.code, 2);
    assert.match(
      cnameBesideA.err,
      /^plexus dns add: www\.corp\.test already has A data \(id www-a\): a CNAME cannot share its name/,
    );
    assert.equal((await run(["add", "alias", "CNAME", "www", "--id", "alias", ...zone])).code, 0);
    const besideCname = await run(["add", "Alias.corp.test.", "TXT", "hello", ...zone]);
    assert.equal(besideCname.code, 2);
    assert.match(
      besideCname.err,
      /alias\.corp\.test has a CNAME \(id alias\): no other data can share its name/,
    );
    assert.equal(
      (await run(["add", "alias", "CNAME", "elsewhere.example.", ...zone])).code,
      2,
      "a second CNAME",
    );
    assert.equal(
      (await run(["add", "alias", "CNAME", "www.corp.test.", "--id", "again", ...zone])).code,
      0,
      "the same",
    );
    assert.match(
      (await run(["add", "@", "CNAME", "www", ...zone])).err,
      /a CNAME cannot be at the zone apex/,
    );
    const listed = (await run(["list", ...zone])).out;
    assert.doesNotMatch(listed, /other\.example|hello|elsewhere/);
    for (const id of ["www-a", "alias", "again"]) assert.equal((await run(["delete", id, ...zone])).code, 0);
  });
});

async function eventuallyListed(
  run: (args: string[]) => Promise<{ out: string }>,
  wanted: string,
): Promise<string> {
  // The node's registration pass runs right after it starts; give it a moment to land.
  for (let attempt = 0; attempt < 50; attempt++) {
    const { out } = await run(["list", "--zone", "corp.test"]);
    if (out.includes(wanted) && out.includes("_plexus._tcp.hq._sites")) return out;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return (await run(["list", "--zone", "corp.test"])).out;
}
