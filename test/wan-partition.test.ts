import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type AgentAnswer,
  type ClientCallAnswer,
  type NetAgent,
  NetLab,
  type NetNode,
  netnsUnavailable,
  startAgents,
  startNetNode,
  stopNetNodes,
} from "./support/netns.ts";

/**
 * A real network between two sites, cut the way WANs break: frames dropped in silence at the
 * switch, no reset, no ICMP (support/netns.ts). Nodes hq1 and hq2 in site hq, br1 in site
 * branch, each in its site's network namespace with an address of its own. While the link is
 * down both sides keep taking writes and replicating inside their site, the concern `site`
 * is met at hq at once, `all` says what it reached; once the link is back every node holds
 * every acknowledged write, and the name both sides gave an entry meanwhile is one conflict,
 * resolved alike everywhere.
 */
const root = new URL("..", import.meta.url).pathname;
const unavailable = netnsUnavailable();
const base = "dc=example,dc=com";
const addresses = {
  hq: ["10.251.1.1", "10.251.1.2"],
  branch: ["10.251.2.1"],
  // A client in the branch's subnet, behind its own switch port.
  "branch-client": ["10.251.2.50"],
} as const;
const zone = "plexus.test";
/** The branch client is back on its own site's server within this once the server is. */
const returnTimeoutMs = 60_000;
const nodeStartTimeoutMs = 30_000;
/** Writes each side takes during the cut (bounded: the test's run time). */
const hqWrites = 60;
const branchWrites = 30;
/** Every node must hold every write within this after the link is back. */
const convergeTimeoutMs = 90_000;

function median(sorted: readonly number[]): string {
  return (sorted[Math.floor(sorted.length / 2)] ?? Number.NaN).toFixed(0);
}

type RunningNode = NetNode;

describe("a WAN cut between two sites", { skip: unavailable ?? false, timeout: 240_000 }, () => {
  let lab: NetLab;
  let directory: string;
  const nodes = new Map<string, RunningNode>();
  const agents = new Map<string, NetAgent>();

  const agent = (site: string): NetAgent => agents.get(site) as NetAgent;
  const node = (name: string): RunningNode => nodes.get(name) as RunningNode;

  const startNode = async (
    name: string,
    site: "hq" | "branch",
    host: string,
    joinUrl?: string,
  ): Promise<void> => {
    const args = [
      ...["--data", join(directory, name), "--node", name, "--site", site, "--host", host, "--port", "0"],
      ...["--secret-file", join(directory, "secret"), "--log-level", "warn"],
      ...(joinUrl === undefined ? ["--topology", join(directory, "topology.json")] : ["--join", joinUrl]),
    ];
    nodes.set(name, await startNetNode(lab, root, name, site, args, nodeStartTimeoutMs));
  };

  before(async () => {
    directory = mkdtempSync(join(tmpdir(), "plexus-wan-"));
    writeFileSync(join(directory, "secret"), "the WAN test's cluster secret\n", { mode: 0o600 });
    writeFileSync(
      join(directory, "topology.json"),
      JSON.stringify({
        sites: [{ name: "hq" }, { name: "branch" }],
        links: [{ name: "wan", sites: ["hq", "branch"], cost: 10, intervalMinutes: 1, notify: true }],
        subnets: [
          { cidr: "10.251.1.0/24", site: "hq" },
          { cidr: "10.251.2.0/24", site: "branch" },
        ],
      }),
    );
    lab = new NetLab(addresses, 16);
    for (const [site, agent] of startAgents(lab, root, Object.keys(addresses))) agents.set(site, agent);
    await startNode("hq1", "hq", addresses.hq[0]);
    await startNode("hq2", "hq", addresses.hq[1], node("hq1").url);
    await startNode("br1", "branch", addresses.branch[0], node("hq1").url);
  });

  after(async () => {
    await stopNetNodes(nodes.values());
    for (const each of agents.values()) each.stop();
    lab?.destroy();
    if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
  });

  /** Creates a person on `at` through the agent of its site. */
  const create = (at: RunningNode, cn: string, concern?: string): Promise<AgentAnswer> =>
    agent(at.site).request(
      "POST",
      `${at.url}/v1/entries`,
      { dn: `cn=${cn},${base}`, attributes: { objectClass: ["person"], cn: [cn], sn: [at.name] } },
      concern === undefined ? {} : { "plexus-write-concern": concern },
    );

  /** The cn of every person under the base that `at` holds whose cn starts with `prefix`. */
  const heldNames = async (at: RunningNode, prefix: string): Promise<Set<string>> => {
    const answer = await agent(at.site).request("POST", `${at.url}/v1/search`, {
      base,
      filter: `(cn=${prefix}*)`,
      attributes: ["cn"],
      sizeLimit: 1_000,
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const entries = (answer.body as { entries: { attributes: { cn?: string[] } }[] }).entries;
    return new Set(entries.flatMap((entry) => entry.attributes.cn ?? []));
  };

  const eventually = async (
    what: string,
    timeoutMs: number,
    check: () => Promise<boolean>,
  ): Promise<number> => {
    const started = performance.now();
    while (!(await check())) {
      if (performance.now() - started > timeoutMs)
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return performance.now() - started;
  };

  it("replicates across the link while it is up", async () => {
    const answer = await create(node("hq1"), "before-cut");
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    await eventually("br1 holding hq1's write", 30_000, async () =>
      (await heldNames(node("br1"), "before-cut")).has("before-cut"),
    );
  });

  it("keeps both sides writing while the link drops everything, and converges once it is back", async () => {
    const uncutMs: number[] = [];
    // The same writes with the link up, for the latency printed below (after as many to warm up).
    for (const round of ["warm", "uncut"] as const) {
      const answers = await Promise.all(
        Array.from({ length: hqWrites }, (_, index) =>
          create(node(index % 2 === 0 ? "hq1" : "hq2"), `${round}-${index}`, "site"),
        ),
      );
      for (const answer of answers) assert.equal(answer.status, 201, JSON.stringify(answer.body));
      if (round === "uncut") uncutMs.push(...answers.map((answer) => answer.ms).sort((a, b) => a - b));
    }
    lab.cut("hq", "branch");
    // hq: writes with concern `site`, met inside hq although br1 is unreachable.
    const hq = await Promise.all(
      Array.from({ length: hqWrites }, (_, index) =>
        create(node(index % 2 === 0 ? "hq1" : "hq2"), `hq-${index}`, "site"),
      ),
    );
    for (const answer of hq) assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const hqMs = hq.map((answer) => answer.ms).sort((a, b) => a - b);
    // branch: its one server takes writes too (concern local: it has no site partner).
    const branch = await Promise.all(
      Array.from({ length: branchWrites }, (_, index) => create(node("br1"), `br-${index}`)),
    );
    for (const answer of branch) assert.equal(answer.status, 201, JSON.stringify(answer.body));
    // The same name given on both sides: two entries, one conflict once they meet.
    assert.equal((await create(node("hq1"), "both")).status, 201);
    assert.equal((await create(node("br1"), "both")).status, 201);
    // `all` cannot be met across the cut: the answer says exactly what was reached.
    const all = await create(node("hq1"), "all-during-cut", "all; timeout=1000");
    assert.equal(all.status, 504, JSON.stringify(all.body));
    const reached = (all.body as { writeConcern: { met: boolean; nodes: string[]; sites: string[] } })
      .writeConcern;
    assert.equal(reached.met, false);
    assert.deepEqual([...reached.nodes].sort(), ["hq1", "hq2"]);
    assert.deepEqual(reached.sites, ["hq"]);
    // Nothing crossed the cut.
    assert.equal((await heldNames(node("br1"), "hq-")).size, 0);
    assert.equal((await heldNames(node("hq2"), "br-")).size, 0);

    lab.heal();
    const expected = new Set([
      ...Array.from({ length: hqWrites }, (_, index) => `hq-${index}`),
      ...Array.from({ length: branchWrites }, (_, index) => `br-${index}`),
    ]);
    const convergedMs = await eventually("every node holding every write", convergeTimeoutMs, async () => {
      for (const running of nodes.values()) {
        const held = await heldNames(running, "");
        for (const cn of expected) if (!held.has(cn)) return false;
        if (!held.has("all-during-cut")) return false;
      }
      return true;
    });
    // One conflict, the same everywhere: the same loser, under the same name.
    const conflicts = await Promise.all(
      [...nodes.values()].map(async (running) => {
        const answer = await agent(running.site).request("GET", `${running.url}/v1/conflicts`);
        return (answer.body as { conflicts: { guid: string; dn: string }[] }).conflicts.map(
          (item) => `${item.guid} ${item.dn}`,
        );
      }),
    );
    assert.equal(conflicts[0]?.length, 1, JSON.stringify(conflicts));
    for (const each of conflicts) assert.deepEqual(each, conflicts[0]);
    process.stdout.write(
      `# WAN cut: ${hqWrites} concurrent site-concern writes at hq: p50 ${median(hqMs)} ms, max ${hqMs.at(-1)?.toFixed(0)} ms ` +
        `(link up: p50 ${median(uncutMs)} ms, max ${uncutMs.at(-1)?.toFixed(0)} ms); ` +
        `converged ${(convergedMs / 1000).toFixed(1)} s after the link came back\n`,
    );
  });
  it("moves a branch client to hq when its own server goes silent, and back once it answers", async () => {
    const dnsOf = async (at: RunningNode): Promise<string> => {
      const status = await agent(at.site).request("GET", `${at.url}/v1/status`);
      return (status.body as { dns: { address: string } }).dns.address;
    };
    const options = { zone, dnsServers: [await dnsOf(node("br1")), await dnsOf(node("hq1"))] };
    const client = agent("branch-client");
    const person = (cn: string): Record<string, string[]> => ({
      objectClass: ["person"],
      cn: [cn],
      sn: ["c"],
    });
    const add = (cn: string) => client.clientCall(options, "add", `cn=${cn},${base}`, person(cn));
    const home = await add("client-home");
    assert.deepEqual(
      [home.status, home.url, home.tier],
      [201, node("br1").url, "site"],
      JSON.stringify(home),
    );
    await eventually("hq holding the client's write", 30_000, async () =>
      (await heldNames(node("hq1"), "client-home")).has("client-home"),
    );

    // br1 drops off the network: nothing it sends or is sent arrives, and nothing says so.
    lab.cut("branch", "hq");
    lab.cut("branch", "branch-client");
    const hqUrls = [node("hq1").url, node("hq2").url];
    // A read first: the client's kept connection to br1 takes the request and nothing comes
    // back, so the read is asked of the next server after hedgeReadsAfterMs (500 ms) and br1
    // is set aside. (A write there would not move on: br1 may have got it —
    // OutcomeUnknownError — and the client never writes it twice.)
    const moved = await client.clientCall(options, "get", `cn=client-home,${base}`);
    assert.equal(moved.status, 200);
    assert.ok(hqUrls.includes(moved.url), JSON.stringify(moved));
    assert.equal(moved.tier, "closest", "the next-closest site, not any server");
    assert.deepEqual(
      moved.failed.map((attempt) => attempt.url),
      [node("br1").url],
      "br1 tried first",
    );
    // Writes now go to hq at once: br1 is in back-off.
    const after: number[] = [];
    for (let index = 0; index < 10; index++) {
      const answer = await add(`client-after-${index}`);
      assert.equal(answer.failed.length, 0, JSON.stringify(answer));
      assert.ok(hqUrls.includes(answer.url), JSON.stringify(answer));
      after.push(answer.ms);
    }
    lab.heal();
    let back: ClientCallAnswer | undefined;
    const backMs = await eventually("the client back on br1", returnTimeoutMs, async () => {
      back = await add(`client-back-${Math.round(performance.now())}`);
      return back.url === node("br1").url;
    });
    assert.equal(back?.tier, "site");
    process.stdout.write(
      `# branch server silent: the first read moved to hq in ${moved.ms.toFixed(0)} ms ` +
        `(${moved.failed[0]?.failure}), the next 10 writes took at most ${Math.max(...after).toFixed(0)} ms; ` +
        `back on br1 ${(backMs / 1000).toFixed(1)} s after it answered again\n`,
    );
  });
});
