import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../test/support/in-process-node.ts";
import { entryPath, eventually, http } from "../cli/local-cluster.ts";
import { type ClusterSecret, clusterSecret } from "./auth.ts";
import type { Logger } from "./log.ts";
import { runtimeTimingsDefault, syncedMarkerFileName } from "./node.ts";

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
  ): Promise<InProcessNode> => {
    const node = await startInProcessNode(name, "east", {
      ...(dataDirectory === undefined ? {} : { dataDirectory }),
      ...(log === undefined ? {} : { log }),
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

  it("a joiner whose site the topology lacks is told, at warn level, that its site was created", async () => {
    const secret = "the site test's secret, long enough";
    const first = await start("w1", secret, null);
    const warnings: string[] = [];
    const log: Logger = {
      log: (level, event, fields) => {
        if (level === "warn") warnings.push(`${event} ${JSON.stringify(fields ?? {})}`);
      },
    };
    const typo = await startInProcessNode("w2", "eastt", {
      join: [first.url],
      secret: clusterSecret(secret) as ClusterSecret,
      partitions: [],
      pageWorker: false,
      timings: { ...runtimeTimingsDefault, joinTimeoutMs },
      log,
    });
    nodes.push(typo);
    assert.ok(
      warnings.some((line) => /^site-created \{"site":"eastt","by":"w1".*misspelt/.test(line)),
      warnings.join("\n"),
    );
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
