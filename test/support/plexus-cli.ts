import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";

/**
 * The `plexus` command as people run it, for the tests: `bin/plexus.mjs` in a child process of
 * its own, in the checkout's root, its output collected, its time bounded (past it the
 * process is killed and the run fails, saying what it printed).
 */
const root = new URL("../..", import.meta.url).pathname;
const bin = join(root, "bin/plexus.mjs");
export const commandTimeoutMsDefault = 60_000;

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** The whole environment of the command (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
}

/** Starts `plexus ARGS`; `done` settles when it exits. The child is there to signal it. */
export function startPlexus(
  args: readonly string[],
  options: CliOptions = {},
): { child: ChildProcess; done: Promise<CliRun> } {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: root,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const timeoutMs = options.timeoutMs ?? commandTimeoutMsDefault;
  const done = new Promise<CliRun>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`plexus ${args.join(" ")} took over ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return { child, done };
}

/** Runs `plexus ARGS` to its end. */
export function plexus(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  return startPlexus(args, options).done;
}
