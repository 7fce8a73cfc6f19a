import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { request } from "undici";
import { type InProcessNode, startInProcessNode } from "../../test/support/in-process-node.ts";
import { plexus } from "../../test/support/plexus-cli.ts";
import { fetchBlockedPorts, freePortOf } from "../../test/support/ports.ts";
import { entryPath, eventually, http } from "../cli/local-cluster.ts";
import type { NodeId } from "../core/ids.ts";
import { backupDatabase, restoreDatabase } from "../store/backup.ts";
import { type ClusterSecret, clusterSecret, signedHeaders } from "./auth.ts";
import type { Logger } from "./log.ts";
import { runtimeTimingsDefault, syncedMarkerFileName } from "./node.ts";
import { peerPaths } from "./peer-client.ts";

const base = "dc=example,dc=com";
/** Longer than the test may run: a node that kept retrying would fail it by the test's timeout. */
const joinTimeoutMs = 10 * 60_000;

describe("joining and leaving", { timeout: 120_000 }, () => {
  const nodes: InProcessNode[] = [];

  const start = async (
    name: string,
    secretText: string,
    joinUrl: string | null,
    dataDirectory?: string,
    log?: Logger,
    port?: number,
  ): Promise<InProcessNode> => {
    const node = await startInProcessNode(name, "east", {
      ...(dataDirectory === undefined ? {} : { dataDirectory }),
      ...(log === undefined ? {} : { log }),
      ...(port === undefined ? {} : { port }),
      join: joinUrl === null ? [] : [joinUrl],
      secret: clusterSecret(secretText) as ClusterSecret,
      partitions: joinUrl === null ? [base] : [],
      topology: { settings: { intraSitePullIntervalMs: 1_000, notifyDelayMs: 10 } },
      pageWorker: false,
      timings: { ...runtimeTimingsDefault, joinTimeoutMs },
    });
    nodes.push(node);
    return node;
  };

  const directories: string[] = [];

  after(async () => {
    for (const node of nodes) await node.close();
    for (const directory of directories) rmSync(directory, { recursive: true, force: true });
  });

  it("a partner that refuses this node's signature is shown failing with HTTP 401, not as unreachable", async () => {
    const secret = "the refused signature test's secret, long enough";
    const warnings: string[] = [];
    const log: Logger = {
      log: (level, event, fields) => {
        if (level === "warn") warnings.push(`${event} ${JSON.stringify(fields ?? {})}`);
      },
    };
    const first = await start("s1", secret, null, undefined, log);
    const directory = mkdtempSync(join(tmpdir(), "plexus-s2-"));
    directories.push(directory);
    const second = await start("s2", secret, first.url, directory);
    await second.node.stop();
    // The same node on the same port, restarted with another secret: s1's pulls from it are
    // refused as unsigned.
    nodes.push(
      await startInProcessNode("s2", "east", {
        dataDirectory: directory,
        port: Number(new URL(second.url).port),
        secret: clusterSecret("another secret altogether, long enough") as ClusterSecret,
        pageWorker: false,
      }),
    );
    await eventually("s1 shows why its pulls from s2 fail", async () => {
      const status = await http("GET", `${first.url}/v1/status`);
      const partners = (status.body as { partners: { node: string; lastFailure: string | null }[] }).partners;
      const failure = partners.find((partner) => partner.node === "s2")?.lastFailure ?? "";
      return /HTTP 401.*another cluster secret/.test(failure);
    });
    // Said in s1's log at warn level (the default level shows it), once: not per failed pull.
    await eventually("s1 warns that s2 refuses its signature", async () =>
      warnings.some((line) => line.startsWith("partner-refuses-signature")),
    );
    const said = warnings.filter((line) => line.startsWith("partner-refuses-signature"));
    assert.equal(said.length, 1, said.join("\n"));
    assert.match(said[0] ?? "", /"partner":"s2".*--secret-file/);
  });

  it("a data directory whose database was lost joins afresh, though its marker says it synced", async () => {
    const secret = "the lost database test's secret, long enough";
    const first = await start("m1", secret, null);
    const directory = mkdtempSync(join(tmpdir(), "plexus-m2-"));
    directories.push(directory);
    const second = await start("m2", secret, first.url, directory);
    assert.ok(existsSync(join(directory, syncedMarkerFileName)));
    await second.node.stop();
    for (const suffix of ["", "-wal", "-shm"]) rmSync(join(directory, `plexus.db${suffix}`), { force: true });
    const person = { dn: `cn=written-meanwhile,${base}`, attributes: { objectClass: ["person"], sn: ["x"] } };
    assert.equal((await http("POST", `${first.url}/v1/entries`, person)).status, 201);
    const again = await start("m2", secret, first.url, directory);
    // Served at once after start: the join's initial sync brought the partition and the entry.
    const read = await http("GET", entryPath(again.url, person.dn));
    assert.equal(read.status, 200, JSON.stringify(read.body));
  });

  it("gives up at once, saying why, when the cluster refuses this node's secret", async () => {
    const first = await start("j1", "the cluster's own secret, long enough", null);
    await assert.rejects(
      start("j2", "some other secret, also long enough", first.url),
      /could not join: the node refuses this node's requests as unsigned \(HTTP 401\): the cluster secret is not the one the cluster uses/,
    );
  });

  it("refuses at once a joiner whose name a running server has, and leaves that server's entry alone", async () => {
    const secret = "the name test's secret, long enough";
    const first = await start("t1", secret, null);
    const second = await start("t2", secret, first.url);
    const entryOf = async (): Promise<unknown> =>
      (await http("GET", `${entryPath(first.url, "cn=t2,cn=servers,cn=config")}?attributes=plexusHttpPort`))
        .body;
    const before = await entryOf();
    // Another machine's operator types t2 for its new node: a fresh data directory, another port.
    const directory = mkdtempSync(join(tmpdir(), "plexus-impostor-"));
    directories.push(directory);
    const started = performance.now();
    await assert.rejects(
      start("t2", secret, first.url, directory),
      /could not join: .*the node name t2 is taken: a server of that name answers at http:\/\/127\.0\.0\.1:\d+; give this node another --node/,
    );
    assert.ok(performance.now() - started < 30_000, "refused at once, not after the join retries");
    assert.deepEqual(await entryOf(), before, "t2's entry still names the running t2");
    // Once that server is gone, the name is free to move: its own node, restarted elsewhere.
    await second.close();
    await start("t2", secret, first.url, directory);
    assert.notDeepEqual(await entryOf(), before, "the entry now names the new port");
  });

  it("refuses to start a restored copy of a node that runs elsewhere, and leaves that node's entry alone", async () => {
    const secret = "the restored copy test's secret, long enough";
    const first = await start("c1", secret, null);
    const original = mkdtempSync(join(tmpdir(), "plexus-original-"));
    directories.push(original);
    await start("c2", secret, first.url, original);
    const entryOf = async (): Promise<unknown> =>
      (await http("GET", `${entryPath(first.url, "cn=c2,cn=servers,cn=config")}?attributes=plexusHttpPort`))
        .body;
    const before = await entryOf();
    // A backup of the running c2, restored on another machine (here: another directory and
    // port) and started under c2's name: two c2s would serve, and c2's entry would move here.
    const scratch = mkdtempSync(join(tmpdir(), "plexus-copy-"));
    directories.push(scratch);
    backupDatabase(original, join(scratch, "c2.backup"));
    const copy = join(scratch, "data");
    restoreDatabase(copy, join(scratch, "c2.backup"), new Date());
    await assert.rejects(
      start("c2", secret, first.url, copy),
      /this node's registration was refused: .*the node name c2 is taken: a server of that name answers at/,
    );
    assert.deepEqual(await entryOf(), before, "c2's entry still names the running c2");
  });

  it("finds the running server of that name on a port Node's fetch refuses ('bad port')", async (t) => {
    const port = await freePortOf(fetchBlockedPorts);
    if (port === null) {
      t.skip(`none of the ports ${fetchBlockedPorts.join(", ")} is free`);
      return;
    }
    const secret = "the blocked port test's secret, long enough";
    const first = await start("p1", secret, null);
    const second = await start("p2", secret, first.url, undefined, undefined, port);
    assert.equal(second.url, `http://127.0.0.1:${port}`);
    const directory = mkdtempSync(join(tmpdir(), "plexus-impostor-"));
    directories.push(directory);
    // fetch answered "bad port" there: the probe read it as nothing answering, and gave the
    // running p2's name to the newcomer.
    await assert.rejects(start("p2", secret, first.url, directory), /the node name p2 is taken/);
  });

  /** A logger keeping `event {fields}` of each warn-level line, for assertions. */
  const warnLog = (): { lines: string[]; log: Logger } => {
    const lines: string[] = [];
    return {
      lines,
      log: {
        log: (level, event, fields) => {
          if (level === "warn") lines.push(`${event} ${JSON.stringify(fields ?? {})}`);
        },
      },
    };
  };

  /** The status of each config entry a join into `site` would create on the admitting node. */
  const siteEntries = async (url: string, node: string, site: string): Promise<number[]> =>
    Promise.all(
      [
        `cn=${site},cn=sites,cn=config`,
        `cn=east-${site},cn=site-links,cn=config`,
        `cn=${node},cn=servers,cn=config`,
      ].map(async (dn) => (await http("GET", entryPath(url, dn))).status),
    );

  it("refuses a plexus start whose --site the topology lacks, writing nothing; it exits 1 saying why", async () => {
    const secret = "the unknown site test's secret, long enough";
    const admitter = warnLog();
    const first = await start("u1", secret, null, undefined, admitter.log);
    const directory = mkdtempSync(join(tmpdir(), "plexus-u2-"));
    directories.push(directory);
    const secretFile = join(directory, "secret");
    writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
    const refusal =
      "the site eastt is not in the topology (did you mean east?); its sites are east. Give --site an " +
      "existing site, or to create this one on purpose start the node with --new-site (the new site " +
      "gets a link to the admitting node's site), or add the site first (docs/operations.md, " +
      '"Adding a site")';
    // What the operator sees on stderr, in each log format: the start-failed log line (JSON or
    // readable), then the sentence on a line of its own.
    for (const format of ["json", "pretty"]) {
      const started = performance.now();
      const run = await plexus([
        ...["start", "--data", join(directory, format), "--node", "u2", "--site", "eastt"],
        ...["--join", first.url, "--secret-file", secretFile, "--log-format", format],
      ]);
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.stdout, "", "it never serves");
      const lines = run.stderr.trimEnd().split("\n");
      assert.equal(
        lines.at(-1),
        `plexus start: could not join: ${first.url}: HTTP 400 ${refusal}`,
        run.stderr,
      );
      const failed = lines.find((line) => line.includes("start-failed")) ?? "";
      assert.ok(failed.includes("the site eastt is not in the topology (did you mean east?)"), run.stderr);
      assert.ok(performance.now() - started < 30_000, "refused at once, not after the join retries");
    }
    assert.deepEqual(await siteEntries(first.url, "u2", "eastt"), [404, 404, 404], "no site, link or server");
    assert.ok(
      admitter.lines.some((line) =>
        /^join-refused \{"joiner":"u2","joinerSite":"eastt","reason":"the site eastt/.test(line),
      ),
      admitter.lines.join("\n"),
    );
  });

  it("with --new-site, a joiner whose site the topology lacks has it created, and is told at warn level", async () => {
    const secret = "the new site test's secret, long enough";
    const admitter = warnLog();
    const first = await start("w1", secret, null, undefined, admitter.log);
    const joiner = warnLog();
    nodes.push(
      await startInProcessNode("w2", "west", {
        join: [first.url],
        newSite: true,
        secret: clusterSecret(secret) as ClusterSecret,
        partitions: [],
        pageWorker: false,
        timings: { ...runtimeTimingsDefault, joinTimeoutMs },
        log: joiner.log,
      }),
    );
    assert.ok(
      joiner.lines.some((line) => /^site-created \{"by":"w1".*--new-site/.test(line)),
      joiner.lines.join("\n"),
    );
    assert.ok(
      admitter.lines.some((line) =>
        /^admitted \{"joiner":"w2","joinerSite":"west","writes":3,"siteCreated":true\}/.test(line),
      ),
      admitter.lines.join("\n"),
    );
    assert.deepEqual(
      await siteEntries(first.url, "w2", "west"),
      [200, 200, 200],
      "the site, its link, the server",
    );
  });

  it("refuses a node restarted with a --site the topology lacks, and leaves its server entry alone", async () => {
    const secret = "the restart into an unknown site test's secret, long enough";
    const first = await start("r1", secret, null);
    const directory = mkdtempSync(join(tmpdir(), "plexus-r2-"));
    directories.push(directory);
    const second = await start("r2", secret, first.url, directory);
    const port = Number(new URL(second.url).port);
    await second.node.stop();
    const entryOf = async (): Promise<unknown> =>
      (await http("GET", `${entryPath(first.url, "cn=r2,cn=servers,cn=config")}?attributes=plexusSite`)).body;
    const before = await entryOf();
    await assert.rejects(
      startInProcessNode("r2", "eastt", {
        dataDirectory: directory,
        port,
        join: [first.url],
        secret: clusterSecret(secret) as ClusterSecret,
        partitions: [],
        pageWorker: false,
        timings: { ...runtimeTimingsDefault, joinTimeoutMs },
      }),
      /^Error: the site eastt is not in the topology \(did you mean east\?\); .*--new-site/,
    );
    assert.deepEqual(await entryOf(), before, "r2's entry still names site east");
    assert.deepEqual(await siteEntries(first.url, "r2", "eastt"), [404, 404, 200], "no site, no link");
  });

  it("refuses a registration whose newSite is not a boolean, writing nothing", async () => {
    const secret = "the malformed registration test's secret, long enough";
    const first = await start("v1", secret, null);
    const path = peerPaths.join;
    const registration = { node: "v2", site: "west", address: "127.0.0.1", httpPort: 7001, newSite: "yes" };
    const payload = Buffer.from(JSON.stringify(registration));
    const answer = await request(new URL(path, first.url), {
      method: "POST",
      body: payload,
      headers: {
        "content-type": "application/json",
        ...signedHeaders(
          first.secret,
          { method: "POST", path, node: "v2" as NodeId, body: payload },
          Date.now(),
        ),
      },
    });
    assert.equal(answer.statusCode, 400);
    assert.match(await answer.body.text(), /"detail":"newSite must be true or false \(or absent\)"/);
    assert.deepEqual(await siteEntries(first.url, "v2", "west"), [404, 404, 404]);
  });

  it("a node whose server entry was removed takes no more writes, and still serves reads", async () => {
    const secret = "the leaving test's secret, long enough";
    const first = await start("l1", secret, null);
    const second = await start("l2", secret, first.url);
    const person = (cn: string) => ({
      dn: `cn=${cn},${base}`,
      attributes: { objectClass: ["person"], sn: [cn] },
    });
    assert.equal((await http("POST", `${second.url}/v1/entries`, person("before"))).status, 201);
    const removed = await http("DELETE", entryPath(first.url, "cn=l2,cn=servers,cn=config"));
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    let refused: { status: number; body: unknown } | undefined;
    await eventually("l2 refuses writes once it hears it was removed", async () => {
      const answer = await http("POST", `${second.url}/v1/entries`, person(`after-${Date.now()}`));
      refused = answer;
      return answer.status === 503;
    });
    assert.ok(refused !== undefined);
    const body = refused.body as { code?: string; detail?: string };
    assert.equal(body.code, "not-a-server");
    assert.match(body.detail ?? "", /l2 is no longer a server of the topology/);
    assert.equal((await http("GET", entryPath(second.url, `cn=before,${base}`))).status, 200, "reads go on");
    assert.equal((await http("POST", `${first.url}/v1/entries`, person("elsewhere"))).status, 201);
  });
});
