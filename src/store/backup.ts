import { randomUUID } from "node:crypto";
import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { databaseFileName } from "./data-directory.ts";
import { isReadableSchemaVersion, sqliteSchemaVersion } from "./sqlite-store.ts";

/**
 * Backup and restore of a node's database, from outside the node process.
 *
 * A backup is a consistent copy (SQLite `VACUUM INTO` on a read-only connection, which WAL lets
 * run beside the node's own writer) whose instance token is replaced by a backup token. A
 * restore puts such a copy in place of a stopped node's database: the token then differs from
 * the directory's marker, so the node opens it as a restored copy and takes a new invocation id
 * before it writes anything (data-directory.ts). Partners send back whatever the copy lacks.
 */
export class BackupError extends Error {
  constructor(
    readonly code: "not-a-plexus-database" | "node-running" | "exists" | "wrong-node" | "missing",
    message: string,
  ) {
    super(message);
  }
}

/** How long restore waits for the node's lock before concluding the node is running. */
const lockProbeTimeoutMs = 0;

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
  const db = new Database(source, { readonly: true, fileMustExist: true });
  try {
    describe(db, source);
    db.prepare("VACUUM INTO ?").run(output);
  } finally {
    db.close();
  }
  const copy = new Database(output);
  let info: Omit<BackupInfo, "bytes">;
  try {
    copy.prepare("UPDATE instance SET token = ? WHERE id = 1").run(`backup-${randomUUID()}`);
    info = describe(copy, output);
  } finally {
    copy.close();
  }
  syncFile(output);
  return { ...info, bytes: statSync(output).size };
}

export interface RestoreInfo extends BackupInfo {
  /** Where the database that was replaced now lives (nothing is deleted), if there was one. */
  readonly replacedBy: string | null;
}

/**
 * Puts `backup` in place of the database in `directory`. Refuses while a process holds the
 * database, when the backup is not a Plexus database of this build's schema, or when it
 * belongs to another node than the one whose directory it is. The old database (and its WAL,
 * which must not be replayed onto the copy) is moved aside, not deleted.
 */
export function restoreDatabase(directory: string, backup: string, now: Date): RestoreInfo {
  if (!existsSync(backup)) throw new BackupError("missing", `${backup} does not exist`);
  const incoming = new Database(backup, { readonly: true, fileMustExist: true });
  let info: Omit<BackupInfo, "bytes">;
  try {
    info = describe(incoming, backup);
  } finally {
    incoming.close();
  }
  const target = join(directory, databaseFileName);
  let replacedBy: string | null = null;
  if (existsSync(target)) {
    const current = openExclusively(target);
    try {
      const owner = current.prepare<[], { node_id: string }>("SELECT node_id FROM meta WHERE id = 1").get();
      if (owner !== undefined && owner.node_id !== info.node)
        throw new BackupError(
          "wrong-node",
          `${backup} is a backup of node ${info.node}, but ${directory} belongs to node ${owner.node_id}`,
        );
    } finally {
      current.close();
    }
    replacedBy = `${target}.replaced-${now.toISOString().replaceAll(":", "-")}`;
    renameSync(target, replacedBy);
    for (const suffix of ["-wal", "-shm"]) {
      if (existsSync(target + suffix)) renameSync(target + suffix, replacedBy + suffix);
    }
  }
  const staging = `${target}.restoring`;
  rmSync(staging, { force: true });
  const copy = new Database(backup, { readonly: true, fileMustExist: true });
  try {
    copy.prepare("VACUUM INTO ?").run(staging);
  } finally {
    copy.close();
  }
  syncFile(staging);
  renameSync(staging, target);
  syncFile(directory);
  return { ...info, bytes: statSync(target).size, replacedBy };
}

/** Checks that `db` is a Plexus database this build reads, and says whose it is. */
function describe(db: Database.Database, path: string): Omit<BackupInfo, "bytes"> {
  const version = Number(db.pragma("user_version", { simple: true }));
  const tables = new Set(
    db.prepare<[], string>("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all(),
  );
  if (!tables.has("meta") || !tables.has("instance"))
    throw new BackupError("not-a-plexus-database", `${path} is not a Plexus database`);
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

/**
 * Opens the database with an exclusive lock: in WAL mode a second connection cannot take it
 * while the node has the database open, which is how a restore under a running node is refused.
 */
function openExclusively(path: string): Database.Database {
  const db = new Database(path, { fileMustExist: true, timeout: lockProbeTimeoutMs });
  try {
    db.pragma("locking_mode = EXCLUSIVE");
    db.exec("BEGIN EXCLUSIVE");
    db.exec("COMMIT");
    return db;
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code?.startsWith("SQLITE_BUSY") === true)
      throw new BackupError("node-running", `${path} is in use: stop the node before restoring`);
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
