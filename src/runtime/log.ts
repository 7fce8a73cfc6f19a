import { type DestinationStream, pino } from "pino";
import { prettyFactory } from "pino-pretty";

/**
 * The node's log, written with pino: one JSON object per line on stderr (stdout carries only
 * the bound URL, so that scripts can read it), `{"level":"info","time":"…","node":…,"site":…,
 * "event":…, …fields}`. Fields are plain data; an error is logged by its message. The
 * `pretty` format is for people (plexus demo): one readable line per event, same content.
 * Code logs through the small `Logger` interface, so that tests pass `silentLogger` and call
 * sites do not depend on pino.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "json" | "pretty";

const logLevels: readonly LogLevel[] = ["debug", "info", "warn", "error"];
export const logFormats: readonly LogFormat[] = ["json", "pretty"];

export interface Logger {
  log(level: LogLevel, event: string, fields?: Readonly<Record<string, unknown>>): void;
}

export interface LogOutput {
  write(text: string): unknown;
}

export interface LoggerOptions {
  readonly level: LogLevel;
  readonly format: LogFormat;
  /** Fields on every line: the node's name and site. */
  readonly base: Readonly<Record<string, string>>;
  /** Where complete lines go (stderr in a node process). */
  readonly output: LogOutput;
}

/**
 * The longest text written as it is in a field (or in a list in a field). A longer one keeps
 * its beginning and says how much more there was: some fields come from outside (a refused
 * request's claimed sender is a header, and a request's head may be about 100 KB; an error may
 * quote its input), and one unauthenticated request must not write a line as long as itself.
 */
export const logStringCharsMax = 1_024;

/** Keys pino and the base own; a field of the same name would be a duplicate key in the JSON. */
const reservedKeys = new Set(["level", "time", "event", "msg"]);

export function createLogger(options: LoggerOptions): Logger {
  const reserved = new Set([...reservedKeys, ...Object.keys(options.base)]);
  const destination: DestinationStream =
    options.format === "pretty"
      ? prettyOutput(options.output)
      : { write: (line) => options.output.write(line) };
  const logger = pino(
    {
      level: options.level,
      base: { ...options.base },
      messageKey: "msg",
      timestamp: pino.stdTimeFunctions.isoTime,
      // Level names, not pino's numbers, for people grepping JSON; pretty output wants numbers.
      ...(options.format === "json" ? { formatters: { level: (label: string) => ({ level: label }) } } : {}),
    },
    destination,
  );
  return {
    log(level, event, fields = {}) {
      if (!logger.isLevelEnabled(level)) return;
      const record: Record<string, unknown> = { event };
      // A field named like a base field (a peer's `node`) is kept, under a name of its own.
      for (const [key, value] of Object.entries(fields))
        record[reserved.has(key) ? `field_${key}` : key] = bounded(value);
      logger[level](record);
    },
  };
}

function bounded(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(bounded);
  if (typeof value !== "string" || value.length <= logStringCharsMax) return value;
  return `${value.slice(0, logStringCharsMax)}… (${value.length - logStringCharsMax} more characters)`;
}

/** One readable line per event: time, level, node, event, then the fields. */
function prettyOutput(output: LogOutput): DestinationStream {
  const prettify = prettyFactory({
    colorize: false,
    singleLine: true,
    // By default pino-pretty writes `err` and `error` fields on lines of their own, after the
    // event's line; here they are plain text like any other field.
    errorLikeObjectKeys: [],
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname,node,site,event",
    messageFormat: "{node} {event}",
  });
  return { write: (line) => output.write(prettify(line)) };
}

export const silentLogger: Logger = { log() {} };

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && (logLevels as readonly string[]).includes(value);
}

export function isLogFormat(value: unknown): value is LogFormat {
  return typeof value === "string" && (logFormats as readonly string[]).includes(value);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
