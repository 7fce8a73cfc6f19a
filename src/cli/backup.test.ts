import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { entryPath, eventually, http, LocalCluster } from "../../test/support/cluster.ts";

/**
 * Backup and restore with real node processes: n1 and n2 in one site. A backup of n1 is
 * taken while it runs; n1 then writes more, is stopped and restored. The restored n1 must
 * take a new invocation id, get back from n2 what it wrote after the backup, and its new
 * writes must reach n2 (a reused invocation id would make n2 ignore them as already seen).
 */
const topology = {
  sites: [{ name: "hq" }],
  links: [],
  settings: { intraSitePullIntervalMs: 1_000, notifyDelayMs: 5 },
};
const timings = { pullTimeoutMs: 3_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };
const base = "dc=example,dc=com";
const root = new URL("../..", import.meta.url).pathname;

const person = (name: string) => ({
  dn: `cn=${name},${base}`,
  attributes: { objectClass: ["person"], cn: [name], sn: [name] },
});

function plexus(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli/main.ts"), ...args], {
    cwd: root,
    encoding: "utf8",
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function invocationOf(url: string): Promise<string> {
  return ((await http("GET", `${url}/v1/status`)).body as { invocationId: string }).invocationId;
}

async function holds(url: string, name: string): Promise<boolean> {
  return (await http("GET", entryPath(url, `cn=${name},${base}`))).status === 200;
}

describe("plexus backup and restore", { timeout: 120_000 }, () => {
  const cluster = new LocalCluster(topology, timings);
  const url = (name: string): string => cluster.node(name).url;

  before(async () => {
    const first = await cluster.start("n1", "hq");
    await cluster.start("n2", "hq", { join: [first.url] });
  });

  after(async () => {
    await cluster.stopAll();
  });

  it("restores a copy taken online; the node takes a new invocation id and loses nothing", async () => {
    const data = cluster.node("n1").dataDirectory;
    const backup = join(cluster.directory, "n1.backup");
    assert.equal((await http("POST", `${url("n1")}/v1/entries`, person("before"))).status, 201);

    const taken = plexus("backup", "--data", data, "--output", backup);
    assert.equal(taken.status, 0, taken.stderr);
    assert.match(taken.stdout, /backup of node n1 at usn \d+ written to/);
    const again = plexus("backup", "--data", data, "--output", backup);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already exists/);

    assert.equal((await http("POST", `${url("n1")}/v1/entries`, person("after-backup"))).status, 201);
    await eventually("n2 holding after-backup", () => holds(url("n2"), "after-backup"));

    const refused = plexus("restore", "--data", data, "--from", backup);
    assert.equal(refused.status, 1, "restore under a running node must be refused");
    assert.match(refused.stderr, /node-running/);

    const oldInvocation = await invocationOf(url("n1"));
    await cluster.stop("n1");
    const restored = plexus("restore", "--data", data, "--from", backup);
    assert.equal(restored.status, 0, restored.stderr);
    assert.ok(
      readdirSync(data).some((name) => name.startsWith("plexus.db.replaced-")),
      "the replaced database is kept",
    );

    await cluster.start("n1", "hq");
    assert.match(cluster.node("n1").log, /restored-copy/);
    assert.notEqual(await invocationOf(url("n1")), oldInvocation);
    await eventually("n1 getting after-backup back from n2", () => holds(url("n1"), "after-backup"));
    assert.equal((await http("POST", `${url("n1")}/v1/entries`, person("after-restore"))).status, 201);
    await eventually("n2 receiving n1's write made after the restore", () =>
      holds(url("n2"), "after-restore"),
    );
  });

  it("refuses what is not a backup of this node", async () => {
    const junk = join(cluster.directory, "junk.db");
    writeFileSync(junk, "not a database at all");
    const bad = plexus("restore", "--data", join(cluster.directory, "elsewhere"), "--from", junk);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /plexus restore: /);
    assert.ok(!existsSync(join(cluster.directory, "elsewhere", "plexus.db")));

    const n2Backup = join(cluster.directory, "n2.backup");
    assert.equal(
      plexus("backup", "--data", cluster.node("n2").dataDirectory, "--output", n2Backup).status,
      0,
    );
    await cluster.stop("n1");
    const wrong = plexus("restore", "--data", cluster.node("n1").dataDirectory, "--from", n2Backup);
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /wrong-node: .*backup of node n2.*belongs to node n1/);

    const usage = plexus("backup", "--data", "x");
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /--output FILE is required/);
  });
});
