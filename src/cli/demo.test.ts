import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { dnsResolver } from "../client/client.ts";
import { demoNodes, demoSample } from "./demo.ts";
import { entryPath, eventually, http, stopTimeoutMs } from "./local-cluster.ts";

/**
 * `plexus demo --json` as a real child process: its node lines and ready line, the sample data
 * on every node, each node's own pid alive; then SIGINT, after which every pid is gone and the
 * temporary directory removed. The demo gets its own TMPDIR so that the test sees what it left.
 */
const root = new URL("../..", import.meta.url).pathname;
const main = join(root, "src/cli/main.ts");
const readyTimeoutMs = 25_000;

interface NodeLine {
  readonly node: string;
  readonly site: string;
  readonly url: string;
  readonly pid: number;
  readonly dns: string;
  readonly zone: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The pids of the processes whose command line names `text` (Linux: /proc/PID/cmdline). */
async function processesNaming(text: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      if ((await readFile(`/proc/${entry}/cmdline`, "utf8")).includes(text)) pids.push(Number(entry));
    } catch {
      // Gone since the listing.
    }
  }
  return pids;
}

/** Starts the demo (or npm running it) with its own TMPDIR, collecting its stderr. */
/** The demo directories (plexus-…) left in `temp`. */
/** A printed command line's words, as a POSIX shell splits them (only '…' quoting is used). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((match) => match[1] ?? match[2] ?? "");
}

function demoDirectoriesIn(temp: string): string[] {
  return readdirSync(temp).filter((name) => name.startsWith("plexus-"));
}

/** Sends `signal` (none: only waits) and the child's exit code, or "timeout" after `boundMs`. */
function exitCodeOf(
  child: ChildProcess,
  signal: NodeJS.Signals | null,
  boundMs: number,
): Promise<number | null | "timeout"> {
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  if (signal !== null) child.kill(signal);
  return Promise.race([
    exited,
    new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), boundMs).unref()),
  ]);
}

function spawnDemo(
  command: string,
  args: readonly string[],
  temp: string,
): { child: ChildProcess; stderr: () => string } {
  const child = spawn(command, args, {
    cwd: root,
    env: { ...process.env, TMPDIR: temp },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr += chunk;
  });
  return { child, stderr: () => stderr };
}

/** Resolves with the demo's stdout lines up to and including {"ready":true}; bounded. */
function readyLines(child: ChildProcess, stderr: () => string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`no ready line in ${readyTimeoutMs} ms; stdout:\n${out}\nstderr:\n${stderr()}`)),
      readyTimeoutMs,
    );
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      out += chunk;
      const lines = out.split("\n");
      const ready = lines.indexOf('{"ready":true}');
      if (ready >= 0) {
        clearTimeout(timer);
        resolve(lines.slice(0, ready + 1));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`demo exited with ${code} before ready:\n${stderr()}`));
    });
  });
}

describe("plexus demo", { timeout: 120_000 }, () => {
  it("rejects an unknown flag with exit code 2", () => {
    const result = spawnSync(process.execPath, ["--import", "tsx", main, "demo", "--bogus"], {
      cwd: root,
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(result.status, 2);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /plexus demo: Unknown option '--bogus'/);
    assert.match(result.stderr, /usage: plexus demo/);
  });

  it("a node that cannot start: exit 1 with its error, the nodes started stopped, the data removed", () => {
    // PLEXUS_NODE_ARGS reaches every node's node(1): an option it refuses makes hq1 fail at once.
    const temp = mkdtempSync(join(tmpdir(), "plexus-demo-fail-test-"));
    try {
      const result = spawnSync(process.execPath, ["--import", "tsx", main, "demo"], {
        cwd: root,
        encoding: "utf8",
        env: { ...process.env, TMPDIR: temp, PLEXUS_NODE_ARGS: "--no-such-node-option" },
        timeout: readyTimeoutMs,
      });
      assert.equal(result.status, 1, result.stderr);
      assert.match(
        result.stderr,
        /^plexus demo: node hq1 failed to start: hq1 exited with \d+ before serving/m,
      );
      assert.match(result.stderr, /^plexus demo: the demo could not start; stopping 1 node$/m);
      assert.deepEqual(demoDirectoriesIn(temp), []);
    } finally {
      rmSync(temp, { recursive: true, force: true });
    }
  });

  it("--json: every node serves the sample data; SIGINT stops every node and removes the data", async () => {
    const temp = mkdtempSync(join(tmpdir(), "plexus-demo-test-"));
    const { child, stderr } = spawnDemo(process.execPath, ["--import", "tsx", main, "demo", "--json"], temp);
    let pids: number[] = [];
    try {
      const lines = await readyLines(child, stderr);
      assert.equal(lines.length, demoNodes.length + 1, lines.join("\n"));
      const nodes = lines.slice(0, -1).map((line) => JSON.parse(line) as NodeLine);
      pids = nodes.map((node) => node.pid);
      assert.deepEqual(
        nodes.map(({ node, site }) => ({ node, site })),
        demoNodes.map(({ node, site }) => ({ node, site })),
      );
      for (const node of nodes) {
        assert.deepEqual(Object.keys(node).sort(), ["dns", "node", "pid", "site", "url", "zone"]);
        assert.match(node.url, /^http:\/\/127\.0\.0\.1:[0-9]+$/);
        assert.match(node.dns, /^127\.0\.0\.1:[0-9]+$/);
        assert.equal(node.zone, nodes[0]?.zone);
        assert.ok(
          Number.isInteger(node.pid) && node.pid !== child.pid && alive(node.pid),
          `${node.node} pid`,
        );
      }
      assert.equal(new Set(pids).size, pids.length);
      // tsx keeps its cache (tsx-N) in TMPDIR too.
      assert.equal(demoDirectoriesIn(temp).length, 1, readdirSync(temp).join(", "));

      const group = demoSample.find((sample) => sample.dn.startsWith("cn=engineers,"));
      const dave = demoSample.find((sample) => sample.dn.startsWith("uid=dave,"));
      assert.ok(group !== undefined && dave !== undefined);
      for (const node of nodes) {
        await eventually(
          `${node.node} holding the sample group and a user written in the branch`,
          async () =>
            (await http("GET", entryPath(node.url, group.dn))).status === 200 &&
            (await http("GET", entryPath(node.url, dave.dn))).status === 200,
          10_000,
        );
        const read = await http("GET", `${entryPath(node.url, group.dn)}?attributes=member`);
        assert.deepEqual((read.body as { attributes: { member: string[] } }).attributes.member.length, 3);
      }

      // Every node's DNS server answers the hq site's SRV records with a node of hq (what
      // `dig @127.0.0.1 -p PORT _plexus._tcp.hq._sites.ZONE SRV` shows).
      for (const node of nodes) {
        const resolver = dnsResolver([node.dns]);
        await eventually(
          `${node.node}'s DNS answering _plexus._tcp.hq._sites.${node.zone}`,
          async () => {
            const records = await resolver.srv(`_plexus._tcp.hq._sites.${node.zone}`);
            return records.some((record) => /^hq[12]\./.test(record.target));
          },
          10_000,
        );
      }

      const code = await exitCodeOf(child, "SIGINT", stopTimeoutMs + 5_000);
      assert.equal(code, 0, stderr());
      for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} still alive`);
      assert.deepEqual(demoDirectoriesIn(temp), []);
    } finally {
      // Only on failure is anything left: the demo and the node processes it reported.
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
      rmSync(temp, { recursive: true, force: true });
    }
  });

  it("the Plexus commands it prints to try work as printed", async () => {
    const temp = mkdtempSync(join(tmpdir(), "plexus-demo-try-test-"));
    const { child, stderr } = spawnDemo(process.execPath, ["--import", "tsx", main, "demo"], temp);
    try {
      const text = await new Promise<string>((resolve, reject) => {
        let out = "";
        const timer = setTimeout(() => reject(new Error(`no command list in time:\n${out}`)), readyTimeoutMs);
        child.stdout?.setEncoding("utf8");
        child.stdout?.on("data", (chunk: string) => {
          out += chunk;
          if (out.includes("Ctrl-C stops every node.")) {
            clearTimeout(timer);
            resolve(out);
          }
        });
        child.once("exit", (code) => reject(new Error(`demo exited with ${code}:\n${stderr()}`)));
      });
      const commands = text.split("\n").filter((line) => line.startsWith("  npx plexus "));
      // What each printed command shows when it works.
      const expected: [string, RegExp][] = [
        ["search", /^dn: uid=alice,ou=people,dc=example,dc=com$/m],
        ["repl status", /^Inbound partners \(1\)$/m],
        ["repl summary", /^Source node +largest delta/m],
        ["topology", /^Sites \(3\)$/m],
      ];
      assert.equal(commands.length, expected.length, text);
      for (const [command, shows] of expected) {
        const line = commands.find((candidate) => candidate.startsWith(`  npx plexus ${command} `));
        assert.ok(line !== undefined, `${command} is printed:\n${text}`);
        const args = shellWords(line.trim()).slice(2);
        const ran = spawnSync(process.execPath, ["--import", "tsx", main, ...args], {
          encoding: "utf8",
          timeout: 60_000,
        });
        assert.equal(ran.status, 0, `${line}\n${ran.stderr}`);
        assert.match(ran.stdout, shows, line);
      }
    } finally {
      await exitCodeOf(child, "SIGINT", stopTimeoutMs + 5_000);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      rmSync(temp, { recursive: true, force: true });
    }
  });

  it("SIGHUP (its terminal closed) stops every node and removes the data, as Ctrl-C does", async () => {
    // The nodes run in their own process groups, so a closed terminal's hang-up reaches only
    // the demo: were it to die of it, its six nodes would run on with nobody to stop them.
    const temp = mkdtempSync(join(tmpdir(), "plexus-demo-hup-test-"));
    const { child, stderr } = spawnDemo(process.execPath, ["--import", "tsx", main, "demo", "--json"], temp);
    let pids: number[] = [];
    try {
      const lines = await readyLines(child, stderr);
      pids = lines.slice(0, -1).map((line) => (JSON.parse(line) as NodeLine).pid);
      assert.equal(pids.length, demoNodes.length, lines.join("\n"));
      const code = await exitCodeOf(child, "SIGHUP", stopTimeoutMs + 5_000);
      assert.equal(code, 0, stderr());
      for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} still alive`);
      assert.deepEqual(demoDirectoriesIn(temp), []);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
      rmSync(temp, { recursive: true, force: true });
    }
  });

  it("a closed output (npm start | head -1) stops every node and removes the data, no crash", async () => {
    // Its reader gone, the demo's next write fails (EPIPE): uncaught, that error would end the
    // demo and leave every node it started running. Its nodes are found by their command lines,
    // which name the demo's directory (the pids are printed only after the write that fails).
    const temp = mkdtempSync(join(tmpdir(), "plexus-demo-pipe-test-"));
    const { child, stderr } = spawnDemo(process.execPath, ["--import", "tsx", main, "demo"], temp);
    let directory: string | undefined;
    try {
      directory = await new Promise<string>((resolve, reject) => {
        let out = "";
        child.stdout?.setEncoding("utf8");
        child.stdout?.on("data", (chunk: string) => {
          out += chunk;
          const found = /^plexus demo: starting \d+ nodes in (\S+)$/m.exec(out)?.[1];
          if (found !== undefined) resolve(found);
        });
        child.once("exit", (code) => reject(new Error(`demo exited with ${code}:\n${stderr()}`)));
      });
      child.stdout?.destroy();
      const code = await exitCodeOf(child, null, readyTimeoutMs + stopTimeoutMs);
      assert.notEqual(code, "timeout", stderr());
      assert.doesNotMatch(stderr(), /Unhandled 'error' event/);
      assert.deepEqual(await processesNaming(directory), [], "every node stopped");
      assert.deepEqual(demoDirectoriesIn(temp), []);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      if (directory !== undefined)
        for (const pid of await processesNaming(directory)) if (alive(pid)) process.kill(pid, "SIGKILL");
      rmSync(temp, { recursive: true, force: true });
    }
  });

  it("npm start: SIGTERM to npm itself stops the demo and every node it started", async () => {
    const temp = mkdtempSync(join(tmpdir(), "plexus-npm-start-test-"));
    // Under `npm test`, npm_execpath names the npm that runs us; elsewhere npm is on the PATH.
    const npm = process.env.npm_execpath;
    const [command, args] =
      npm === undefined
        ? ["npm", ["start", "--silent", "--", "--json"]]
        : [process.execPath, [npm, "start", "--silent", "--", "--json"]];
    const { child, stderr } = spawnDemo(command, args, temp);
    let pids: number[] = [];
    try {
      const lines = await readyLines(child, stderr);
      pids = lines.slice(0, -1).map((line) => (JSON.parse(line) as NodeLine).pid);
      assert.equal(pids.length, demoNodes.length, lines.join("\n"));
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      await exited;
      // npm is gone; the demo it ran must stop its nodes and remove its data by itself.
      await eventually(
        "every node the demo started exiting after npm got SIGTERM",
        async () => pids.every((pid) => !alive(pid)),
        stopTimeoutMs + 5_000,
      );
      await eventually(
        "the demo's data directory removed",
        async () => demoDirectoriesIn(temp).length === 0,
        5_000,
      );
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
      rmSync(temp, { recursive: true, force: true });
    }
  });
});
