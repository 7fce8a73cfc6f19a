import { type ChildProcess, type ChildProcessByStdio, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";

/**
 * Real `plexus start` processes on loopback, for `plexus demo` and the integration tests:
 * each node in its own data directory under one fresh temporary directory, port 0 on
 * 127.0.0.1, one cluster secret. Only the processes this helper spawned are ever signalled, by
 * their own pid; every wait is bounded.
 */
const root = new URL("../..", import.meta.url).pathname;
export const startTimeoutMs = 20_000;
export const stopTimeoutMs = 10_000;
/** How much of a node's log is kept in memory (the tail), for error messages and assertions. */
const logTailChars = 256 * 1024;

export interface LocalClusterOptions {
  /** Prefix of the temporary directory's name (default `plexus-cluster-`). */
  readonly prefix?: string;
  /** Keep the directory on stopAll(), and append each node's log to `NAME.log` in it. */
  readonly keep?: boolean;
  /** Append each node's log to `NAME.log` in the directory even when it is removed later. */
  readonly logFiles?: boolean;
  /** The nodes' log level (default info). */
  readonly logLevel?: string;
  /** The nodes' log format: json (default) or pretty (readable lines, for people). */
  readonly logFormat?: "json" | "pretty";
  /** Called with each piece of a node's log as it arrives (not split on line ends). */
  readonly onLog?: (node: ClusterNode, chunk: string) => void;
  /**
   * Start each node in its own process group, so that a Ctrl-C at the terminal reaches only
   * the parent, which then stops the nodes itself (one signal each, never two).
   */
  readonly detached?: boolean;
  /** Called when a node's process exits without stop() having been asked to stop it. */
  readonly onUnexpectedExit?: (node: ClusterNode, code: number | null, signal: string | null) => void;
  /** The nodes' pageWorker setting (plexus start --page-worker); absent: the default (on). */
  readonly pageWorker?: boolean;
}

export interface ClusterNode {
  readonly name: string;
  readonly site: string;
  readonly dataDirectory: string;
  url: string;
  process: ChildProcess | null;
  /** What the node logged (stderr; the last 256 KiB), for assertions and for diagnosing a failure. */
  log: string;
  /** Set while stop() is stopping the node: its exit is then expected. */
  stopping: boolean;
}

export class LocalCluster {
  readonly directory: string;
  readonly secretFile: string;
  readonly secret = randomBytes(32).toString("base64");
  readonly nodes = new Map<string, ClusterNode>();
  private readonly configFile: string;

  constructor(
    topology: unknown,
    timings: Record<string, number>,
    private readonly options: LocalClusterOptions = {},
  ) {
    this.directory = mkdtempSync(join(tmpdir(), options.prefix ?? "plexus-cluster-"));
    this.secretFile = join(this.directory, "secret");
    this.configFile = join(this.directory, "config.json");
    writeFileSync(this.secretFile, `${this.secret}\n`, { mode: 0o600 });
    writeFileSync(join(this.directory, "topology.json"), JSON.stringify(topology));
    writeFileSync(
      this.configFile,
      JSON.stringify({
        timings,
        logLevel: options.logLevel ?? "info",
        logFormat: options.logFormat ?? "json",
        ...(options.pageWorker === undefined ? {} : { pageWorker: options.pageWorker }),
      }),
    );
  }

  node(name: string): ClusterNode {
    const node = this.nodes.get(name);
    if (node === undefined) throw new Error(`no node ${name}`);
    return node;
  }

  /**
   * Starts a node (new or restarted on its data directory); resolves once it prints its URL,
   * which a joining node does after its initial sync (`timeoutMs`, default startTimeoutMs).
   */
  async start(
    name: string,
    site: string,
    options: { join?: string[]; port?: number; timeoutMs?: number } = {},
  ): Promise<ClusterNode> {
    const node: ClusterNode = this.nodes.get(name) ?? {
      name,
      site,
      dataDirectory: join(this.directory, name),
      url: "",
      process: null,
      log: "",
      stopping: false,
    };
    this.nodes.set(name, node);
    const child = spawn(process.execPath, this.startArguments(node, site, options), {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      detached: this.options.detached === true,
    });
    node.process = child;
    node.stopping = false;
    this.collectLog(node, child);
    let served = false;
    child.once("exit", (code, signal) => {
      if (served && !node.stopping) this.options.onUnexpectedExit?.(node, code, signal);
    });
    node.url = await listeningUrl(node, child, options.timeoutMs ?? startTimeoutMs);
    served = true;
    return node;
  }

  /** `plexus start` for `node`: the cluster's config and secret, loopback, a free port unless told. */
  private startArguments(
    node: ClusterNode,
    site: string,
    options: { join?: string[]; port?: number },
  ): string[] {
    const args = [
      ...nodeArguments(),
      "--import",
      "tsx",
      join(root, "src/cli/main.ts"),
      "start",
      "--config",
      this.configFile,
      "--data",
      node.dataDirectory,
      "--node",
      node.name,
      "--site",
      site,
      "--host",
      "127.0.0.1",
      "--port",
      String(options.port ?? 0),
      "--secret-file",
      this.secretFile,
    ];
    for (const url of options.join ?? []) args.push("--join", url);
    if ((options.join ?? []).length === 0) args.push("--topology", join(this.directory, "topology.json"));
    return args;
  }

  /** The node's stderr: its tail in memory, every line to onLog, and to its log file when kept. */
  private collectLog(node: ClusterNode, child: ChildProcessByStdio<null, Readable, Readable>): void {
    let logFile = this.options.keep === true || this.options.logFiles === true;
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      node.log = (node.log + chunk).slice(-logTailChars);
      this.options.onLog?.(node, chunk);
      if (!logFile) return;
      try {
        appendFileSync(join(this.directory, `${node.name}.log`), chunk);
      } catch {
        logFile = false; // the directory is gone (removed by hand): keep only the tail in memory
      }
    });
  }

  /** Sends `signal` to the node's own process and waits (bounded) for it to exit. */
  async stop(name: string, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const node = this.node(name);
    const child = node.process;
    if (child === null || child.exitCode !== null || child.signalCode !== null)
      return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    node.stopping = true;
    child.kill(signal);
    const timeout = new Promise<"timeout">((resolve) =>
      setTimeout(() => resolve("timeout"), stopTimeoutMs).unref(),
    );
    const result = await Promise.race([exited, timeout]);
    if (result === "timeout") {
      child.kill("SIGKILL");
      await exited;
      throw new Error(`${name} did not exit within ${stopTimeoutMs} ms of ${signal}`);
    }
    node.process = null;
    return result;
  }

  /**
   * Stops every node at once (SIGTERM, then SIGKILL after stopTimeoutMs) and removes the
   * directory unless `keep`. Resolves with the names of the nodes that had to be killed.
   */
  async stopAll(): Promise<string[]> {
    const killed: string[] = [];
    await Promise.all(
      [...this.nodes.keys()].map(async (name) => {
        try {
          await this.stop(name);
        } catch {
          killed.push(name); // stop() has killed it; the directory goes below either way
        }
      }),
    );
    if (this.options.keep !== true) rmSync(this.directory, { recursive: true, force: true });
    return killed.sort();
  }
}

/**
 * Extra Node.js arguments for every node process, from PLEXUS_NODE_ARGS (space-separated), for
 * profiling a cluster: `PLEXUS_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" npm run bench`
 * (NODE_OPTIONS does not take --cpu-prof).
 */
function nodeArguments(): string[] {
  return (process.env.PLEXUS_NODE_ARGS ?? "").split(" ").filter((argument) => argument !== "");
}

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly contentType: string;
  readonly body: unknown;
}

/** A JSON request with a bounded wait; the body is parsed when it is JSON. */
export async function http(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const raw = typeof body === "string" ? body : body === undefined ? undefined : JSON.stringify(body);
  const response = await fetch(url, {
    method,
    headers: raw === undefined ? headers : { "content-type": "application/json", ...headers },
    ...(raw === undefined ? {} : { body: raw }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  const contentType = response.headers.get("content-type") ?? "";
  let parsed: unknown = text;
  if (contentType.includes("json") && text !== "") parsed = JSON.parse(text);
  return { status: response.status, headers: response.headers, contentType, body: parsed };
}

/** A node's locator DNS server (`host:port`) and zone, from GET /v1/status; nulls when it serves no DNS. */
export async function locatorOf(url: string): Promise<{ dns: string | null; zone: string | null }> {
  const status = await http("GET", `${url}/v1/status`);
  const dns = (status.body as { dns?: { address?: unknown; zone?: unknown } | null }).dns;
  return {
    dns: typeof dns?.address === "string" ? dns.address : null,
    zone: typeof dns?.zone === "string" ? dns.zone : null,
  };
}

/** Polls `check` until it returns true, at most `timeoutMs`; says what it waited for on failure. */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(25 * 2 ** attempt, 200)));
  }
}

export function entryPath(url: string, dn: string): string {
  return `${url}/v1/entries/${encodeURIComponent(dn)}`;
}

/** The URL a starting node prints once it serves; fails when it exits first or takes too long. */
function listeningUrl(
  node: ClusterNode,
  child: ChildProcessByStdio<null, Readable, Readable>,
  timeoutMs: number,
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`${node.name} did not start in ${timeoutMs} ms:\n${node.log}`)),
      timeoutMs,
    );
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      out += chunk;
      const match = /^listening (\S+)$/m.exec(out);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${node.name} exited with ${code} before serving:\n${node.log}`));
    });
  });
}
