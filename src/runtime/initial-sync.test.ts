import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { eventually, http, LocalCluster } from "../../test/support/cluster.ts";

/**
 * A joining node killed (SIGKILL) in the middle of its initial sync resumes from the watermark
 * its last committed page left, not from zero, and ends with exactly the source's entries.
 */
const topology = {
  sites: [{ name: "hq" }],
  links: [],
  settings: { intraSitePullIntervalMs: 1_000, notifyDelayMs: 5 },
};
const timings = { pullTimeoutMs: 5_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };
const base = "dc=example,dc=com";
/** Enough entries that the sync takes many pages (and the kill lands inside it). */
const entries = 6_000;
const batch = 1_000;
/** A sync of `entries` on a loaded 2-core machine can take far longer than a plain start. */
const syncTimeoutMs = 120_000;

/** The syncFromUsn of the node's latest `joined` log line. */
function lastJoinFrom(log: string): number | null {
  const lines = log.split("\n").filter((line) => line.includes('"event":"joined"'));
  const last = lines.at(-1);
  if (last === undefined) return null;
  return (JSON.parse(last) as { syncFromUsn: number }).syncFromUsn;
}

/** The USN up to which the node's store has committed pages from `partner` (0 before any). */
function committedFrom(dataDirectory: string, partner: string): number {
  let db: Database.Database;
  try {
    db = new Database(join(dataDirectory, "plexus.db"), { readonly: true, fileMustExist: true });
  } catch {
    return 0; // not created yet
  }
  try {
    const row = db
      .prepare<[string], { object_usn: number }>("SELECT object_usn FROM watermarks WHERE partner = ?")
      .get(partner);
    return row?.object_usn ?? 0;
  } catch {
    return 0; // the schema is being created
  } finally {
    db.close();
  }
}

/** The number of person entries under the base, read page by page. */
async function count(url: string): Promise<number> {
  let total = 0;
  let cursor: string | null = null;
  do {
    const answer = await http("POST", `${url}/v1/search`, {
      base,
      scope: "one",
      filter: "(objectClass=person)",
      attributes: ["cn"],
      sizeLimit: entries * 2,
      pageSize: 1_000,
      ...(cursor === null ? {} : { cursor }),
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const page = answer.body as { entries: unknown[]; nextCursor: string | null };
    total += page.entries.length;
    cursor = page.nextCursor;
  } while (cursor !== null);
  return total;
}

describe("initial sync after a crash", { timeout: 300_000 }, () => {
  const cluster = new LocalCluster(topology, timings);

  before(async () => {
    const first = await cluster.start("n1", "hq");
    for (let start = 0; start < entries; start += batch) {
      const operations = Array.from({ length: batch }, (_, i) => ({
        op: "create",
        dn: `cn=user${start + i},${base}`,
        attributes: {
          objectClass: ["person"],
          cn: [`user${start + i}`],
          sn: ["S"],
          description: ["x".repeat(200)],
        },
      }));
      const answer = await http("POST", `${first.url}/v1/batch`, { operations });
      assert.equal(answer.status, 200, JSON.stringify(answer.body).slice(0, 500));
    }
  });

  after(async () => {
    await cluster.stopAll();
  });

  it("resumes from its last page, not from zero, and ends complete", async () => {
    const source = cluster.node("n1").url;
    const starting = cluster.start("n2", "hq", { join: [source], timeoutMs: syncTimeoutMs });
    const failed = starting.then(
      () => "served",
      () => "killed",
    );
    const n2 = cluster.node("n2");
    // Crash it hard once its first page has committed (read from its database, read-only).
    await eventually(
      "n2 committing its first page",
      async () => committedFrom(n2.dataDirectory, "n1") > 0,
      60_000,
    );
    n2.stopping = true;
    n2.process?.kill("SIGKILL");
    assert.equal(await failed, "killed", "the sync ended before the kill: raise `entries`");

    const restarted = await cluster.start("n2", "hq", { join: [source], timeoutMs: syncTimeoutMs });
    const resumedFrom = lastJoinFrom(restarted.log);
    assert.ok(
      resumedFrom !== null && resumedFrom > 0,
      `the second sync started from usn ${String(resumedFrom)}`,
    );
    assert.equal(await count(restarted.url), entries);
    assert.equal(await count(source), entries);
  });
});
