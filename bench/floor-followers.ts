/**
 * Floor followers: the replication tax's baseline, measured on the same writer in the same run
 * as Plexus' own partners (part (b) of `npm run bench`).
 *
 * Two processes follow a node's store file and copy every entry the node writes into store
 * files of their own (same schema, synchronous=FULL), a batch per transaction every
 * `followerTickMs`, starting from what the file holds when they start. They do nothing else: no
 * HTTP, no authentication, no validation of what they receive, no conflict handling, no UTD or
 * watermark. Two ways:
 *   - `bare-js`: the new rows read by bare SELECT statements (raw arrays), turned into JSON text
 *     and back (JSON.stringify, JSON.parse), stored by bare INSERT statements binding each
 *     row's own columns (the items in multi-row INSERTs): the least a replica written in
 *     JavaScript on this stack pays to take an entry from the writer's store into its own;
 *   - `in-sqlite`: the rows copied inside SQLite (INSERT … SELECT from the writer's file, attached
 *     to the follower's connection, which only reads it): no row enters JavaScript. Not a replication across a network — it reads the
 *     other node's file — but the least the storage alone costs.
 * The writer's c64 rate beside them, over its rate alone, says how much of the cores two replicas
 * that did only that would leave the writer on this machine.
 *
 * Run as a script, this file is one follower (forked by `FloorFollowers.start`):
 *   node --import tsx bench/floor-followers.ts SOURCE DESTINATION bare-js|in-sqlite
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { nodeConfigDefaults } from "../src/core/node/machine.ts";
import { settingsDefaults } from "../src/core/topology/model.ts";
import { SqliteStore, sqliteCacheSizeKib } from "../src/store/sqlite-store.ts";
import { bareRowInserter, bareRowReader, type EntryRows, entryRowColumns } from "./apply-cost.ts";

export const followerModes = ["bare-js", "in-sqlite"] as const;
export type FollowerMode = (typeof followerModes)[number];

/** A follower copies what is new this often, as a partner pulls once per notify window. */
const followerTickMs = settingsDefaults.notifyDelayMs;
/** Entries per transaction at most: a pulled page's bound. */
const batchEntries = nodeConfigDefaults.pageLimits.entriesMax;
const followerStartTimeoutMs = 20_000;
const followerStopTimeoutMs = 5_000;
const followerReportTimeoutMs = 5_000;
/** How often `caughtUp` asks the followers how far they are. */
const catchUpPollMs = 20;

const usnChangedAt = entryRowColumns.indexOf("usn_changed");

/** Follower → controller. */
type FollowerReply =
  | { readonly kind: "ready" }
  | { readonly kind: "progress"; readonly copiedUpTo: number; readonly sourceTop: number };

/** Copies up to `batchEntries` entries changed after `after`; answers the last usn_changed copied. */
type Copier = (after: number) => number;

function bareJsCopier(source: Database.Database, destination: Database.Database): Copier {
  const readPage = bareRowReader(source);
  const read = source.transaction((after: number): EntryRows[] => readPage(after, batchEntries));
  // OR REPLACE: an entry changed again is copied again (the benchmark's load only adds).
  const storeEntry = bareRowInserter(destination, "INSERT OR REPLACE");
  const store = destination.transaction((page: readonly EntryRows[]) => {
    for (const [row, items] of page) storeEntry(row, items);
  });
  return (after) => {
    const rows = read(after);
    if (rows.length === 0) return after;
    // The bytes a page would carry, and the partner's parse of them.
    const page = JSON.parse(JSON.stringify(rows)) as EntryRows[];
    store(page);
    return page[page.length - 1]?.[0][usnChangedAt] as number;
  };
}

function inSqliteCopier(sourcePath: string, destination: Database.Database): Copier {
  destination.prepare("ATTACH DATABASE ? AS source").run(sourcePath);
  const upperBound = destination
    .prepare(
      "SELECT usn_changed FROM source.objects INDEXED BY objects_usn_changed " +
        "WHERE attribute = '' AND usn_changed > ? ORDER BY usn_changed LIMIT 1 OFFSET ?",
    )
    .pluck();
  const top = destination.prepare("SELECT max(usn_changed) FROM source.objects WHERE attribute = ''").pluck();
  const range = "h.attribute = '' AND h.usn_changed > ? AND h.usn_changed <= ?";
  const copyRows = destination.prepare(
    `INSERT OR REPLACE INTO main.objects SELECT o.* FROM source.objects h JOIN source.objects o ON o.id = h.id WHERE ${range}`,
  );
  const copyGuids = destination.prepare(
    `INSERT OR REPLACE INTO main.guids SELECT g.* FROM source.objects h JOIN source.guids g ON g.guid = h.guid WHERE ${range}`,
  );
  return destination.transaction((after: number): number => {
    const upper =
      (upperBound.get(after, batchEntries - 1) as number | undefined) ?? (top.get() as number | null);
    if (upper === null || upper <= after) return after;
    copyRows.run(after, upper);
    copyGuids.run(after, upper);
    return upper;
  });
}

/** One follower: the script's body. */
function follow(sourcePath: string, destinationPath: string, mode: FollowerMode): void {
  SqliteStore.open({ path: destinationPath, synchronous: "full" }).close();
  const destination = new Database(destinationPath);
  destination.pragma("journal_mode = WAL");
  destination.pragma("synchronous = FULL");
  destination.pragma(`cache_size = ${-sqliteCacheSizeKib}`);
  const source = new Database(sourcePath, { readonly: true });
  const top = source.prepare("SELECT max(usn_changed) FROM objects WHERE attribute = ''").pluck();
  const sourceTop = (): number => (top.get() as number | null) ?? 0;
  const copy =
    mode === "bare-js" ? bareJsCopier(source, destination) : inSqliteCopier(sourcePath, destination);
  // What the file holds already is not this run's load: follow from here.
  let copiedUpTo = sourceTop();
  let stopping = false;
  const send = (reply: FollowerReply): void => {
    process.send?.(reply);
  };
  process.on("message", () => send({ kind: "progress", copiedUpTo, sourceTop: sourceTop() }));
  process.on("SIGTERM", () => {
    stopping = true;
  });
  const tick = (): void => {
    if (stopping) {
      source.close();
      destination.close();
      process.exit(0);
    }
    const before = copiedUpTo;
    copiedUpTo = copy(copiedUpTo);
    // A full batch leaves more behind it: go on at once, as a partner pulls its next page.
    const full = copiedUpTo > before && sourceTop() > copiedUpTo;
    setTimeout(tick, full ? 0 : followerTickMs);
  };
  send({ kind: "ready" });
  tick();
}

/** Two followers of one store file, each in a process of its own. */
export class FloorFollowers {
  private constructor(
    private readonly children: readonly ChildProcess[],
    private readonly directory: string,
  ) {}

  /** Starts `count` followers of the store file at `sourcePath`; resolves once each is following. */
  static async start(sourcePath: string, mode: FollowerMode, count = 2): Promise<FloorFollowers> {
    const directory = mkdtempSync(join(tmpdir(), "plexus-bench-followers-"));
    const children: ChildProcess[] = [];
    const followers = new FloorFollowers(children, directory);
    try {
      for (let index = 1; index <= count; index++) {
        const child = fork(
          fileURLToPath(import.meta.url),
          [sourcePath, join(directory, `follower-${index}.db`), mode],
          { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] },
        );
        children.push(child);
        await reply(child, "ready", followerStartTimeoutMs);
      }
      return followers;
    } catch (error) {
      await followers.stop();
      throw error;
    }
  }

  get pids(): number[] {
    return this.children.flatMap((child) => (child.pid === undefined ? [] : [child.pid]));
  }

  /**
   * Waits until every follower has copied all the source holds; resolves with the milliseconds
   * that took, or null if they had not within `timeoutMs`.
   */
  async caughtUp(timeoutMs: number): Promise<number | null> {
    const started = performance.now();
    while (performance.now() - started < timeoutMs) {
      const progress = await Promise.all(this.children.map((child) => askProgress(child)));
      if (progress.every((p) => p.copiedUpTo >= p.sourceTop)) return performance.now() - started;
      await new Promise((resolve) => setTimeout(resolve, catchUpPollMs));
    }
    return null;
  }

  /** Stops the followers (SIGTERM, then SIGKILL) and removes their files. */
  async stop(): Promise<void> {
    await Promise.all(this.children.map((child) => stopChild(child)));
    rmSync(this.directory, { recursive: true, force: true });
  }
}

function reply(child: ChildProcess, kind: FollowerReply["kind"], timeoutMs: number): Promise<FollowerReply> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => done(new Error(`a floor follower did not answer ${kind} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (message: FollowerReply): void => {
      if (message.kind === kind) done(null, message);
    };
    const onExit = (code: number | null): void => done(new Error(`a floor follower exited (code ${code})`));
    function done(error: Error | null, message?: FollowerReply): void {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
      if (error === null && message !== undefined) resolve(message);
      else reject(error);
    }
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

async function askProgress(child: ChildProcess): Promise<{ copiedUpTo: number; sourceTop: number }> {
  const answer = reply(child, "progress", followerReportTimeoutMs);
  child.send("progress");
  const message = await answer;
  if (message.kind !== "progress") throw new Error("a floor follower answered out of turn");
  return message;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), followerStopTimeoutMs);
  await exited;
  clearTimeout(timer);
}

function isMode(text: string | undefined): text is FollowerMode {
  return followerModes.some((mode) => mode === text);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [sourcePath, destinationPath, mode] = process.argv.slice(2);
  if (sourcePath === undefined || destinationPath === undefined || !isMode(mode)) {
    process.stderr.write(
      `usage: node --import tsx bench/floor-followers.ts SOURCE DESTINATION ${followerModes.join("|")}\n`,
    );
    process.exit(2);
  }
  follow(sourcePath, destinationPath, mode);
}
