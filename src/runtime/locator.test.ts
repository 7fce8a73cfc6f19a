import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { promises as dns } from "node:dns";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { NodeId } from "../core/ids.ts";
import { unhealthyPriorityPenalty } from "../core/locator/answer.ts";
import { locatorSettingsDefault } from "../core/locator/registration.ts";
import { dnsAttributes, dnsClasses, zoneDn } from "../core/locator/zone.ts";
import type { WriteRequest } from "../core/replica/originating.ts";
import type { EntryView } from "../core/replica/read.ts";
import { fail, ok } from "../core/result.ts";
import { checkTopology, type SiteName, type TopologyConfig } from "../core/topology/model.ts";
import { type ClusterSecret, clusterSecret } from "./auth.ts";
import { type LocatorHost, type LocatorOptions, NodeLocator } from "./locator.ts";
import { type Logger, silentLogger } from "./log.ts";
import { PlexusNode, runtimeTimingsDefault } from "./node.ts";

/**
 * Two nodes of one site in this process, each with its DNS server: both register, each answers
 * the other's records once replicated, an operator's record written on one is answered by the
 * other, an empty site is covered, and a node that stops is moved back in the SRV answer.
 */
const zone = "corp.test";
const secret = clusterSecret("a cluster secret for the locator test") as ClusterSecret;
const timings = {
  ...runtimeTimingsDefault,
  pullTimeoutMs: 500,
  retryBackoffBaseMs: 50,
  retryBackoffMaxMs: 200,
};
const dnsOptions: LocatorOptions = {
  host: "127.0.0.1",
  port: 0,
  settings: { ...locatorSettingsDefault, zone, refreshMs: 60_000, scavengeAfterMs: 600_000 },
  queriesPerSecondPerSource: 0,
};

const execFileAsync = promisify(execFile);
const digSkip =
  spawnSync("dig", ["-v"]).error === undefined
    ? false
    : "dig is not installed (Debian dnsutils; .ci/run installs it)";

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}${last === undefined ? "" : `: ${String(last)}`}`);
}

function resolverFor(node: PlexusNode): dns.Resolver {
  const resolver = new dns.Resolver({ timeout: 1_000, tries: 1 });
  resolver.setServers([node.dnsAddress ?? ""]);
  return resolver;
}

describe("the locator in two nodes", { timeout: 90_000 }, () => {
  const directory = mkdtempSync(join(tmpdir(), "plexus-locator-"));
  const nodes: PlexusNode[] = [];
  let first: PlexusNode;
  let second: PlexusNode;

  const start = (name: string, joinUrls: string[], site = "hq") =>
    PlexusNode.start({
      dataDirectory: join(directory, name),
      node: name as NodeId,
      site: site as SiteName,
      host: "127.0.0.1",
      port: 0,
      join: joinUrls,
      secret,
      partitions: ["dc=example,dc=com"],
      topology: {
        sites: [{ name: "hq" }, { name: "branch" }],
        links: [{ name: "hq-branch", sites: ["hq", "branch"], cost: 10, notify: true }],
        settings: { staleAfterFailures: 1, intraSitePullIntervalMs: 200, notifyDelayMs: 0 },
      },
      synchronous: "normal",
      pageWorker: true,
      timings,
      log: silentLogger,
      dns: dnsOptions,
    });

  before(async () => {
    first = await start("n1", []);
    nodes.push(first);
    second = await start("n2", [first.url]);
    nodes.push(second);
  });

  after(async () => {
    for (const node of nodes) await node.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  it("each node answers both nodes' SRV records, per site and for the covered empty site, with glue", async () => {
    for (const node of [first, second]) {
      const resolver = resolverFor(node);
      for (const name of [
        `_plexus._tcp.${zone}`,
        `_plexus._tcp.hq._sites.${zone}`,
        `_plexus._tcp.branch._sites.${zone}`,
      ]) {
        const targets = await eventually(`${name} on ${node.dnsAddress}`, async () => {
          const records = await resolver.resolveSrv(name);
          const found = records.map((record) => record.name).sort();
          return found.length === 2 ? found : undefined;
        });
        assert.deepEqual(targets, [`n1.${zone}`, `n2.${zone}`]);
      }
      assert.deepEqual(await resolver.resolve4(`n2.${zone}`), ["127.0.0.1"]);
      assert.equal((await resolver.resolveNs(zone)).length, 2);
    }
  });

  it("dig against a node: its site's SRV records with glue, TCP too", { skip: digSkip }, async () => {
    const [host, port] = (second.dnsAddress ?? "").split(":");
    const { stdout } = await execFileAsync(
      "dig",
      [`@${host}`, "-p", port ?? "", "+tcp", "+norec", `_plexus._tcp.hq._sites.${zone}`, "SRV"],
      { timeout: 10_000 },
    );
    assert.match(stdout, /status: NOERROR/);
    assert.match(stdout, /flags: qr aa;/);
    assert.match(stdout, /ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 3/, "two A records of glue and the OPT");
    assert.match(
      stdout,
      /ADDITIONAL SECTION:\nn[12]\.corp\.test\.\s+60\s+IN\s+A\s+127\.0\.0\.1\nn[12]\.corp\.test\./,
    );
  });

  it("an operator's record written on one node is answered by the other once replicated", async () => {
    const response = await fetch(`${first.url}/v1/entries`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        dn: `cn=www,${zoneDn(zone)}`,
        attributes: {
          objectClass: ["top", dnsClasses.record],
          cn: ["www"],
          [dnsAttributes.name]: ["www"],
          [dnsAttributes.type]: ["A"],
          [dnsAttributes.data]: ["192.0.2.80"],
        },
      }),
    });
    assert.equal(response.status, 201);
    const resolver = resolverFor(second);
    const addresses = await eventually("www on the second node", async () => {
      const found = await resolver.resolve4(`www.${zone}`).catch(() => []);
      return found.length > 0 ? found : undefined;
    });
    assert.deepEqual(addresses, ["192.0.2.80"]);
  });

  it("once a node serves the empty site, the covering nodes' records for it go", async () => {
    const third = await start("n3", [first.url], "branch");
    nodes.push(third);
    const resolver = resolverFor(first);
    const targets = await eventually("branch served by n3 alone", async () => {
      const found = (await resolver.resolveSrv(`_plexus._tcp.branch._sites.${zone}`)).map(
        (record) => record.name,
      );
      return found.length === 1 && found[0] === `n3.${zone}` ? found : undefined;
    });
    assert.deepEqual(targets, [`n3.${zone}`]);
    await third.stop();
  });

  it("a node that stops answering is moved to a worse priority, not removed", async () => {
    await second.stop();
    const resolver = resolverFor(first);
    const records = await eventually("n2 moved back", async () => {
      const found = await resolver.resolveSrv(`_plexus._tcp.hq._sites.${zone}`);
      return found.some((record) => record.priority === unhealthyPriorityPenalty) ? found : undefined;
    });
    assert.equal(records.length, 2);
    const byName = new Map(records.map((record) => [record.name, record.priority]));
    assert.equal(byName.get(`n1.${zone}`), 0);
    assert.equal(byName.get(`n2.${zone}`), unhealthyPriorityPenalty);
  });
});

describe("the locator's zone view", { timeout: 30_000 }, () => {
  it("answers what a registration pass compiled, even when no query came in between", async () => {
    const entries: EntryView[] = [];
    let dnsChanges = 0;
    let writes = 0;
    const checked = checkTopology({
      sites: [{ name: "hq" }],
      servers: [{ node: "n1", site: "hq", addresses: ["127.0.0.1"], httpPort: 8080 }],
    });
    assert.ok(checked.ok);
    const host: LocatorHost = {
      search: () => ok({ entries: [...entries], truncated: false, next: null }),
      dnsChanges: () => dnsChanges,
      // A new object each time, as a node's topology is after every re-read: every check passes.
      topology: (): TopologyConfig => ({ ...(checked.value as TopologyConfig) }),
      partners: () => [],
      unreachableAfterFailures: () => 3,
      write: async (request: WriteRequest) => {
        writes++;
        if (request.op === "add") {
          entries.push({ dn: request.dn, guid: request.dn as never, attributes: request.attributes });
          dnsChanges++;
        }
        return ok({});
      },
      log: silentLogger,
    };
    const locator = await NodeLocator.start(host, dnsOptions, {
      node: "n1" as NodeId,
      site: "hq" as SiteName,
      address: "127.0.0.1",
      httpPort: 8080,
      ldapPort: null,
    });
    try {
      await eventually("the first pass", async () => (writes > 0 ? true : undefined));
      // The second pass compiles the zone itself (the topology object changed).
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const resolver = new dns.Resolver({ timeout: 1_000, tries: 1 });
      resolver.setServers([locator.address]);
      assert.deepEqual(await resolver.resolve4(`n1.${zone}`), ["127.0.0.1"]);
    } finally {
      await locator.close();
    }
  });

  it("keeps answering from the last zones when reading the replica fails, and says when a read was cut short", async () => {
    const entries: EntryView[] = [
      {
        dn: zoneDn(zone),
        guid: "zone" as never,
        attributes: { objectClass: ["top", dnsClasses.zone], dc: [zone] },
      },
      {
        dn: `cn=www,${zoneDn(zone)}`,
        guid: "www" as never,
        attributes: {
          objectClass: ["top", dnsClasses.record],
          cn: ["www"],
          [dnsAttributes.name]: ["www"],
          [dnsAttributes.type]: ["A"],
          [dnsAttributes.data]: ["192.0.2.80"],
        },
      },
    ];
    let dnsChanges = 1;
    let reading: "ok" | "failing" | "truncated" = "ok";
    const logged: string[] = [];
    const log: Logger = { log: (_level, event) => void logged.push(event) };
    const host: LocatorHost = {
      search: () =>
        reading === "failing"
          ? fail("limit-exceeded", "too many entries scanned")
          : ok({ entries: [...entries], truncated: reading === "truncated", next: null }),
      dnsChanges: () => dnsChanges,
      // No topology: no registration pass writes anything, the view is all this test drives.
      topology: () => null,
      partners: () => [],
      unreachableAfterFailures: () => 3,
      write: async () => ok({}),
      log,
    };
    const locator = await NodeLocator.start(host, dnsOptions, {
      node: "n1" as NodeId,
      site: "hq" as SiteName,
      address: "127.0.0.1",
      httpPort: 8080,
      ldapPort: null,
    });
    const resolver = new dns.Resolver({ timeout: 1_000, tries: 1 });
    resolver.setServers([locator.address]);
    const settle = () => new Promise((resolve) => setTimeout(resolve, 150));
    try {
      assert.deepEqual(await resolver.resolve4(`www.${zone}`), ["192.0.2.80"]);
      reading = "failing";
      dnsChanges++;
      await settle();
      assert.deepEqual(
        await resolver.resolve4(`www.${zone}`),
        ["192.0.2.80"],
        "a failed read is no reason to answer REFUSED for the whole zone",
      );
      assert.ok(logged.includes("dns-zone-read-failed"), logged.join(", "));
      reading = "truncated";
      dnsChanges++;
      await settle();
      assert.deepEqual(await resolver.resolve4(`www.${zone}`), ["192.0.2.80"]);
      const status = locator.status() as { problems: string[] };
      assert.ok(
        status.problems.some((problem) => problem.includes("left out")),
        JSON.stringify(status.problems),
      );
    } finally {
      await locator.close();
    }
  });
});

/**
 * Site coverage in one locator over a replica held in memory: n1 in hq, b1 alone in branch
 * (one link). The topology object never changes, so only the locator's own triggers make a
 * pass run before the interval (refreshMs / 4 = 15 s here).
 */
describe("the locator's coverage of a site whose node comes and goes", { timeout: 30_000 }, () => {
  const checked = checkTopology({
    sites: [{ name: "hq" }, { name: "branch" }],
    links: [{ name: "hq-branch", sites: ["hq", "branch"], cost: 10 }],
    servers: [
      { node: "n1", site: "hq", addresses: ["127.0.0.1"], httpPort: 8080 },
      { node: "b1", site: "branch", addresses: ["127.0.0.2"], httpPort: 8090 },
    ],
  });
  assert.ok(checked.ok);
  const topology = checked.value as TopologyConfig;
  const branchName = `_plexus._tcp.branch._sites.${zone}`;
  const coverId = "n1 SRV _plexus._tcp.branch._sites";

  /** A replica of entries by DN that applies adds and deletes, and the writes it was sent. */
  function memoryHost(initial: readonly EntryView[]) {
    const entries = new Map(initial.map((entry) => [entry.dn.toLowerCase(), entry]));
    const writes: WriteRequest[] = [];
    let dnsChanges = 1;
    const host: LocatorHost = {
      search: () => ok({ entries: [...entries.values()], truncated: false, next: null }),
      dnsChanges: () => dnsChanges,
      topology: () => topology,
      partners: () => [],
      unreachableAfterFailures: () => 3,
      write: async (request: WriteRequest) => {
        writes.push(request);
        if (request.op === "add")
          entries.set(request.dn.toLowerCase(), {
            dn: request.dn,
            guid: request.dn as never,
            attributes: request.attributes,
          });
        if (request.op === "delete") entries.delete(request.dn.toLowerCase());
        dnsChanges++;
        return ok({});
      },
      log: silentLogger,
    };
    const replicate = (entry: EntryView) => {
      entries.set(entry.dn.toLowerCase(), entry);
      dnsChanges++;
    };
    return { host, writes, replicate };
  }

  function b1Record(refreshedAt: number): EntryView {
    const id = "b1 SRV _plexus._tcp.branch._sites";
    return {
      dn: `cn=${id},${zoneDn(zone)}`,
      guid: id as never,
      attributes: {
        objectClass: ["top", dnsClasses.record],
        cn: [id],
        [dnsAttributes.name]: ["_plexus._tcp.branch._sites"],
        [dnsAttributes.type]: ["SRV"],
        [dnsAttributes.data]: [`0 100 8090 b1.${zone}.`],
        [dnsAttributes.ttl]: ["60"],
        [dnsAttributes.node]: ["b1"],
        [dnsAttributes.refreshedAt]: [String(refreshedAt)],
      },
    };
  }

  const zoneEntryView: EntryView = {
    dn: zoneDn(zone),
    guid: "zone" as never,
    attributes: { objectClass: ["top", dnsClasses.zone], dc: [zone] },
  };
  const endpoint = {
    node: "n1" as NodeId,
    site: "hq" as SiteName,
    address: "127.0.0.1",
    httpPort: 8080,
    ldapPort: null,
  };
  const wrote = (writes: readonly WriteRequest[], op: WriteRequest["op"], id: string) =>
    writes.some((write) => write.op === op && write.dn.startsWith(`cn=${id},`));
  const srvTargets = async (locator: NodeLocator, name: string) => {
    const resolver = new dns.Resolver({ timeout: 1_000, tries: 1 });
    resolver.setServers([locator.address]);
    const found = await resolver.resolveSrv(name).catch(() => []);
    return found.map((record) => record.name).sort();
  };

  it("covers the site in the pass that scavenges its only node's records, not a pass later", async () => {
    const stale = Date.now() - dnsOptions.settings.scavengeAfterMs - 60_000;
    const { host, writes } = memoryHost([zoneEntryView, b1Record(stale)]);
    const locator = await NodeLocator.start(host, dnsOptions, endpoint);
    try {
      await eventually("b1's stale record scavenged", async () =>
        wrote(writes, "delete", "b1 SRV _plexus._tcp.branch._sites") ? true : undefined,
      );
      await eventually(
        "n1 registered under branch's names",
        async () => (wrote(writes, "add", coverId) ? true : undefined),
        3_000,
      );
      const targets = await eventually("branch answered with n1 alone", async () => {
        const found = await srvTargets(locator, branchName);
        return found.length === 1 && found[0] === `n1.${zone}` ? found : undefined;
      });
      assert.deepEqual(targets, [`n1.${zone}`]);
    } finally {
      await locator.close();
    }
  });

  it("withdraws from the site once its node's records arrive, without waiting for the interval", async () => {
    const { host, writes, replicate } = memoryHost([zoneEntryView]);
    const locator = await NodeLocator.start(host, dnsOptions, endpoint);
    try {
      // b1 has not registered: n1 covers branch (once its own records say hq is served).
      await eventually(
        "n1 covering branch",
        async () => (wrote(writes, "add", coverId) ? true : undefined),
        3_000,
      );
      replicate(b1Record(Date.now()));
      await eventually(
        "n1's branch record withdrawn",
        async () => (wrote(writes, "delete", coverId) ? true : undefined),
        3_000,
      );
      const targets = await eventually("branch answered with b1 alone", async () => {
        const found = await srvTargets(locator, branchName);
        return found.length === 1 && found[0] === `b1.${zone}` ? found : undefined;
      });
      assert.deepEqual(targets, [`b1.${zone}`]);
    } finally {
      await locator.close();
    }
  });
});
