import { OutcomeUnknownError } from "../client/client.ts";
import { parseWriteConcern } from "../core/node/write-concern.ts";
import { formatReached } from "./entry-text.ts";
import { BadUrlError, ProblemError, UnreachableError, WriteOutcomeUnknownError } from "./remote.ts";

/**
 * What the commands that talk to a node share: where the node is, and how a failure ends the
 * command. Exit codes: 0 done, 1 the node refused (a problem document), 2 bad usage (nothing
 * was sent), 3 no node could be reached, 4 a write went to a node that then broke the
 * connection or did not answer in time: it may have been applied (with --zone the client library
 * does not send it to another node, where it could be applied twice).
 */
export const exitProblem = 1;
export const exitUsage = 2;
export const exitUnreachable = 3;
export const exitOutcomeUnknown = 4;

export interface Output {
  write(text: string): unknown;
}

/** What a command reads from its environment (process.env, or a test's own). */
export type Environment = Readonly<Record<string, string | undefined>>;

/** A mistake in the command line itself: reported with the usage, exit code 2. */
export class UsageError extends Error {}

/** The node URL: --url, else PLEXUS_URL. */
export function nodeUrl(flag: string | undefined, env: Environment): string {
  const url = flag ?? env.PLEXUS_URL;
  if (url === undefined || url === "")
    throw new UsageError("no node URL: give --url URL or set PLEXUS_URL (e.g. http://127.0.0.1:8080)");
  return url;
}

/**
 * The session token: --session, else PLEXUS_SESSION. An empty one is none (so `--session ""`
 * drops an inherited PLEXUS_SESSION, and `--session "$UNSET"` sends no empty header).
 */
export function sessionOf(flag: string | undefined, env: Environment): string | undefined {
  const given = (flag ?? env.PLEXUS_SESSION)?.trim();
  return given === "" ? undefined : given;
}

/** The `plexus-session: TOKEN` line a command prints on stderr; nothing when it has no token. */
export function sessionLine(token: string | null | undefined): string {
  return token === null || token === undefined || token.trim() === "" ? "" : `plexus-session: ${token}\n`;
}

/** A whole number of at least `min` and at most `max` given as a flag's text. */
export function integerFlag(
  text: string | undefined,
  flag: string,
  min: number,
  max: number,
): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max)
    throw new UsageError(`${flag} must be a whole number ${min}..${max}, not '${text}'`);
  return value;
}

/**
 * What a bad command line prints: the error, then the usage's synopsis (its first paragraph),
 * and where the rest is. A full page of options after every typo would bury the one line that
 * says what was wrong.
 */
export function usageErrorText(command: string, message: string, usage: string): string {
  const trimmed = usage.trimEnd();
  const blank = trimmed.search(/\n[ \t]*\n/);
  const synopsis = blank === -1 ? trimmed : trimmed.slice(0, blank);
  const more = blank === -1 ? "" : `(plexus ${command} --help for every option)\n`;
  return `plexus ${command}: ${message}\n${synopsis}\n${more}`;
}

/** A bad command line: ours, a node URL that is none, or node:util parseArgs' (unknown option, …). */
function isUsageError(error: unknown): error is Error {
  if (error instanceof UsageError || error instanceof BadUrlError) return true;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS");
}

/**
 * Runs a command's body and turns its failure into one line on stderr and an exit code:
 * `plexus: <code>: <detail>` for a problem the node answered with.
 */
export async function reportFailures(
  command: string,
  usage: string,
  stderr: Output,
  body: () => Promise<number>,
): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (isUsageError(error)) {
      stderr.write(usageErrorText(command, (error as Error).message, usage));
      return exitUsage;
    }
    if (error instanceof ProblemError) {
      stderr.write(`plexus: ${error.code}: ${error.detail}\n`);
      if (error.code === "write-concern-not-met") {
        // Such a write is applied: say how far it got, and its token still carries
        // read-your-writes to the next command.
        const reached = error.problem.writeConcern;
        if (typeof reached === "object" && reached !== null) stderr.write(`${formatReached(reached)}\n`);
        stderr.write(sessionLine(error.session));
      }
      return exitProblem;
    }
    if (error instanceof UnreachableError) {
      stderr.write(`plexus: unreachable: ${error.message}\n`);
      return exitUnreachable;
    }
    if (error instanceof OutcomeUnknownError || error instanceof WriteOutcomeUnknownError) {
      stderr.write(`plexus: outcome unknown: ${error.message}\n`);
      return exitOutcomeUnknown;
    }
    throw error;
  }
}

/**
 * Runs `task` on every item with at most `limit` running at once, and resolves when all have
 * settled (a task's rejection is its own to handle: it is not awaited twice). Used where a
 * command asks every server of a topology: thousands of requests at once would run out of
 * sockets and time out together instead of being answered in turn.
 */
export async function forEachBounded<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item);
    }
  };
  const workers = Math.max(1, Math.min(limit, items.length));
  await Promise.all(Array.from({ length: workers }, worker));
}

/** A --write-concern value, checked here as the node would (a bad one is a usage error, exit 2). */
export function writeConcernFlag(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const parsed = parseWriteConcern(text);
  if (!parsed.ok) throw new UsageError(parsed.error.message);
  return text;
}
