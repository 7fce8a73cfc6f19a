import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseDn } from "../core/directory/dn.ts";
import { isNodeId, type NodeId } from "../core/ids.ts";
import { joinedLinkDefaults } from "../core/node/registration.ts";
import { isSiteName, type SiteName } from "../core/topology/model.ts";
import { type ClusterSecret, clusterSecret } from "../runtime/auth.ts";
import {
  createLogger,
  isLogFormat,
  isLogLevel,
  type LogFormat,
  type LogLevel,
  silentLogger,
} from "../runtime/log.ts";
import { type NodeOptions, PlexusNode, type RuntimeTimings, runtimeTimingsDefault } from "../runtime/node.ts";
import { usageErrorText } from "./cli-support.ts";
import { dnsConfigKeys, dnsStartFlags, dnsStartOptions, dnsStartUsage } from "./dns.ts";

/**
 * `plexus start`: one node from flags and/or a JSON config file (flags win). Prints
 * `listening <url>` on stdout once it serves; logs JSON lines on stderr (and serves on if either
 * is closed); stops cleanly on SIGTERM or SIGINT (a second signal exits at once).
 */
export const startUsage = `usage: plexus start [--config FILE] --data DIR --node NAME --site SITE
                    [--host IP] [--port N] [--join URL]... [--new-site]
                    [--secret-file FILE] [--partition DN]... [--topology FILE]
                    [--synchronous full|normal] [--page-worker on|off]
                    [--log-level debug|info|warn|error] [--log-format json|pretty]
                    [--dns HOST:PORT|off] [--zone NAME] [--dns-priority N] [--dns-weight N] ...

  --data DIR          the data directory (one SQLite file); created if missing
  --node NAME         this node's id (lower-case letters, digits, '-')
  --site SITE         this node's site
  --host IP           address to listen on and to advertise (default 127.0.0.1)
  --port N            port to listen on; 0 (default) picks a free one
  --join URL          a node of the directory to join through (repeatable); none for the
                      first node of a new directory
  --new-site          with --join: create --site if the topology lacks it, with a link
                      to the admitting node's site (cost ${joinedLinkDefaults.cost}, every ${joinedLinkDefaults.intervalMinutes} minutes); without
                      it such a join is refused, naming the known sites (a misspelt
                      --site would otherwise make a new site)
  --secret-file FILE  the cluster secret (at least 16 bytes); or PLEXUS_CLUSTER_SECRET
  --partition DN      first node only (refused with --join): a data partition to create
                      (repeatable; default dc=example,dc=com)
  --topology FILE     first node only (refused with --join): initial sites, links, subnets
                      and settings (JSON as in examples/two-sites.json; servers listed there
                      are ignored: each node registers itself)
  --synchronous MODE  SQLite durability: full (default, fsync per commit) or normal
  --page-worker MODE  on (default): build the pages partners pull on a worker thread, with
                      its own read-only connection, so that serving them does not take the
                      thread that commits client writes; off: build them on that thread
  --log-level LEVEL   least level logged on stderr (default info)
  --log-format FORMAT json (default): one JSON object per line (level, time, node, site,
                      event, fields); pretty: one readable line per event, for people
${dnsStartUsage}  --config FILE       JSON with any of: data, node, site, host, port, join, newSite (true
                      or false; ignored without join), secretFile, partitions, topology
                      (a file name or an object), synchronous,
                      pageWorker (true or false), logLevel, logFormat, timings (pullTimeoutMs,
                      retryBackoffBaseMs, retryBackoffMaxMs, topologyRefreshMs,
                      initialSyncTimeoutMs, joinTimeoutMs),
                      and the DNS settings: ${dnsConfigKeys.slice(0, 5).join(", ")},
                      ${dnsConfigKeys.slice(5).join(", ")}; its relative paths (data,
                      secretFile, topology) are read from the file's own directory
`;

const configBytesMax = 16 * 1024 * 1024;
/** Ceiling for any configured timing: a day. */
const timingMsMax = 24 * 60 * 60_000;

interface Output {
  write(text: string): unknown;
  on?(event: "error", listener: (error: Error) => void): unknown;
}

type Raw = Record<string, unknown>;

/** Node's error codes for a file that cannot be read, as the sentence an operator acts on. */
const unreadableReasons: Readonly<Record<string, string>> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EISDIR: "it is a directory",
  ENOTDIR: "a part of the path is not a directory",
};

/**
 * The file at `path`, or an Error naming what it was for ("the secret file …"): a bare
 * "ENOENT: no such file or directory, open 'x'" does not say which of three files is missing.
 */
function readNamed(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new Error(`cannot read ${what} ${path}: ${(code && unreadableReasons[code]) ?? message}`);
  }
}

function readJson(path: string, what: string): unknown {
  const text = readNamed(path, `the ${what}`);
  if (text.length > configBytesMax) throw new Error(`${what} ${path} is larger than ${configBytesMax} bytes`);
  try {
    return JSON.parse(text.toString("utf8"));
  } catch (error) {
    throw new Error(`${what} ${path} is not JSON: ${(error as Error).message}`);
  }
}

function isRecord(value: unknown): value is Raw {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringList(value: unknown, what: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((item) => typeof item !== "string"))
    throw new Error(`${what} must be a list of strings`);
  return value as string[];
}

function timings(raw: unknown): RuntimeTimings {
  if (raw === undefined) return runtimeTimingsDefault;
  if (!isRecord(raw)) throw new Error("timings must be an object");
  const merged: Record<string, unknown> = { ...runtimeTimingsDefault, ...raw };
  for (const [key, value] of Object.entries(merged)) {
    if (!(key in runtimeTimingsDefault)) throw new Error(`unknown timing ${key}`);
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > timingMsMax)
      throw new Error(`timing ${key} must be an integer number of milliseconds, 1..${timingMsMax}`);
  }
  return merged as unknown as RuntimeTimings;
}

const startFlags = {
  config: { type: "string" },
  data: { type: "string" },
  node: { type: "string" },
  site: { type: "string" },
  host: { type: "string" },
  port: { type: "string" },
  join: { type: "string", multiple: true },
  "new-site": { type: "boolean" },
  "secret-file": { type: "string" },
  partition: { type: "string", multiple: true },
  topology: { type: "string" },
  synchronous: { type: "string" },
  "page-worker": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  ...dnsStartFlags,
} as const;

/** The config file's fields, each the camel-case twin of a flag (or a group of flags). */
const configKeys = [
  "data",
  "node",
  "site",
  "host",
  "port",
  "join",
  "newSite",
  "secretFile",
  "partitions",
  "topology",
  "synchronous",
  "pageWorker",
  "logLevel",
  "logFormat",
  "timings",
  ...dnsConfigKeys,
];

type StartFlags = ReturnType<typeof parseStartFlags>;

function parseStartFlags(args: readonly string[]) {
  return parseArgs({ args: [...args], options: startFlags, strict: true, allowPositionals: false }).values;
}

/** Parses flags and config file into node options; throws an Error with a sentence on bad input. */
export function startOptions(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): NodeOptions & { logLevel: LogLevel; logFormat: LogFormat } {
  const values = parseStartFlags(args);
  const raw: Raw = values.config === undefined ? {} : (readJson(values.config, "config file") as Raw);
  if (!isRecord(raw)) throw new Error("the config file must hold a JSON object");
  const unknown = Object.keys(raw).find((key) => !configKeys.includes(key));
  if (unknown !== undefined) throw new Error(`unknown config field ${unknown}`);
  const file = values.config === undefined ? raw : withPathsFrom(dirname(resolve(values.config)), raw);
  const where = placeOptions(values, file);
  const join = joinUrls(values, file);
  // A joining node takes the directory's partitions and topology: these flags would be ignored
  // without a word. The config file's fields are let be: one file may serve every node.
  if (join.length > 0 && (values.partition !== undefined || values.topology !== undefined))
    throw new Error(
      "--partition and --topology are for the first node only (no --join): a joining node takes " +
        "the directory's partitions and topology",
    );
  const newSite = newSiteOf(values, file, join);
  const partitions = values.partition ?? stringList(file.partitions, "partitions");
  // Checked before anything is created: the node would otherwise make its data directory and
  // database, and only then fail on the name.
  for (const partition of partitions) {
    const parsed = parseDn(partition);
    if (!parsed.ok || parsed.value.rdns.length === 0)
      throw new Error(
        `--partition ${partition} is not a DN (${parsed.ok ? "it is empty" : parsed.error.message})`,
      );
  }
  return {
    ...where,
    join,
    newSite,
    secret: secretOf(values, file, env),
    partitions: partitions.length > 0 || join.length > 0 ? partitions : ["dc=example,dc=com"],
    topology: topologyOf(values, file),
    ...storageOptions(values, file),
    timings: timings(file.timings),
    log: silentLogger,
    ...dnsOption(dnsStartOptions(values, file, where.host)),
    ...logOptions(values, file),
  };
}

/** The config file's fields that name files or directories. */
const configPathKeys = ["data", "secretFile", "topology"] as const;

/**
 * The config file's relative paths, read from the file's own directory (as a config file's
 * paths usually are) rather than from wherever `plexus start` happens to run.
 */
function withPathsFrom(directory: string, file: Raw): Raw {
  const out: Raw = { ...file };
  for (const key of configPathKeys) {
    const value = file[key];
    if (typeof value === "string" && value !== "" && !isAbsolute(value)) out[key] = join(directory, value);
  }
  return out;
}

/** Where the node keeps its data, what it is called, and where it listens. */
function placeOptions(
  values: StartFlags,
  file: Raw,
): Pick<NodeOptions, "dataDirectory" | "node" | "site" | "host" | "port"> {
  const data = values.data ?? file.data;
  if (typeof data !== "string" || data === "") throw new Error("--data is required");
  const node = values.node ?? file.node;
  if (!isNodeId(node)) throw new Error("--node must be a node id (lower-case letters, digits, '-')");
  const site = values.site ?? file.site;
  if (!isSiteName(site)) throw new Error("--site must be a site name (a DNS label)");
  const host = values.host ?? file.host ?? "127.0.0.1";
  if (typeof host !== "string" || isIP(host) === 0 || host === "0.0.0.0" || host === "::")
    throw new Error("--host must be one IP address of this machine (it is advertised to partners)");
  const portValue = values.port ?? file.port ?? 0;
  const port =
    typeof portValue === "string" && /^[0-9]{1,5}$/.test(portValue) ? Number(portValue) : portValue;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65_535)
    throw new Error("--port must be 0..65535");
  return { dataDirectory: data, node: node as NodeId, site: site as SiteName, host, port };
}

function joinUrls(values: StartFlags, file: Raw): string[] {
  const join = values.join ?? stringList(file.join, "join");
  for (const url of join) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`--join ${url} is not a URL`);
    }
    if (parsed.protocol !== "http:") throw new Error(`--join ${url}: only http:// URLs are supported`);
    // A path would be dropped without a word (the node's routes are at its root).
    if (parsed.pathname !== "/" || parsed.search !== "" || parsed.hash !== "")
      throw new Error(`--join ${url}: give the node's address without a path (http://HOST:PORT)`);
  }
  return join;
}

/**
 * Whether a joining node may create its site (--new-site). The flag is refused without --join:
 * the first node of a directory creates its site anyway, and accepting it would suggest it
 * did something. The config file's field is let be there, as partitions and topology are on a
 * joining node: one file may serve every node.
 */
function newSiteOf(values: StartFlags, file: Raw, join: readonly string[]): boolean {
  if (values["new-site"] === true && join.length === 0)
    throw new Error(
      "--new-site is for a joining node (with --join): the first node of a directory creates its site anyway",
    );
  const newSite = values["new-site"] ?? file.newSite ?? false;
  if (typeof newSite !== "boolean") throw new Error("newSite must be true or false");
  return newSite;
}

function secretOf(values: StartFlags, file: Raw, env: NodeJS.ProcessEnv): ClusterSecret {
  const secretFile = values["secret-file"] ?? file.secretFile;
  const secretText =
    typeof secretFile === "string"
      ? readNamed(secretFile, "the secret file").toString("utf8")
      : env.PLEXUS_CLUSTER_SECRET;
  if (secretText === undefined)
    throw new Error("a cluster secret is required: --secret-file or PLEXUS_CLUSTER_SECRET");
  const secret = clusterSecret(secretText);
  if (typeof secret === "string") throw new Error(secret);
  return secret as ClusterSecret;
}

/** The topology to create a new directory with: a file name or the object itself. */
function topologyOf(values: StartFlags, file: Raw): Raw {
  const topologySource = values.topology ?? file.topology;
  const topology =
    typeof topologySource === "string" ? readJson(topologySource, "topology file") : (topologySource ?? {});
  if (!isRecord(topology)) throw new Error("the topology must be a JSON object");
  return topology;
}

function storageOptions(values: StartFlags, file: Raw): Pick<NodeOptions, "synchronous" | "pageWorker"> {
  const synchronous = values.synchronous ?? file.synchronous ?? "full";
  if (synchronous !== "full" && synchronous !== "normal")
    throw new Error("--synchronous must be full or normal");
  const pageWorkerFlag = values["page-worker"];
  if (pageWorkerFlag !== undefined && pageWorkerFlag !== "on" && pageWorkerFlag !== "off")
    throw new Error("--page-worker must be on or off");
  const pageWorker = pageWorkerFlag === undefined ? (file.pageWorker ?? true) : pageWorkerFlag === "on";
  if (typeof pageWorker !== "boolean") throw new Error("pageWorker must be true or false");
  return { synchronous, pageWorker };
}

function logOptions(values: StartFlags, file: Raw): { logLevel: LogLevel; logFormat: LogFormat } {
  const logLevel = values["log-level"] ?? file.logLevel ?? "info";
  if (!isLogLevel(logLevel)) throw new Error("--log-level must be debug, info, warn or error");
  const logFormat = values["log-format"] ?? file.logFormat ?? "json";
  if (!isLogFormat(logFormat)) throw new Error("--log-format must be json or pretty");
  return { logLevel, logFormat };
}

/** Runs the node until a signal stops it. Resolves with the exit code. */
export async function startCommand(args: readonly string[], stdout: Output, stderr: Output): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    stdout.write(startUsage);
    return 0;
  }
  let options: NodeOptions & { logLevel: LogLevel; logFormat: LogFormat };
  try {
    options = startOptions(args, process.env);
  } catch (error) {
    stderr.write(usageErrorText("start", (error as Error).message, startUsage));
    return 2;
  }
  const log = createLogger({
    level: options.logLevel,
    format: options.logFormat,
    base: { node: options.node, site: options.site },
    output: stderr,
  });
  // A reader of its output that goes away (`plexus start 2>&1 | head`, a log collector
  // restarted) fails the next write with EPIPE, which uncaught would end the node without its
  // clean stop. A server keeps serving: what it writes there from then on is lost, as it would be
  // to a program that ignores SIGPIPE, and nothing else changes.
  for (const out of [stdout, stderr]) out.on?.("error", () => {});
  let node: PlexusNode;
  try {
    node = await PlexusNode.start({ ...options, log });
  } catch (error) {
    log.log("error", "start-failed", { error: (error as Error).message });
    stderr.write(`plexus start: ${(error as Error).message}\n`);
    return 1;
  }
  stdout.write(`listening ${node.url}\n`);
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        log.log("warn", "forced-exit", { signal });
        process.exit(130);
      }
      stopping = true;
      log.log("info", "stopping", { signal });
      node.stop().then(
        () => {
          log.log("info", "stopped", {});
          resolve(0);
        },
        (error: unknown) => {
          log.log("error", "stop-failed", { error: (error as Error).message });
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}

/** The dns option only when DNS is on (exactOptionalPropertyTypes: no `dns: undefined`). */
function dnsOption(dns: NodeOptions["dns"]): Pick<NodeOptions, "dns"> {
  return dns === undefined ? {} : { dns };
}
