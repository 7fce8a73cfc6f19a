import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

/**
 * The peer systems of `npm run bench` (OpenLDAP 2-provider, etcd 3 members), measured in the
 * same run by the scripts that ../shared/peers/setup.sh installs (PEERS_HOME, by default
 * /tmp/plexus-peers; see its README). Each script sets up its cluster on loopback, measures,
 * and tears down what it started; this module only picks free ports, runs it with small
 * counts under a time limit, and reads the figures from its output.
 */

export const peersHomeDefault = "/tmp/plexus-peers";
/** A peer script that runs longer than this is killed (its own trap removes its processes). */
const peerScriptTimeoutMs = 5 * 60_000;
const portsTriesMax = 50;

export interface PeerKnobs {
  /** Entries of OpenLDAP's serial bulk load (one ldapadd -f). */
  readonly ldapBulk: number;
  /** OpenLDAP concurrent adds (ldapts) and their concurrency. */
  readonly ldapAdds: number;
  readonly concurrency: number;
  /** etcd puts at `concurrency`. */
  readonly etcdPuts: number;
}

export interface LdapFigures {
  /** Serial bulk adds per second (one connection, one ldapadd). */
  readonly bulkAddsPerSec: number;
  /** Seconds from ldapadd's return until the second provider counted every entry. */
  readonly bulkConvergeMs: number;
  readonly bulkEntries: number;
  /** ldapts adds/s at the given concurrency, and node 2's convergence after them. */
  readonly addsPerSec: number;
  readonly addsP99Ms: number;
  readonly addsConvergeMs: number;
}

export interface EtcdFigures {
  /** Puts/s at the given concurrency with the Go client when built, else the Node client. */
  readonly putsPerSec: number;
  readonly putsP99Ms: number;
  readonly client: "go" | "node";
}

export type PeerRun<T> = { ok: true; figures: T; output: string } | { ok: false; reason: string };

/** Why the peers cannot run here, or null when they can. */
export function peersMissing(home: string): string | null {
  if (!existsSync(join(home, "openldap-mirror.sh")) || !existsSync(join(home, "etcd3.sh")))
    return `${home} has no peer scripts (run ../shared/peers/setup.sh; see its README)`;
  for (const binary of ["/usr/sbin/slapd", "/usr/bin/etcd"])
    if (!existsSync(binary)) return `${binary} is not installed (../shared/peers/setup.sh installs it)`;
  return null;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A base port whose `count` successors (base+1..base+count) are free on loopback now. */
async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < portsTriesMax; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const ports = Array.from({ length: count }, (_, index) => base + 1 + index);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error(`no run of ${count} free loopback ports found`);
}

function runScript(home: string, script: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [join(home, script)], {
      cwd: home,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    // SIGTERM lets the script's trap stop the daemons it started and remove its directory.
    const timer = setTimeout(() => child.kill("SIGTERM"), peerScriptTimeoutMs);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else
        reject(
          new Error(`${script} ended with ${code ?? signal}:\n${output.split("\n").slice(-15).join("\n")}`),
        );
    });
  });
}

function number(output: string, pattern: RegExp, what: string): number {
  const match = pattern.exec(output);
  if (match?.[1] === undefined) throw new Error(`no ${what} in the output`);
  return Number(match[1]);
}

export function parseLdap(output: string, knobs: PeerKnobs): LdapFigures {
  const addLine = output.split("\n").find((line) => line.startsWith(`add conc=${knobs.concurrency} `)) ?? "";
  return {
    bulkAddsPerSec: number(output, /ldapadd on node1: [\d.]+s\s+=> (\d+) adds\/s/, "bulk adds/s"),
    bulkConvergeMs:
      number(
        output,
        /all \d+ entries counted on node2: [\d.]+s after start, ([\d.]+)s after ldapadd/,
        "bulk convergence",
      ) * 1000,
    bulkEntries: knobs.ldapBulk,
    addsPerSec: number(addLine, /ops\/s=(\d+)/, "adds/s"),
    addsP99Ms: number(addLine, /p99=([\d.]+)/, "adds p99"),
    addsConvergeMs:
      number(output, /node2 has \d+\/\d+ entries ([\d.]+)s after the adds finished/, "adds convergence") *
      1000,
  };
}

export function parseEtcd(output: string, knobs: PeerKnobs): EtcdFigures {
  const lines = output.split("\n");
  const go = lines.find((line) => line.startsWith(`go-put clients=${knobs.concurrency} `));
  const node = lines.find((line) => line.startsWith(`put conc=${knobs.concurrency} procs=1 `));
  const line = go ?? node ?? "";
  return {
    putsPerSec: number(line, /ops\/s=(\d+)/, "puts/s"),
    putsP99Ms: number(line, /p99=([\d.]+)/, "puts p99"),
    client: go === undefined ? "node" : "go",
  };
}

export async function runLdap(home: string, knobs: PeerKnobs): Promise<PeerRun<LdapFigures>> {
  try {
    const base = await freePortRun(2);
    const output = await runScript(home, "openldap-mirror.sh", {
      PORT1: String(base + 1),
      PORT2: String(base + 2),
      N_BULK: String(knobs.ldapBulk),
      // The search part is not compared here: the smallest run that the script accepts.
      N_SEARCH: "200",
      CONCS: "1",
      N_ADD: String(knobs.ldapAdds),
      ADD_CONC: String(knobs.concurrency),
    });
    return { ok: true, figures: parseLdap(output, knobs), output };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}

export async function runEtcd(home: string, knobs: PeerKnobs): Promise<PeerRun<EtcdFigures>> {
  try {
    const clientBase = await freePortRun(3);
    const peerBase = await freePortRun(3);
    const output = await runScript(home, "etcd3.sh", {
      CPORT_BASE: String(clientBase),
      PPORT_BASE: String(peerBase),
      N_PUT: String(knobs.etcdPuts),
      PUT_CONC: String(knobs.concurrency),
      N_GET: "500",
    });
    return { ok: true, figures: parseEtcd(output, knobs), output };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}
