import { randomUUID } from "node:crypto";
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  openSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import Database from "better-sqlite3";
import { configPartition, partitionRootGuid } from "../core/directory/partition.ts";
import {
  DataDirectoryInUseError,
  type DirectoryLock,
  databaseFileName,
  lockDataDirectory,
} from "./data-directory.ts";
import { isReadableSchemaVersion, sqliteSchemaVersion } from "./sqlite-store.ts";

/**
 * Backup and restore of a node's database, from outside the node process.
 *
 * A backup is a consistent copy (SQLite `VACUUM INTO` on a read-only connection, which WAL lets
 * run beside the node's own writer) whose instance token is replaced by a backup token. A
 * restore puts such a copy in place of a stopped node's database: the token then differs from
 * the directory's marker, so the node opens it as a restored copy and takes a new invocation id
 * before it writes anything (data-directory.ts). Partners send back whatever the copy lacks.
 * A restore holds the data directory's lock, the one a running node holds, so it is refused
 * while a node runs and a node cannot start in the middle of it.
 */
export class BackupError extends Error {
  constructor(
    readonly code:
      | "not-a-plexus-database"
      | "node-running"
      | "exists"
      | "wrong-node"
      | "wrong-cluster"
      | "missing"
      | "same-file"
      | "backup-failed"
      | "restore-failed"
      | "damaged",
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** What describe() checks, for its refusals: the node's own database, or a backup of one. */
type Role = "database" | "backup";

export interface BackupInfo {
  readonly node: string;
  readonly usn: number;
  readonly bytes: number;
}

/** Writes a consistent copy of the database in `directory` to `output` (which must not exist). */
export function backupDatabase(directory: string, output: string): BackupInfo {
  const source = join(directory, databaseFileName);
  if (!existsSync(source)) throw new BackupError("missing", `${source} does not exist`);
  if (existsSync(output)) throw new BackupError("exists", `${output} already exists; choose a new file`);
  // SQLite would only say "unable to open database" (it does not create directories either).
  const outputDirectory = dirname(resolve(output));
  if (!existsSync(outputDirectory))
    throw new BackupError("missing", `the directory ${outputDirectory} does not exist`);
  if (statSync(outputDirectory).isDirectory() === false)
    throw new BackupError("missing", `${outputDirectory} is not a directory`);
  // The copy is made under another name and given FILE's only once complete: a failed backup (a
  // full disk) or one killed half-way leaves no FILE that looks like a backup.
  const partial = `${output}.partial`;
  for (const file of [partial, `${partial}-journal`]) rmSync(file, { force: true });
  try {
    const db = new Database(source, { readonly: true, fileMustExist: true });
    try {
      describe(db, source, "database");
      db.prepare("VACUUM INTO ?").run(partial);
    } finally {
      db.close();
    }
    const copy = new Database(partial);
    let info: Omit<BackupInfo, "bytes">;
    try {
      copy.prepare("UPDATE instance SET token = ? WHERE id = 1").run(`backup-${randomUUID()}`);
      info = describe(copy, output, "backup");
    } finally {
      copy.close();
    }
    syncFile(partial);
    // A link, not a rename: it fails, rather than replace it, should FILE have appeared meanwhile.
    linkSync(partial, output);
    rmSync(partial);
    syncFile(outputDirectory);
    return { ...info, bytes: statSync(output).size };
  } catch (error) {
    for (const file of [partial, `${partial}-journal`]) rmSync(file, { force: true });
    if (error instanceof BackupError) throw error;
    throw new BackupError("backup-failed", `${output} not written: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

export interface RestoreInfo extends BackupInfo {
  /** Where the database that was replaced now lives (nothing is deleted), if there was one. */
  readonly replacedBy: string | null;
  /** Why the replaced database could not be read (so whose it was is unknown), if it could not. */
  readonly replacedUnreadable: string | null;
  /**
   * The replaced database held changes this node made after the backup was taken: the newest
   * one's USN there and in the backup. Those its partners had not pulled are not in the copy.
   */
  readonly newerInReplaced: { readonly replaced: number; readonly backup: number } | null;
}

/**
 * Puts `backup` in place of the database in `directory`, creating the directory if it is
 * missing (as `plexus start` does). Refuses while a node runs on the directory, when the
 * backup is not a Plexus database of this build's schema, or when it belongs to another node
 * or another cluster than the database it replaces; the backup is checked before the directory
 * is touched. A database that cannot be read (the usual reason to restore) is replaced all the
 * same. The old database (and its WAL, which must not be replayed onto the copy) is moved aside,
 * not deleted.
 */
export function restoreDatabase(directory: string, backup: string, now: Date): RestoreInfo {
  if (!existsSync(backup)) throw new BackupError("missing", `${backup} does not exist`);
  if (!statSync(backup).isFile()) throw new BackupError("missing", `${backup} is not a file`);
  const incoming = openBackup(backup);
  let info: Backup;
  try {
    info = readBackup(incoming, backup);
  } finally {
    incoming.close();
  }
  const lock = lockForRestore(directory);
  try {
    const replaced = replaceDatabase(directory, backup, info, now);
    const { cluster: _cluster, held: _held, ...described } = info;
    return { ...described, ...replaced, bytes: statSync(join(directory, databaseFileName)).size };
  } finally {
    lock.release();
  }
}

/** What restore reads of a backup: whose it is, its cluster, its newest change per origin. */
interface Backup extends Omit<BackupInfo, "bytes"> {
  readonly cluster: readonly string[];
  readonly held: ReadonlyMap<string, number>;
}

function openBackup(backup: string): Database.Database {
  try {
    return new Database(backup, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new BackupError(
      "not-a-plexus-database",
      `${backup} cannot be opened: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/** A damaged backup (truncated, overwritten) says so, as what it is, not as a bare SQLite error. */
function readBackup(db: Database.Database, backup: string): Backup {
  try {
    const info = describe(db, backup, "backup");
    return { ...info, cluster: clusterOf(db), held: heldOf(db) };
  } catch (error) {
    if (error instanceof BackupError) throw error;
    throw damaged(backup, error);
  }
}

function damaged(path: string, error: unknown): BackupError {
  return new BackupError(
    "not-a-plexus-database",
    `${path} is damaged (SQLite: ${(error as Error).message}): restore from another backup`,
    { cause: error },
  );
}

function lockForRestore(directory: string): DirectoryLock {
  try {
    return lockDataDirectory(directory, "plexus restore");
  } catch (error) {
    if (error instanceof DataDirectoryInUseError)
      throw new BackupError("node-running", `${error.message}: stop it before restoring`, { cause: error });
    throw error;
  }
}

/**
 * Puts a copy of `backup` in place of the current database (if any), which is moved aside. The
 * copy is made first: should it fail (the backup unreadable, the disk full), the current
 * database is still where it was.
 */
function replaceDatabase(
  directory: string,
  backup: string,
  info: Backup,
  now: Date,
): Pick<RestoreInfo, "replacedBy" | "replacedUnreadable" | "newerInReplaced"> {
  const target = join(directory, databaseFileName);
  if (existsSync(target) && realpathSync(target) === realpathSync(backup))
    throw new BackupError(
      "same-file",
      `${backup} is this data directory's own database, not a backup: restore from a file plexus backup wrote`,
    );
  const current = existsSync(target) ? checkOwner(directory, backup, info) : null;
  const staging = `${target}.restoring`;
  rmSync(staging, { force: true });
  try {
    const copy = new Database(backup, { readonly: true, fileMustExist: true });
    try {
      copy.prepare("VACUUM INTO ?").run(staging);
    } finally {
      copy.close();
    }
    markRestored(staging);
    giveOwnership(staging, existsSync(target) ? target : directory);
    syncFile(staging);
  } catch (error) {
    for (const file of [staging, `${staging}-journal`]) rmSync(file, { force: true });
    const code = (error as { code?: unknown }).code;
    if (code === "SQLITE_CORRUPT" || code === "SQLITE_NOTADB") throw damaged(backup, error);
    // Say that nothing was replaced, not only SQLite's "database or disk is full".
    throw new BackupError(
      "restore-failed",
      `${target} not replaced: ${(error as Error).message}${existsSync(target) ? " (the database there is as it was)" : ""}`,
      { cause: error },
    );
  }
  let replacedBy: string | null = null;
  if (existsSync(target)) {
    replacedBy = `${target}.replaced-${now.toISOString().replaceAll(":", "-")}`;
    renameSync(target, replacedBy);
    for (const suffix of ["-wal", "-shm"]) {
      if (existsSync(target + suffix)) renameSync(target + suffix, replacedBy + suffix);
    }
  }
  renameSync(staging, target);
  syncFile(directory);
  return {
    replacedBy,
    replacedUnreadable: current !== null && "unreadable" in current ? current.unreadable : null,
    newerInReplaced: current !== null && "newer" in current ? current.newer : null,
  };
}

/**
 * Gives the staged copy a token of its own. A backup's token already differs from every
 * marker, but a copy made by other means (`sqlite3 .backup`, a filesystem snapshot, a backup
 * killed before it replaced the token) carries the token the node stamped when it opened the
 * directory; after a crash (no last stamp at close) the marker still holds that token, and
 * the node would open the copy as its own live database, handing out again USNs its partners
 * have already seen under its invocation id: they would ignore its new writes.
 */
function markRestored(staging: string): void {
  const copy = new Database(staging, { fileMustExist: true });
  try {
    copy.prepare("UPDATE instance SET token = ? WHERE id = 1").run(`restored-${randomUUID()}`);
  } finally {
    copy.close();
  }
}

/**
 * The restored database belongs to whoever owned the one it replaces (or, with none, the data
 * directory), with its mode: a restore run as root (sudo) would otherwise leave a file the
 * node's own user cannot write ("attempt to write a readonly database" when it starts), and
 * one readable by every user where the replaced one was private. Only root can give a file
 * away; anyone else restores as the node's user already.
 */
function giveOwnership(staging: string, model: string): void {
  const owner = statSync(model);
  if (owner.isFile()) chmodSync(staging, owner.mode & 0o777);
  const staged = statSync(staging);
  if (process.getuid?.() === 0 && (staged.uid !== owner.uid || staged.gid !== owner.gid))
    chownSync(staging, owner.uid, owner.gid);
}

/**
 * A backup of another node, or of another cluster's node of the same name, is not restored
 * over this directory's database. One that cannot be read is no evidence either way: it is the
 * database a restore is for. Says whether the current database holds changes of its own newer
 * than the backup's (made after the backup was taken).
 */
function checkOwner(
  directory: string,
  backup: string,
  info: Backup,
): { unreadable: string } | { newer: RestoreInfo["newerInReplaced"] } {
  const target = join(directory, databaseFileName);
  let owner: { node_id: string; invocation: string } | undefined;
  let cluster: readonly string[];
  let held: ReadonlyMap<string, number>;
  // No node has it open (the lock says so), so this connection is the only one.
  let current: Database.Database | undefined;
  try {
    current = new Database(target, { fileMustExist: true });
    owner = current
      .prepare<[], { node_id: string; invocation: string }>(
        "SELECT node_id, invocation FROM meta WHERE id = 1",
      )
      .get();
    cluster = clusterOf(current);
    held = heldOf(current);
  } catch (error) {
    return { unreadable: (error as Error).message };
  } finally {
    current?.close();
  }
  if (owner === undefined) return { unreadable: "it holds no replica" };
  if (owner.node_id !== info.node)
    throw new BackupError(
      "wrong-node",
      `${backup} is a backup of node ${info.node}, but ${directory} belongs to node ${owner.node_id}`,
    );
  if (cluster.length > 0 && info.cluster.length > 0 && !cluster.some((guid) => info.cluster.includes(guid)))
    throw new BackupError(
      "wrong-cluster",
      `${backup} is a backup of a node ${info.node} of another cluster than the one ${directory} belongs to (its cn=sites,cn=config is ${info.cluster.join(", ")}, this directory's ${cluster.join(", ")}): restoring it would bring that cluster's entries and topology into this one`,
    );
  const here = held.get(owner.invocation) ?? 0;
  const there = info.held.get(owner.invocation) ?? 0;
  return { newer: here > there ? { replaced: here, backup: there } : null };
}

/**
 * The cluster a database belongs to: the GUIDs of `cn=sites,cn=config`, which a cluster's
 * founding node creates with a random GUID and every node replicates (a partition root's GUID
 * will not do: it is derived from the partition's name). Two after a naming conflict, none in
 * a replica that has not synced yet.
 */
function clusterOf(db: Database.Database): string[] {
  return db
    .prepare<[string], string>(
      "SELECT guid FROM objects WHERE attribute = '' AND deleted = 0 AND parent = ? AND rdn_norm = 'cn=sites'",
    )
    .pluck()
    .all(partitionRootGuid(configPartition));
}

/** The USN of the newest change held from each origin (invocation id). */
function heldOf(db: Database.Database): Map<string, number> {
  // Store version 3 has no such table (the node adds it when it upgrades the file).
  const table = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'held'").get();
  if (table === undefined) return new Map();
  const rows = db.prepare<[], { invocation: string; usn: number }>("SELECT invocation, usn FROM held").all();
  return new Map(rows.map((row) => [row.invocation, row.usn]));
}

/** Checks that `db` is a Plexus database this build reads, and says whose it is. */
function describe(db: Database.Database, path: string, role: Role): Omit<BackupInfo, "bytes"> {
  const { version, tables } = readSchema(db, path, role);
  if (!tables.has("meta") || !tables.has("instance"))
    throw new BackupError(
      "not-a-plexus-database",
      `${path} is not a Plexus ${role} (a SQLite database without Plexus's tables)`,
    );
  // An older version this build upgrades is accepted: the node upgrades it when it opens it.
  if (!isReadableSchemaVersion(version))
    throw new BackupError(
      "not-a-plexus-database",
      `${path} has store schema version ${version}; this build reads version ${sqliteSchemaVersion}`,
    );
  const meta = db
    .prepare<[], { node_id: string; usn: number }>("SELECT node_id, usn FROM meta WHERE id = 1")
    .get();
  if (meta === undefined) throw new BackupError("not-a-plexus-database", `${path} holds no replica`);
  return { node: meta.node_id, usn: meta.usn };
}

/** The schema version and table names; SQLite reads the file's header only on this first query. */
function readSchema(
  db: Database.Database,
  path: string,
  role: Role,
): { version: number; tables: Set<string> } {
  try {
    const version = Number(db.pragma("user_version", { simple: true }));
    const tables = new Set(
      db.prepare<[], string>("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all(),
    );
    return { version, tables };
  } catch (error) {
    if ((error as { code?: string }).code === "SQLITE_NOTADB")
      throw new BackupError(
        "not-a-plexus-database",
        `${path} is not a Plexus ${role} (not a SQLite database)`,
        {
          cause: error,
        },
      );
    throw error;
  }
}

function syncFile(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
