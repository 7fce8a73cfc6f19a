import assert from "node:assert/strict";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { type ClusterNode, entryPath, eventually, http, LocalCluster } from "./support/cluster.ts";
import { plexus } from "./support/plexus-cli.ts";
import { mountTmpfs, remountTmpfs, unmountTmpfs } from "./support/tmpfs.ts";

/**
 * A node whose disk fills up, for real: n2's data directory is a small tmpfs of its own (a
 * filesystem that runs out of space like a full disk), n1's is on the machine's disk. While n2's
 * disk is full, its client writes are refused with 503 storage-full (nothing stored; a client
 * moves on to another server), said once in its log rather than once per write; its pulls fail
 * at once with that reason, as `repl status` shows it; a node joining through it is asked to
 * retry rather than refused; and it keeps serving reads and its partners' pulls. Once space is freed (the tmpfs grown),
 * it takes writes again and catches up with what n1 took meanwhile, the joiner joins, and every
 * write it acknowledged before is still there.
 */
const base = "dc=example,dc=com";
const topology = { sites: [{ name: "hq" }], settings: { intraSitePullIntervalMs: 1_000, notifyDelayMs: 5 } };
const timings = { pullTimeoutMs: 10_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };
/** Small enough to fill within seconds, large enough for the node to start and join. */
const diskBytes = 6 * 1024 * 1024;
const grownDiskBytes = 64 * 1024 * 1024;
/** Each entry carries this much text, so that the disk fills after about a thousand writes. */
const filler = "x".repeat(4_000);
/** Writes sent to fill the disk, at most, and for how long at most. */
const fillWritesMax = 10_000;
const fillWallMs = 60_000;
const fillConcurrency = 8;
/** Writes that may still find room in SQLite's log file once the disk is full, at most. */
const roomWritesMax = 5_000;
/** Well under the pull timeout: a pull that fails here must not wait for it. */
const pullFailureSeenMs = 5_000;

/** Why this machine cannot run the test (it mounts a tmpfs: root only), or null. */
function tmpfsUnavailable(): string | null {
  const probe = mkdtempSync(join(tmpdir(), "plexus-tmpfs-probe-"));
  try {
    const refused = mountTmpfs(probe, "size=1m");
    if (refused === null) unmountTmpfs(probe);
    return refused;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Takes whatever room is left on the filesystem of `directory` (a file written until ENOSPC). */
function fillUp(directory: string): void {
  const fd = openSync(join(directory, "ballast"), "w");
  const block = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, block);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
  } finally {
    closeSync(fd);
  }
}

const person = (name: string) => ({
  dn: `cn=${name},${base}`,
  attributes: { objectClass: ["person"], cn: [name], sn: [name], description: [filler] },
});

interface Partner {
  readonly node: string;
  readonly pulling: boolean;
  readonly lastFailure: string | null;
  readonly consecutiveFailures: number;
}

const unavailable = tmpfsUnavailable();

describe("a node whose disk is full", { skip: unavailable ?? false, timeout: 180_000 }, () => {
  const cluster = new LocalCluster(topology, timings);
  const disk = join(cluster.directory, "n2");
  let mounted = false;
  const url = (name: string): string => cluster.node(name).url;
  /** Writes n2 acknowledged while its disk filled. */
  const acknowledged: string[] = [];
  /** n3, joining through n2 while its disk is full. */
  let joining: Promise<ClusterNode> | undefined;
  /** A read transaction on n2's store file, open while nothing may fit. */
  let snapshot: Database.Database | undefined;

  before(async () => {
    const first = await cluster.start("n1", "hq");
    mkdirSync(disk);
    const refused = mountTmpfs(disk, `size=${diskBytes}`);
    assert.equal(refused, null);
    mounted = true;
    await cluster.start("n2", "hq", { join: [first.url] });
  });

  after(async () => {
    // The tmpfs is unmounted once n2 has closed its files, then everything goes as usual.
    snapshot?.close();
    await joining?.catch(() => null);
    await cluster.stop("n2").catch(() => null);
    if (mounted) unmountTmpfs(disk);
    await cluster.stopAll();
  });

  it("refuses client writes with 503 storage-full, said once in its log", async () => {
    let next = 0;
    let refused = 0;
    const started = Date.now();
    const worker = async (): Promise<void> => {
      while (refused < 20 && next < fillWritesMax && Date.now() - started < fillWallMs) {
        const name = `fill-${next++}`;
        const answer = await http("POST", `${url("n2")}/v1/entries`, person(name));
        if (answer.status === 201) {
          acknowledged.push(name);
          continue;
        }
        const body = answer.body as { code?: string; detail?: string };
        assert.equal(answer.status, 503, JSON.stringify(body));
        assert.equal(body.code, "storage-full");
        assert.match(body.detail ?? "", /disk is full: the write was not stored/);
        assert.ok(answer.headers.get("retry-after") !== null, "a retryable answer says when to retry");
        refused++;
      }
    };
    await Promise.all(Array.from({ length: fillConcurrency }, worker));
    assert.ok(refused >= 20, `the disk never filled: ${acknowledged.length} writes acknowledged`);
    assert.ok(acknowledged.length > 0, "n2 took writes before its disk filled");
    const log = cluster.node("n2").log;
    const told = log.split("\n").filter((line) => line.includes('"storage-full"')).length;
    // Once per episode (a checkpoint may free a little room between two), not once per write.
    assert.ok(told >= 1 && told < refused / 2, `storage-full logged ${told} times for ${refused} refusals`);
    assert.doesNotMatch(log, /"write-failed"|"request-failed"/);
    // Operators see it: in the status, the metrics and repl status.
    const status = (await http("GET", `${url("n2")}/v1/status`)).body as {
      storageFull: { since: string; refusedWrites: number } | null;
    };
    assert.ok(status.storageFull !== null && status.storageFull.refusedWrites >= 1, JSON.stringify(status));
    const metrics = await http("GET", `${url("n2")}/metrics`);
    assert.match(String(metrics.body), /^plexus_storage_full\{[^}]*\} 1$/m);
    const repl = await plexus(["repl", "status", "--url", url("n2")]);
    assert.equal(repl.code, 0, repl.stderr);
    assert.match(repl.stdout, /^ {2}DISK FULL since \S+: \d+ client writes refused \(storage-full\)$/m);
    // Reads are served all the while.
    const read = await http("GET", entryPath(url("n2"), `cn=${acknowledged[0]},${base}`));
    assert.equal(read.status, 200, JSON.stringify(read.body));
  });

  it("fails its pulls at once with that reason, for repl status to show", async () => {
    for (let index = 0; index < 50; index++) {
      const answer = await http("POST", `${url("n1")}/v1/entries`, person(`from-n1-${index}`));
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
    }
    const started = Date.now();
    let seen: Partner | undefined;
    await eventually(
      "n2's pull from n1 failing for its full disk",
      async () => {
        const status = (await http("GET", `${url("n2")}/v1/status`)).body as { partners: Partner[] };
        seen = status.partners.find((partner) => partner.node === "n1");
        return (
          seen !== undefined && seen.consecutiveFailures > 0 && /disk is full/.test(seen.lastFailure ?? "")
        );
      },
      pullFailureSeenMs,
    );
    assert.ok(Date.now() - started < timings.pullTimeoutMs, `seen after ${Date.now() - started} ms`);
    assert.match(seen?.lastFailure ?? "", /this node's disk is full: the answer could not be stored/);
  });

  it("asks a node joining through it to retry, and still serves its partners' pulls", async () => {
    // Not a byte left, and SQLite kept from writing over its log file's old frames (a reader
    // holds a snapshot, as a long read would): even a pull's small record finds no room.
    snapshot = new Database(join(disk, "plexus.db"), { readonly: true });
    snapshot.exec("BEGIN");
    snapshot.prepare("SELECT count(*) FROM objects").get();
    fillUp(disk);
    // The log file may still hold room past its last frame (it is not shrunk when SQLite starts
    // it over): small writes take it until the first is refused.
    let taken = 0;
    for (; taken < roomWritesMax; taken++) {
      const answer = await http("POST", `${url("n2")}/v1/entries`, person(`room-${taken}`));
      if (answer.status === 503) break;
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
      acknowledged.push(`room-${taken}`);
    }
    assert.ok(taken < roomWritesMax, `n2 still took writes after ${roomWritesMax}`);
    joining = cluster.start("n3", "hq", { join: [url("n2")], timeoutMs: 60_000 });
    let refused: unknown = null;
    joining.catch((error: unknown) => {
      refused = error;
    });
    // Its registration is a write on n2: answered 503 for the full disk, and retried (the old
    // 400 made n3 give up). SQLite may still find room for so small a write, in spite of the
    // writes above (a checkpoint can start its log file over meanwhile): then n3 is admitted,
    // which is as good. Either way n3 does not give up.
    await eventually(
      "n3 retrying its join, or admitted",
      async () => {
        assert.equal(refused, null, `n3 gave up its join: ${String(refused)}`);
        const log = cluster.nodes.get("n3")?.log ?? "";
        return /"join-retry".*disk is full/.test(log) || /"event":"joined"/.test(log);
      },
      15_000,
    );
    // It still serves its partners: a pull's admission stores nothing here, so the writes it
    // acknowledged before its disk filled can leave it.
    const sync = await http("POST", `${url("n1")}/v1/replicate`, { from: "n2", timeoutMs: 5_000 });
    assert.equal(sync.status, 200, JSON.stringify(sync.body));
    assert.deepEqual(
      (sync.body as { pulls: { node: string; result: string }[] }).pulls.map((p) => [p.node, p.result]),
      [["n2", "success"]],
      JSON.stringify(sync.body),
    );
    assert.equal(refused, null, `n3 gave up its join: ${String(refused)}`);
  });

  it("takes writes again and catches up once space is freed, having lost nothing", async () => {
    snapshot?.close();
    snapshot = undefined;
    remountTmpfs(disk, `remount,size=${grownDiskBytes}`);
    await eventually(
      "n2 taking writes again",
      async () => (await http("POST", `${url("n2")}/v1/entries`, person("after-the-fill"))).status === 201,
      15_000,
    );
    await eventually(
      "n2 holding what n1 took meanwhile",
      async () => (await http("GET", entryPath(url("n2"), `cn=from-n1-49,${base}`))).status === 200,
      15_000,
    );
    assert.match(cluster.node("n2").log, /"storage-recovered"/);
    const status = (await http("GET", `${url("n2")}/v1/status`)).body as { storageFull: unknown };
    assert.equal(status.storageFull, null);
    assert.match(
      String((await http("GET", `${url("n2")}/metrics`)).body),
      /^plexus_storage_full\{[^}]*\} 0$/m,
    );
    for (const name of acknowledged) {
      const answer = await http("GET", entryPath(url("n2"), `cn=${name},${base}`));
      assert.equal(answer.status, 200, `${name}, acknowledged by n2 before its disk filled`);
    }
    await eventually(
      "n1 holding every write n2 acknowledged",
      async () => {
        for (const name of [...acknowledged, "after-the-fill"])
          if ((await http("GET", entryPath(url("n1"), `cn=${name},${base}`))).status !== 200) return false;
        return true;
      },
      15_000,
    );
    const n3 = await (joining as Promise<ClusterNode>);
    const joined = await http("GET", entryPath(n3.url, `cn=after-the-fill,${base}`));
    assert.equal(joined.status, 200, "n3 joined through n2 and synced from it");
  });
});
