import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { freePortRun, scriptWorkDir, stopScriptGroup } from "./peers/daemon.ts";

/**
 * The peer systems of `npm run bench` (OpenLDAP 2-provider, etcd 3 members), measured in the
 * same run by the scripts that ../shared/peers/setup.sh installs (PEERS_HOME, by default
 * /tmp/plexus-peers; see its README). Each script sets up its cluster on loopback, measures,
 * and tears down what it started; this module only picks free ports, runs it with small
 * counts under a time limit, and reads the figures from its output.
 */

export const peersHomeDefault = "/tmp/plexus-peers";
/** A peer script that runs longer than this is stopped, with the daemons it started (stopScriptGroup). */
const peerScriptTimeoutMs = 5 * 60_000;
/** How long a stopped script's trap gets to stop its daemons (etcd3.sh waits up to 15 s for a member). */
const scriptStopGraceMs = 20_000;
/** etcd's value size, passed to etcd3.sh and to the 1-member run alike (etcd3.sh's default). */
export const etcdValueBytes = 256;
/**
 * mdb's fsync per transaction, for openldap-mirror.sh (DBNOSYNC, its default 0) and the single
 * provider alike: durable adds on both, as Plexus' writes are (synchronous=FULL).
 */
export const ldapDbNoSync = false;

export interface PeerKnobs {
  /** Entries of OpenLDAP's serial bulk load (one ldapadd -f). */
  readonly ldapBulk: number;
  /** OpenLDAP concurrent adds (ldapts) and their concurrency. */
  readonly ldapAdds: number;
  readonly concurrency: number;
  /** etcd puts at `concurrency`. */
  readonly etcdPuts: number;
}

export interface LdapAddFigures {
  /** ldapts adds/s at the bench's concurrency, and their p99 latency. */
  readonly addsPerSec: number;
  readonly addsP99Ms: number;
}

export interface LdapFigures extends LdapAddFigures {
  /** Serial bulk adds per second (one connection, one ldapadd). */
  readonly bulkAddsPerSec: number;
  /** Seconds from ldapadd's return until the second provider counted every entry. */
  readonly bulkConvergeMs: number;
  readonly bulkEntries: number;
  /** Node 2's convergence after the ldapts adds. */
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

function runScript(home: string, script: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    // A process group of its own, so that the script and the daemons it started can be signalled together.
    const child = spawn("bash", [join(home, script)], {
      detached: true,
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
    // Past the time limit, and when the bench exits first (its signal handlers call process.exit).
    const stop = (): void => {
      if (child.pid !== undefined) stopScriptGroup(child.pid, scriptWorkDir(output), scriptStopGraceMs);
    };
    const timer = setTimeout(stop, peerScriptTimeoutMs);
    process.once("exit", stop);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      process.off("exit", stop);
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

/** ldap-bench.mjs's `add` line at the bench's concurrency: adds/s and p99. */
export function parseLdapAdds(output: string, knobs: PeerKnobs): LdapAddFigures {
  const addLine = output.split("\n").find((line) => line.startsWith(`add conc=${knobs.concurrency} `)) ?? "";
  return {
    addsPerSec: number(addLine, /ops\/s=(\d+)/, "adds/s"),
    addsP99Ms: number(addLine, /p99=([\d.]+)/, "adds p99"),
  };
}

export function parseLdap(output: string, knobs: PeerKnobs): LdapFigures {
  return {
    ...parseLdapAdds(output, knobs),
    bulkAddsPerSec: number(output, /ldapadd on node1: [\d.]+s\s+=> (\d+) adds\/s/, "bulk adds/s"),
    bulkConvergeMs:
      number(
        output,
        /all \d+ entries counted on node2: [\d.]+s after start, ([\d.]+)s after ldapadd/,
        "bulk convergence",
      ) * 1000,
    bulkEntries: knobs.ldapBulk,
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
      DBNOSYNC: ldapDbNoSync ? "1" : "0",
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
      VALUE_BYTES: String(etcdValueBytes),
      N_GET: "500",
    });
    return { ok: true, figures: parseEtcd(output, knobs), output };
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}
