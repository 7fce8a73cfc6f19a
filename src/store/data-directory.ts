import { randomUUID } from "node:crypto";
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { SqliteStore } from "./sqlite-store.ts";

/**
 * A node's data directory: its SQLite database and an instance marker file. Each open writes a
 * fresh random token into both. A database file restored from an older copy (or copied in from
 * another directory) carries an older token than the marker, so the opener learns that the
 * replica is a restored copy and must take a new invocation id before it hands out a single
 * USN — otherwise it could reuse USNs its partners have already seen, and they would silently
 * ignore the new writes. (A restore of the whole directory, marker included, is caught later
 * by partners instead: see Replica's rollback detection.)
 */
export const databaseFileName = "plexus.db";
export const markerFileName = "plexus.instance";
/** Names the process that has the directory open; see DirectoryLock. */
export const lockFileName = "plexus.lock";

export class DataDirectory {
  constructor(
    readonly directory: string,
    readonly store: SqliteStore,
    /** The database is an older or foreign copy: open the replica with `restored: true`. */
    readonly restored: boolean,
    /** Why `restored` is true, for the log. */
    readonly reason: string | undefined,
    private readonly lock: DirectoryLock,
  ) {}

  /** A consistent backup file of the database, marked so that restoring it is recognised. */
  backupTo(path: string): void {
    this.store.backupTo(path, `backup-${randomUUID()}`);
  }

  /**
   * Closes the store after a last token change, so that a copy of the file taken while the
   * node ran (however it was made) no longer matches the marker the next open reads.
   */
  close(): void {
    try {
      stampInstance(this.directory, this.store);
    } finally {
      try {
        this.store.close();
      } finally {
        this.lock.release();
      }
    }
  }
}

export interface DataDirectoryOptions {
  readonly synchronous?: "full" | "normal";
}

/**
 * Opens (creating it if missing) the data directory for a running node, which holds it
 * exclusively until close(): a second opener, in this process or another, gets a
 * DataDirectoryInUseError before it reads or writes anything.
 */
export function openDataDirectory(directory: string, options: DataDirectoryOptions = {}): DataDirectory {
  const lock = lockDataDirectory(directory, "plexus start");
  try {
    const markerPath = join(directory, markerFileName);
    const marker = existsSync(markerPath) ? readFileSync(markerPath, "utf8").trim() : undefined;
    checkDatabaseWritable(join(directory, databaseFileName));
    const store = SqliteStore.open({ path: join(directory, databaseFileName), ...options });
    try {
      const reason = restoreReason(store, marker);
      stampInstance(directory, store);
      return new DataDirectory(directory, store, reason !== undefined, reason, lock);
    } catch (error) {
      store.close();
      throw error;
    }
  } catch (error) {
    lock.release();
    throw error;
  }
}

/** A fresh token in the database first, then in the marker: a crash in between reads as a restore (safe). */
function stampInstance(directory: string, store: SqliteStore): void {
  const token = randomUUID();
  store.transaction(() => store.setInstanceToken(token));
  writeFileDurably(directory, markerFileName, `${token}\n`);
}

function restoreReason(store: SqliteStore, marker: string | undefined): string | undefined {
  const token = store.instanceToken();
  const holdsReplica = store.readMeta() !== undefined;
  if (!holdsReplica) return undefined;
  if (token === undefined) return "the database has no instance token";
  if (marker === undefined) return "the database was opened in a directory without its instance marker";
  if (marker !== token) return "the database's instance token does not match the directory's marker";
  return undefined;
}

/** Write-then-rename with fsyncs, so that a crash leaves the old marker or the new one, whole. */
function writeFileDurably(directory: string, name: string, content: string): void {
  const temporary = join(directory, `${name}.tmp`);
  const fd = openSync(temporary, "w");
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, join(directory, name));
  const directoryFd = openSync(directory, "r");
  try {
    fsyncSync(directoryFd);
  } finally {
    closeSync(directoryFd);
  }
}

/**
 * A data directory (or its database) this process cannot write: a read-only filesystem, another
 * user's files (a restore or a first start run as root), a full disk. Said with the path, the
 * owner and what to do, where the system's own words name a temporary file or, for a directory
 * that cannot be created on a read-only filesystem, say ENOENT.
 */
export class DataDirectoryUnusableError extends Error {
  readonly code = "data-directory-unusable";
}

/** The system's reason, for people, from the error's code. */
function unusableReason(path: string, error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case "EROFS":
      return "its filesystem is read-only";
    case "ENOSPC":
    case "EDQUOT":
      return "its filesystem is full";
    case "EACCES":
    case "EPERM":
      return `this process (uid ${process.getuid?.() ?? "?"}) may not write it${ownerText(path)}`;
    default:
      return error.message;
  }
}

/** ": it belongs to uid U, mode 0755", or nothing for a path that cannot be examined. */
function ownerText(path: string): string {
  try {
    const stat = statSync(path);
    return ` (it belongs to uid ${stat.uid}, mode ${(stat.mode & 0o777).toString(8).padStart(4, "0")})`;
  } catch {
    return "";
  }
}

/** The closest ancestor of `path` that exists (the root at worst). */
function existingAncestor(path: string): string {
  let current = path;
  for (let depth = 0; depth < 4_096 && !existsSync(current); depth++) current = dirname(current);
  return current;
}

/**
 * Creates the data directory if it is missing. Node's recursive mkdir reports a directory it
 * cannot create on a read-only filesystem as ENOENT ("no such file or directory"): the real
 * reason is asked of the closest ancestor that exists.
 */
function makeDirectory(directory: string): void {
  try {
    mkdirSync(directory, { recursive: true });
  } catch (error) {
    const ancestor = existingAncestor(dirname(directory));
    let reason = error as NodeJS.ErrnoException;
    try {
      accessSync(ancestor, constants.W_OK);
    } catch (denied) {
      reason = denied as NodeJS.ErrnoException;
    }
    throw new DataDirectoryUnusableError(
      `cannot create the data directory ${directory}: ${unusableReason(ancestor, reason)}`,
      { cause: error },
    );
  }
}

/** The directory's database, if there is one, must be writable: SQLite says only "readonly database". */
function checkDatabaseWritable(path: string): void {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    throw new DataDirectoryUnusableError(
      `cannot open the database ${path}: ${unusableReason(path, error as NodeJS.ErrnoException)}; ` +
        "give it to the user that runs the node (was it restored or created by another user?)",
      { cause: error },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// the lock: one process at a time

/**
 * Who holds a data directory: the lock file's content. The PID alone could name an unrelated
 * process that reused it after the holder died (a container restarting its only process gets
 * the same PID every time), so on Linux the holder's start time from /proc/PID/stat is kept too;
 * elsewhere it is null and the PID alone decides.
 */
export interface LockHolder {
  readonly pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks after boot), or null where /proc is missing. */
  readonly startTime: string | null;
  /** What took the lock, for the refusal: "plexus start", "plexus restore". */
  readonly purpose: string;
}

/** A data directory another live process holds: refused before anything in it is touched. */
export class DataDirectoryInUseError extends Error {
  readonly code = "data-directory-in-use";
  constructor(
    readonly directory: string,
    readonly holder: LockHolder,
  ) {
    super(
      `the data directory ${directory} is in use by process ${holder.pid} ` +
        `(${holder.purpose === "plexus start" ? "another plexus start?" : holder.purpose})`,
    );
  }
}

/**
 * How often the opener tries to create the lock file. Two tries suffice (the second after
 * taking over a stale lock) unless other processes keep taking and freeing it in between.
 */
const lockAttemptsMax = 5;

/** A held data directory lock; release() is idempotent. */
export class DirectoryLock {
  private released = false;
  constructor(
    readonly path: string,
    private readonly content: string,
  ) {}

  /** Removes the lock file, unless it is no longer ours (then there is nothing to give back). */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (readLockFile(this.path) === this.content) rmSync(this.path, { force: true });
  }
}

/**
 * Takes the data directory for this process, creating the directory if it is missing.
 *
 * The lock is a file naming the holder (LockHolder), made whole beside it and then hard-linked
 * into place, which fails if the name exists: no reader ever sees a half-written lock. The
 * operating system frees nothing when a process dies, so a lock whose holder is gone (its PID
 * is not alive, or is alive with another start time) is stale and taken over: a SIGKILLed node
 * restarts without cleanup. PIDs are per host: a directory shared between hosts is not covered.
 */
export function lockDataDirectory(directory: string, purpose: string): DirectoryLock {
  makeDirectory(directory);
  const path = join(directory, lockFileName);
  const content = `${JSON.stringify(currentHolder(purpose))}\n`;
  for (let attempt = 0; attempt < lockAttemptsMax; attempt++) {
    if (tryCreateLockFile(directory, path, content)) return new DirectoryLock(path, content);
    const existing = readLockFile(path);
    if (existing === undefined) continue; // freed in the meantime
    const holder = parseHolder(existing);
    if (holder !== undefined && isAlive(holder)) throw new DataDirectoryInUseError(directory, holder);
    takeOverStaleLock(directory, path, existing);
  }
  throw new Error(`could not lock the data directory ${directory}: its lock file ${path} keeps changing`);
}

function currentHolder(purpose: string): LockHolder {
  return { pid: process.pid, startTime: processStartTime(process.pid), purpose };
}

/** Links a complete lock file into place; false if one is there already. */
function tryCreateLockFile(directory: string, path: string, content: string): boolean {
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, content);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw new DataDirectoryUnusableError(
      `cannot use the data directory ${directory}: ${unusableReason(directory, error as NodeJS.ErrnoException)}`,
      { cause: error },
    );
  }
  try {
    linkSync(temporary, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  } finally {
    rmSync(temporary, { force: true });
  }
}

function readLockFile(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** The holder in a lock file, or undefined if it names none (then the lock counts as stale). */
function parseHolder(content: string): LockHolder | undefined {
  try {
    const value = JSON.parse(content) as Partial<LockHolder>;
    // A PID of 0 or less would make process.kill(pid, 0) probe a process group.
    if (typeof value.pid !== "number" || !Number.isSafeInteger(value.pid) || value.pid <= 0) return undefined;
    const startTime = typeof value.startTime === "string" ? value.startTime : null;
    const purpose = typeof value.purpose === "string" ? value.purpose : "unknown";
    return { pid: value.pid, startTime, purpose };
  } catch {
    return undefined; // not JSON: written by nothing this code does, so not a live holder's
  }
}

/**
 * The holder's process exists (signal 0 probes without signalling), is the same process (its
 * start time, where known, matches) and has not exited.
 */
function isAlive(holder: LockHolder): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to another user; only ESRCH says it is gone.
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  const stat = readProcessStat(holder.pid);
  if (stat === null) return true; // no /proc: the PID alone decides
  // A zombie has exited and closed its files; it lingers only until its parent reaps it, which
  // a container's first process may never do.
  if (stat.state === "Z" || stat.state === "X") return false;
  return holder.startTime === null || stat.startTime === holder.startTime;
}

function processStartTime(pid: number): string | null {
  return readProcessStat(pid)?.startTime ?? null;
}

/** Fields 3 (state) and 22 (start time) of /proc/PID/stat, or null where there is none. */
function readProcessStat(pid: number): { state: string; startTime: string } | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null; // no /proc (not Linux), or the process just went
  }
  // Field 2, the command name in parentheses, may itself hold spaces and ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  const startTime = fields[19]; // fields[0] is field 3, so field 22 is fields[19]
  return state === undefined || startTime === undefined ? null : { state, startTime };
}

/**
 * Removes a stale lock, unless another process replaced it since it was read: the lock is
 * moved aside under a name of this process's own and checked there, so that of two processes
 * taking over the same stale lock at once, the later one cannot delete the earlier one's
 * fresh lock; it puts it back instead.
 */
function takeOverStaleLock(directory: string, path: string, stale: string): void {
  const aside = join(directory, `${lockFileName}.stale-${process.pid}`);
  try {
    renameSync(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return; // another process took it over first
    throw error;
  }
  try {
    if (readLockFile(aside) !== stale) linkSync(aside, path);
  } catch (error) {
    // EEXIST: a third process locked the directory in between and its lock stands, while the
    // one moved aside is lost: three processes racing over one stale lock, left unhandled.
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  } finally {
    rmSync(aside, { force: true });
  }
}
