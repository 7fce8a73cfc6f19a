import { randomUUID } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import Database from "better-sqlite3";
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
      | "missing"
      | "same-file",
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
  const db = new Database(source, { readonly: true, fileMustExist: true });
  try {
    describe(db, source, "database");
    db.prepare("VACUUM INTO ?").run(output);
  } finally {
    db.close();
  }
  const copy = new Database(output);
  let info: Omit<BackupInfo, "bytes">;
  try {
    copy.prepare("UPDATE instance SET token = ? WHERE id = 1").run(`backup-${randomUUID()}`);
    info = describe(copy, output, "backup");
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
 * Puts `backup` in place of the database in `directory`, creating the directory if it is
 * missing (as `plexus start` does). Refuses while a node runs on the directory, when the
 * backup is not a Plexus database of this build's schema, or when it belongs to another node
 * than the one whose directory it is; the backup is checked before the directory is touched.
 * The old database (and its WAL, which must not be replayed onto the copy) is moved aside,
 * not deleted.
 */
export function restoreDatabase(directory: string, backup: string, now: Date): RestoreInfo {
  if (!existsSync(backup)) throw new BackupError("missing", `${backup} does not exist`);
  if (!statSync(backup).isFile()) throw new BackupError("missing", `${backup} is not a file`);
  const incoming = new Database(backup, { readonly: true, fileMustExist: true });
  let info: Omit<BackupInfo, "bytes">;
  try {
    info = describe(incoming, backup, "backup");
  } finally {
    incoming.close();
  }
  const lock = lockForRestore(directory);
  try {
    const replacedBy = replaceDatabase(directory, backup, info, now);
    return { ...info, bytes: statSync(join(directory, databaseFileName)).size, replacedBy };
  } finally {
    lock.release();
  }
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
  info: Omit<BackupInfo, "bytes">,
  now: Date,
): string | null {
  const target = join(directory, databaseFileName);
  if (existsSync(target) && realpathSync(target) === realpathSync(backup))
    throw new BackupError(
      "same-file",
      `${backup} is this data directory's own database, not a backup: restore from a file plexus backup wrote`,
    );
  checkOwner(directory, backup, info);
  const staging = `${target}.restoring`;
  rmSync(staging, { force: true });
  const copy = new Database(backup, { readonly: true, fileMustExist: true });
  try {
    copy.prepare("VACUUM INTO ?").run(staging);
  } finally {
    copy.close();
  }
  syncFile(staging);
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
  return replacedBy;
}

/** A backup of another node is not restored over this one's database. */
function checkOwner(directory: string, backup: string, info: Omit<BackupInfo, "bytes">): void {
  const target = join(directory, databaseFileName);
  if (existsSync(target)) {
    // No node has it open (the lock says so), so this connection is the only one.
    const current = new Database(target, { fileMustExist: true });
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
  }
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
