import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { plexus } from "../../test/support/plexus-cli.ts";
import { eventually, http, LocalCluster, locatorOf } from "./local-cluster.ts";

/**
 * The entry commands (and repl, conflicts, topology) with `--zone` instead of `--url`, as real `bin/plexus.mjs` processes
 * against two node processes of one site: the command finds a node through the nodes' DNS
 * servers, and still works when the node it would pick first is killed. Bad flag combinations
 * are usage errors (exit 2).
 */
const zone = "plexus.test";
const base = "dc=example,dc=com";

describe("plexus get/add --zone", { timeout: 120_000 }, () => {
  const cluster = new LocalCluster(
    { sites: [{ name: "east" }], settings: { intraSitePullIntervalMs: 500, notifyDelayMs: 5 } },
    { pullTimeoutMs: 2_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 },
  );
  const dnsServers: string[] = [];

  before(async () => {
    const e1 = await cluster.start("e1", "east", { timeoutMs: 60_000 });
    await cluster.start("e2", "east", { join: [e1.url], timeoutMs: 60_000 });
    for (const node of cluster.nodes.values()) {
      const { dns } = await locatorOf(node.url);
      assert.ok(dns !== null);
      dnsServers.push(dns);
    }
    // Both nodes' SRV records on e1's DNS server (e2's registration replicated to e1).
    await eventually("e2's registration on e1", async () => {
      await http("POST", `${cluster.node("e1").url}/v1/replicate`, { timeoutMs: 2_000 });
      const status = await http("GET", `${cluster.node("e1").url}/v1/status`);
      return ((status.body as { dns?: { records?: number } }).dns?.records ?? 0) >= 6;
    });
  });

  after(async () => {
    await cluster.stopAll();
  });

  const located = (): string[] => [
    "--zone",
    zone,
    ...dnsServers.flatMap((server) => ["--dns-server", server]),
  ];

  it("adds and reads an entry through the locator, and keeps working with one node killed", async () => {
    const added = await plexus([
      "add",
      `cn=zoned,${base}`,
      "objectClass=person",
      "cn=zoned",
      "sn=Z",
      ...located(),
    ]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stderr, /plexus-session: /);
    await cluster.stop("e1", "SIGKILL");
    const read = await plexus(["get", `cn=zoned,${base}`, "--json", ...located()]);
    assert.equal(read.code, 0, read.stderr);
    assert.equal((JSON.parse(read.stdout) as { dn: string }).dn, `cn=zoned,${base}`);
  });

  it("repl status, conflicts and topology take --zone: they run against the node the locator picks", async () => {
    const urls = [...cluster.nodes.values()].map((node) => node.url);
    const status = await plexus(["repl", "status", "--json", ...located()]);
    assert.equal(status.code, 0, status.stderr);
    assert.ok(urls.includes((JSON.parse(status.stdout) as { url: string }).url), status.stdout);
    const conflicts = await plexus(["conflicts", "--json", ...located()]);
    assert.equal(conflicts.code, 0, conflicts.stderr);
    const topology = await plexus(["topology", ...located()]);
    assert.equal(topology.code, 0, topology.stderr);
    assert.match(topology.stdout, /east/);
    const both = await plexus(["repl", "status", "--zone", zone, "--url", "http://127.0.0.1:1"]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /not both/);
  });

  it("refuses --dns-server without --zone and --zone with --url", async () => {
    const lone = await plexus(["get", `cn=x,${base}`, "--dns-server", "127.0.0.1:53"]);
    assert.equal(lone.code, 2);
    assert.match(lone.stderr, /--dns-server goes with --zone/);
    const both = await plexus(["get", `cn=x,${base}`, "--zone", zone, "--url", "http://127.0.0.1:1"]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /not both/);
    // A topology file needs no node: refused before any DNS lookup (this server answers nothing).
    const file = await plexus([
      "topology",
      "--zone",
      zone,
      "--dns-server",
      "127.0.0.1:9",
      "--config",
      "examples/topology.json",
    ]);
    assert.equal(file.code, 2);
    assert.match(file.stderr, /give --config or --zone, not both/);
    // A DNS server is an address: a name said "Invalid IP address: bogus", naming no flag.
    for (const server of ["bogus", "dns.example:53", "127.0.0.1:0", "127.0.0.1:70000"]) {
      const named = await plexus(["get", `cn=x,${base}`, "--zone", zone, "--dns-server", server]);
      assert.equal(named.code, 2, server);
      assert.match(
        named.stderr,
        new RegExp(
          `--dns-server '${server.replace(/\./g, "\\.")}' is not HOST or HOST:PORT with HOST an IP address`,
        ),
      );
    }
  });

  it("says which servers it tried when none answers", async () => {
    await cluster.stop("e2", "SIGKILL");
    const read = await plexus(["get", `cn=zoned,${base}`, ...located()]);
    assert.notEqual(read.code, 0);
    assert.match(read.stderr, /no Plexus server|cannot reach/);
    // The URL the command builds for the zone is only a base: the error names the zone.
    const unknown = await plexus(["get", `cn=zoned,${base}`, "--zone", "nosuch.zone", ...located().slice(2)]);
    assert.equal(unknown.code, 3, unknown.stderr);
    assert.match(unknown.stderr, /cannot reach any node of the zone nosuch\.zone: /);
    assert.doesNotMatch(unknown.stderr, /http:\/\/nosuch\.zone/);
  });
});
