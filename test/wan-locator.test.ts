import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
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
 * The DNS locator across a WAN cut, with real processes and `dig` inside the namespaces. Site
 * hq holds hq1 and hq2, site branch holds br1, site depot has no node and is covered by branch
 * (its cheapest neighbour). A roaming client sits in branch's subnet but on hq's side of the
 * cut: its site's only server is gone for it. The link is cut in silence (support/netns.ts)
 * for longer than the scavenging age, then healed:
 *
 * - before: every node answers every node's SRV records, per site, generic and covered;
 * - early in the cut: a node pulling from a partner it cannot reach moves that partner's SRV
 *   records to a worse priority and keeps them; the roaming client reaches hq;
 * - once the scavenging age has passed: each side has deleted the other's records (their
 *   refreshes could not replicate) and covers the other side's sites itself; no answer is empty;
 * - after the heal: those deletes cross and meet the owners' records, yet no node's answers
 *   ever lack the node itself, and the answers of before come back.
 */
const root = new URL("..", import.meta.url).pathname;
const unavailable =
  netnsUnavailable() ??
  (spawnSync("dig", ["-v"]).error === undefined ? null : "needs dig (apt-get install dnsutils)");
const base = "dc=example,dc=com";
const zone = "plexus.test";
const addresses = {
  hq: ["10.253.1.1", "10.253.1.2"],
  branch: ["10.253.2.1"],
  // In branch's subnet, but on hq's side of the cut.
  roamer: ["10.253.2.60"],
} as const;
type Site = "hq" | "branch";
const generic = `_plexus._tcp.${zone}`;
const siteName = (site: string): string => `_plexus._tcp.${site}._sites.${zone}`;
/** TTL the nodes give their records (not the default, so that the answer shows it is theirs). */
const ttlSeconds = 30;
/** Short ages so that a cut outlives them within the test: a pass runs every second. */
const refreshSeconds = 3;
const scavengeSeconds = 12;
/** Pulls that fail fast, so that three failures (the unhealthy threshold) come within seconds. */
const timings = { pullTimeoutMs: 1_000, retryBackoffBaseMs: 200, retryBackoffMaxMs: 1_000 };
const priorityPenalty = 1_000;
const nodeStartTimeoutMs = 30_000;
const registeredTimeoutMs = 15_000;
const demotedTimeoutMs = 15_000;
/** The scavenging age, plus a refresh age and a pass of slack. */
const scavengedTimeoutMs = (scavengeSeconds + refreshSeconds + 5) * 1_000;
/** After the heal, the answers are watched this long (each round asks every node). */
const healWatchMs = 6_000;
const restoredTimeoutMs = 20_000;
const digTimeoutSeconds = 1;
const pollMs = 200;

interface Srv {
  readonly ttl: number;
  readonly priority: number;
  readonly port: number;
  /** The node: the first label of the target. */
  readonly node: string;
}

interface DigAnswer {
  readonly status: string;
  readonly srv: readonly Srv[];
}

interface RunningNode extends NetNode {
  readonly site: Site;
  /** Its DNS server, HOST:PORT (GET /v1/status). */
  dns: string;
}

describe("the DNS locator across a WAN cut", { skip: unavailable ?? false, timeout: 120_000 }, () => {
  let lab: NetLab;
  let directory: string;
  const nodes = new Map<string, RunningNode>();
  const agents = new Map<string, NetAgent>();
  const node = (name: string): RunningNode => nodes.get(name) as RunningNode;
  const agent = (site: string): NetAgent => agents.get(site) as NetAgent;

  /** `dig` inside `site`'s namespace against `at`'s DNS server: SRV records at `name`. */
  const dig = (site: string, at: RunningNode, name: string): DigAnswer => {
    const [host, port] = at.dns.split(":");
    const ran = spawnSync(
      "ip",
      ["netns", "exec", lab.site(site).namespace, "dig", `@${host}`, "-p", `${port}`, name, "SRV"].concat([
        "+noall",
        "+answer",
        "+comments",
        "+tries=1",
        `+time=${digTimeoutSeconds}`,
      ]),
      { encoding: "utf8" },
    );
    const status = /status: ([A-Z]+)/.exec(ran.stdout)?.[1] ?? "no answer";
    const srv = ran.stdout.split("\n").flatMap((line): Srv[] => {
      const fields = line.trim().split(/\s+/);
      if (fields[3] !== "SRV") return [];
      return [
        {
          ttl: Number(fields[1]),
          priority: Number(fields[4]),
          port: Number(fields[6]),
          node: (fields[7] ?? "").split(".")[0] ?? "",
        },
      ];
    });
    return { status, srv };
  };
  /** node → priority of its SRV records in `at`'s answer at `name`, asked from `at`'s site. */
  const priorities = (at: RunningNode, name: string): Record<string, number> => {
    const answer = dig(at.site, at, name);
    const sorted = [...answer.srv].sort((a, b) => (a.node < b.node ? -1 : 1));
    return Object.fromEntries(sorted.map((record) => [record.node, record.priority]));
  };
  /** Whether `at` answers exactly these nodes at these priorities at `name`. */
  const answers = (at: RunningNode, name: string, expected: Record<string, number>): boolean =>
    JSON.stringify(priorities(at, name)) === JSON.stringify(expected);

  const eventually = async (what: string, timeoutMs: number, check: () => Promise<boolean> | boolean) => {
    const started = performance.now();
    while (!(await check())) {
      if (performance.now() - started > timeoutMs)
        throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    return performance.now() - started;
  };

  const startNode = async (name: string, site: Site, host: string, joinUrl?: string): Promise<void> => {
    const args = [
      ...["--data", join(directory, name), "--node", name, "--site", site, "--host", host, "--port", "0"],
      ...["--secret-file", join(directory, "secret"), "--config", join(directory, "config.json")],
      ...["--dns-ttl", `${ttlSeconds}`, "--dns-refresh-seconds", `${refreshSeconds}`],
      ...["--dns-scavenge-seconds", `${scavengeSeconds}`, "--log-level", "warn"],
      ...(joinUrl === undefined ? ["--topology", join(directory, "topology.json")] : ["--join", joinUrl]),
    ];
    // The same object (its log goes on growing), with the DNS address added below.
    const running = Object.assign(await startNetNode(lab, root, name, site, args, nodeStartTimeoutMs), {
      site,
      dns: "",
    });
    nodes.set(name, running);
    const status = await agent(site).request("GET", `${running.url}/v1/status`);
    running.dns = (status.body as { dns: { address: string } }).dns.address;
  };

  /** The nodes that pull from `name`: only they judge its health (docs/locator.md). */
  const pullersOf = async (name: string): Promise<RunningNode[]> => {
    const found: RunningNode[] = [];
    for (const running of nodes.values()) {
      const status = await agent(running.site).request("GET", `${running.url}/v1/status`);
      const partners = (status.body as { partners: { node: string }[] }).partners;
      if (partners.some((partner) => partner.node === name)) found.push(running);
    }
    return found;
  };

  /** A client of its own (the agent keeps one per distinct options), asking br1's DNS, then hq1's. */
  const roamerCall = (label: string, dn: string): Promise<ClientCallAnswer> => {
    // `label` only makes the options distinct: the agent builds a new client for them.
    const options = { zone, dnsServers: [node("br1").dns, node("hq1").dns], label };
    return agent("roamer").clientCall(options, "get", dn);
  };

  /** The answers every node gives with the link up: each node at priority 0, depot covered by br1. */
  const registeredEverywhere = (): boolean =>
    [...nodes.values()].every(
      (at) =>
        answers(at, generic, { br1: 0, hq1: 0, hq2: 0 }) &&
        answers(at, siteName("hq"), { hq1: 0, hq2: 0 }) &&
        answers(at, siteName("branch"), { br1: 0 }) &&
        answers(at, siteName("depot"), { br1: 0 }),
    );

  before(async () => {
    directory = mkdtempSync(join(tmpdir(), "plexus-wan-locator-"));
    writeFileSync(join(directory, "secret"), "the WAN locator test's cluster secret\n", { mode: 0o600 });
    writeFileSync(join(directory, "config.json"), JSON.stringify({ timings }));
    writeFileSync(
      join(directory, "topology.json"),
      JSON.stringify({
        sites: [{ name: "hq" }, { name: "branch" }, { name: "depot" }],
        links: [
          { name: "wan", sites: ["hq", "branch"], cost: 10, intervalMinutes: 1, notify: true },
          { name: "depot-link", sites: ["branch", "depot"], cost: 5, intervalMinutes: 1, notify: true },
        ],
        subnets: [
          { cidr: "10.253.1.0/24", site: "hq" },
          { cidr: "10.253.2.0/24", site: "branch" },
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
    lab?.heal();
    await stopNetNodes(nodes.values());
    for (const each of agents.values()) each.stop();
    lab?.destroy();
    if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
  });

  it("answers every node's records, per site, generic and for the covered site, with the nodes' TTL", async () => {
    await eventually("every node answering every node's records", registeredTimeoutMs, registeredEverywhere);
    const answer = dig("branch", node("br1"), generic);
    assert.equal(answer.status, "NOERROR");
    assert.ok(
      answer.srv.every((record) => record.ttl === ttlSeconds),
      JSON.stringify(answer),
    );
    // The entry the roaming client reads later, on every node before the cut.
    const added = await agent("hq").request("POST", `${node("hq1").url}/v1/entries`, {
      dn: `cn=roamer-entry,${base}`,
      attributes: { objectClass: ["person"], cn: ["roamer-entry"], sn: ["r"] },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    const home = await roamerCall("before", `cn=roamer-entry,${base}`);
    assert.deepEqual(
      [home.status, home.url, home.tier],
      [200, node("br1").url, "site"],
      JSON.stringify(home),
    );
  });

  it("demotes the unreachable side's records, scavenges them once too old, and never answers empty", async () => {
    lab.cut("hq", "branch");
    lab.cut("roamer", "branch");
    // Pull now rather than at the link's next interval (a minute): the failures start at once.
    for (const running of nodes.values())
      void agent(running.site)
        .request("POST", `${running.url}/v1/replicate`, {}, {}, 5_000)
        .catch(() => undefined);
    const hqJudges = await pullersOf("br1");
    assert.ok(hqJudges.length > 0, "some hq node pulls from br1");
    const branchJudged = (await pullersOf("hq1")).some((each) => each.name === "br1") ? "hq1" : "hq2";
    await eventually("br1 demoted by the hq nodes pulling from it, hq by br1", demotedTimeoutMs, () => {
      const hqSide = hqJudges.every((at) => priorities(at, siteName("branch")).br1 === priorityPenalty);
      return hqSide && priorities(node("br1"), generic)[branchJudged] === priorityPenalty;
    });
    // Moved back, never removed: every node still answers all three everywhere.
    for (const at of nodes.values())
      assert.deepEqual(Object.keys(priorities(at, generic)).sort(), ["br1", "hq1", "hq2"], at.name);

    // The roaming client: br1's DNS does not answer, hq1's does; br1 fails, hq answers.
    const moved = await roamerCall("cut", `cn=roamer-entry,${base}`);
    assert.equal(moved.status, 200, JSON.stringify(moved));
    assert.ok([node("hq1").url, node("hq2").url].includes(moved.url), JSON.stringify(moved));
    assert.equal(moved.tier, "closest", JSON.stringify(moved));

    // Past the scavenging age each side has deleted the other's records (their refreshes could
    // not replicate) and covers the other side's sites itself.
    await eventually("each side covering the other's sites", scavengedTimeoutMs, () => {
      const hqSide = ["hq1", "hq2"].every((name) => {
        const at = node(name);
        return (
          answers(at, generic, { hq1: 0, hq2: 0 }) &&
          answers(at, siteName("branch"), { hq1: 0, hq2: 0 }) &&
          answers(at, siteName("depot"), { hq1: 0, hq2: 0 })
        );
      });
      const br1 = node("br1");
      return hqSide && answers(br1, generic, { br1: 0 }) && answers(br1, siteName("hq"), { br1: 0 });
    });
    // Now the roaming client finds hq under its own site's name, without trying br1.
    const covered = await roamerCall("covered", `cn=roamer-entry,${base}`);
    assert.deepEqual(
      [covered.status, covered.tier, covered.failed.length],
      [200, "site", 0],
      JSON.stringify(covered),
    );
  });

  it("after the heal never answers without the asked node itself, and the answers of before come back", async () => {
    lab.heal();
    // Each side's deletes now reach the other, where the owners' records live: each node must
    // still answer for itself under the generic name and its site's name, round after round.
    const gaps: string[] = [];
    const started = performance.now();
    for (let round = 0; performance.now() - started < healWatchMs && round < healWatchMs / 10; round++) {
      for (const at of nodes.values())
        for (const name of [generic, siteName(at.site)]) {
          const answer = dig(at.site, at, name);
          if (!answer.srv.some((record) => record.node === at.name))
            gaps.push(
              `+${((performance.now() - started) / 1000).toFixed(2)} s ${at.name} ${name}: ${answer.status} ${JSON.stringify(answer.srv)}`,
            );
        }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(gaps.slice(0, 10), []);
    const restoredMs = await eventually(
      "the answers of before the cut",
      restoredTimeoutMs,
      registeredEverywhere,
    );
    // A new roaming client is sent to br1 again.
    const home = await roamerCall("healed", `cn=roamer-entry,${base}`);
    assert.deepEqual(
      [home.status, home.url, home.tier],
      [200, node("br1").url, "site"],
      JSON.stringify(home),
    );
    process.stdout.write(
      `# WAN locator: the answers of before the cut were back ${((performance.now() - started) / 1000).toFixed(1)} s ` +
        `after the heal (${(restoredMs / 1000).toFixed(1)} s after the watch)\n`,
    );
  });
});
