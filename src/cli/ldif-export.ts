import { createWriteStream, existsSync, renameSync, rmSync, statSync, type WriteStream } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pagedSearchEntriesMax } from "../core/replica/read.ts";
import { formatRecord, ldifHeader, unwritableAttribute } from "../edge/ldif/write.ts";
import {
  type Environment,
  exitProblem,
  type Output,
  reportFailures,
  sessionOf,
  UsageError,
} from "./cli-support.ts";
import { baseUrlOf, type SearchPage, searchPage } from "./ldif-client.ts";

/**
 * `plexus export`: the entries of a subtree as LDIF content records, read page by page through
 * POST /v1/search and written as they come (an export never holds the subtree in memory). The
 * node's search walks the tree depth first, an entry before its children, so every entry comes after its parent and the
 * file imports cleanly into an empty directory.
 */
export const exportUsage = `usage: plexus export [--url URL] [--base DN] [--scope base|one|sub] [--filter F]
                      [--attributes a,b] [--output FILE] [--session TOKEN]

Writes the entries under --base (default dc=example,dc=com) that match the RFC 4515 filter
(default (objectClass=*)) as LDIF (RFC 2849; docs/ldif.md), parents before children, user
attributes only unless --attributes says otherwise, to --output FILE (written to FILE.partial,
renamed when complete) or stdout. With a filter, entries whose parents do not match come without them.
  --url URL               the node (default: $PLEXUS_URL)
  --zone ZONE [--dns-server HOST:PORT]...
                          instead of --url: the node the locator picks (own site first;
                          docs/client.md)
  --session TOKEN         read only once the node has what that session wrote
                          (default: $PLEXUS_SESSION; an empty one is none)`;

export const exportBaseDefault = "dc=example,dc=com";
/** Entries per search page (the API's ceiling) and per export (its sizeLimit ceiling). */
const exportPageSize = 1_000;
const exportEntriesMax = pagedSearchEntriesMax;
/** Pages at most: the entries ceiling over the page size, plus the last short one. */
const exportPagesMax = exportEntriesMax / exportPageSize + 1;

interface Sink {
  write(text: string): Promise<void>;
  /** Ends the output; a file is renamed into place only when `complete`. */
  finish(complete: boolean): Promise<void>;
  abandon(): void;
}

/** A file the export cannot write (its directory, a full disk): said in one line, exit 1. */
class OutputError extends Error {}

/**
 * Where the output goes: stdout, or FILE.partial renamed to FILE once complete. Writes wait
 * while the stream is full, so an export to a slow reader (a pipe to gzip, ssh) holds a page
 * at most, not the whole subtree; a reader that has gone (\`plexus export | head\`) ends it.
 * FILE.partial is opened at the first write, which comes after the first page is in: a failed
 * first page leaves no file.
 */
function sinkOf(output: string | undefined, stdout: Output): Sink {
  if (output === undefined) return streamSink(stdout as Output & Partial<NodeJS.WritableStream>, "stdout");
  const partial = `${output}.partial`;
  let stream: WriteStream | undefined;
  let failed: Promise<never> | undefined;
  const open = (): { stream: WriteStream; failed: Promise<never> } => {
    if (stream === undefined || failed === undefined) {
      const opened = createWriteStream(partial);
      stream = opened;
      failed = new Promise<never>((_, reject) =>
        opened.once("error", (error) => reject(new OutputError(`cannot write ${partial}: ${error.message}`))),
      );
      failed.catch(() => {});
    }
    return { stream, failed };
  };
  return {
    write: async (text) => {
      const { stream, failed } = open();
      if (!stream.write(text))
        await Promise.race([new Promise<void>((done) => stream.once("drain", () => done())), failed]);
    },
    finish: async (complete) => {
      const { stream, failed } = open();
      await Promise.race([new Promise<void>((done) => stream.end(() => done())), failed]);
      if (!complete) return;
      try {
        renameSync(partial, output);
      } catch (error) {
        throw new OutputError(`cannot rename ${partial} to ${output}: ${(error as Error).message}`);
      }
    },
    abandon: () => {
      if (stream === undefined) return;
      // The file is opened asynchronously: remove it once the stream is closed, not before
      // (a stream that failed has closed already).
      const remove = (): void => rmSync(partial, { force: true });
      if (stream.closed) remove();
      else stream.once("close", remove).destroy();
    },
  };
}

/** stdout: a stream's back-pressure is obeyed, and its failure (EPIPE) ends the export. */
function streamSink(out: Output & Partial<NodeJS.WritableStream>, name: string): Sink {
  let failure: OutputError | undefined;
  let failed: Promise<never> | undefined;
  if (typeof out.once === "function") {
    const once = out.once.bind(out);
    failed = new Promise<never>((_, reject) =>
      once("error", (error: Error) => {
        failure = new OutputError(`cannot write to ${name}: ${error.message}`);
        reject(failure);
      }),
    );
    failed.catch(() => {});
  }
  return {
    write: async (text) => {
      if (failure !== undefined) throw failure;
      const accepted = out.write(text);
      if (accepted === false && failed !== undefined && typeof out.once === "function") {
        const once = out.once.bind(out);
        await Promise.race([new Promise<void>((done) => once("drain", () => done())), failed]);
      }
    },
    finish: async () => {
      if (failure !== undefined) throw failure;
    },
    abandon: () => {},
  };
}

/** FILE's directory must exist and FILE must not be a directory; checked before the node is asked. */
function checkOutput(output: string | undefined): void {
  if (output === undefined) return;
  const directory = dirname(resolve(output));
  if (!existsSync(directory) || !statSync(directory).isDirectory())
    throw new UsageError(`--output: the directory ${directory} does not exist`);
  if (existsSync(output) && statSync(output).isDirectory())
    throw new UsageError(`--output: ${output} is a directory; name a file`);
}

interface ExportRequest {
  readonly base: string;
  readonly scope: string;
  readonly filter: string;
  readonly attributes: readonly string[] | undefined;
}

export interface ExportResult {
  /** Entries written. */
  readonly entries: number;
  /** More entries matched than one export holds. */
  readonly truncated: boolean;
  /** Entries left out because LDIF cannot hold one of their attributes (each reported). */
  readonly unwritable: number;
}

function pageOf(
  url: string,
  request: ExportRequest,
  cursor: string | null,
  session: string | undefined,
): Promise<SearchPage> {
  const body = {
    base: request.base,
    scope: request.scope,
    filter: request.filter,
    ...(request.attributes === undefined ? {} : { attributes: request.attributes }),
    sizeLimit: exportEntriesMax,
    pageSize: exportPageSize,
    ...(cursor === null ? {} : { cursor }),
  };
  return searchPage(url, body, session).then((answer) => answer.page);
}

/** Writes a page's entries; returns how many LDIF could not hold (each reported on `stderr`). */
async function writeEntries(page: SearchPage, sink: Sink, stderr: Output): Promise<number> {
  let unwritable = 0;
  for (const entry of page.entries) {
    const reserved = unwritableAttribute(entry.attributes);
    if (reserved === null) {
      await sink.write(formatRecord({ kind: "content", dn: entry.dn, attributes: entry.attributes }));
      continue;
    }
    unwritable++;
    stderr.write(
      `plexus export: ${entry.dn}: left out: its attribute '${reserved}' cannot be written in LDIF, where '${reserved}:' is part of the record's syntax (rename the attribute, or export around the entry with --filter)\n`,
    );
  }
  return unwritable;
}

/**
 * Streams the subtree into `sink`. The first page is in before anything is written, so that a
 * node that cannot be reached, a base that does not exist or a bad filter leave no output at
 * all. An entry LDIF cannot hold is reported on `stderr` and left out.
 */
export async function exportLdif(
  url: string,
  request: ExportRequest,
  session: string | undefined,
  sink: Sink,
  stderr: Output,
): Promise<ExportResult> {
  let page = await pageOf(url, request, null, session);
  await sink.write(`${ldifHeader}\n`);
  let entries = 0;
  let unwritable = 0;
  for (let pages = 1; pages <= exportPagesMax; pages++) {
    const left = await writeEntries(page, sink, stderr);
    unwritable += left;
    entries += page.entries.length - left;
    if (page.nextCursor === null) return { entries, truncated: page.truncated, unwritable };
    if (pages < exportPagesMax) page = await pageOf(url, request, page.nextCursor, session);
  }
  return { entries, truncated: true, unwritable };
}

export async function exportCommand(
  args: readonly string[],
  stdout: Output,
  stderr: Output,
  env: Environment = process.env,
): Promise<number> {
  return reportFailures("export", exportUsage, stderr, async () => {
    const { values, positionals } = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: {
        url: { type: "string" },
        base: { type: "string" },
        scope: { type: "string" },
        filter: { type: "string" },
        attributes: { type: "string" },
        output: { type: "string", short: "o" },
        session: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help === true) {
      stdout.write(`${exportUsage}\n`);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected '${positionals[0]}'`);
    const scope = values.scope ?? "sub";
    if (!["base", "one", "sub"].includes(scope)) throw new UsageError("--scope must be base, one or sub");
    const url = baseUrlOf(values.url, env);
    const request: ExportRequest = {
      base: values.base ?? exportBaseDefault,
      scope,
      filter: values.filter ?? "(objectClass=*)",
      attributes: values.attributes?.split(",").map((name) => name.trim()),
    };
    const session = sessionOf(values.session, env);
    const started = performance.now();
    checkOutput(values.output);
    const sink = sinkOf(values.output, stdout);
    let result: ExportResult;
    try {
      result = await exportLdif(url, request, session, sink, stderr);
      await sink.finish(!result.truncated && result.unwritable === 0);
    } catch (error) {
      sink.abandon();
      if (!(error instanceof OutputError)) throw error;
      stderr.write(`plexus export: ${error.message}\n`);
      return exitProblem;
    }
    const seconds = (performance.now() - started) / 1000;
    stderr.write(`exported ${result.entries} entries in ${seconds.toFixed(1)} s\n`);
    if (result.unwritable > 0)
      stderr.write(
        `plexus export: ${result.unwritable} entries left out (above)${values.output === undefined ? "" : `; the rest is in ${values.output}.partial`}\n`,
      );
    if (!result.truncated) return result.unwritable > 0 ? exitProblem : 0;
    stderr.write(
      `plexus export: more than ${exportEntriesMax} entries match under ${request.base}: the output stops there${values.output === undefined ? "" : ` (left in ${values.output}.partial)`}; export smaller subtrees (--base)\n`,
    );
    return exitProblem;
  });
}
