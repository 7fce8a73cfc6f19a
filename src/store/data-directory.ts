import { randomUUID } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
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

export class DataDirectory {
  constructor(
    readonly directory: string,
    readonly store: SqliteStore,
    /** The database is an older or foreign copy: open the replica with `restored: true`. */
    readonly restored: boolean,
    /** Why `restored` is true, for the log. */
    readonly reason: string | undefined,
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
    stampInstance(this.directory, this.store);
    this.store.close();
  }
}

export interface DataDirectoryOptions {
  readonly synchronous?: "full" | "normal";
}

export function openDataDirectory(directory: string, options: DataDirectoryOptions = {}): DataDirectory {
  mkdirSync(directory, { recursive: true });
  const markerPath = join(directory, markerFileName);
  const marker = existsSync(markerPath) ? readFileSync(markerPath, "utf8").trim() : undefined;
  const store = SqliteStore.open({ path: join(directory, databaseFileName), ...options });
  try {
    const reason = restoreReason(store, marker);
    stampInstance(directory, store);
    return new DataDirectory(directory, store, reason !== undefined, reason);
  } catch (error) {
    store.close();
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
