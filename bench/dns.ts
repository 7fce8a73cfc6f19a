import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { existsSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { dnsAttributes, dnsClasses, zoneDn } from "../src/core/locator/zone.ts";
import { failoverPart } from "./failover.ts";
import { loadAverage, makeScratchDir, round } from "./support.ts";

/**
 * npm run bench:dns — DNS queries a second of a Plexus node (one `plexus start` process) under
 * dnsperf, and of BIND 9 serving the same records in the same run when the peers are set up
 * (/tmp/plexus-peers, ../shared/peers/setup.sh): the AD-style zone of the peers' dns-bind.sh
 * (20 SRV names with 2 targets each, 4 A records) written into the node's dns partition, and
 * the same records (the node's own registrations included) as BIND's zone file. Runs are
 * interleaved (Plexus, BIND, Plexus, BIND…) so that the machine's other load hits both alike.
 *
 * Knobs (environment): DURATION seconds per dnsperf run (10), ROUNDS (2), CLIENTS (dnsperf -c,
 * 4), THREADS (dnsperf -T, 1), NAMED_THREADS (named -n, 2, as dns-bind.sh), PEERS (directory
 * of the peers' setup, /tmp/plexus-peers). The last line is JSON with dnsQps and bindQps (the
 * best round of each) and their ratio; a failover part adds its own fields to that line.
 */
const execFileAsync = promisify(execFile);
const root = new URL("..", import.meta.url).pathname;

function knob(name: string, fallback: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max)
    throw new Error(`${name} must be an integer 1..${max}`);
  return value;
}

const durationS = knob("DURATION", 10, 600);
const rounds = knob("ROUNDS", 2, 10);
const clients = knob("CLIENTS", 4, 256);
const threads = knob("THREADS", 1, 16);
const namedThreads = knob("NAMED_THREADS", 2, 16);
const peers = process.env.PEERS ?? "/tmp/plexus-peers";
const zone = "example.com";
const startTimeoutMs = 30_000;

const srvNames = [
  "_ldap._tcp",
  "_ldap._tcp.dc._msdcs",
  "_ldap._tcp.pdc._msdcs",
  "_ldap._tcp.gc._msdcs",
  "_gc._tcp",
  "_kerberos._tcp",
  "_kerberos._udp",
  "_kpasswd._tcp",
  "_kpasswd._udp",
  "_kerberos._tcp.dc._msdcs",
  "_ldap._tcp.SiteA._sites.dc._msdcs",
  "_ldap._tcp.SiteB._sites.dc._msdcs",
  "_kerberos._tcp.SiteA._sites.dc._msdcs",
  "_kerberos._tcp.SiteB._sites.dc._msdcs",
  "_ldap._tcp.SiteA._sites",
  "_ldap._tcp.SiteB._sites",
  "_gc._tcp.SiteA._sites",
  "_kerberos._tcp.SiteA._sites",
  "_ldap._tcp.3f1c2a9e-0b7d-4c55-9a8e-2d1f6b0c7e42.domains._msdcs",
  "_http._tcp",
];

interface ZoneRecord {
  readonly name: string;
  readonly type: string;
  readonly data: string;
  readonly ttl: number;
}

/** The peers' zone, record by record (dns-bind.sh's ports and targets). */
function peerRecords(): ZoneRecord[] {
  const records: ZoneRecord[] = [1, 2, 3, 4].map((index) => ({
    name: `dc${index}`,
    type: "A",
    data: `127.0.0.${10 + index}`,
    ttl: 600,
  }));
  for (const name of srvNames) {
    const service = name.split(".")[0] ?? "";
    const port =
      service === "_gc"
        ? 3268
        : service.startsWith("_kerberos")
          ? 88
          : service === "_kpasswd"
            ? 464
            : service === "_http"
              ? 8080
              : 389;
    const targets = name.includes("SiteB") ? ["dc3", "dc4"] : ["dc1", "dc2"];
    for (const target of targets)
      records.push({ name, type: "SRV", data: `0 100 ${port} ${target}`, ttl: 600 });
  }
  return records;
}

function freePort(): Promise<number> {
  // A port free for TCP and UDP right now; named binds it a moment later (a small race, retried by the caller).
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      const udp = createSocket("udp4");
      udp.once("error", () => server.close(() => resolve(freePort())));
      udp.bind(port, "127.0.0.1", () => udp.close(() => server.close(() => resolve(port))));
    });
  });
}

async function waitFor(what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + startTimeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function digCount(port: number, name: string, type: string): Promise<number> {
  const { stdout } = await execFileAsync(
    "dig",
    ["+short", "+time=1", "+tries=1", "-p", String(port), "@127.0.0.1", name, type],
    {
      timeout: 5_000,
    },
  );
  return stdout.trim() === "" ? 0 : stdout.trim().split("\n").length;
}

interface Started {
  readonly process: ChildProcess;
  readonly url: string;
  readonly dnsPort: number;
}

/** One `plexus start` process with DNS on a free port, no per-source limit (dnsperf is one source). */
async function startNode(directory: string): Promise<Started> {
  const secretFile = join(directory, "secret");
  writeFileSync(secretFile, randomBytes(32).toString("base64"), { mode: 0o600 });
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(root, "src/cli/main.ts"),
      "start",
      ...["--data", join(directory, "node"), "--node", "b1", "--site", "SiteA", "--secret-file", secretFile],
      ...[
        "--dns",
        "127.0.0.1:0",
        "--dns-rate",
        "0",
        "--zone",
        zone,
        "--synchronous",
        "normal",
        "--log-level",
        "warn",
      ],
    ],
    { cwd: root, stdio: ["ignore", "pipe", "inherit"] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the node did not start in time")), startTimeoutMs);
    let text = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      const match = /listening (\S+)/.exec(text);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once("exit", (code) => reject(new Error(`the node exited (${code}) before it listened`)));
  });
  const status = (await (await fetch(`${url}/v1/status`)).json()) as { dns: { address: string } | null };
  const port = Number(status.dns?.address.split(":").at(-1));
  if (!Number.isInteger(port) || port <= 0)
    throw new Error("the node serves no DNS (GET /v1/status dns is null)");
  return { process: child, url, dnsPort: port };
}

async function addRecords(url: string, records: readonly ZoneRecord[]): Promise<void> {
  for (const [index, record] of records.entries()) {
    const response = await fetch(`${url}/v1/entries`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        dn: `cn=bench-${index},${zoneDn(zone)}`,
        attributes: {
          objectClass: ["top", dnsClasses.record],
          cn: [`bench-${index}`],
          [dnsAttributes.name]: [record.name],
          [dnsAttributes.type]: [record.type],
          [dnsAttributes.data]: [record.data],
          [dnsAttributes.ttl]: [String(record.ttl)],
        },
      }),
    });
    if (response.status !== 201)
      throw new Error(
        `adding ${record.name} ${record.type}: HTTP ${response.status} ${await response.text()}`,
      );
  }
}

/** Every record of the zone as the node holds it (its own registrations included). */
async function nodeRecords(url: string): Promise<ZoneRecord[]> {
  const response = await fetch(`${url}/v1/search`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      base: zoneDn(zone),
      scope: "one",
      filter: `(objectClass=${dnsClasses.record})`,
      sizeLimit: 10_000,
    }),
  });
  const body = (await response.json()) as { entries: { attributes: Record<string, string[]> }[] };
  const one = (attributes: Record<string, string[]>, type: string): string => {
    const key = Object.keys(attributes).find((name) => name.toLowerCase() === type.toLowerCase());
    return key === undefined ? "" : (attributes[key]?.[0] ?? "");
  };
  return body.entries.map(({ attributes }) => ({
    name: one(attributes, dnsAttributes.name),
    type: one(attributes, dnsAttributes.type),
    data: one(attributes, dnsAttributes.data),
    ttl: Number(one(attributes, dnsAttributes.ttl) || 300),
  }));
}

/** named on a free port with the same records; null when BIND is not installed. */
async function startBind(
  directory: string,
  records: readonly ZoneRecord[],
): Promise<{ process: ChildProcess; port: number } | null> {
  const named = ["/usr/sbin/named", "/usr/bin/named"].find((path) => existsSync(path));
  if (named === undefined) return null;
  const port = await freePort();
  const zoneFile = join(directory, `${zone}.zone`);
  const lines = [
    "$TTL 300",
    `@ IN SOA ${zone}. hostmaster.${zone}. ( 1 900 300 604800 60 )`,
    ...records.map((record) => `${record.name} ${record.ttl} IN ${record.type} ${record.data}`),
  ];
  writeFileSync(zoneFile, `${lines.join("\n")}\n`);
  writeFileSync(
    join(directory, "named.conf"),
    `options {
  directory "${directory}";
  pid-file "${directory}/named.pid";
  session-keyfile "${directory}/session.key";
  managed-keys-directory "${directory}";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  allow-transfer { none; };
  dnssec-validation no;
  querylog no;
  minimal-responses no;
  rate-limit { responses-per-second 0; };
};
controls { };
zone "${zone}" { type primary; file "${zoneFile}"; };
`,
  );
  const child = spawn(named, ["-g", "-n", String(namedThreads), "-c", join(directory, "named.conf")], {
    stdio: ["ignore", "ignore", "ignore"],
  });
  await waitFor("named", async () => (await digCount(port, zone, "SOA")) === 1);
  return { process: child, port };
}

interface PerfRun {
  readonly server: "plexus" | "bind";
  readonly qps: number;
  readonly lost: number;
  readonly sent: number;
  /** Share of answers with NOERROR, in percent: an error answer is cheap and would flatter the rate. */
  readonly noerrorPercent: number;
}

async function dnsperf(server: PerfRun["server"], port: number, queryFile: string): Promise<PerfRun> {
  const { stdout } = await execFileAsync(
    "dnsperf",
    [
      "-s",
      "127.0.0.1",
      "-p",
      String(port),
      "-d",
      queryFile,
      "-l",
      String(durationS),
      "-c",
      String(clients),
      "-T",
      String(threads),
      "-q",
      "100",
    ],
    { timeout: (durationS + 30) * 1000, maxBuffer: 16 * 1024 * 1024 },
  );
  const number = (pattern: RegExp): number => Number(pattern.exec(stdout)?.[1] ?? Number.NaN);
  return {
    server,
    qps: round(number(/Queries per second:\s+([0-9.]+)/), 0),
    lost: number(/Queries lost:\s+([0-9]+)/),
    sent: number(/Queries sent:\s+([0-9]+)/),
    noerrorPercent: number(/Response codes:\s+NOERROR [0-9]+ \(([0-9.]+)%\)/),
  };
}

function stop(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(force);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** The DNS part of the benchmark: fields for the JSON line. */
export async function measureDns(): Promise<Record<string, unknown>> {
  if (spawnSync("dnsperf", ["-h"]).error !== undefined || spawnSync("dig", ["-v"]).error !== undefined) {
    console.log("dnsperf or dig is not installed (Debian dnsperf, dnsutils): DNS part skipped");
    return { dnsQps: null, bindQps: null };
  }
  const scratch = makeScratchDir("plexus-bench-dns-");
  let node: Started | undefined;
  let bind: { process: ChildProcess; port: number } | null = null;
  try {
    const loadStart = loadAverage();
    node = await startNode(scratch.path);
    await addRecords(node.url, peerRecords());
    const started = node;
    await waitFor(
      "the node's answers",
      async () => (await digCount(started.dnsPort, `_ldap._tcp.SiteB._sites.${zone}`, "SRV")) === 2,
    );
    const queryFile = join(scratch.path, "queries.txt");
    writeFileSync(queryFile, `${srvNames.map((name) => `${name}.${zone} SRV`).join("\n")}\n`);
    const withBind = existsSync(peers);
    if (withBind) bind = await startBind(scratch.path, await nodeRecords(node.url));
    else console.log(`${peers} is not set up (../shared/peers/setup.sh): BIND is not measured`);
    console.log(
      `dnsperf ${durationS}s x ${rounds} rounds, -c ${clients} -T ${threads}; plexus on :${node.dnsPort}` +
        (bind === null ? "" : `, BIND (named -n ${namedThreads}) on :${bind.port}`),
    );
    const runs: PerfRun[] = [];
    for (let round = 0; round < rounds; round++) {
      runs.push(await dnsperf("plexus", node.dnsPort, queryFile));
      if (bind !== null) runs.push(await dnsperf("bind", bind.port, queryFile));
    }
    for (const run of runs)
      console.log(
        `  ${run.server.padEnd(6)} ${run.qps} queries/s (${run.lost} of ${run.sent} lost, ${run.noerrorPercent}% NOERROR)`,
      );
    const best = (server: PerfRun["server"]): number | null => {
      const qps = runs.filter((run) => run.server === server).map((run) => run.qps);
      return qps.length === 0 ? null : Math.max(...qps);
    };
    const dnsQps = best("plexus");
    const bindQps = best("bind");
    const loadEnd = loadAverage();
    const ratio = dnsQps !== null && bindQps !== null ? round(dnsQps / bindQps, 2) : null;
    console.log(
      `plexus ${dnsQps} q/s, BIND ${bindQps ?? "not measured"} q/s, ratio ${ratio ?? "-"} (target >= 0.8)`,
    );
    console.log(`load average ${loadStart.join(" ")} at start, ${loadEnd.join(" ")} at end (2 shared cores)`);
    return {
      dnsQps,
      bindQps,
      dnsRatio: ratio,
      dnsRuns: runs,
      dnsLoadAverage: { start: loadStart, end: loadEnd },
    };
  } finally {
    await stop(bind?.process);
    await stop(node?.process);
    scratch.remove();
  }
}

/** Parts of the benchmark, each adding fields to the last line; the failover part goes here. */
const parts: ReadonlyArray<() => Promise<Record<string, unknown>>> = [measureDns, failoverPart];

const fields: Record<string, unknown> = { bench: "dns" };
for (const part of parts) Object.assign(fields, await part());
console.log(JSON.stringify(fields));
