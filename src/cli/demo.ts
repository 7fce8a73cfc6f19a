import { parseArgs } from "node:util";
import { usageErrorText } from "./cli-support.ts";
import { type ClusterNode, entryPath, eventually, http, LocalCluster, locatorOf } from "./local-cluster.ts";

/**
 * `plexus demo` (what `npm start` runs): a local cluster of three sites with two nodes each,
 * every node its own `plexus start` process on a free loopback port, data in a fresh temporary
 * directory. Writes sample data through the HTTP API on nodes of three sites, waits until every
 * node holds all of it, prints the nodes and commands to try, and runs until SIGINT, SIGTERM or
 * SIGHUP, which stop every node it started (SIGTERM, then SIGKILL after a bounded wait) and
 * remove the directory unless --keep. It is a client of the nodes: it only spawns them and calls
 * their API.
 */
export const demoUsage = `usage: plexus demo [--json] [--keep] [--logs]

Starts a local Plexus cluster: sites hq (hub), east and branch (a branch office), two nodes
each (hq1, hq2, east1, east2, branch1, branch2), each node its own 'plexus start' process on a
free 127.0.0.1 port, data in a new temporary directory. Writes sample users and a group under
dc=example,dc=com, waits until every node has them, prints each node's name, site, URL and
DNS server (each node serves the locator zone and registers its SRV records) and commands to
try, then runs until Ctrl-C (SIGINT), SIGTERM or SIGHUP (its terminal closed), which stop every
node and remove the temporary directory (so does a closed output: its reader gone).

  --json   print only one JSON line per node, {"node","site","url","pid","dns","zone"} (dns:
           the node's DNS server for the locator zone, HOST:PORT), then {"ready":true}
  --keep   keep the temporary directory (data and node logs) on exit and say where it is
  --logs   also show every node's log on stderr while it runs: one readable line per event
           (JSON lines with --json). Without it the logs go to NAME.log in the directory
  --help   this text
`;

/** Realistic links: a hub, a second site linked to it, a branch office behind a dearer link. */
export const demoTopology = {
  sites: [
    { name: "hq", tier: "hub" },
    { name: "east", tier: "peer" },
    { name: "branch", tier: "branch" },
  ],
  links: [
    { name: "hq-east", sites: ["hq", "east"], cost: 10, intervalMinutes: 1, notify: true },
    { name: "hq-branch", sites: ["hq", "branch"], cost: 50, intervalMinutes: 5, notify: true },
  ],
  settings: { intraSitePullIntervalMs: 5_000, notifyDelayMs: 20 },
};
const timings = { pullTimeoutMs: 5_000, retryBackoffBaseMs: 200, retryBackoffMaxMs: 2_000 };
export const demoNodes: readonly { readonly node: string; readonly site: string }[] = [
  { node: "hq1", site: "hq" },
  { node: "hq2", site: "hq" },
  { node: "east1", site: "east" },
  { node: "east2", site: "east" },
  { node: "branch1", site: "branch" },
  { node: "branch2", site: "branch" },
];

const base = "dc=example,dc=com";
const people = `ou=people,${base}`;
const groups = `ou=groups,${base}`;
/** How long the sample data may take to reach every node. */
const replicationTimeoutMs = 30_000;
/** Lines of a failed node's log shown in the error. */
const logLinesShown = 15;
/** A node's log text held back while it waits for its line end; longer goes out as it is. */
const partialLineCharsMax = 64 * 1024;

interface Sample {
  readonly writer: string;
  readonly dn: string;
  readonly attributes: Record<string, string[]>;
}

function user(writer: string, uid: string, given: string, surname: string, title: string): Sample {
  return {
    writer,
    dn: `uid=${uid},${people}`,
    attributes: {
      objectClass: ["inetOrgPerson", "person"],
      uid: [uid],
      cn: [`${given} ${surname}`],
      givenName: [given],
      sn: [surname],
      mail: [`${uid}@example.com`],
      title: [title],
    },
  };
}

/** Written in this order; users on nodes of three sites (multi-master), once their parent is everywhere. */
export const demoSample: readonly Sample[] = [
  { writer: "hq1", dn: people, attributes: { objectClass: ["organizationalUnit"], ou: ["people"] } },
  { writer: "hq1", dn: groups, attributes: { objectClass: ["organizationalUnit"], ou: ["groups"] } },
  user("hq1", "alice", "Alice", "Liddell", "Directory architect"),
  user("hq2", "bob", "Bob", "Marley", "Site engineer"),
  user("east1", "carol", "Carol", "Danvers", "Network engineer"),
  user("branch1", "dave", "Dave", "Bowman", "Branch manager"),
  {
    writer: "hq1",
    dn: `cn=engineers,${groups}`,
    attributes: {
      objectClass: ["groupOfNames"],
      cn: ["engineers"],
      description: ["Everyone who keeps the directory running"],
      member: [`uid=alice,${people}`, `uid=bob,${people}`, `uid=carol,${people}`],
    },
  },
];

interface Output {
  write(text: string): unknown;
  /** A stream's events (process.stdout and stderr have them; a test's collector need not). */
  on?(event: "error", listener: (error: Error) => void): unknown;
}

class DemoError extends Error {}

/** Passes on whole lines only, so that six nodes' logs never mix within one line. */
function lineWriter(out: Output): (node: ClusterNode, chunk: string) => void {
  const partial = new Map<string, string>();
  return (node, chunk) => {
    const text = (partial.get(node.name) ?? "") + chunk;
    const end = text.length > partialLineCharsMax ? text.length : text.lastIndexOf("\n") + 1;
    partial.set(node.name, text.slice(end));
    if (end > 0) out.write(text.slice(0, end));
  };
}

function tail(log: string): string {
  const lines = log.trimEnd().split("\n");
  return lines.slice(-logLinesShown).join("\n");
}

async function write(node: ClusterNode, sample: Sample, concern: string): Promise<void> {
  const answer = await http(
    "POST",
    `${node.url}/v1/entries`,
    { dn: sample.dn, attributes: sample.attributes },
    { "plexus-write-concern": concern },
  );
  if (answer.status !== 201)
    throw new DemoError(
      `writing ${sample.dn} on ${node.name} failed: ${answer.status} ${JSON.stringify(answer.body)}`,
    );
}

/** Writes the sample data and waits (bounded) until every node holds all of it. */
async function writeSample(cluster: LocalCluster): Promise<void> {
  const parents = demoSample.filter((sample) => sample.dn === people || sample.dn === groups);
  // The parents must be on every node before other nodes write below them.
  for (const sample of parents)
    await write(cluster.node(sample.writer), sample, `all; timeout=${replicationTimeoutMs}`);
  for (const sample of demoSample)
    if (!parents.includes(sample)) await write(cluster.node(sample.writer), sample, "local");
  for (const { node } of demoNodes) {
    const url = cluster.node(node).url;
    await eventually(
      `${node} holding the sample data`,
      async () => {
        for (const sample of demoSample)
          if ((await http("GET", entryPath(url, sample.dn))).status !== 200) return false;
        return true;
      },
      replicationTimeoutMs,
    );
  }
}

function humanReport(
  cluster: LocalCluster,
  keep: boolean,
  replicatedMs: number,
  locator: { dns: string | null; zone: string | null },
): string {
  const node = (name: string): ClusterNode => cluster.node(name);
  const rows = demoNodes.map(({ node: name, site }) => {
    const { url, process } = node(name);
    return `  ${name.padEnd(9)}${site.padEnd(8)}${url.padEnd(25)}${process?.pid ?? ""}`;
  });
  const hq = node("hq1").url;
  const east = node("east2").url;
  const branch = node("branch2").url;
  const alice = entryPath(east, `uid=alice,${people}`);
  const erin = JSON.stringify({
    dn: `uid=erin,${people}`,
    attributes: { objectClass: ["inetOrgPerson"], uid: ["erin"], cn: ["Erin Hannon"], sn: ["Hannon"] },
  });
  const search = JSON.stringify({
    base,
    scope: "sub",
    filter: "(objectClass=inetOrgPerson)",
    attributes: ["cn", "mail", "title"],
  });
  return `Plexus demo: ${demoNodes.length} nodes in 3 sites, each its own 'plexus start' process.

  node     site    url                      pid
${rows.join("\n")}

Sites: hq (hub) -- east: link hq-east, cost 10, every 1 min, notify
       hq (hub) -- branch (branch office): link hq-branch, cost 50, every 5 min, notify

Sample data in ${base}: ${people} (alice written on hq1, bob on hq2, carol on east1,
dave on branch1) and cn=engineers,${groups} (members alice, bob, carol); on every node
${replicatedMs} ms after the first write.

Try:
  curl -s '${alice}'
  curl -s -X POST ${branch}/v1/search -H 'content-type: application/json' \\
    -d '${search}'
  curl -s -X POST ${hq}/v1/entries -H 'content-type: application/json' \\
    -H 'plexus-write-concern: sites=3' -d '${erin}'
  curl -s '${entryPath(branch, `uid=erin,${people}`)}'
  curl -s ${east}/v1/status
  curl -s ${east}/metrics | grep '^plexus_'
${digLine(locator)}
With Plexus' own commands ('npx plexus --help' lists them all): a search as LDIF, a node's
inbound replication (like repadmin /showrepl), every server's (like /replsummary), the topology:
  npx plexus search ${base} --url ${branch} --filter '(objectClass=inetOrgPerson)' --attributes cn,mail
  npx plexus repl status --url ${east}
  npx plexus repl summary --url ${hq}
  npx plexus topology --url ${hq}

Data and node logs: ${cluster.directory} (${keep ? "kept on exit" : "removed on exit; --keep keeps it"}).
Follow the nodes' logs: tail -f ${cluster.directory}/*.log (or run the demo with --logs).
Ctrl-C stops every node.
`;
}

/** The locator's records through hq1's DNS server (empty when it serves none). */
function digLine({ dns, zone }: { dns: string | null; zone: string | null }): string {
  const at = dns === null ? -1 : dns.lastIndexOf(":");
  if (dns === null || zone === null || at < 0) return "";
  return `  dig @${dns.slice(0, at)} -p ${dns.slice(at + 1)} _plexus._tcp.hq._sites.${zone} SRV +noall +answer +additional\n`;
}

/**
 * The signals that stop the demo and its nodes. SIGHUP too: the nodes run in their own process
 * groups (so that Ctrl-C reaches only the demo), so when the terminal closes only the demo hears
 * of it, and dying of it would leave every node running with nobody to stop it. (Node resets
 * an inherited SIG_IGN at start-up, so under nohup the demo died of SIGHUP all the same.)
 */
const stopSignals: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** Runs the demo until SIGINT, SIGTERM or SIGHUP. Resolves with the exit code. */
export async function demoCommand(args: readonly string[], stdout: Output, stderr: Output): Promise<number> {
  const flags = parseDemoArgs(args, stdout, stderr);
  if (typeof flags === "number") return flags;
  const demo = new DemoRun(flags, stdout, stderr);
  let signalled: (signal: string) => void = () => {};
  const interrupted = new Promise<string>((resolve) => {
    signalled = resolve;
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    signalled(signal);
    void demo.stop(`${signal} received`, 0);
  };
  // A write to a pipe whose reader has gone (`npm start | head -1`) fails with EPIPE; uncaught,
  // that error would end the demo and leave its nodes running. Stop them instead, as SIGPIPE
  // would stop a program that wrote there; later writes to the dead pipe fail the same way, up
  // to the last ones of stop(): so the listener stays for as long as the process runs.
  const onOutputError = (): void => {
    signalled("output closed");
    void demo.stop("its output was closed", 1);
  };
  for (const signal of stopSignals) process.on(signal, onSignal);
  for (const out of [stdout, stderr]) out.on?.("error", onOutputError);
  try {
    return await demo.run(interrupted);
  } finally {
    for (const signal of stopSignals) process.off(signal, onSignal);
  }
}

interface DemoFlags {
  readonly json: boolean;
  readonly keep: boolean;
  readonly logs: boolean;
}

/** The flags, or the exit code when there is nothing to run (--help, a bad flag). */
function parseDemoArgs(args: readonly string[], stdout: Output, stderr: Output): DemoFlags | number {
  let values: { json?: boolean; keep?: boolean; logs?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        json: { type: "boolean" },
        keep: { type: "boolean" },
        logs: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    stderr.write(usageErrorText("demo", (error as Error).message, demoUsage));
    return 2;
  }
  if (values.help === true) {
    stdout.write(demoUsage);
    return 0;
  }
  return { json: values.json === true, keep: values.keep === true, logs: values.logs === true };
}

/** One demo: its cluster, started, filled, reported, and stopped once (by a signal or a failure). */
class DemoRun {
  private readonly cluster: LocalCluster;
  private stopping = false;
  private stopped: Promise<number> | null = null;

  constructor(
    private readonly flags: DemoFlags,
    private readonly stdout: Output,
    private readonly stderr: Output,
  ) {
    this.cluster = new LocalCluster(demoTopology, timings, {
      prefix: "plexus-demo-",
      keep: flags.keep,
      logFiles: true,
      // Readable logs for people; --json keeps them JSON, for programs.
      logFormat: flags.json ? "json" : "pretty",
      ...(flags.logs ? { onLog: lineWriter(stderr) } : {}),
      detached: true,
      onUnexpectedExit: (node, code, signal) => {
        if (this.stopping) return;
        stderr.write(
          `plexus demo: node ${node.name} (pid ${node.process?.pid}) exited unexpectedly ` +
            `(${signal ?? `exit code ${code}`}); the other nodes keep running. Its last log lines:\n` +
            `${tail(node.log)}\n`,
        );
      },
    });
  }

  /** Starts the nodes, writes the sample, reports; then waits for `interrupted` and stops. */
  async run(interrupted: Promise<string>): Promise<number> {
    try {
      await this.startNodes();
      if (!this.stopping) await this.fillAndReport();
    } catch (error) {
      if (!this.stopping) {
        const message = error instanceof DemoError ? error.message : String((error as Error).stack ?? error);
        this.stderr.write(`plexus demo: ${message}\n`);
        return await this.stop("the demo could not start", 1);
      }
    }
    await interrupted;
    return await this.stop("stopping", 0);
  }

  /** Stops every node (once, whoever asks first) and resolves with `code`. */
  stop(reason: string, code: number): Promise<number> {
    if (this.stopped !== null) return this.stopped;
    this.stopping = true;
    const { cluster, stderr } = this;
    const count = cluster.nodes.size;
    if (!this.flags.json)
      stderr.write(`plexus demo: ${reason}; stopping ${count} node${count === 1 ? "" : "s"}\n`);
    this.stopped = cluster.stopAll().then((killed) => {
      if (killed.length > 0)
        stderr.write(`plexus demo: killed ${killed.join(", ")} (did not stop after SIGTERM)\n`);
      if (this.flags.keep) stderr.write(`plexus demo: data and logs kept in ${cluster.directory}\n`);
      return code;
    });
    return this.stopped;
  }

  private say(text: string): void {
    if (!this.flags.json) this.stdout.write(text);
  }

  /** The first node creates the directory; the others join through it, together. */
  private async startNodes(): Promise<void> {
    this.say(`plexus demo: starting ${demoNodes.length} nodes in ${this.cluster.directory}\n`);
    const [first, ...others] = demoNodes;
    if (first === undefined) throw new DemoError("no nodes");
    await this.startNode(first.node, first.site, []);
    const hq1 = this.cluster.node(first.node).url;
    await Promise.all(others.map(({ node, site }) => this.startNode(node, site, [hq1])));
  }

  private async startNode(node: string, site: string, join: string[]): Promise<void> {
    if (this.stopping) return;
    try {
      await this.cluster.start(node, site, { join });
    } catch (error) {
      if (this.stopping) return;
      const message = (error as Error).message;
      const [headline = message] = message.split("\n");
      throw new DemoError(`node ${node} failed to start: ${headline}\n${tail(this.cluster.node(node).log)}`);
    }
  }

  /** Writes the sample data, then tells what runs where: a line per node for --json, else a guide. */
  private async fillAndReport(): Promise<void> {
    const { cluster, stdout } = this;
    this.say("plexus demo: every node serves; writing the sample data\n");
    const began = Date.now();
    await writeSample(cluster);
    if (this.stopping) return;
    if (!this.flags.json) {
      const tookMs = Date.now() - began;
      stdout.write(humanReport(cluster, this.flags.keep, tookMs, await locatorOf(cluster.node("hq1").url)));
      return;
    }
    for (const { node, site } of demoNodes) {
      const { url, process } = cluster.node(node);
      const { dns, zone } = await locatorOf(url);
      stdout.write(`${JSON.stringify({ node, site, url, pid: process?.pid ?? null, dns, zone })}\n`);
    }
    stdout.write(`${JSON.stringify({ ready: true })}\n`);
  }
}
