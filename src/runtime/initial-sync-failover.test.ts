import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { entryPath, eventually, http, LocalCluster } from "../../test/support/cluster.ts";

/**
 * A node joining with two --join URLs whose admitting node dies in the middle of the initial
 * sync goes on from the other one. It used to keep pulling from the dead node until the
 * initial sync timeout (30 minutes), saying nothing above debug level, with a healthy node
 * named on its command line.
 */
const topology = { sites: [{ name: "hq" }], links: [], settings: { intraSitePullIntervalMs: 2_000 } };
const timings = { pullTimeoutMs: 3_000, retryBackoffBaseMs: 100, retryBackoffMaxMs: 500 };
const base = "dc=example,dc=com";
/** Enough for several pages (bytes bound them at 1 MiB): the sync is under way when n1 dies. */
const batches = 6;
const batchEntries = 1_000;
const padding = "x".repeat(1_500);

/** The entries of people directly under the base, counted page by page. */
async function personCount(url: string): Promise<number> {
  let count = 0;
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const answer = await http("POST", `${url}/v1/search`, {
      base,
      scope: "one",
      filter: "(objectClass=person)",
      attributes: ["1.1"],
      sizeLimit: 100_000,
      pageSize: 1_000,
      ...(cursor === undefined ? {} : { cursor }),
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const body = answer.body as { entries: unknown[]; nextCursor?: string | null };
    count += body.entries.length;
    if (typeof body.nextCursor !== "string") return count;
    cursor = body.nextCursor;
  }
  throw new Error("more than 100 pages");
}

describe("an initial sync whose admitting node dies", { timeout: 120_000 }, () => {
  const cluster = new LocalCluster(topology, timings);

  after(async () => {
    await cluster.stopAll();
  });

  it("goes on from the other join URL", async () => {
    const n1 = await cluster.start("n1", "hq");
    const n2 = await cluster.start("n2", "hq", { join: [n1.url] });
    for (let batch = 0; batch < batches; batch++) {
      const operations = Array.from({ length: batchEntries }, (_, index) => ({
        op: "create",
        dn: `cn=b${batch}-${index},${base}`,
        attributes: { objectClass: ["person"], cn: [`b${batch}-${index}`], sn: [padding] },
      }));
      const answer = await http("POST", `${n1.url}/v1/batch`, { operations });
      assert.equal(answer.status, 200);
    }
    const last = `cn=b${batches - 1}-${batchEntries - 1},${base}`;
    await eventually(
      "n2 holding every entry",
      async () => (await http("GET", entryPath(n2.url, last))).status === 200,
      60_000,
    );
    const joining = cluster.start("j", "hq", { join: [n1.url, n2.url], timeoutMs: 45_000 });
    await eventually("j syncing from n1", async () =>
      /"event":"joined","through":"n1"/.test(cluster.node("j").log),
    );
    await cluster.stop("n1", "SIGKILL");
    const j = await joining;
    assert.match(j.log, /"event":"initial-sync-stalled","from":"n1"/);
    assert.match(j.log, /"event":"joined","through":"n2"/);
    assert.equal((await http("GET", entryPath(j.url, last))).status, 200, "j holds every entry");
    assert.equal(await personCount(j.url), await personCount(n2.url), "j holds what n2 holds");
  });
});
