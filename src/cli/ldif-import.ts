import { closeSync, openSync, type Stats, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { parseArgs } from "node:util";
import { readLdifFile } from "../edge/ldif/read-file.ts";
import type { LdifItem, LdifModification, LdifRecord } from "../edge/ldif/record.ts";
import {
  type Environment,
  exitProblem,
  integerFlag,
  type Output,
  reportFailures,
  sessionLine,
  sessionOf,
  UsageError,
  writeConcernFlag,
} from "./cli-support.ts";
import {
  checkpointFormat,
  defaultCheckpointPath,
  fileIdentity,
  type ImportCounts,
  readCheckpoint,
  removeCheckpoint,
  writeCheckpoint,
  zeroCounts,
} from "./ldif-checkpoint.ts";
import {
  type BatchOperationResult,
  baseUrlOf,
  directoryTargetOf,
  postBatch,
  type WriteOptions,
} from "./ldif-client.ts";
import { BatchConflicts, laterChanges } from "./ldif-conflicts.ts";
import { ImportProgress } from "./ldif-progress.ts";
import { alreadyApplied } from "./ldif-replay.ts";
import { fileUrlReader } from "./ldif-url.ts";
import { connect, type NodeApi, ProblemError, UnreachableError } from "./remote.ts";

/**
 * `plexus import FILE`: the records of an LDIF file (docs/ldif.md) sent to a node in batches
 * (POST /v1/batch), in file order. Resumable: a checkpoint file says how many records are done,
 * so a rerun after Ctrl-C or a crash continues there. A bad record — one the parser refuses or
 * the node refuses — is reported as `FILE:LINE: reason` and the import goes on; the exit code
 * is then 1.
 */
export const importUsage = `usage: plexus import FILE [--url URL] [--batch N] [--resume-file F] [--restart]
                      [--write-concern LEVEL] [--timeout MS] [--session TOKEN] [--json]

Sends the records of an LDIF file (RFC 2849; docs/ldif.md) to the node, N per request
(1..1000, default 500), in file order. Content records and 'changetype: add' create entries;
modify, delete, modrdn and moddn records change them. A bad record is reported as
FILE:LINE: reason and the import goes on (exit code 1 at the end). An entry that exists
with the same content is skipped, so a file can be imported again.
Resumable: --resume-file (default FILE.import-progress) records how far the import got and
into which cluster; run the same command again after Ctrl-C or a crash to continue (against
any node of that cluster; another one is refused); --restart starts over.
':<' values are read from file:// URLs: regular files in FILE's directory or below it,
at most 4 MiB.
  --url URL               the node (default: $PLEXUS_URL)
  --zone ZONE [--dns-server HOST:PORT]...
                          instead of --url: the node the locator picks (own site first;
                          docs/client.md)
  --batch N               records per request, 1..1000 (default 500); a record that renames
                          or deletes what an earlier one of its batch names starts a new one
  --resume-file F         where the import records how far it got (default
                          FILE.import-progress); removed when the import ends
  --restart               start from the first record again, whatever the resume file says
  --write-concern LEVEL   local (default), site, sites=N or all, for every record
  --timeout MS            how long the write concern may take (1..60000)
  --session TOKEN         a session token (default: $PLEXUS_SESSION; an empty one is none);
                          the final one is printed on stderr as 'plexus-session: TOKEN'
                          (nothing when no request was answered and none was given)
  --json                  print the summary as one JSON line
A progress bar shows on a terminal for files over 1 MiB.`;

export const importBatchDefault = 500;
export const importBatchMax = 1_000;
/** Bytes of serialised operations per request at most: well under the API's 8 MiB body limit. */
const batchBytesMax = 4 * 1024 * 1024;
/** One record's operation larger than this cannot be sent at all. */
const operationBytesMax = 7 * 1024 * 1024;
/** Attempts of a batch the node did not answer or answered 503 (not ready, session behind). */
const batchAttemptsMax = 6;
const retryDelayBaseMs = 250;
/** Refused operations whose "already there?" check runs at once. */
const replayChecksInFlightMax = 16;
const writeConcernTimeoutMsMax = 60_000;
const exitInterrupted = 130;

/** A record of the batch being gathered; `operation` null for a bad record, with its `problem`. */
interface Pending {
  readonly index: number;
  readonly line: number;
  readonly record: LdifRecord | null;
  readonly operation: Record<string, unknown> | null;
  readonly problem: string | null;
  /** The operation's size as JSON (0 for a bad record). */
  readonly bytes: number;
}

interface Sendable extends Pending {
  readonly record: LdifRecord;
  readonly operation: Record<string, unknown>;
}

export interface ImportOptions {
  readonly file: string;
  readonly url: string;
  readonly batch: number;
  readonly checkpointPath: string;
  readonly restart: boolean;
  readonly write: WriteOptions;
}

export interface ImportSummary {
  readonly file: string;
  readonly records: number;
  readonly counts: ImportCounts;
  readonly resumedAfter: number;
  readonly thisRun: { readonly records: number; readonly seconds: number; readonly recordsPerSecond: number };
  readonly session: string | null;
  readonly interrupted: boolean;
}

/** The API operation for a record (docs/api.md, POST /v1/batch). */
export function operationOf(record: LdifRecord): Record<string, unknown> {
  switch (record.kind) {
    case "content":
    case "add":
      return { op: "create", dn: record.dn, attributes: record.attributes };
    case "delete":
      return { op: "delete", dn: record.dn };
    case "modify":
      return {
        op: "modify",
        dn: record.dn,
        changes: record.changes.map((change) =>
          change.values.length === 0 && change.operation !== "add"
            ? { operation: change.operation, attribute: change.attribute }
            : change,
        ),
      };
    case "modrdn":
      return {
        op: "rename",
        dn: record.dn,
        newRdn: record.newRdn,
        deleteOldRdn: record.deleteOldRdn,
        ...(record.newSuperior === undefined ? {} : { newParent: record.newSuperior }),
      };
    default: {
      const never: never = record;
      throw new Error(`unknown record ${JSON.stringify(never)}`);
    }
  }
}

/** A parsed item as a batch member: a bad one carries why, to be reported when its batch is settled. */
function pendingOf(index: number, item: LdifItem): Pending {
  const bad = { index, line: item.line, record: null, operation: null, bytes: 0 };
  if (item.kind === "error") return { ...bad, problem: item.message };
  const operation = operationOf(item.record);
  const bytes = Buffer.byteLength(JSON.stringify(operation));
  if (bytes > operationBytesMax)
    return { ...bad, problem: `the record is too large to send (${bytes} bytes of JSON)` };
  return { index, line: item.line, record: item.record, operation, problem: null, bytes };
}

function countOf(record: LdifRecord): keyof ImportCounts {
  if (record.kind === "delete") return "deleted";
  return record.kind === "modify" || record.kind === "modrdn" ? "modified" : "added";
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

function retryable(error: unknown): boolean {
  return error instanceof UnreachableError || (error instanceof ProblemError && error.status === 503);
}

/** Runs `task` on every item, at most `limit` at once, results in order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let index = next++; index < items.length; index = next++)
      results[index] = await task(items[index] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

type Identity = { size: number; mtimeMs: number };

/** One import run: reads the file, sends batches, keeps the checkpoint. */
class Importer {
  private readonly api: NodeApi;
  private counts: ImportCounts = zeroCounts();
  /** The counts as of `done`: what a checkpoint may claim. */
  private countsDone: ImportCounts = zeroCounts();
  private session: string | undefined;
  private done = 0;
  /** The line the last record done starts on. */
  private line = 0;
  /**
   * Records below this may have been applied without their result arriving: the batch in
   * flight when an earlier run stopped, or one sent again after the node did not answer.
   */
  private maybeAppliedBelow = 0;
  private processedThisRun = 0;
  /** The directory this run writes into (directoryTargetOf), recorded in every checkpoint. */
  private target = "";
  stopRequested = false;

  constructor(
    private readonly options: ImportOptions,
    private readonly identity: Identity,
    private readonly progress: ImportProgress,
  ) {
    this.api = connect(options.url);
    this.session = options.write.session;
  }

  async run(): Promise<ImportSummary> {
    const started = performance.now();
    this.target = await this.withRetries(() => directoryTargetOf(this.api));
    const resumed = this.resume();
    let batch: Pending[] = [];
    let batchBytes = 0;
    // Records that must not share a batch go in the next one, so any batch can be sent again.
    const conflicts = new BatchConflicts();
    let index = 0;
    // One batch in flight while the next is read: the node commits as the file is parsed.
    let inFlight: Promise<void> = Promise.resolve();
    for await (const item of readLdifFile(
      this.options.file,
      { readUrl: fileUrlReader(this.options.file) },
      this.progress.read,
    )) {
      // A fatal error (an unsupported version) comes before any record: nothing is sent yet.
      if (item.kind === "error" && item.fatal === true) this.refuseFile(item.line, item.message);
      const current = index++;
      if (current < this.done) continue;
      const pending = pendingOf(current, item);
      // A record admitted here joins this batch's names; one that is not starts the next batch.
      if (
        batch.length >= this.options.batch ||
        batchBytes + pending.bytes > batchBytesMax ||
        (pending.record !== null && conflicts.admit(pending.record))
      ) {
        await inFlight;
        if (this.stopRequested) break;
        inFlight = this.send(batch);
        // Awaited above or below; until then its failure must not count as unhandled.
        inFlight.catch(() => {});
        batch = [];
        batchBytes = 0;
        conflicts.clear();
        if (pending.record !== null) conflicts.admit(pending.record);
      }
      batch.push(pending);
      batchBytes += pending.bytes;
    }
    await inFlight;
    if (!this.stopRequested) await this.send(batch);
    this.progress.stop();
    if (!this.stopRequested) removeCheckpoint(this.options.checkpointPath);
    const seconds = (performance.now() - started) / 1000;
    return {
      file: this.options.file,
      records: this.done,
      counts: this.countsDone,
      resumedAfter: resumed,
      thisRun: {
        records: this.processedThisRun,
        seconds,
        recordsPerSecond: seconds > 0 ? this.processedThisRun / seconds : 0,
      },
      session: this.session ?? null,
      interrupted: this.stopRequested,
    };
  }

  /** Picks up an earlier run's checkpoint; returns how many records it had done. */
  private resume(): number {
    if (this.options.restart) removeCheckpoint(this.options.checkpointPath);
    const checkpoint = readCheckpoint(this.options.checkpointPath);
    if (checkpoint === null) return 0;
    if (checkpoint.size !== this.identity.size || checkpoint.mtimeMs !== this.identity.mtimeMs)
      throw new UsageError(
        `${this.options.file} has changed since the import recorded in ${this.options.checkpointPath}; give --restart to start over`,
      );
    // Its records are in that directory, not necessarily in this one: skipping them here would
    // count them as imported while they are missing.
    if (checkpoint.target !== this.target)
      throw new UsageError(
        `${this.options.checkpointPath} records an import into another directory (${checkpoint.target}), not the one at ${this.options.url} (${this.target}); give --restart to import the whole file there, or --resume-file F to keep that checkpoint`,
      );
    this.done = checkpoint.done;
    this.line = checkpoint.line;
    this.maybeAppliedBelow = checkpoint.applying;
    this.counts = { ...checkpoint.counts };
    this.countsDone = { ...checkpoint.counts };
    // A run stopped before its first batch was answered has done nothing to speak of.
    if (this.done > 0)
      this.progress.log(
        `${this.options.file}: resuming after record ${this.done} (the one starting at line ${this.line})\n`,
      );
    return this.done;
  }

  private refuseFile(line: number, reason: string): never {
    throw new UsageError(`${this.options.file}:${line}: ${reason}; nothing was imported`);
  }

  private fail(line: number, reason: string): void {
    this.counts.failed++;
    this.progress.log(`${this.options.file}:${line}: ${reason}\n`);
  }

  private checkpoint(applying: number): void {
    writeCheckpoint(this.options.checkpointPath, {
      format: checkpointFormat,
      target: this.target,
      ...this.identity,
      done: this.done,
      line: this.line,
      applying,
      counts: this.countsDone,
    });
  }

  /** Sends one batch (its bad records already reported) and settles every record's result. */
  private async send(batch: readonly Pending[]): Promise<void> {
    const last = batch.at(-1);
    if (last === undefined) return;
    for (const pending of batch) if (pending.problem !== null) this.fail(pending.line, pending.problem);
    const sendable = batch.filter((pending): pending is Sendable => pending.operation !== null);
    // Written before sending: a crash from here on leaves these records "maybe applied".
    this.checkpoint(Math.max(this.maybeAppliedBelow, last.index + 1));
    const results = sendable.length === 0 ? [] : await this.post(sendable, last.index + 1);
    const later = laterChanges(sendable.map((pending) => pending.record));
    await mapLimited(
      sendable.map((pending, position) => ({
        pending,
        result: results[position],
        later: later.get(position),
      })),
      replayChecksInFlightMax,
      ({ pending, result, later }) => this.settle(pending, result, later),
    );
    this.done = last.index + 1;
    this.line = last.line;
    this.processedThisRun += batch.length;
    this.countsDone = { ...this.counts };
    // Not just `done`: records past it that an earlier run (or a resend) may have applied are
    // still so, and a run stopped here must leave them to the next run's "already there" check.
    this.checkpoint(Math.max(this.maybeAppliedBelow, this.done));
    this.progress.update(this.done, this.processedThisRun, this.counts);
  }

  private async post(sendable: readonly Sendable[], end: number): Promise<BatchOperationResult[]> {
    const answer = await this.withRetries(
      () =>
        postBatch(
          this.options.url,
          sendable.map((pending) => pending.operation),
          { ...this.options.write, session: this.session },
        ),
      // The node may have applied the batch and failed to answer: a resend finds some done.
      () => {
        this.maybeAppliedBelow = Math.max(this.maybeAppliedBelow, end);
      },
    );
    if (answer.session !== null) this.session = answer.session;
    return answer.results;
  }

  /** Runs `request` until it succeeds, fails for good, or has been tried batchAttemptsMax times. */
  private async withRetries<T>(request: () => Promise<T>, onUnanswered: () => void = () => {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await request();
      } catch (error) {
        if (!retryable(error) || attempt >= batchAttemptsMax) throw error;
        if (error instanceof UnreachableError) onUnanswered();
        this.progress.log(`${this.options.file}: ${(error as Error).message}; retrying\n`);
        await sleep(retryDelayBaseMs * 2 ** (attempt - 1));
      }
    }
  }

  private async settle(
    pending: Sendable,
    result: BatchOperationResult | undefined,
    laterChanges: readonly LdifModification[] = [],
  ): Promise<void> {
    if (result === undefined) throw new Error("the node's answer holds fewer results than operations");
    if (result.status < 300) {
      this.counts[countOf(pending.record)]++;
      return;
    }
    const code = result.code ?? `http-${result.status}`;
    const maybeApplied = pending.index < this.maybeAppliedBelow;
    if (await alreadyApplied(this.api, pending.record, code, maybeApplied, this.session, laterChanges)) {
      this.counts.skipped++;
      return;
    }
    this.fail(pending.line, `${code}: ${result.detail ?? "refused"}`);
  }
}

function formatSummary(summary: ImportSummary): string {
  const { counts, thisRun } = summary;
  const resumed = summary.resumedAfter > 0 ? `, resumed after record ${summary.resumedAfter}` : "";
  const state = summary.interrupted ? "interrupted" : "done";
  return (
    `${summary.file}: ${state}, ${summary.records} records: added ${counts.added}, modified ${counts.modified}, ` +
    `deleted ${counts.deleted}, skipped ${counts.skipped}, failed ${counts.failed} ` +
    `(this run: ${thisRun.records} records in ${thisRun.seconds.toFixed(1)} s, ` +
    `${Math.round(thisRun.recordsPerSecond)} records/s${resumed})\n`
  );
}

/**
 * The input's identity for the checkpoint, once it is known to be a readable regular file: a
 * directory (or a device) would otherwise fail later, while reading, as an uncaught error.
 */
function inputIdentity(given: string, file: string): Identity {
  let stat: Stats;
  try {
    stat = statSync(file);
    // Opened once here so that an unreadable file is a usage error too, not a failed read.
    if (stat.isFile()) closeSync(openSync(file, "r"));
  } catch (error) {
    throw new UsageError(`cannot read ${given}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (stat.isDirectory()) throw new UsageError(`${given} is a directory: give an LDIF file`);
  if (!stat.isFile()) throw new UsageError(`${given} is not a regular file: give an LDIF file`);
  return fileIdentity(file);
}

/** `plexus import`: exit 0 when every record is in, 1 when any failed, 130 when interrupted. */
export async function importCommand(
  args: readonly string[],
  stdout: Output,
  stderr: Output & { readonly isTTY?: boolean },
  env: Environment = process.env,
): Promise<number> {
  return reportFailures("import", importUsage, stderr, async () => {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        url: { type: "string" },
        batch: { type: "string" },
        "resume-file": { type: "string" },
        restart: { type: "boolean" },
        "write-concern": { type: "string" },
        timeout: { type: "string" },
        session: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help === true) {
      stdout.write(`${importUsage}\n`);
      return 0;
    }
    const [given, ...extra] = positionals;
    if (given === undefined || extra.length > 0) throw new UsageError("give exactly one LDIF file");
    const file = isAbsolute(given) ? given : resolve(given);
    const identity = inputIdentity(given, file);
    const url = baseUrlOf(values.url, env);
    const options: ImportOptions = {
      file,
      url,
      batch: integerFlag(values.batch, "--batch", 1, importBatchMax) ?? importBatchDefault,
      checkpointPath: values["resume-file"] ?? defaultCheckpointPath(file),
      restart: values.restart === true,
      write: {
        session: sessionOf(values.session, env),
        writeConcern: writeConcernFlag(values["write-concern"]),
        timeoutMs: integerFlag(values.timeout, "--timeout", 1, writeConcernTimeoutMsMax),
      },
    };
    const progress = new ImportProgress(identity.size, stderr, given);
    const importer = new Importer(options, identity, progress);
    // Ctrl-C: finish the batch in flight and save the checkpoint; a second one stops at once.
    const stop = (): void => {
      importer.stopRequested = true;
    };
    process.once("SIGINT", stop);
    let summary: ImportSummary;
    try {
      summary = await importer.run();
    } catch (error) {
      // Before the error is printed: the bar's line ends, and its timer no longer holds the process.
      progress.stop(false);
      throw error;
    } finally {
      process.removeListener("SIGINT", stop);
    }
    stdout.write(values.json === true ? `${JSON.stringify(summary)}\n` : formatSummary(summary));
    stderr.write(sessionLine(summary.session));
    if (summary.interrupted) {
      stderr.write(
        `${given}: interrupted; run the same command again to resume (${options.checkpointPath})\n`,
      );
      return exitInterrupted;
    }
    return summary.counts.failed > 0 ? exitProblem : 0;
  });
}
