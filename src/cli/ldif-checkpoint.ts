import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { UsageError } from "./cli-support.ts";

/**
 * Where an interrupted `plexus import` stands, in a small JSON file (by default next to the
 * input, `FILE.import-progress`). It is rewritten (atomically: a temporary file renamed over
 * it) before each batch is sent and after its results are in, and removed when the import
 * ends. Records are counted in file order, bad ones included, so that a rerun skips exactly
 * the ones already handled — in the same directory only: the checkpoint names it (`target`).
 */
export interface Checkpoint {
  /** 2 since the checkpoint names its target; a format-1 one cannot be resumed safely. */
  readonly format: typeof checkpointFormat;
  /** The directory the records went into (see `ImportTarget`): a rerun elsewhere must not skip them. */
  readonly target: string;
  /** The input file as it was: a file changed since cannot be resumed. */
  readonly size: number;
  readonly mtimeMs: number;
  /** Records (in file order, bad ones included) whose results are all in. */
  readonly done: number;
  /** The line the last record done starts on: said to the person resuming. */
  readonly line: number;
  /**
   * Records below this may have been applied without their result arriving (a batch in flight
   * when the run stopped): a rerun accepts "already there" answers for them.
   */
  readonly applying: number;
  readonly counts: ImportCounts;
}

export interface ImportCounts {
  added: number;
  modified: number;
  deleted: number;
  skipped: number;
  failed: number;
}

export const checkpointFormat = 2;

export function zeroCounts(): ImportCounts {
  return { added: 0, modified: 0, deleted: 0, skipped: 0, failed: 0 };
}

export function defaultCheckpointPath(file: string): string {
  return `${file}.import-progress`;
}

/** The identity a checkpoint is held against. */
export function fileIdentity(file: string): { size: number; mtimeMs: number } {
  const stat = statSync(file);
  return { size: stat.size, mtimeMs: Math.trunc(stat.mtimeMs) };
}

function isCounts(value: unknown): value is ImportCounts {
  if (typeof value !== "object" || value === null) return false;
  const counts = value as Record<string, unknown>;
  return ["added", "modified", "deleted", "skipped", "failed"].every((key) =>
    Number.isSafeInteger(counts[key]),
  );
}

/** The checkpoint at `path`, null when there is none; a file that is not one is an error. */
export function readCheckpoint(path: string): Checkpoint | null {
  if (!existsSync(path)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw new UsageError(`${path} is not an import checkpoint (remove it, or give --restart)`);
  }
  const value = parsed as Record<string, unknown>;
  if (value.format === 1)
    throw new UsageError(
      `${path} was written by an earlier plexus import, which did not record the directory it imported into; give --restart to start over`,
    );
  const numbers = ["size", "mtimeMs", "done", "line", "applying"].every(
    (key) => Number.isSafeInteger(value[key]) && (value[key] as number) >= 0,
  );
  if (
    value.format !== checkpointFormat ||
    !numbers ||
    !isCounts(value.counts) ||
    typeof value.target !== "string"
  )
    throw new UsageError(`${path} is not an import checkpoint (remove it, or give --restart)`);
  return parsed as Checkpoint;
}

export function writeCheckpoint(path: string, checkpoint: Checkpoint): void {
  // One name, not one per process: a run killed between write and rename leaves nothing behind
  // once a later run finishes (two imports sharing a checkpoint would be wrong anyway).
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(checkpoint)}\n`);
  renameSync(temporary, path);
}

export function removeCheckpoint(path: string): void {
  rmSync(path, { force: true });
  rmSync(`${path}.tmp`, { force: true });
}
