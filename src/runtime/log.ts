/**
 * The node's log: one JSON object per line on stderr (stdout carries only the bound URL, so
 * that scripts can read it). Fields are plain data; an error is logged by its message.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

const levelRank: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  log(level: LogLevel, event: string, fields?: Readonly<Record<string, unknown>>): void;
}

export function streamLogger(
  write: (line: string) => void,
  minimum: LogLevel,
  base: Readonly<Record<string, unknown>> = {},
): Logger {
  return {
    log(level, event, fields = {}) {
      if (levelRank[level] < levelRank[minimum]) return;
      write(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...base, ...fields })}\n`);
    },
  };
}

export const silentLogger: Logger = { log() {} };

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && value in levelRank;
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
