import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

/**
 * Plumbing for benchmarks: a scratch directory that is removed however the run ends, bounded
 * measurement loops, and plain-text tables. Nothing here knows about Plexus.
 */

/** How long a measurement loop may run before it lets signals (Ctrl-C) through. */
const eventLoopYieldMs = 100;

export interface ScratchDir {
  readonly path: string;
  /** Removes the directory; harmless when called twice. */
  remove(): void;
}

/**
 * A fresh directory under the system temp dir. It is removed by `remove()`, and also on
 * SIGINT/SIGTERM (the process then exits with 128 + the signal number). Measurement loops
 * yield to the event loop every `eventLoopYieldMs`, so a signal is handled within that time.
 */
export function makeScratchDir(prefix: string): ScratchDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  let removed = false;
  const remove = (): void => {
    if (removed) return;
    removed = true;
    rmSync(path, { recursive: true, force: true });
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigterm);
  };
  const onSignal = (signal: NodeJS.Signals, code: number): void => {
    process.stderr.write(`\n${signal}: removing ${path}\n`);
    remove();
    process.exit(128 + code);
  };
  const onSigint = (): void => onSignal("SIGINT", 2);
  const onSigterm = (): void => onSignal("SIGTERM", 15);
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigterm);
  return { path, remove };
}

/** Lets pending events (signals, child-process output) run. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface Bounds {
  /** Steps at most (a step may do several operations). */
  readonly stepsMax: number;
  /** Wall time at most, in milliseconds; checked between steps. */
  readonly wallMsMax: number;
}

export interface Measured {
  /** Operations done (the sum of what the steps returned). */
  readonly operations: number;
  readonly steps: number;
  /** Time spent inside the steps only. */
  readonly busyMs: number;
  /** Time from the first step to the end, including yields to the event loop. */
  readonly wallMs: number;
  /** The wall-time cap ended the loop before `stepsMax`. */
  readonly capped: boolean;
}

/**
 * Runs `step` until `stepsMax` steps are done, `step` returns `done`, or `wallMsMax` has
 * passed. `step` gets its index and returns the operations it did. Only time inside `step`
 * counts as busy time, so the yields to the event loop do not lower the rates.
 */
export async function runBounded(
  bounds: Bounds,
  step: (index: number) => number | "done",
): Promise<Measured> {
  const started = performance.now();
  let lastYield = started;
  let busyMs = 0;
  let operations = 0;
  let steps = 0;
  let capped = false;
  while (steps < bounds.stepsMax) {
    const now = performance.now();
    if (now - started >= bounds.wallMsMax) {
      capped = true;
      break;
    }
    if (now - lastYield >= eventLoopYieldMs) {
      await yieldToEventLoop();
      lastYield = performance.now();
    }
    const before = performance.now();
    const done = step(steps);
    busyMs += performance.now() - before;
    if (done === "done") break;
    operations += done;
    steps++;
  }
  return { operations, steps, busyMs, wallMs: performance.now() - started, capped };
}

/** Operations per second of busy time; 0 when nothing was measured. */
export function ratePerSec(operations: number, busyMs: number): number {
  return busyMs > 0 ? (operations * 1000) / busyMs : 0;
}

export interface Machine {
  readonly cpuCount: number;
  readonly cpuModel: string;
  readonly memoryMb: number;
  readonly node: string;
  readonly platform: string;
}

export function describeMachine(): Machine {
  const list = cpus();
  return {
    cpuCount: list.length,
    cpuModel: list[0]?.model.trim() ?? "unknown",
    memoryMb: Math.round(totalmem() / (1024 * 1024)),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

/** The 1, 5 and 15 minute load averages, rounded to two decimals. */
export function loadAverage(): [number, number, number] {
  const [one = 0, five = 0, fifteen = 0] = loadavg();
  return [round(one, 2), round(five, 2), round(fifteen, 2)];
}

export function round(value: number, decimals: number): number {
  const scale = 10 ** decimals;
  return Math.round(value * scale) / scale;
}

/** 1234567 -> "1,234,567"; fractions below 100 keep one decimal. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const digits = Math.abs(value) < 100 && !Number.isInteger(value) ? 1 : 0;
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A plain-text table: the first column left-aligned, the others right-aligned. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => {
        const width = widths[column] ?? 0;
        return column === 0 || column === cells.length - 1 ? cell.padEnd(width) : cell.padStart(width);
      })
      .join("  ")
      .trimEnd();
  const rule = widths.map((width) => "-".repeat(width)).join("  ");
  return [line(header), rule, ...rows.map(line)].join("\n");
}
