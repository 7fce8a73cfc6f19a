import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

/**
 * Plumbing for running peers from the bench: free loopback ports, a scratch directory, a
 * daemon that is stopped by its own PID however the run ends, commands with a time limit, and
 * stopping a peer script's process group. Nothing here knows about OpenLDAP or etcd.
 */

const portsTriesMax = 50;
/** Where freePortRun draws its base ports from, above the usual services' ports; each is checked free. */
const portRangeLow = 20_000;
const portRangeSize = 30_000;
/** How often a daemon is probed while it starts. */
const readyPollMs = 100;
const readyProbesInARow = 2;
/** Output kept from a command or daemon, for the error message when it fails. */
const outputTailLines = 15;
/** How often a stopped script's directory is checked for its trap's removal. */
const scriptStopPollMs = 50;
/** The grace for a script that has not named its directory yet (it has started no daemon then). */
const scriptUnnamedGraceMs = 1_000;
/** The peers' scripts make their directory by mktemp with this name prefix and print it as workdir=. */
const scriptWorkDirPrefix = "anchors-";

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A base port whose `count` successors (base+1..base+count) are free on loopback now. */
export async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < portsTriesMax; attempt++) {
    const base = portRangeLow + Math.floor(Math.random() * portRangeSize);
    const ports = Array.from({ length: count }, (_, index) => base + 1 + index);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error(`no run of ${count} free loopback ports found`);
}

/**
 * Throws when one of the ports is taken. Called right before a daemon starts: a port picked
 * earlier may have been taken since, and a daemon that cannot bind would exit while the
 * readiness probe could reach the other listener.
 */
export async function refuseTakenPorts(ports: readonly number[]): Promise<void> {
  for (const port of ports)
    if (!(await portFree(port))) throw new Error(`port ${port} is taken on 127.0.0.1; not starting`);
}

/** True once something accepts TCP connections on the loopback port. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function tail(output: string): string {
  return output.trim().split("\n").slice(-outputTailLines).join("\n");
}

/**
 * Runs `fn` with a fresh directory under the system temp dir, removed when it ends, fails,
 * or the process exits (the bench's signal handler calls process.exit).
 */
export async function withScratchDir<T>(prefix: string, fn: (path: string) => Promise<T>): Promise<T> {
  const path = mkdtempSync(join(tmpdir(), prefix));
  const remove = (): void => rmSync(path, { recursive: true, force: true });
  process.once("exit", remove);
  try {
    return await fn(path);
  } finally {
    process.off("exit", remove);
    remove();
  }
}

export interface Daemon {
  readonly name: string;
  readonly child: ChildProcess;
  /** What it printed so far (stdout and stderr). */
  output(): string;
  running(): boolean;
}

/**
 * Starts `command` in the foreground (its PID is the server's own, no pidfile), and kills that
 * PID if the bench process exits before `stopDaemon`.
 */
export function startDaemon(name: string, command: string, args: readonly string[]): Daemon {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: string): void => {
    output += chunk;
  };
  child.stdout?.setEncoding("utf8").on("data", keep);
  child.stderr?.setEncoding("utf8").on("data", keep);
  let failed = false;
  // A command that cannot start (ENOENT) emits "error" and never runs: not ready, ever.
  child.once("error", (error) => {
    failed = true;
    output += `${error.message}\n`;
  });
  const killOnExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.prependOnceListener("exit", killOnExit);
  child.once("exit", () => process.off("exit", killOnExit));
  return {
    name,
    child,
    output: () => output,
    running: () => !failed && child.exitCode === null && child.signalCode === null,
  };
}

/** Waits until `probe` holds while the daemon is still running; throws on its exit or the limit. */
export async function waitReady(
  daemon: Daemon,
  probe: () => Promise<boolean>,
  limitMs: number,
): Promise<void> {
  const deadline = Date.now() + limitMs;
  let probesPassed = 0;
  while (Date.now() < deadline) {
    if (!daemon.running())
      throw new Error(`${daemon.name} ended before it was ready:\n${tail(daemon.output())}`);
    // Ready after consecutive passed probes, the daemon still running in between: a daemon that
    // cannot bind exits at once, but its exit is seen a poll later, while a probe may already
    // have reached whatever else holds the port.
    probesPassed = (await probe().catch(() => false)) ? probesPassed + 1 : 0;
    if (probesPassed >= readyProbesInARow && daemon.running()) return;
    await new Promise((resolve) => setTimeout(resolve, readyPollMs));
  }
  throw new Error(`${daemon.name} was not ready within ${limitMs} ms:\n${tail(daemon.output())}`);
}

/** SIGTERM to the daemon's PID, then SIGKILL if it is still running after `graceMs`. */
export function stopDaemon(daemon: Daemon, graceMs: number): Promise<void> {
  const { child } = daemon;
  if (!daemon.running()) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(force);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

export interface CommandOptions {
  readonly cwd?: string;
  readonly limitMs: number;
}

/** Runs a command to its end and returns its output; rejects on a non-zero exit or past `limitMs`. */
export function runCommand(
  command: string,
  args: readonly string[],
  options: CommandOptions,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const keep = (chunk: string): void => {
      output += chunk;
    };
    child.stdout.setEncoding("utf8").on("data", keep);
    child.stderr.setEncoding("utf8").on("data", keep);
    const killOnExit = (): void => {
      child.kill("SIGKILL");
    };
    process.prependOnceListener("exit", killOnExit);
    const timer = setTimeout(() => child.kill("SIGKILL"), options.limitMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      process.off("exit", killOnExit);
      reject(error);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      process.off("exit", killOnExit);
      if (code === 0) resolve(output);
      else reject(new Error(`${command} ended with ${code ?? signal}:\n${tail(output)}`));
    });
  });
}

/** The directory a peer script said it works in (`workdir=...` in its header), or null before it said so. */
export function scriptWorkDir(output: string): string | null {
  const path = /workdir=(\S+)/.exec(output)?.[1];
  return path !== undefined && basename(path).startsWith(scriptWorkDirPrefix) ? path : null;
}

/** Blocks the thread: only for exit hooks and for stopping a script, where nothing else must run. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group has ended.
  }
}

/**
 * Stops a peer script started as the leader of its own process group, synchronously so that
 * it also works in an exit hook. SIGTERM reaches the script and its daemons; the script's trap
 * then stops them and removes its directory, but a trap on TERM does not end the script, which
 * would go on waiting for daemons that are gone (up to its convergence timeout, minutes). So
 * once the directory is gone, or after `graceMs`, the group gets SIGKILL, and the directory
 * is removed if the trap did not get to it.
 */
export function stopScriptGroup(pid: number, workDir: string | null, graceMs: number): void {
  signalGroup(pid, "SIGTERM");
  const deadline = Date.now() + (workDir === null ? scriptUnnamedGraceMs : graceMs);
  while (Date.now() < deadline && (workDir === null || existsSync(workDir))) sleepSync(scriptStopPollMs);
  signalGroup(pid, "SIGKILL");
  if (workDir !== null) rmSync(workDir, { recursive: true, force: true });
}
