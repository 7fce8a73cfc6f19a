import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalCluster } from "../../test/support/cluster.ts";

/**
 * The people's commands as people run them: `bin/plexus.mjs` as a child process against two
 * real nodes (e1, e2, one site) on loopback. Independent commands run side by side to keep
 * the file fast; every one has a bounded time.
 */
const root = new URL("../..", import.meta.url).pathname;
const bin = join(root, "bin/plexus.mjs");
const commandTimeoutMs = 60_000;
const topology = {
  sites: [{ name: "east" }],
  settings: { intraSitePullIntervalMs: 2_000, notifyDelayMs: 5 },
};
const timings = { pullTimeoutMs: 2_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };
const base = "dc=example,dc=com";

interface Run {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

/** `plexus ARGS` with PLEXUS_URL and PLEXUS_SESSION only as given. */
function plexus(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const { PLEXUS_URL: _url, PLEXUS_SESSION: _session, ...inherited } = process.env;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      { cwd: root, env: { ...inherited, ...env }, timeout: commandTimeoutMs, encoding: "utf8" },
      (error, out, err) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
        resolve({ code, out, err });
      },
    );
  });
}

function ok(run: Run): Run {
  assert.equal(run.code, 0, `exit ${run.code}\nstdout:\n${run.out}\nstderr:\n${run.err}`);
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
    assert.match(added.out, /^added cn=carol,dc=example,dc=com \(usn \d+, 1 entry\)\n$/);
    const session = /^plexus-session: (\S+)$/m.exec(added.err)?.[1];
    assert.ok(session !== undefined, added.err);

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
    assert.equal(ok(read).out, "dn: cn=carol,dc=example,dc=com\ncn: carol\n");
    assert.match(ok(modified).out, /^write concern site: met on e1, e2 \(sites east\)$/m);

    // The write concern was met on e2, so e2 has it without a session.
    const [searched, onlyCn] = await Promise.all([
      plexus(["search", base, "--url", e2, "--filter", "(mail=carol@*)", "--json"]),
      plexus(["search", base, "--url", e2, "--filter", "(cn=carol)", "--attributes", "cn", "--scope", "one"]),
    ]);
    const found = JSON.parse(ok(searched).out) as {
      entries: { dn: string; attributes: Record<string, string[]> }[];
      truncated: boolean;
      session: string;
    };
    assert.equal(found.entries.length, 1);
    assert.deepEqual(found.entries[0]?.attributes.sn, ["Smith"]);
    assert.equal(found.entries[0]?.attributes.description, undefined);
    assert.equal(found.truncated, false);
    assert.equal(typeof found.session, "string");
    assert.equal(ok(onlyCn).out, "dn: cn=carol,dc=example,dc=com\ncn: carol\n\n# 1 entry\n");

    const moved = JSON.parse(
      ok(await plexus(["move", dn, "--url", e1, "--new-rdn", "cn=caroline", "--json"])).out,
    ) as { dn: string; session: string };
    assert.equal(moved.dn, `cn=caroline,${base}`);
    const deleted = ok(
      await plexus(["delete", moved.dn, "--url", e1, "--subtree", "--write-concern", "all"], {
        PLEXUS_SESSION: moved.session,
      }),
    );
    assert.match(deleted.out, /^deleted cn=caroline,dc=example,dc=com/);
    const gone = await plexus(["get", moved.dn, "--url", e1]);
    assert.equal(gone.code, 1);
    assert.equal(gone.err, "plexus: no-such-entry: no entry cn=caroline,dc=example,dc=com\n");
  });

  it("bad input gets one clear line and a non-zero exit", async () => {
    const port = await closedPort();
    const [badDn, badFilter, unknownFlag, unreachable, noUrl, badPair, badSession, help] = await Promise.all([
      plexus(["get", "not a dn", "--url", e1]),
      plexus(["search", base, "--url", e1, "--filter", "(cn=a"]),
      plexus(["search", base, "--url", e1, "--bogus"]),
      plexus(["get", `cn=x,${base}`, "--url", `http://${closedHost}:${port}`]),
      plexus(["get", `cn=x,${base}`]),
      plexus(["add", `cn=x,${base}`, "cn", "--url", e1]),
      plexus(["get", base, "--url", e1], { PLEXUS_SESSION: "not-a-token" }),
      plexus(["modify", "--help"]),
    ]);
    assert.equal(badDn.code, 1);
    assert.match(badDn.err, /^plexus: invalid-dn: /);
    assert.equal(badFilter.code, 1);
    assert.match(badFilter.err, /^plexus: invalid-filter: /);
    assert.equal(unknownFlag.code, 2);
    assert.match(unknownFlag.err, /^plexus search: Unknown option '--bogus'/);
    assert.match(unknownFlag.err, /usage: plexus search BASE/);
    assert.equal(unreachable.code, 3, unreachable.err);
    assert.equal(
      unreachable.err,
      `plexus: unreachable: cannot reach http://${closedHost}:${port}: connection refused (is a node running there?)\n`,
    );
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.err, /no node URL: give --url URL or set PLEXUS_URL/);
    assert.equal(badPair.code, 2);
    assert.match(badPair.err, /'cn' is not type=value/);
    // The token from the environment reached the node, which refused it.
    assert.equal(badSession.code, 1);
    assert.match(badSession.err, /^plexus: invalid-request: plexus-session is not a session token/);
    for (const run of [badDn, badFilter, unknownFlag, unreachable, noUrl, badPair, badSession])
      assert.equal(run.out, "");
    assert.match(ok(help).out, /^usage: plexus modify DN \[--add type=value\]/);
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
    assert.match(ok(status).out, /^e1 {2}site east {2}http:\/\/127\.0\.0\.1:\d+\n/);
    assert.match(status.out, /^ {2}e2 {2}intra {2}site east/m);
    assert.match(status.out, /^ {4}consecutive failures: {2}0$/m);
    assert.match(status.out, /^ {2}e1 \(this node\) +[0-9a-f]{8} +\d+ +\d+ +0 +(?:\S+ ago|\?) +0s$/m);
    const parsed = JSON.parse(ok(statusJson).out) as {
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
    assert.equal(ok(sync).out, sync.out.match(/^e2: pulled, done at \S+\n$/)?.[0]);
    assert.deepEqual(JSON.parse(ok(conflicts).out), { conflicts: [] });
    assert.match(ok(topologyText).out, /^Sites \(1\)\n {2}east {2}peer {2}servers: e1, e2$/m);
    assert.match(ok(help).out, /plexus repl summary/);
    assert.match(ok(summary).out, /^e1 +\S+ +0 \/ 1 +0 +0/m);
    assert.match(summary.out, /^e2 +\S+ +0 \/ 1 +0 +0/m);
    assert.doesNotMatch(summary.out, /Unreachable/);
  });

  it("repl summary and sync report a stopped node: unreachable, failing as a source", async () => {
    await cluster.stop("e2");
    const sync = await plexus(["repl", "sync", "--url", e1, "--from", "e2", "--timeout", "5000"]);
    assert.equal(sync.code, 1, sync.out + sync.err);
    assert.match(sync.out, /^e2: (FAILED at \S+: .+|not asked: backing off after \d+ failures .*)$/m);
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
    assert.match(unmet.err, /^plexus: write-concern-not-met: the write is applied on this node/);
    assert.match(unmet.err, /^write concern site: NOT met on e1 \(sites east\)$/m);
    assert.match(unmet.err, /^plexus-session: \S+$/m);
    assert.match(ok(status).out, /^ {4}last failure: {10}\S+ \(\S+ ago\): .+$/m);
    assert.match(status.out, /^ {4}consecutive failures: {2}[1-9]\d*$/m);
    assert.match(
      status.out,
      /^ {4}status not readable: {3}cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused/m,
    );
    const parsed = JSON.parse(ok(summary).out) as {
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
      ok(text).out,
      /^Unreachable \(1\):\n {2}e2: cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused/m,
    );
  });
});
