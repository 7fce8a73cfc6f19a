import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { LocalCluster } from "../../test/support/cluster.ts";
import { type CliRun, plexus as runPlexus, startPlexus } from "../../test/support/plexus-cli.ts";
import { fetchBlockedPorts, freePortOf } from "../../test/support/ports.ts";
import { formatReached } from "./entry-text.ts";

/**
 * The people's commands as people run them: `bin/plexus.mjs` as a child process against two
 * real nodes (e1, e2, one site) on loopback. Independent commands run side by side to keep
 * the file fast; every one has a bounded time.
 */
const topology = {
  sites: [{ name: "east" }],
  settings: { intraSitePullIntervalMs: 2_000, notifyDelayMs: 5 },
};
const timings = { pullTimeoutMs: 2_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };
const base = "dc=example,dc=com";

type Run = CliRun;

/** `plexus ARGS` with PLEXUS_URL and PLEXUS_SESSION only as given. */
function plexus(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const { PLEXUS_URL: _url, PLEXUS_SESSION: _session, ...inherited } = process.env;
  return runPlexus(args, { env: { ...inherited, ...env } });
}

function ok(run: Run): Run {
  assert.equal(run.code, 0, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  return run;
}

/**
 * A loopback address and port nothing listens on: taken from the system, then released, on
 * 127.0.0.2, where the other tests' nodes (on 127.0.0.1) cannot take it meanwhile.
 */
const closedHost = "127.0.0.2";
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, closedHost, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

describe("plexus entry and replication commands", { timeout: 240_000 }, () => {
  const cluster = new LocalCluster(topology, timings);
  let e1 = "";
  let e2 = "";

  before(async () => {
    e1 = (await cluster.start("e1", "east")).url;
    e2 = (await cluster.start("e2", "east", { join: [e1] })).url;
  });

  after(async () => {
    await cluster.stopAll();
  });

  it("add, get, modify, search, move and delete round trip, text and --json", async () => {
    const dn = `cn=carol,${base}`;
    const added = ok(
      await plexus(["add", dn, "objectClass=person", "cn=carol", "sn=Jones", "description= leading space"], {
        PLEXUS_URL: e1,
      }),
    );
    assert.match(added.stdout, /^added cn=carol,dc=example,dc=com \(usn \d+, 1 entry\)\n$/);
    const session = /^plexus-session: (\S+)$/m.exec(added.stderr)?.[1];
    assert.ok(session !== undefined, added.stderr);

    // The token carried to the other node: it answers only once it has the write (read
    // your writes); the modify runs meanwhile, so only what it leaves alone is checked.
    const [read, modified] = await Promise.all([
      plexus(["get", dn, "--url", e2, "--session", session, "--attributes", "cn"]),
      plexus([
        "modify",
        dn,
        "--url",
        e1,
        "--add",
        "mail=carol@example.com",
        "--replace",
        "sn=Smith",
        "--delete",
        "description",
        "--write-concern",
        "site",
        "--timeout",
        "5000",
      ]),
    ]);
    assert.equal(ok(read).stdout, "dn: cn=carol,dc=example,dc=com\ncn: carol\n");
    assert.match(ok(modified).stdout, /^write concern site: met on e1, e2 \(sites east\)$/m);

    // The write concern was met on e2, so e2 has it without a session.
    const [searched, onlyCn] = await Promise.all([
      plexus(["search", base, "--url", e2, "--filter", "(mail=carol@*)", "--json"]),
      plexus(["search", base, "--url", e2, "--filter", "(cn=carol)", "--attributes", "cn", "--scope", "one"]),
    ]);
    const found = JSON.parse(ok(searched).stdout) as {
      entries: { dn: string; attributes: Record<string, string[]> }[];
      truncated: boolean;
      session: string;
    };
    assert.equal(found.entries.length, 1);
    assert.deepEqual(found.entries[0]?.attributes.sn, ["Smith"]);
    assert.equal(found.entries[0]?.attributes.description, undefined);
    assert.equal(found.truncated, false);
    assert.equal(typeof found.session, "string");
    assert.equal(ok(onlyCn).stdout, "dn: cn=carol,dc=example,dc=com\ncn: carol\n\n# 1 entry\n");

    const moved = JSON.parse(
      ok(await plexus(["move", dn, "--url", e1, "--new-rdn", "cn=caroline", "--json"])).stdout,
    ) as { dn: string; session: string };
    assert.equal(moved.dn, `cn=caroline,${base}`);
    const deleted = ok(
      await plexus(["delete", moved.dn, "--url", e1, "--subtree", "--write-concern", "all"], {
        PLEXUS_SESSION: moved.session,
      }),
    );
    assert.match(deleted.stdout, /^deleted cn=caroline,dc=example,dc=com/);
    const gone = await plexus(["get", moved.dn, "--url", e1]);
    assert.equal(gone.code, 1);
    assert.equal(gone.stderr, "plexus: no-such-entry: no entry cn=caroline,dc=example,dc=com\n");
  });

  it("bad input gets one clear line and a non-zero exit", async () => {
    const port = await closedPort();
    const [badDn, badFilter, unknownFlag, unreachable, noUrl, badPair, badSession, help, badConcern] =
      await Promise.all([
        plexus(["get", "not a dn", "--url", e1]),
        plexus(["search", base, "--url", e1, "--filter", "(cn=a"]),
        plexus(["search", base, "--url", e1, "--bogus"]),
        plexus(["get", `cn=x,${base}`, "--url", `http://${closedHost}:${port}`]),
        plexus(["get", `cn=x,${base}`]),
        plexus(["add", `cn=x,${base}`, "cn", "--url", e1]),
        plexus(["get", base, "--url", e1], { PLEXUS_SESSION: "not-a-token" }),
        plexus(["modify", "--help"]),
        // Checked before anything is sent: the port nothing listens on is never asked.
        plexus([
          "add",
          `cn=x,${base}`,
          "objectClass=person",
          "--url",
          `http://${closedHost}:${port}`,
          "--write-concern",
          "bogus",
        ]),
      ]);
    assert.equal(badDn.code, 1);
    assert.match(badDn.stderr, /^plexus: invalid-dn: /);
    assert.equal(badFilter.code, 1);
    assert.match(badFilter.stderr, /^plexus: invalid-filter: /);
    assert.equal(unknownFlag.code, 2);
    assert.match(unknownFlag.stderr, /^plexus search: Unknown option '--bogus'/);
    assert.match(unknownFlag.stderr, /usage: plexus search BASE/);
    assert.equal(unreachable.code, 3, unreachable.stderr);
    assert.equal(
      unreachable.stderr,
      `plexus: unreachable: cannot reach http://${closedHost}:${port}: connection refused (is a node running there?)\n`,
    );
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.stderr, /no node URL: give --url URL or set PLEXUS_URL/);
    assert.equal(badPair.code, 2);
    assert.match(badPair.stderr, /'cn' is not type=value/);
    // The token from the environment reached the node, which refused it.
    assert.equal(badSession.code, 1);
    assert.match(badSession.stderr, /^plexus: invalid-request: plexus-session is not a session token/);
    assert.equal(badConcern.code, 2, badConcern.stderr);
    assert.match(
      badConcern.stderr,
      /^plexus add: unknown write concern 'bogus' \(local, site, sites=N or all\)\n/,
    );
    for (const run of [badDn, badFilter, unknownFlag, unreachable, noUrl, badPair, badSession, badConcern])
      assert.equal(run.stdout, "");
    assert.match(ok(help).stdout, /^usage: plexus modify DN \[--add type=value\]/);
  });

  it("the node refuses an empty value and an operational attribute, naming the attribute", async () => {
    const dn = `cn=erin,${base}`;
    const [empty, operational, replaced] = await Promise.all([
      plexus(["add", dn, "objectClass=person", "sn=", "--url", e1]),
      plexus(["add", dn, "objectClass=person", "entryGUID=abc", "--url", e1]),
      plexus(["modify", base, "--replace", "usnChanged=1", "--url", e1]),
    ]);
    assert.equal(empty.code, 1);
    assert.equal(empty.stderr, "plexus: invalid-value: sn cannot have an empty value\n");
    assert.equal(operational.code, 1);
    assert.match(operational.stderr, /^plexus: invalid-attribute: entryGUID is an operational attribute/);
    assert.equal(replaced.code, 1);
    assert.match(replaced.stderr, /^plexus: invalid-attribute: usnChanged is an operational attribute/);
  });

  it("a write the node got but did not answer is 'outcome unknown' (exit 4), not 'cannot reach'", async () => {
    const dn = `cn=frozen,${base}`;
    const port = await closedPort();
    const node = cluster.node("e2").process;
    assert.ok(node?.pid !== undefined);
    // A node that takes the request and then gives no answer (stopped, overloaded, its
    // network gone): the write is applied once it runs again.
    node.kill("SIGSTOP");
    let write: Run;
    let read: Run;
    try {
      [write, read] = await Promise.all([
        plexus(["add", dn, "objectClass=person", "cn=frozen", "sn=F", "--url", e2]),
        plexus(["get", base, "--url", e2]),
      ]);
    } finally {
      node.kill("SIGCONT");
    }
    assert.equal(write.code, 4, write.stderr);
    assert.equal(
      write.stderr,
      `plexus: outcome unknown: POST /v1/entries may have been applied on ${e2}: no answer in time; read to know whether it was applied\n`,
    );
    // It was: "cannot reach" would have had the operator send it again.
    assert.match(ok(await plexus(["get", dn, "--url", e2])).stdout, /^dn: cn=frozen,dc=example,dc=com$/m);
    // A read, and a write refused before it was sent, stay "cannot reach" (exit 3).
    assert.equal(read.code, 3, read.stderr);
    assert.equal(read.stderr, `plexus: unreachable: cannot reach ${e2}: no answer in time\n`);
    const refused = await plexus(["delete", dn, "--url", `http://${closedHost}:${port}`]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(
      refused.stderr,
      /^plexus: unreachable: cannot reach http:\/\/127\.0\.0\.2:\d+: connection refused/,
    );
  });

  it("a reader that has gone (plexus search | head) ends the command with one line, no stack trace", async () => {
    const closedOutput = (args: string[]): Promise<Run> => {
      const { PLEXUS_URL: _url, PLEXUS_SESSION: _session, ...env } = process.env;
      const { child, done } = startPlexus(args, { env });
      child.stdout?.destroy();
      return done;
    };
    const commands: [string, string[]][] = [
      ["search", ["search", base, "--url", e1]],
      ["search", ["search", base, "--url", e1, "--json"]],
      ["get", ["get", base, "--url", e1]],
      ["repl", ["repl", "status", "--url", e1]],
      ["conflicts", ["conflicts", "--url", e1]],
      ["get", ["get", "--help"]],
    ];
    const runs = await Promise.all(commands.map(([, args]) => closedOutput(args)));
    for (const [index, run] of runs.entries()) {
      const [name, args] = commands[index] as [string, string[]];
      assert.equal(run.code, 1, `${args.join(" ")}: ${run.stderr}`);
      assert.equal(run.stderr, `plexus ${name}: cannot write to stdout: write EPIPE\n`, args.join(" "));
    }
  });

  it("repl status, sync, conflicts and topology --url describe the live cluster", async () => {
    const [status, statusJson, sync, conflicts, topologyText, help, summary] = await Promise.all([
      plexus(["repl", "status", "--url", e1]),
      plexus(["repl", "status", "e2", "--url", e1, "--json"]),
      plexus(["repl", "sync", "--url", e1]),
      plexus(["conflicts", "--url", e1, "--json"]),
      plexus(["topology", "--url", e2]),
      plexus(["repl", "--help"]),
      plexus(["repl", "summary", "--url", e1]),
    ]);
    assert.match(ok(status).stdout, /^e1 {2}site east {2}http:\/\/127\.0\.0\.1:\d+\n/);
    assert.match(status.stdout, /^ {2}e2 {2}intra {2}site east/m);
    assert.match(status.stdout, /^ {4}consecutive failures: {2}0$/m);
    assert.match(status.stdout, /^ {2}e1 \(this node\) +[0-9a-f]{8} +\d+ +\d+ +0 +(?:\S+ ago|\?) +0s$/m);
    const parsed = JSON.parse(ok(statusJson).stdout) as {
      node: string;
      partners: { node: string }[];
      origins: { node: string; behind: number }[];
    };
    assert.equal(parsed.node, "e2");
    assert.deepEqual(
      parsed.partners.map((partner) => partner.node),
      ["e1"],
    );
    assert.deepEqual(parsed.origins.map((origin) => origin.node).sort(), ["e1", "e2"]);
    assert.equal(ok(sync).stdout, sync.stdout.match(/^e2: pulled, done at \S+\n$/)?.[0]);
    assert.deepEqual(JSON.parse(ok(conflicts).stdout), { conflicts: [], more: false });
    assert.match(ok(topologyText).stdout, /^Sites \(1\)\n {2}east {2}peer {2}servers: e1, e2$/m);
    assert.match(ok(help).stdout, /plexus repl summary/);
    assert.match(ok(summary).stdout, /^e1 +\S+ +0 \/ 1 +0 +0/m);
    assert.match(summary.stdout, /^e2 +\S+ +0 \/ 1 +0 +0/m);
    assert.doesNotMatch(summary.stdout, /Unreachable/);
  });

  it("repl summary and sync report a stopped node: unreachable, failing as a source", async () => {
    await cluster.stop("e2");
    const sync = await plexus(["repl", "sync", "--url", e1, "--from", "e2", "--timeout", "5000"]);
    assert.equal(sync.code, 1, sync.stdout + sync.stderr);
    assert.match(sync.stdout, /^e2: (FAILED at \S+: .+|not asked: backing off after \d+ failures .*)$/m);
    const [summary, text, status, unmet] = await Promise.all([
      plexus(["repl", "summary", "--url", e1, "--json"]),
      plexus(["repl", "summary", "--url", e1]),
      plexus(["repl", "status", "--url", e1]),
      plexus([
        "add",
        `cn=dave,${base}`,
        "objectClass=person",
        "cn=dave",
        "sn=D",
        "--url",
        e1,
        "--write-concern",
        "site",
        "--timeout",
        "300",
      ]),
    ]);
    // Applied on e1 but not on another node of its site: says so, and hands on the token.
    assert.equal(unmet.code, 1);
    assert.match(unmet.stderr, /^plexus: write-concern-not-met: the write is applied on this node/);
    assert.match(
      unmet.stderr,
      /^write concern site: NOT met: reached only e1 \(sites east\); missing another node of e1's site$/m,
    );
    assert.match(unmet.stderr, /^plexus-session: \S+$/m);
    assert.match(ok(status).stdout, /^ {4}last failure: {10}\S+ \(\S+ ago\): .+$/m);
    assert.match(status.stdout, /^ {4}consecutive failures: {2}[1-9]\d*$/m);
    assert.match(
      status.stdout,
      /^ {4}status not readable: {3}cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused/m,
    );
    const parsed = JSON.parse(ok(summary).stdout) as {
      destinations: { node: string; fails: number; total: number; error: string | null }[];
      sources: { node: string; fails: number; total: number }[];
      unreachable: Record<string, string>;
    };
    assert.match(parsed.unreachable.e2 ?? "", /connection refused/);
    assert.deepEqual(
      parsed.destinations.map(({ node, fails, total }) => ({ node, fails, total })),
      [{ node: "e1", fails: 1, total: 1 }],
    );
    assert.deepEqual(
      parsed.sources.map(({ node, fails, total }) => ({ node, fails, total })),
      [{ node: "e2", fails: 1, total: 1 }],
    );
    assert.match(
      ok(text).stdout,
      /^Unreachable \(1\):\n {2}e2: cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused/m,
    );
  });

  it("reaches a node on a port Node's fetch refuses ('bad port'), as its partners do", async (t) => {
    const port = await freePortOf(fetchBlockedPorts);
    if (port === null) {
      t.skip(`none of the ports ${fetchBlockedPorts.join(", ")} is free`);
      return;
    }
    const e3 = (await cluster.start("e3", "east", { join: [e1], port })).url;
    assert.equal(e3, `http://127.0.0.1:${port}`);
    const dn = `cn=portly,${base}`;
    const added = await plexus(["add", dn, "objectClass=person", "cn=portly", "sn=P", "--url", e3]);
    assert.equal(added.code, 0, added.stderr);
    const [read, status, exported] = await Promise.all([
      plexus(["get", dn, "--url", e3]),
      plexus(["repl", "status", "--url", e3]),
      plexus(["export", "--url", e3, "--filter", "(cn=portly)"]),
    ]);
    assert.match(ok(read).stdout, /^dn: cn=portly,dc=example,dc=com$/m);
    assert.match(ok(status).stdout, /^e3 {2}site east {2}http:\/\/127\.0\.0\.1:\d+\n/);
    assert.match(ok(exported).stdout, /^dn: cn=portly,dc=example,dc=com$/m);
  });
});

describe("write concern lines", () => {
  it("say where a write got and, when it fell short, what was missing", () => {
    const reached = { nodes: ["hq1", "branch2"], sites: ["branch", "hq"] };
    assert.equal(
      formatReached({ requested: "sites=2", met: true, ...reached }),
      "write concern sites=2: met on hq1, branch2 (sites branch, hq)",
    );
    assert.equal(
      formatReached({ requested: "sites=4", met: false, ...reached }),
      "write concern sites=4: NOT met: reached only hq1, branch2 (sites branch, hq); missing 2 more sites",
    );
    assert.equal(
      formatReached({ requested: "sites=3", met: false, ...reached }),
      "write concern sites=3: NOT met: reached only hq1, branch2 (sites branch, hq); missing 1 more site",
    );
    assert.equal(
      formatReached({ requested: "all", met: false, ...reached }),
      "write concern all: NOT met: reached only hq1, branch2 (sites branch, hq); missing the servers not listed",
    );
    assert.equal(
      formatReached({ requested: "site", met: false, nodes: ["hq1"], sites: ["hq"] }),
      "write concern site: NOT met: reached only hq1 (sites hq); missing another node of hq1's site",
    );
  });
});
