import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { entryPath, eventually, http, LocalCluster } from "../../test/support/cluster.ts";
import { sseBlocks } from "../../test/support/sse.ts";
import { type ClusterSecret, newNonce, replayWindowMs, signRequest } from "./auth.ts";
import { peerPaths } from "./peer-client.ts";

/**
 * Four real node processes on loopback in two sites (east: e1, e2; west: w1, w2), joined
 * through e1. Short timings keep the test fast: a failed partner is retried within a second.
 */
const topology = {
  sites: [{ name: "east" }, { name: "west" }],
  links: [{ name: "east-west", sites: ["east", "west"], cost: 10, intervalMinutes: 1, notify: true }],
  settings: { intraSitePullIntervalMs: 2_000, notifyDelayMs: 5 },
};
const timings = { pullTimeoutMs: 3_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };
const names = ["e1", "e2", "w1", "w2"] as const;
const base = "dc=example,dc=com";

const person = (name: string, extra: Record<string, string[]> = {}) => ({
  dn: `cn=${name},${base}`,
  attributes: { objectClass: ["person"], cn: [name], sn: [name], ...extra },
});

interface Listing {
  readonly entries: readonly { dn: string; attributes: Record<string, string[]> }[];
}

/** Every live entry of the data partition as one comparable string. */
async function snapshot(url: string): Promise<string> {
  const answer = await http("POST", `${url}/v1/search`, { base, scope: "sub", sizeLimit: 10_000 });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  const entries = [...(answer.body as Listing).entries].map((entry) => JSON.stringify(entry));
  return entries.sort().join("\n");
}

async function holds(url: string, dn: string): Promise<boolean> {
  return (await http("GET", entryPath(url, dn))).status === 200;
}

describe("a cluster of node processes", { timeout: 90_000 }, () => {
  const cluster = new LocalCluster(topology, timings);
  const url = (name: string): string => cluster.node(name).url;

  before(async () => {
    const first = await cluster.start("e1", "east");
    await Promise.all([
      cluster.start("e2", "east", { join: [first.url] }),
      cluster.start("w1", "west", { join: [first.url] }),
      cluster.start("w2", "west", { join: [first.url] }),
    ]);
  });

  after(async () => {
    await cluster.stopAll();
  });

  it("a write on any node appears on every node", async () => {
    for (const name of names) {
      const answer = await http("POST", `${url(name)}/v1/entries`, person(`from-${name}`));
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
    }
    for (const reader of names) {
      await eventually(`${reader} holding every write`, async () => {
        for (const writer of names)
          if (!(await holds(url(reader), `cn=from-${writer},${base}`))) return false;
        return true;
      });
    }
    for (const name of names) {
      const { invocationId, usn, originatedUsn } = (await http("GET", `${url(name)}/v1/status`)).body as {
        invocationId: string;
        usn: number;
        originatedUsn: number;
      };
      assert.ok(
        originatedUsn > 0 && originatedUsn <= usn,
        `${name}: originatedUsn ${originatedUsn}, usn ${usn}`,
      );
      await eventually(`every node holding ${name}'s changes up to its newest own one`, async () => {
        for (const other of names) {
          const { utd } = (await http("GET", `${url(other)}/v1/status`)).body as {
            utd: Record<string, number>;
          };
          if ((utd[invocationId] ?? 0) < originatedUsn) return false;
        }
        return true;
      });
      await eventually(`e1 knowing ${name}'s invocation id from its server object`, async () => {
        const server = await http(
          "GET",
          `${entryPath(url("e1"), `cn=${name},cn=servers,cn=config`)}?attributes=plexusInvocationId`,
        );
        const published = (server.body as { attributes?: { plexusInvocationId?: string[] } }).attributes;
        return published?.plexusInvocationId?.includes(invocationId) === true;
      });
    }
    // Reverse-path pulling: a bridgehead pulls from the other site everything but its own site's
    // changes (its own invocations aside: never left out, so that a restored node gets back from
    // other sites its changes newer than its backup; its UTD covers the rest).
    const invocations = new Map<string, string>();
    for (const name of names)
      invocations.set(
        name,
        ((await http("GET", `${url(name)}/v1/status`)).body as { invocationId: string }).invocationId,
      );
    await eventually("an east bridgehead filtering east's origins out of its inter-site pulls", async () => {
      for (const name of ["e1", "e2"]) {
        const east = ["e1", "e2"]
          .filter((other) => other !== name)
          .map((other) => invocations.get(other))
          .sort();
        const body = (await http("GET", `${url(name)}/v1/status`)).body as {
          partners: { kind: string; excludedOrigins: string[] }[];
        };
        const inter = body.partners.filter((partner) => partner.kind === "inter");
        if (
          inter.some(
            (partner) => JSON.stringify([...partner.excludedOrigins].sort()) === JSON.stringify(east),
          )
        )
          return true;
      }
      return false;
    });
    const status = await http("GET", `${url("w1")}/v1/status`);
    const body = status.body as { site: string; partners: { node: string; lastSuccessAt: string | null }[] };
    assert.equal(body.site, "west");
    assert.ok(body.partners.length > 0 && body.partners.every((partner) => partner.lastSuccessAt !== null));
  });

  it("concurrent conflicting writes converge to the same state everywhere", async () => {
    const created = await Promise.all([
      http("POST", `${url("e1")}/v1/entries`, person("twin", { description: ["east"] })),
      http("POST", `${url("w2")}/v1/entries`, person("twin", { description: ["west"] })),
    ]);
    for (const answer of created) assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const target = entryPath(url("e2"), `cn=from-e1,${base}`);
    const modified = await Promise.all(
      ["e2", "w1"].map((name) =>
        http("PATCH", entryPath(url(name), `cn=from-e1,${base}`), {
          changes: [{ operation: "replace", attribute: "description", values: [`by ${name}`] }],
        }),
      ),
    );
    for (const answer of modified) assert.equal(answer.status, 200, JSON.stringify(answer.body));
    await eventually("identical replicas", async () => {
      const states = await Promise.all(names.map((name) => snapshot(url(name))));
      return states.every((state) => state === states[0]) && (states[0] ?? "").includes("CNF:");
    });
    // usnChanged is each replica's own counter; everything else about a conflict is the same everywhere.
    const conflicts = await Promise.all(
      names.map(async (name) => {
        const answer = await http("GET", `${url(name)}/v1/conflicts`);
        assert.equal(answer.status, 200);
        return (answer.body as { conflicts: Record<string, unknown>[] }).conflicts.map(
          ({ usnChanged: _local, ...shared }) => shared,
        );
      }),
    );
    for (const listed of conflicts) assert.deepEqual(listed, conflicts[0]);
    assert.equal(conflicts[0]?.length, 1);
    const winner = (await http("GET", target)).body as { attributes: { description: string[] } };
    assert.equal(winner.attributes.description.length, 1, "one of the two replaces won");
  });

  it("refuses replication requests that are unsigned, badly signed, replayed late or replayed at all", async () => {
    const target = `${url("e1")}${peerPaths.messages}`;
    const body = JSON.stringify({ kind: "notify" });
    const secret = Buffer.from(cluster.secret, "utf8") as ClusterSecret;
    const signed = (timestampMs: number, key: ClusterSecret, payload = body) => {
      const nonce = newNonce();
      return {
        "plexus-node": "w1",
        "plexus-timestamp": String(timestampMs),
        "plexus-nonce": nonce,
        "plexus-signature": signRequest(key, {
          method: "POST",
          path: peerPaths.messages,
          node: "w1" as never,
          timestampMs,
          nonce,
          body: Buffer.from(payload),
        }),
      };
    };
    const wrongKey = Buffer.from("not the cluster secret at all", "utf8") as ClusterSecret;
    const attempts = [
      {},
      signed(Date.now(), wrongKey),
      signed(Date.now() - replayWindowMs - 5_000, secret),
      { ...signed(Date.now(), secret), "plexus-node": "e2" },
    ];
    for (const headers of attempts) {
      const answer = await http("POST", target, body, headers);
      assert.equal(answer.status, 401, JSON.stringify(headers));
      assert.equal((answer.body as { code: string }).code, "unauthorized");
    }
    const tampered = await http(
      "POST",
      target,
      JSON.stringify({ kind: "notify", x: 1 }),
      signed(Date.now(), secret),
    );
    assert.equal(tampered.status, 401, "a body other than the signed one");
    const goodHeaders = signed(Date.now(), secret);
    const good = await http("POST", target, body, goodHeaders);
    assert.equal(good.status, 204, "the same request, signed with the cluster secret, is accepted");
    const replayed = await http("POST", target, body, goodHeaders);
    assert.equal(replayed.status, 401, "the very same signed request, sent again within the window");
    assert.match(cluster.node("e1").log, /peer-request-refused.*replayed request/);
    assert.match(cluster.node("e1").log, /peer-request-refused.*bad signature/);
    // Signed, but no message: refused and logged, not silently dropped.
    for (const junk of ["[]", "null", JSON.stringify({ kind: "boom" })]) {
      const answer = await http("POST", target, junk, signed(Date.now(), secret, junk));
      assert.equal(answer.status, 400, junk);
      // A problem document, as the client API answers (type, title, status, code, detail).
      assert.equal(answer.contentType, "application/problem+json", junk);
      assert.deepEqual(
        { ...(answer.body as Record<string, unknown>), detail: "…" },
        {
          type: "urn:plexus:problem:invalid-request",
          title: "invalid-request",
          status: 400,
          code: "invalid-request",
          detail: "…",
        },
        junk,
      );
    }
    assert.match(cluster.node("e1").log, /peer-message-refused/);
  });

  it("answers malformed client requests with 4xx problems and changes nothing", async () => {
    const node = url("e2");
    // Not the node's USN: other partitions change in the background (each node registers,
    // refreshes and scavenges its DNS records on a timer, and those writes replicate here).
    const before = await snapshot(node);
    const entry = entryPath(node, `cn=from-e2,${base}`);
    const cases: [string, string, unknown, number, string][] = [
      ["POST", `${node}/v1/entries`, "{not json", 400, "invalid-request"],
      ["POST", `${node}/v1/entries`, [], 400, "invalid-request"],
      ["POST", `${node}/v1/entries`, { dn: 7, attributes: {} }, 400, "invalid-request"],
      ["POST", `${node}/v1/entries`, { ...person("x"), extra: 1 }, 400, "invalid-request"],
      [
        "POST",
        `${node}/v1/entries`,
        { dn: "cn=x,,dc=example", attributes: { cn: ["x"] } },
        400,
        "invalid-dn",
      ],
      ["POST", `${node}/v1/entries`, { dn: `cn=y,${base}`, attributes: { cn: [1] } }, 400, "invalid-value"],
      ["POST", `${node}/v1/entries`, person("from-e1"), 409, "entry-exists"],
      [
        "POST",
        `${node}/v1/entries`,
        { ...person("z"), dn: "cn=z,ou=none,dc=example,dc=com" },
        422,
        "no-such-parent",
      ],
      [
        "PATCH",
        entry,
        { changes: [{ operation: "frobnicate", attribute: "sn", values: [] }] },
        400,
        "invalid-request",
      ],
      ["PATCH", entry, { changes: "all" }, 400, "invalid-request"],
      [
        "PATCH",
        entry,
        { changes: [{ operation: "delete", attribute: "mail", values: ["a"] }] },
        422,
        "no-such-attribute",
      ],
      ["DELETE", `${entry}?subtree=maybe`, undefined, 400, "invalid-request"],
      ["DELETE", entryPath(node, `cn=nobody,${base}`), undefined, 404, "no-such-entry"],
      ["DELETE", entryPath(node, base), undefined, 403, "system-entry"],
      ["POST", `${entry}/rename`, { newRdn: 5 }, 400, "invalid-request"],
      ["POST", `${node}/v1/search`, { base, filter: "(cn=" }, 400, "invalid-filter"],
      ["POST", `${node}/v1/search`, { base, scope: "everything" }, 400, "invalid-request"],
      ["POST", `${node}/v1/search`, { base, cursor: "!!" }, 400, "invalid-request"],
      ["POST", `${node}/v1/search`, { base, sizeLimit: -1 }, 400, "invalid-request"],
      ["GET", `${node}/v1/conflicts?limit=0`, undefined, 400, "invalid-request"],
      ["GET", `${entry}?bogus=1`, undefined, 400, "invalid-request"],
      ["GET", `${node}/v1/nothing-here`, undefined, 404, "not-found"],
    ];
    for (const [method, target, body, status, code] of cases) {
      const answer = await http(method, target, body);
      const where = `${method} ${target.slice(node.length)} ${JSON.stringify(body)?.slice(0, 80)}`;
      assert.equal(answer.status, status, `${where}: ${JSON.stringify(answer.body)}`);
      assert.match(answer.contentType, /^application\/problem\+json/, where);
      assert.equal((answer.body as { code: string }).code, code, where);
    }
    // The node may answer 413 and close before the client has sent the whole body; then the
    // client sees the connection end. Either way nothing is written and the node carries on.
    const oversized = await http("POST", `${node}/v1/entries`, "x".repeat(9 * 1024 * 1024)).catch(() => null);
    if (oversized !== null) assert.equal(oversized.status, 413);
    const wrongType = await fetch(`${node}/v1/entries`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "cn=x",
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(wrongType.status, 415);
    assert.equal(await snapshot(node), before, "no malformed request changed any entry");
  });

  it("creates, reads, modifies, renames, pages and deletes through the API", async () => {
    const node = url("w1");
    for (let index = 0; index < 5; index++) {
      assert.equal((await http("POST", `${node}/v1/entries`, person(`page-${index}`))).status, 201);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const answer = await http("POST", `${node}/v1/search`, {
        base,
        scope: "one",
        filter: "(cn=page-*)",
        attributes: ["cn"],
        pageSize: 2,
        ...(cursor === null ? {} : { cursor }),
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const body = answer.body as Listing & { nextCursor: string | null };
      seen.push(...body.entries.map((entry) => entry.dn));
      cursor = body.nextCursor;
      if (cursor === null) break;
    }
    assert.equal(new Set(seen).size, 5, seen.join(" "));
    const slashDn = `cn=a/b,${base}`;
    assert.equal((await http("POST", `${node}/v1/entries`, { ...person("a/b"), dn: slashDn })).status, 201);
    const modified = await http("PATCH", entryPath(node, slashDn), {
      changes: [{ operation: "add", attribute: "mail", values: ["ab@example.com"] }],
    });
    assert.equal(modified.status, 200, JSON.stringify(modified.body));
    const renamed = await http("POST", `${entryPath(node, slashDn)}/rename`, { newRdn: "cn=ab" });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    const read = await http("GET", `${entryPath(node, `cn=ab,${base}`)}?attributes=mail`);
    assert.deepEqual((read.body as { attributes: unknown }).attributes, { mail: ["ab@example.com"] });
    assert.equal((await http("DELETE", entryPath(node, `cn=ab,${base}`))).status, 200);
    assert.equal((await http("GET", entryPath(node, `cn=ab,${base}`))).status, 404);
  });

  it("write concern: the answer says which nodes and sites have the write, or what it reached", async () => {
    const node = url("e1");
    const site = await http("POST", `${node}/v1/entries`, person("durable-site"), {
      "plexus-write-concern": "site",
    });
    assert.equal(site.status, 201, JSON.stringify(site.body));
    const reached = (site.body as { writeConcern: { met: boolean; nodes: string[]; sites: string[] } })
      .writeConcern;
    assert.deepEqual([reached.met, reached.nodes.includes("e2"), reached.sites], [true, true, ["east"]]);
    assert.ok(await holds(url("e2"), `cn=durable-site,${base}`), "e2 holds it when e1 answers");
    const two = await http("POST", `${node}/v1/entries`, person("durable-sites"), {
      "plexus-write-concern": "sites=2; timeout=10000",
    });
    assert.equal(two.status, 201, JSON.stringify(two.body));
    assert.deepEqual((two.body as { writeConcern: { sites: string[] } }).writeConcern.sites, [
      "east",
      "west",
    ]);
    const impossible = await http("POST", `${node}/v1/entries`, person("durable-nowhere"), {
      "plexus-write-concern": "sites=3; timeout=300",
    });
    assert.equal(impossible.status, 400, JSON.stringify(impossible.body));
    assert.match((impossible.body as { detail: string }).detail, /servers are in 2 sites/);
    assert.equal(
      await holds(node, `cn=durable-nowhere,${base}`),
      false,
      "a concern no topology meets writes nothing",
    );
    // Every server within a millisecond: not met in time, and the answer says what was reached.
    const unmet = await http("POST", `${node}/v1/entries`, person("durable-late"), {
      "plexus-write-concern": "all; timeout=1",
    });
    assert.equal(unmet.status, 504, JSON.stringify(unmet.body));
    const problemBody = unmet.body as { code: string; writeConcern: { met: boolean; nodes: string[] } };
    assert.equal(problemBody.code, "write-concern-not-met");
    assert.equal(problemBody.writeConcern.met, false);
    assert.ok(problemBody.writeConcern.nodes.includes("e1"), "it reached the node that took it");
    assert.ok(await holds(node, `cn=durable-late,${base}`), "the write stays applied locally");
    const bad = await http("POST", `${node}/v1/entries`, person("never"), { "plexus-write-concern": "most" });
    assert.equal(bad.status, 400);
    assert.equal(await holds(node, `cn=never,${base}`), false, "a bad concern writes nothing");
  });

  it("a session token gives read-your-writes on another node; a token no node can meet is refused", async () => {
    const written = await http("POST", `${url("w1")}/v1/entries`, person("session-write"));
    assert.equal(written.status, 201);
    const token = written.headers.get("plexus-session") ?? "";
    const decoded = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Record<string, number>;
    assert.deepEqual(Object.values(decoded), [(written.body as { usn: number }).usn]);
    const read = await http("GET", entryPath(url("e2"), `cn=session-write,${base}`), undefined, {
      "plexus-session": token,
    });
    assert.equal(read.status, 200, "e2 waits until it has caught up with the token, then answers");
    assert.equal(read.headers.get("plexus-session"), token, "a read hands the token back unchanged");
    const ahead = Buffer.from(JSON.stringify({ ["f".repeat(32)]: 1 })).toString("base64url");
    const behind = await http("GET", entryPath(url("e2"), base), undefined, { "plexus-session": ahead });
    assert.equal(behind.status, 503);
    assert.equal((behind.body as { code: string }).code, "session-behind");
    assert.ok(behind.headers.get("retry-after") !== null);
    const garbage = await http("GET", entryPath(url("e2"), base), undefined, { "plexus-session": "%%%" });
    assert.equal(garbage.status, 400);
    // More of e2's own instance than e2 has issued: no waiting helps, and e2 can tell at once.
    const status = (await http("GET", `${url("e2")}/v1/status`)).body as {
      invocationId: string;
      usn: number;
    };
    const forged = Buffer.from(JSON.stringify({ [status.invocationId]: status.usn + 1_000 })).toString(
      "base64url",
    );
    const impossible = await http("GET", entryPath(url("e2"), base), undefined, { "plexus-session": forged });
    assert.equal(impossible.status, 400, JSON.stringify(impossible.body));
    assert.match((impossible.body as { detail: string }).detail, /no node of this cluster gave it/);
  });

  it("no write acknowledged with write concern site is lost when its node is killed under load", async () => {
    const victim = cluster.node("e1");
    const port = Number(new URL(victim.url).port);
    const acknowledged: string[] = [];
    let stop = false;
    const writer = async (worker: number): Promise<void> => {
      for (let index = 0; index < 10_000 && !stop; index++) {
        const name = `load-${worker}-${index}`;
        const answer = await http("POST", `${victim.url}/v1/entries`, person(name), {
          "plexus-write-concern": "site; timeout=2000",
        }).catch(() => null);
        if (answer === null) return; // the node is gone: this write was never acknowledged
        if (answer.status === 201) acknowledged.push(name);
      }
    };
    const writers = Array.from({ length: 8 }, (_, worker) => writer(worker));
    await eventually("some acknowledged writes", async () => acknowledged.length >= 40);
    await cluster.stop("e1", "SIGKILL");
    stop = true;
    await Promise.all(writers);
    for (const name of acknowledged)
      assert.ok(await holds(url("e2"), `cn=${name},${base}`), `${name} was acknowledged but e2 lacks it`);
    await cluster.start("e1", "east", { port });
    for (const name of acknowledged)
      assert.ok(await holds(url("e1"), `cn=${name},${base}`), `${name} was acknowledged but e1 lost it`);
    await eventually("w2 holding every acknowledged write", async () => {
      for (const name of acknowledged) if (!(await holds(url("w2"), `cn=${name},${base}`))) return false;
      return true;
    });
  });

  it("a watch stream sends every change from its position, replicated ones included", async () => {
    const node = url("w1");
    const from = ((await http("GET", `${node}/v1/status`)).body as { usn: number }).usn;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 15_000);
    const response = await fetch(`${node}/v1/watch?after=${from}`, { signal: abort.signal });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
    const created = await http("POST", `${url("e2")}/v1/entries`, person("watched"));
    assert.equal(created.status, 201);
    const guid = (created.body as { guid: string }).guid;
    assert.equal((await http("DELETE", entryPath(url("e2"), `cn=watched,${base}`))).status, 200);
    const reader = response.body?.getReader();
    assert.ok(reader !== undefined);
    const seen: { guid: string; dn: string | null; deleted: boolean; usn: number }[] = [];
    try {
      for await (const block of sseBlocks(reader)) {
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (data !== undefined) seen.push(JSON.parse(data));
        if (seen.some((event) => event.guid === guid && event.deleted)) break;
      }
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
    assert.ok(
      seen.some((event) => event.guid === guid && event.deleted && event.dn === null),
      "the delete made on e2 arrives on w1's stream",
    );
    assert.ok(
      seen.every((event) => event.usn > from),
      "nothing before the position",
    );
    assert.deepEqual(
      seen.map((event) => event.usn),
      [...seen.map((event) => event.usn)].sort((a, b) => a - b),
      "in USN order",
    );
    const bad = await http("GET", `${node}/v1/watch?after=-1`);
    assert.equal(bad.status, 400);
  });

  it("a node killed with SIGKILL restarts on its data directory and catches up both ways", async () => {
    const victim = cluster.node("w2");
    const port = Number(new URL(victim.url).port);
    await cluster.stop("w2", "SIGKILL");
    for (let index = 0; index < 20; index++) {
      assert.equal(
        (await http("POST", `${url("e1")}/v1/entries`, person(`while-down-${index}`))).status,
        201,
      );
    }
    await cluster.start("w2", "west", { port });
    await eventually("w2 catching up", () => holds(url("w2"), `cn=while-down-19,${base}`));
    assert.equal((await http("POST", `${url("w2")}/v1/entries`, person("after-restart"))).status, 201);
    await eventually("e1 receiving w2's write after its restart", () =>
      holds(url("e1"), `cn=after-restart,${base}`),
    );
    // An open watch stream must not hold a stopping node open.
    const watching = new AbortController();
    const stream = await fetch(`${url("w2")}/v1/watch`, { signal: watching.signal });
    assert.equal(stream.status, 200);
    // Writes under way when SIGTERM arrives finish or are refused; none fails inside the node.
    const statuses: number[] = [];
    const acknowledged: string[] = [];
    let writing = true;
    const writers = Array.from({ length: 4 }, async (_, worker) => {
      for (let index = 0; index < 10_000 && writing; index++) {
        const name = `term-${worker}-${index}`;
        const answer = await http("POST", `${url("w2")}/v1/entries`, person(name)).catch(() => null);
        if (answer === null) return;
        statuses.push(answer.status);
        if (answer.status === 201) acknowledged.push(name);
      }
    });
    await eventually("writes under way", async () => acknowledged.length >= 20);
    assert.equal(await cluster.stop("w2", "SIGTERM"), 0, "SIGTERM stops the node cleanly");
    writing = false;
    await Promise.all(writers);
    watching.abort();
    assert.match(cluster.node("w2").log, /"event":"stopped"/);
    assert.ok(
      statuses.every((status) => status === 201 || status === 503),
      `statuses: ${[...new Set(statuses)].join(", ")}`,
    );
    await cluster.start("w2", "west", { port });
    for (const name of acknowledged)
      assert.ok(await holds(url("w2"), `cn=${name},${base}`), `${name} was acknowledged before SIGTERM`);
  });
});
