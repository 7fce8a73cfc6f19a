import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";

/**
 * Network namespaces for tests that need a real network between sites: a "switch" namespace
 * holding a bridge, and one namespace per site joined to it by a veth pair, each with its own
 * addresses. Nothing is added to the namespace the tests run in: the tests reach the nodes
 * through agents (netns-agent.ts) started inside the site namespaces. A WAN cut is an
 * nftables rule on the switch's bridge that drops frames between two ports in silence, as a
 * broken WAN link does (no RST, no ICMP: the far side just stops answering).
 *
 * Needs root, `ip` (iproute2) and `nft` (nftables); .ci/run installs them.
 */

/** Why the tests cannot run here, or null when they can. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  for (const tool of ["ip", "nft"]) {
    const found = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" });
    if (found.status !== 0)
      return `needs ${tool} (apt-get install ${tool === "ip" ? "iproute2" : "nftables"})`;
  }
  const probe = `plx-probe-${process.pid}`;
  const made = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  if (made.status !== 0) return `cannot create a network namespace: ${made.stderr.trim()}`;
  spawnSync("ip", ["netns", "del", probe]);
  return null;
}

/** Namespace names this module makes: plx-<pid>-<tag>-<name> (so a dead run's leftovers are known). */
const namePrefix = "plx-";

function run(args: readonly string[], input?: string): string {
  const result = spawnSync(args[0] as string, args.slice(1), { encoding: "utf8", input });
  if (result.status !== 0)
    throw new Error(
      `${args.join(" ")} failed (${result.status}): ${result.stderr.trim() || result.stdout.trim()}`,
    );
  return result.stdout;
}

/** Deletes the namespaces of earlier runs of these tests whose process is gone (a killed run). */
function removeLeftovers(): void {
  const listed = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
  for (const line of listed.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const owner = /^plx-([0-9]+)-/.exec(name)?.[1];
    if (owner === undefined || isAlive(Number(owner))) continue;
    spawnSync("ip", ["netns", "del", name]);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface SiteNet {
  /** The site's namespace. */
  readonly namespace: string;
  /** Its addresses (IPv4), all on its one link to the switch. */
  readonly addresses: readonly string[];
}

export class NetLab {
  readonly sites = new Map<string, SiteNet>();
  private readonly switchNs: string;
  private readonly tag = randomBytes(3).toString("hex");
  private readonly ports = new Map<string, string>();
  private cutRules = false;

  /** `sites`: site name → its addresses (with a common prefix length `prefix`). */
  constructor(sites: Readonly<Record<string, readonly string[]>>, prefix: number) {
    removeLeftovers();
    this.switchNs = this.name("sw");
    try {
      run(["ip", "netns", "add", this.switchNs]);
      this.inSwitch(["ip", "link", "add", "br0", "type", "bridge"]);
      this.inSwitch(["ip", "link", "set", "br0", "up"]);
      let index = 0;
      for (const [site, addresses] of Object.entries(sites)) {
        index++;
        this.addSite(site, addresses, prefix, index);
      }
    } catch (error) {
      this.destroy();
      throw error;
    }
  }

  /** Runs `args` inside a namespace; throws with its stderr when it fails. */
  exec(namespace: string, args: readonly string[], input?: string): string {
    return run(["ip", "netns", "exec", namespace, ...args], input);
  }

  /** Starts `command` inside the site's namespace (the ChildProcess's pid is the command's own). */
  spawn(site: string, command: string, args: readonly string[], cwd: string): ChildProcess {
    return spawn("ip", ["netns", "exec", this.site(site).namespace, command, ...args], {
      cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
  }

  site(name: string): SiteNet {
    const site = this.sites.get(name);
    if (site === undefined) throw new Error(`no site ${name} in the lab`);
    return site;
  }

  /** Drops every frame between sites `a` and `b` at the switch, both ways, without a word. */
  cut(a: string, b: string): void {
    const [portA, portB] = [this.port(a), this.port(b)];
    const rules = [
      this.cutRules
        ? ""
        : "add table bridge plexus\nadd chain bridge plexus forward { type filter hook forward priority 0; }",
      `add rule bridge plexus forward iifname "${portA}" oifname "${portB}" drop`,
      `add rule bridge plexus forward iifname "${portB}" oifname "${portA}" drop`,
    ];
    this.exec(this.switchNs, ["nft", "-f", "-"], `${rules.join("\n")}\n`);
    this.cutRules = true;
  }

  /** Mends every cut. */
  heal(): void {
    if (!this.cutRules) return;
    this.exec(this.switchNs, ["nft", "delete", "table", "bridge", "plexus"]);
    this.cutRules = false;
  }

  /** Deletes the namespaces (their links, addresses and rules go with them). */
  destroy(): void {
    for (const site of this.sites.values()) spawnSync("ip", ["netns", "del", site.namespace]);
    spawnSync("ip", ["netns", "del", this.switchNs]);
    this.sites.clear();
  }

  private addSite(site: string, addresses: readonly string[], prefix: number, index: number): void {
    const namespace = this.name(site);
    const port = `p${index}`;
    run(["ip", "netns", "add", namespace]);
    this.sites.set(site, { namespace, addresses });
    this.ports.set(site, port);
    // The veth pair is made inside the site's namespace, its switch end then moved over.
    this.exec(namespace, ["ip", "link", "set", "lo", "up"]);
    this.exec(namespace, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", port]);
    this.exec(namespace, ["ip", "link", "set", port, "netns", this.switchNs]);
    for (const address of addresses)
      this.exec(namespace, ["ip", "addr", "add", `${address}/${prefix}`, "dev", "eth0"]);
    this.exec(namespace, ["ip", "link", "set", "eth0", "up"]);
    this.inSwitch(["ip", "link", "set", port, "master", "br0"]);
    this.inSwitch(["ip", "link", "set", port, "up"]);
  }

  private port(site: string): string {
    const port = this.ports.get(site);
    if (port === undefined) throw new Error(`no site ${site} in the lab`);
    return port;
  }

  private inSwitch(args: readonly string[]): string {
    return this.exec(this.switchNs, args);
  }

  private name(part: string): string {
    return `${namePrefix}${process.pid}-${this.tag}-${part}`.slice(0, 60);
  }
}

/** An answer the agent relayed. */
export interface AgentAnswer {
  readonly status: number;
  readonly body: unknown;
  /** Time from sending the request to the whole answer, in the agent. */
  readonly ms: number;
}

interface AgentReply {
  readonly id: number;
  readonly status?: number;
  readonly body?: unknown;
  readonly ms?: number;
  readonly error?: string;
  readonly url?: string;
  readonly tier?: string;
  readonly failed?: readonly { readonly url: string; readonly failure: string }[];
}

/** A call of the client library the agent made: who answered, from which tier, who failed first. */
export interface ClientCallAnswer {
  readonly status: number;
  readonly url: string;
  readonly tier: string;
  readonly failed: readonly { readonly url: string; readonly failure: string }[];
  readonly ms: number;
}

/**
 * A process inside a site's namespace that makes HTTP requests for the test (netns-agent.ts):
 * the test's own process is outside every namespace, so it cannot reach the nodes itself.
 */
export class NetAgent {
  private seq = 0;
  private readonly pending = new Map<number, (reply: AgentReply) => void>();

  constructor(private readonly child: ChildProcess) {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      const reply = JSON.parse(line) as AgentReply;
      this.pending.get(reply.id)?.(reply);
      this.pending.delete(reply.id);
    });
    child.once("exit", () => {
      for (const settle of this.pending.values()) settle({ id: -1, error: "the agent exited" });
      this.pending.clear();
    });
  }

  /** One request from inside the namespace; rejects on a transport error or its timeout. */
  request(
    method: string,
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
    timeoutMs = 10_000,
  ): Promise<AgentAnswer> {
    this.seq++;
    const id = this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (reply) => {
        if (reply.error !== undefined) reject(new Error(`${method} ${url}: ${reply.error}`));
        else resolve({ status: reply.status ?? 0, body: reply.body, ms: reply.ms ?? 0 });
      });
      this.child.stdin?.write(`${JSON.stringify({ id, method, url, body, headers, timeoutMs })}\n`);
    });
  }

  /**
   * A call of the client library (src/client) from inside the namespace, by a client that
   * finds its servers in `zone` through `dnsServers` and is kept for the next calls.
   */
  clientCall(
    client: { zone: string; dnsServers: readonly string[] },
    call: "add" | "get",
    dn: string,
    attributes?: Record<string, string[]>,
  ): Promise<ClientCallAnswer> {
    this.seq++;
    const id = this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (reply) => {
        if (reply.error !== undefined) reject(new Error(`client ${call} ${dn}: ${reply.error}`));
        else
          resolve({
            status: reply.status ?? 0,
            url: reply.url ?? "",
            tier: reply.tier ?? "",
            failed: reply.failed ?? [],
            ms: reply.ms ?? 0,
          });
      });
      this.child.stdin?.write(`${JSON.stringify({ id, client, call, dn, attributes })}\n`);
    });
  }

  stop(): void {
    this.child.stdin?.end();
    if (this.child.exitCode === null && this.child.pid !== undefined) this.child.kill("SIGTERM");
  }
}

/** A `plexus start` process inside a site's namespace (startNetNode). */
export interface NetNode {
  readonly name: string;
  readonly site: string;
  readonly child: ChildProcess;
  readonly url: string;
  /** What it logged on stderr (the last 64 KiB), for a failure's message. */
  log: string;
}

/** How much of a node's log is kept. */
const netNodeLogChars = 64 * 1024;
/** A node stopped with SIGTERM is killed after this. */
const netNodeStopMs = 10_000;

/**
 * Runs `plexus start START_ARGS` (`src/cli/main.ts` under `root`) inside the site's namespace,
 * and resolves once it prints the URL it listens on.
 */
export async function startNetNode(
  lab: NetLab,
  root: string,
  name: string,
  site: string,
  startArgs: readonly string[],
  timeoutMs: number,
): Promise<NetNode> {
  const child = lab.spawn(
    site,
    process.execPath,
    ["--import", "tsx", `${root}/src/cli/main.ts`, "start", ...startArgs],
    root,
  );
  const node = { name, site, child, url: "", log: "" };
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    node.log = (node.log + chunk).slice(-netNodeLogChars);
  });
  node.url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${node.log}`)), timeoutMs);
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      out += chunk;
      const match = /^listening (\S+)$/m.exec(out);
      if (match?.[1] === undefined) return;
      clearTimeout(timer);
      resolve(match[1]);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before serving:\n${node.log}`));
    });
  });
  return node;
}

/** Stops each node by its own PID: SIGTERM, then SIGKILL after netNodeStopMs. */
export async function stopNetNodes(nodes: Iterable<NetNode>): Promise<void> {
  for (const node of nodes) {
    const { child } = node;
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, netNodeStopMs).unref())]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}

/** An agent (netns-agent.ts) in each of `sites`' namespaces. */
export function startAgents(lab: NetLab, root: string, sites: readonly string[]): Map<string, NetAgent> {
  const agents = new Map<string, NetAgent>();
  for (const site of sites) {
    const child = lab.spawn(
      site,
      process.execPath,
      ["--import", "tsx", `${root}/test/support/netns-agent.ts`],
      root,
    );
    agents.set(site, new NetAgent(child));
  }
  return agents;
}
