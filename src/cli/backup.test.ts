import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { entryPath, eventually, http, LocalCluster } from "../../test/support/cluster.ts";
import { plexus } from "../../test/support/plexus-cli.ts";
import { mountTmpfs, unmountTmpfs } from "../../test/support/tmpfs.ts";
import { nodeId } from "../core/ids.ts";
import { Replica } from "../core/replica/replica.ts";
import { ManualClock, SeededRandom } from "../sim/ports.ts";
import { lockDataDirectory, openDataDirectory } from "../store/data-directory.ts";
import { backupCommand } from "./backup.ts";

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

const person = (name: string) => ({
  dn: `cn=${name},${base}`,
  attributes: { objectClass: ["person"], cn: [name], sn: [name] },
});

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

    const taken = await plexus(["backup", "--data", data, "--output", backup]);
    assert.equal(taken.code, 0, taken.stderr);
    assert.match(taken.stdout, /backup of node n1 at usn \d+ written to/);
    const again = await plexus(["backup", "--data", data, "--output", backup]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists/);

    assert.equal((await http("POST", `${url("n1")}/v1/entries`, person("after-backup"))).status, 201);
    await eventually("n2 holding after-backup", () => holds(url("n2"), "after-backup"));

    const refused = await plexus(["restore", "--data", data, "--from", backup]);
    assert.equal(refused.code, 1, "restore under a running node must be refused");
    assert.match(refused.stderr, /node-running/);

    const oldInvocation = await invocationOf(url("n1"));
    await cluster.stop("n1");
    const restored = await plexus(["restore", "--data", data, "--from", backup]);
    assert.equal(restored.code, 0, restored.stderr);
    // n1 wrote after the backup: what no partner had pulled would be only in the replaced file.
    assert.match(restored.stderr, /note: the replaced database holds changes node n1 made after this backup/);
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
    const bad = await plexus(["restore", "--data", join(cluster.directory, "elsewhere"), "--from", junk]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /plexus restore: .*junk\.db is not a Plexus backup \(not a SQLite database\)/);
    assert.ok(!existsSync(join(cluster.directory, "elsewhere")), "nothing is created for a junk backup");

    const n2Backup = join(cluster.directory, "n2.backup");
    assert.equal(
      (await plexus(["backup", "--data", cluster.node("n2").dataDirectory, "--output", n2Backup])).code,
      0,
    );
    await cluster.stop("n1");
    const wrong = await plexus(["restore", "--data", cluster.node("n1").dataDirectory, "--from", n2Backup]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /wrong-node: .*backup of node n2.*belongs to node n1/);

    // Another cluster's node of the same name: its config and entries would replicate into
    // this cluster (its containers taking the names of this one's in naming conflicts).
    const other = new LocalCluster(topology, timings);
    try {
      const stranger = await other.start("n1", "hq");
      const strangerBackup = join(cluster.directory, "other-n1.backup");
      const taken = await plexus(["backup", "--data", stranger.dataDirectory, "--output", strangerBackup]);
      assert.equal(taken.code, 0, taken.stderr);
      const foreign = await plexus([
        "restore",
        "--data",
        cluster.node("n1").dataDirectory,
        "--from",
        strangerBackup,
      ]);
      assert.equal(foreign.code, 1, foreign.stdout);
      assert.match(
        foreign.stderr,
        /wrong-cluster: .*other-n1\.backup is a backup of a node n1 of another cluster/,
      );
      assert.ok(
        !readdirSync(cluster.node("n1").dataDirectory).some((name) => name.endsWith(".restoring")),
        "nothing staged",
      );
    } finally {
      await other.stopAll();
    }

    const usage = await plexus(["backup", "--data", "x"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--output FILE is required/);
  });

  it("a copy restored into a new directory starts as that node: registered anew, not created afresh", async () => {
    await cluster.start("n1", "hq");
    const n2 = cluster.node("n2");
    const backup = join(cluster.directory, "n2-moved.backup");
    assert.equal((await plexus(["backup", "--data", n2.dataDirectory, "--output", backup])).code, 0);
    await cluster.stop("n2");
    renameSync(n2.dataDirectory, `${n2.dataDirectory}.old`);
    const restored = await plexus(["restore", "--data", n2.dataDirectory, "--from", backup]);
    assert.equal(restored.code, 0, restored.stderr);
    await cluster.start("n2", "hq");
    assert.match(n2.log, /restored-copy/);
    assert.doesNotMatch(n2.log, /directory-created/, "a node's replica is not a new directory");
    const port = new URL(n2.url).port;
    await eventually("n1 learning n2's new port", async () => {
      const answer = await http("GET", entryPath(url("n1"), "cn=n2,cn=servers,cn=config"));
      return (
        (answer.body as { attributes?: { plexusHttpPort?: string[] } }).attributes?.plexusHttpPort?.[0] ===
        port
      );
    });
    assert.equal((await http("POST", `${url("n2")}/v1/entries`, person("from-moved-n2"))).status, 201);
    await eventually("n1 receiving the restored n2's write", () => holds(url("n1"), "from-moved-n2"));
  });
});

/** `plexus backup` or `plexus restore` in this process: its exit code and what it printed. */
function run(
  command: "backup" | "restore",
  args: readonly string[],
): { code: number; stdout: string; stderr: string } {
  let stdout = "";
  let stderr = "";
  const code = backupCommand(
    command,
    args,
    { write: (text: string) => (stdout += text) },
    { write: (text: string) => (stderr += text) },
  );
  return { code, stdout, stderr };
}

describe("plexus backup and restore: files and directories", () => {
  let root = "";
  let backup = "";

  before(() => {
    root = mkdtempSync(join(tmpdir(), "plexus-backup-"));
    const data = join(root, "n1");
    const opened = openDataDirectory(data);
    Replica.create(
      opened.store,
      { clock: new ManualClock(1_790_000_000_000), random: new SeededRandom(1) },
      nodeId("n1"),
    );
    opened.close();
    backup = join(root, "n1.bak");
    const taken = run("backup", ["--data", data, "--output", backup]);
    assert.equal(taken.code, 0, taken.stderr);
  });

  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it("restores into a data directory that does not exist yet, creating it as plexus start would", () => {
    const target = join(root, "new", "deeper");
    const restored = run("restore", ["--data", target, "--from", backup]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.ok(statSync(join(target, "plexus.db")).isFile());
    assert.deepEqual(readdirSync(target), ["plexus.db"], "the restore's lock is gone");
    const opened = openDataDirectory(target);
    assert.equal(opened.restored, true);
    opened.close();
  });

  it("refuses a data directory's own database as the backup, and leaves it in place", () => {
    const data = join(root, "own");
    assert.equal(run("restore", ["--data", data, "--from", backup]).code, 0);
    const own = join(data, "plexus.db");
    const before = readFileSync(own);
    const refused = run("restore", ["--data", data, "--from", own]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /same-file: .*own database, not a backup/);
    assert.deepEqual(readdirSync(data), ["plexus.db"], "nothing moved aside, nothing staged");
    assert.deepEqual(readFileSync(own), before);
  });

  it("a backup into a directory that does not exist says so, and creates nothing", () => {
    const missing = join(root, "nonexistent");
    const refused = run("backup", ["--data", join(root, "n1"), "--output", join(missing, "x.bak")]);
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, `plexus backup: missing: the directory ${missing} does not exist\n`);
    assert.ok(!existsSync(missing));
  });

  it("a junk file is not a Plexus backup, and the target is left alone", () => {
    const junk = join(root, "junk.bak");
    writeFileSync(junk, "not a database at all, and long enough to fill a SQLite header: ".repeat(4));
    const target = join(root, "untouched");
    const refused = run("restore", ["--data", target, "--from", junk]);
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      `plexus restore: not-a-plexus-database: ${junk} is not a Plexus backup (not a SQLite database)\n`,
    );
    assert.ok(!existsSync(target));
  });

  it("restores over a database that cannot be read (what a restore is for), keeping it aside", () => {
    for (const [name, damage] of [
      ["overwritten", (file: string) => writeFileSync(file, "garbage where the header was ".repeat(8))],
      ["emptied", (file: string) => writeFileSync(file, "")],
      ["truncated", (file: string) => truncateSync(file, 4_096)],
    ] as const) {
      const data = join(root, `damaged-${name}`);
      assert.equal(run("restore", ["--data", data, "--from", backup]).code, 0);
      damage(join(data, "plexus.db"));
      const restored = run("restore", ["--data", data, "--from", backup]);
      assert.equal(restored.code, 0, `${name}: ${restored.stderr}`);
      assert.match(restored.stderr, /the replaced database could not be read \(.+\), so it was not checked/);
      assert.equal(readdirSync(data).filter((file) => file.startsWith("plexus.db.replaced-")).length, 1);
      const opened = openDataDirectory(data);
      assert.equal(opened.restored, true);
      opened.close();
    }
  });

  it("a damaged backup is refused as damaged, and the target is left alone", () => {
    const truncated = join(root, "truncated.bak");
    writeFileSync(truncated, readFileSync(backup).subarray(0, 4_096 * 3));
    const target = join(root, "untouched-by-damaged");
    const refused = run("restore", ["--data", target, "--from", truncated]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^plexus restore: not-a-plexus-database: .*truncated\.bak is damaged \(SQLite: .+\): restore from another backup\n$/,
    );
    assert.ok(!existsSync(target));
  });

  it("a backup that fails leaves no file under the backup's name", () => {
    const data = join(root, "damaged-source");
    assert.equal(run("restore", ["--data", data, "--from", backup]).code, 0);
    const database = join(data, "plexus.db");
    truncateSync(database, 4_096 * 3);
    const output = join(root, "from-damaged.bak");
    const failed = run("backup", ["--data", data, "--output", output]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^plexus backup: backup-failed: .*from-damaged\.bak not written: /);
    assert.deepEqual(
      readdirSync(root).filter((file) => file.startsWith("from-damaged")),
      [],
    );
  });

  it("a copy that carries the node's live token (sqlite3 .backup, a snapshot) is restored as a copy after a crash", () => {
    const data = join(root, "crashed");
    assert.equal(run("restore", ["--data", data, "--from", backup]).code, 0);
    const opened = openDataDirectory(data);
    const live = readFileSync(join(data, "plexus.instance"), "utf8");
    // A consistent copy made beside the running node by other means than plexus backup: its
    // instance token is the one the node stamped when it opened the directory.
    const copy = join(root, "live-copy.db");
    const source = new Database(join(data, "plexus.db"), { readonly: true });
    try {
      source.prepare("VACUUM INTO ?").run(copy);
    } finally {
      source.close();
    }
    opened.close();
    // The node then crashed (no last stamp at close): the marker still holds the live token.
    writeFileSync(join(data, "plexus.instance"), live);
    const restored = run("restore", ["--data", data, "--from", copy]);
    assert.equal(restored.code, 0, restored.stderr);
    const reopened = openDataDirectory(data);
    try {
      assert.equal(reopened.restored, true, "a restored copy must take a new invocation id");
    } finally {
      reopened.close();
    }
  });

  it("a restore run as root keeps the owner and mode of the database it replaces", (t) => {
    if (process.getuid?.() !== 0) {
      t.skip("needs root, to give files to another user");
      return;
    }
    const data = join(root, "owned");
    assert.equal(run("restore", ["--data", data, "--from", backup]).code, 0);
    const database = join(data, "plexus.db");
    chownSync(data, 65_534, 65_534);
    chownSync(database, 65_534, 65_534);
    chmodSync(database, 0o600);
    const restored = run("restore", ["--data", data, "--from", backup]);
    assert.equal(restored.code, 0, restored.stderr);
    const stat = statSync(database);
    assert.deepEqual(
      { uid: stat.uid, gid: stat.gid, mode: stat.mode & 0o777 },
      { uid: 65_534, gid: 65_534, mode: 0o600 },
      "the node's user must still be able to open its database, and no one else",
    );
    // Into an empty directory of the node's user: the database is that user's too.
    const empty = join(root, "owned-empty");
    mkdirSync(empty);
    chownSync(empty, 65_534, 65_534);
    assert.equal(run("restore", ["--data", empty, "--from", backup]).code, 0);
    const fresh = statSync(join(empty, "plexus.db"));
    assert.deepEqual({ uid: fresh.uid, gid: fresh.gid }, { uid: 65_534, gid: 65_534 });
  });

  it("a restore onto a full disk says that nothing was replaced", (t) => {
    const disk = join(root, "full-disk");
    mkdirSync(disk);
    const refused = mountTmpfs(disk, "size=64k");
    if (refused !== null) {
      t.skip(refused);
      return;
    }
    try {
      const target = join(disk, "n1");
      const refused = run("restore", ["--data", target, "--from", backup]);
      assert.equal(refused.code, 1);
      assert.equal(
        refused.stderr,
        `plexus restore: restore-failed: ${join(target, "plexus.db")} not replaced: database or disk is full\n`,
      );
      assert.deepEqual(readdirSync(target), [], "nothing staged, no lock left");
    } finally {
      unmountTmpfs(disk);
    }
  });

  it("a data directory on a read-only filesystem is refused as such", (t) => {
    const disk = join(root, "read-only");
    mkdirSync(disk);
    const refused = mountTmpfs(disk, "size=1m,ro");
    if (refused !== null) {
      t.skip(refused);
      return;
    }
    try {
      const refused = run("restore", ["--data", disk, "--from", backup]);
      assert.equal(refused.code, 1);
      assert.equal(
        refused.stderr,
        `plexus restore: data-directory-unusable: cannot use the data directory ${disk}: its filesystem is read-only\n`,
      );
    } finally {
      unmountTmpfs(disk);
    }
  });

  it("a restore is refused while the data directory is held, naming the process", () => {
    const target = join(root, "held");
    const lock = lockDataDirectory(target, "plexus start");
    try {
      const refused = run("restore", ["--data", target, "--from", backup]);
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        new RegExp(`node-running: the data directory ${target} is in use by process ${process.pid} `),
      );
      assert.deepEqual(readdirSync(target), ["plexus.lock"]);
    } finally {
      lock.release();
    }
  });
});
