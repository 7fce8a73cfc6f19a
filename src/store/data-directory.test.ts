import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { mountTmpfs, remountTmpfs, unmountTmpfs } from "../../test/support/tmpfs.ts";
import { nodeId } from "../core/ids.ts";
import { Replica } from "../core/replica/replica.ts";
import { unwrap } from "../core/result.ts";
import { ManualClock, SeededRandom } from "../sim/ports.ts";
import {
  DataDirectoryInUseError,
  databaseFileName,
  lockDataDirectory,
  lockFileName,
  markerFileName,
  openDataDirectory,
} from "./data-directory.ts";
import { SqliteStore } from "./sqlite-store.ts";
import { dumpStore } from "./store-contract.ts";

let seed = 0;
const ports = () => ({ clock: new ManualClock(1_790_000_000_000), random: new SeededRandom(++seed) });

function withDirectory(run: (directory: string) => void): void {
  const directory = mkdtempSync(join(tmpdir(), "plexus-datadir-"));
  try {
    run(directory);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

function removeDatabase(directory: string): void {
  for (const suffix of ["", "-wal", "-shm"])
    rmSync(join(directory, `${databaseFileName}${suffix}`), { force: true });
}

describe("data directory", () => {
  it("a new directory and plain reopens are not restores", () => {
    withDirectory((directory) => {
      const first = openDataDirectory(directory);
      assert.equal(first.restored, false);
      Replica.create(first.store, ports(), nodeId("node-a"));
      first.close();
      const second = openDataDirectory(directory);
      assert.equal(second.restored, false);
      second.close();
    });
  });

  it("a database file restored from a backup is detected, and the replica takes a new invocation id", () => {
    withDirectory((directory) => {
      const backup = join(directory, "..", `${directory.split("/").at(-1)}-backup.db`);
      try {
        const opened = openDataDirectory(directory);
        const replica = Replica.create(opened.store, ports(), nodeId("node-a"));
        unwrap(replica.createPartition("dc=example,dc=com"));
        opened.backupTo(backup);
        unwrap(
          replica.writeOne({
            op: "add",
            dn: "cn=after,dc=example,dc=com",
            attributes: { objectClass: ["person"] },
          }),
        );
        const before = replica.invocationId;
        opened.close();

        removeDatabase(directory);
        copyFileSync(backup, join(directory, databaseFileName));
        const restored = openDataDirectory(directory);
        assert.equal(restored.restored, true);
        assert.match(restored.reason ?? "", /does not match/);
        const reopened = Replica.open(restored.store, ports(), { restored: restored.restored });
        assert.notEqual(reopened.invocationId, before);
        assert.equal(reopened.get("cn=after,dc=example,dc=com").ok, false);
        restored.close();
      } finally {
        rmSync(backup, { force: true });
      }
    });
  });

  it("a database without its marker (copied into a new directory) counts as restored", () => {
    withDirectory((directory) => {
      const opened = openDataDirectory(directory);
      Replica.create(opened.store, ports(), nodeId("node-a"));
      opened.close();
      rmSync(join(directory, markerFileName));
      const again = openDataDirectory(directory);
      assert.equal(again.restored, true);
      again.close();
    });
  });

  it("a raw copy of the file taken while the node ran is recognised after a clean close", () => {
    withDirectory((directory) => {
      const opened = openDataDirectory(directory);
      Replica.create(opened.store, ports(), nodeId("node-a"));
      const copy = join(directory, "raw-copy.db");
      opened.store.backupTo(copy, opened.store.instanceToken() ?? ""); // as if copied byte for byte
      opened.close();
      removeDatabase(directory);
      copyFileSync(copy, join(directory, databaseFileName));
      const again = openDataDirectory(directory);
      assert.equal(again.restored, true);
      again.close();
    });
  });
});

describe("reopening a replica", () => {
  it("restores exactly the state it had: entries, stamps, USN, invocation, UTD, watermarks, events", () => {
    withDirectory((directory) => {
      const opened = openDataDirectory(directory);
      const replica = Replica.create(opened.store, ports(), nodeId("node-a"));
      unwrap(replica.createPartition("dc=example,dc=com"));
      unwrap(
        replica.writeOne({
          op: "add",
          dn: "cn=x,dc=example,dc=com",
          attributes: { objectClass: ["person"] },
        }),
      );
      unwrap(replica.writeOne({ op: "delete", dn: "cn=x,dc=example,dc=com" }));
      const other = Replica.create(SqliteStore.open({ path: ":memory:" }), ports(), nodeId("node-b"));
      unwrap(other.createPartition("o=other"));
      unwrap(replica.applyChanges(unwrap(other.getChanges(replica.changeRequest(other.nodeId)))));
      const before = dumpStore(opened.store);
      const meta = replica.meta;
      const utd = replica.utd();
      opened.close();

      const again = openDataDirectory(directory);
      const reopened = Replica.open(again.store, ports(), { restored: again.restored });
      assert.equal(again.restored, false);
      assert.deepEqual(reopened.meta, meta);
      assert.deepEqual(reopened.utd(), utd);
      const after = dumpStore(again.store);
      // The instance token is renewed by design; everything else is exactly as it was.
      assert.deepEqual(after, before);
      again.close();
    });
  });
});

/** How long a child process may take to open the directory (it loads tsx first). */
const childOpenTimeoutMs = 30_000;
const dataDirectoryModule = new URL("./data-directory.ts", import.meta.url).pathname;

/** A node process stand-in: another process that opens the directory and holds it until killed. */
async function holdInChild(directory: string): Promise<ChildProcess> {
  const script = `import { openDataDirectory } from ${JSON.stringify(dataDirectoryModule)};
openDataDirectory(process.argv[1]);
console.log("open");
setInterval(() => {}, 60_000);`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, directory], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), childOpenTimeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout?.once("data", () => resolve());
      child.once("exit", (code, signal) =>
        reject(new Error(`the child exited (${code ?? signal}) before opening ${directory}`)),
      );
    });
  } finally {
    clearTimeout(timer);
  }
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = once(child, "exit");
  child.kill("SIGKILL");
  await exited;
}

function isInUseBy(directory: string, pid: number | undefined): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof DataDirectoryInUseError, String(error));
    assert.equal(error.holder.pid, pid);
    assert.ok(
      error.message.includes(`the data directory ${directory} is in use by process ${pid}`),
      error.message,
    );
    return true;
  };
}

/** Shells tried for a zombie: one that reaps its child before it execs gives none. */
const zombieAttemptsMax = 3;

/**
 * A process that exited and was never reaped, and its parent (to kill afterwards). The shell
 * starts `true` in the background and at once execs `sleep`, which never waits for children:
 * with no command in between, the shell has no moment to reap it (printing `$!` first gave it
 * one, and a CI run lost the zombie that way). The zombie is found as the child of the sleep.
 */
async function makeZombie(): Promise<{ pid: number; startTime: string | null; parent: ChildProcess }> {
  for (let attempt = 1; ; attempt++) {
    const parent = spawn("sh", ["-c", "true & exec sleep 30"], { stdio: "ignore" });
    let found: { pid: number; startTime: string | null } | undefined;
    try {
      await eventuallyTrue(() => {
        found = zombieChildOf(parent.pid ?? -1);
        return found !== undefined;
      });
    } catch (error) {
      await kill(parent);
      if (attempt >= zombieAttemptsMax) throw error;
      continue;
    }
    if (found !== undefined) return { ...found, parent };
  }
}

/** The exited, unreaped child of `parentPid`, read off /proc. */
function zombieChildOf(parentPid: number): { pid: number; startTime: string | null } | undefined {
  for (const name of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(name)) continue;
    let fields: string[];
    try {
      fields = readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    } catch {
      continue; // gone meanwhile
    }
    if (fields[0] === "Z" && Number(fields[1]) === parentPid)
      return { pid: Number(name), startTime: fields[19] ?? null };
  }
  return undefined;
}

/** How long a child's state may take to show in /proc, and how often it is looked at. */
const childStateTimeoutMs = 5_000;
const childStatePollMs = 10;

async function eventuallyTrue(check: () => boolean): Promise<void> {
  const deadline = Date.now() + childStateTimeoutMs;
  while (!check()) {
    assert.ok(Date.now() < deadline, "the child never reached the state the test needs");
    await new Promise((resolve) => setTimeout(resolve, childStatePollMs));
  }
}

/** The PID of a process that has exited (the kernel may hand it out again, but not this soon). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await once(child, "exit");
  assert.ok(child.pid !== undefined);
  return child.pid;
}

describe("data directory lock", () => {
  it("a second open from another process is refused at once, naming the PID, and touches nothing", async () => {
    const directory = mkdtempSync(join(tmpdir(), "plexus-datadir-"));
    let child: ChildProcess | undefined;
    try {
      child = await holdInChild(directory);
      const marker = readFileSync(join(directory, markerFileName), "utf8");
      assert.throws(() => openDataDirectory(directory), isInUseBy(directory, child.pid));
      assert.equal(readFileSync(join(directory, markerFileName), "utf8"), marker);
      // SIGKILL leaves the lock file behind; the next open takes it over, no cleanup needed.
      await kill(child);
      assert.ok(existsSync(join(directory, lockFileName)));
      const opened = openDataDirectory(directory);
      opened.close();
    } finally {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) await kill(child);
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it("a second open in the same process is refused; close releases the lock", () => {
    withDirectory((directory) => {
      const first = openDataDirectory(directory);
      assert.throws(() => openDataDirectory(directory), isInUseBy(directory, process.pid));
      first.close();
      assert.ok(!existsSync(join(directory, lockFileName)));
      openDataDirectory(directory).close();
    });
  });

  it("a lock left by a dead process, or a garbled one, is taken over", async () => {
    const pid = await deadPid();
    withDirectory((directory) => {
      const lockPath = join(directory, lockFileName);
      writeFileSync(lockPath, `${JSON.stringify({ pid, startTime: null, purpose: "plexus start" })}\n`);
      openDataDirectory(directory).close();
      writeFileSync(lockPath, "");
      openDataDirectory(directory).close();
      assert.ok(!existsSync(lockPath));
    });
  });

  it("a lock naming a live PID with another start time (a reused PID) is taken over", (context) => {
    if (!existsSync(`/proc/${process.pid}/stat`)) {
      context.skip("no /proc: the PID alone decides");
      return;
    }
    withDirectory((directory) => {
      const reused = { pid: process.pid, startTime: "1", purpose: "plexus start" };
      writeFileSync(join(directory, lockFileName), `${JSON.stringify(reused)}\n`);
      openDataDirectory(directory).close();
    });
  });

  it("a lock held by a zombie (exited, never reaped) is taken over", async (context) => {
    if (!existsSync(`/proc/${process.pid}/stat`)) {
      context.skip("no /proc: a zombie cannot be told from a live process");
      return;
    }
    const zombie = await makeZombie();
    try {
      withDirectory((directory) => {
        const holder = { pid: zombie.pid, startTime: zombie.startTime, purpose: "plexus start" };
        writeFileSync(join(directory, lockFileName), `${JSON.stringify(holder)}\n`);
        openDataDirectory(directory).close();
      });
    } finally {
      await kill(zombie.parent);
    }
  });

  it("a restore holding the directory keeps a node from opening it", () => {
    withDirectory((directory) => {
      const lock = lockDataDirectory(directory, "plexus restore");
      assert.throws(() => openDataDirectory(directory), /in use by process \d+ \(plexus restore\)/);
      lock.release();
      openDataDirectory(directory).close();
    });
  });
});

/** Runs `openDataDirectory(directory)` as the user nobody; what it threw, or "opened". */
function openAsNobody(directory: string): string {
  const script = `import { openDataDirectory } from ${JSON.stringify(dataDirectoryModule)};
process.setgid(65534);
process.setuid(65534);
try {
  openDataDirectory(process.argv[1]).close();
  console.log("opened");
} catch (error) {
  console.log(error.code + ": " + error.message);
}`;
  const child = spawnSync(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script, directory],
    { encoding: "utf8", timeout: childOpenTimeoutMs },
  );
  assert.equal(child.status, 0, child.stderr);
  return child.stdout.trim();
}

describe("data directory the process cannot write", () => {
  const root = process.getuid?.() === 0 && process.platform === "linux";

  it("a read-only filesystem is said as such, for a directory there and one to create", (context) => {
    withDirectory((directory) => {
      const refused = mountTmpfs(directory, "size=1m");
      if (refused !== null) {
        context.skip(refused);
        return;
      }
      try {
        mkdirSync(join(directory, "there"));
        remountTmpfs(directory, "remount,ro");
        assert.throws(() => openDataDirectory(join(directory, "there")), {
          code: "data-directory-unusable",
          message: `cannot use the data directory ${join(directory, "there")}: its filesystem is read-only`,
        });
        // Node's own error here would be "ENOENT: no such file or directory, mkdir".
        assert.throws(() => openDataDirectory(join(directory, "new", "deeper")), {
          code: "data-directory-unusable",
          message: `cannot create the data directory ${join(directory, "new", "deeper")}: its filesystem is read-only`,
        });
      } finally {
        unmountTmpfs(directory);
      }
    });
  });

  it("a database of another user is refused naming the file, its owner and what to do", (context) => {
    if (!root) {
      context.skip("needs root on Linux, to open the directory as another user");
      return;
    }
    withDirectory((directory) => {
      const opened = openDataDirectory(directory);
      Replica.create(opened.store, ports(), nodeId("node-a"));
      opened.close();
      // As `sudo plexus restore` left it before it kept the owner: root's, for a node run as nobody.
      chmodSync(directory, 0o777);
      for (const name of readdirSync(directory)) chownSync(join(directory, name), 65_534, 65_534);
      chmodSync(join(directory, databaseFileName), 0o644);
      chownSync(join(directory, databaseFileName), 0, 0);
      assert.equal(
        openAsNobody(directory),
        `data-directory-unusable: cannot open the database ${join(directory, databaseFileName)}: ` +
          "this process (uid 65534) may not write it (it belongs to uid 0, mode 0644); " +
          "give it to the user that runs the node (was it restored or created by another user?)",
      );
      chownSync(join(directory, databaseFileName), 65_534, 65_534);
      assert.equal(openAsNobody(directory), "opened");
    });
  });
});
