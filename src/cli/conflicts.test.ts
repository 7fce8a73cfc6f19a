import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { conflictsCommand } from "./repl.ts";

/**
 * `plexus conflicts` against a stand-in node that holds three conflicts and answers
 * GET /v1/conflicts in pages as a node does (`next` set on a full page): a --limit below the
 * count must say that more remain, not present the first ones as all there are.
 */
describe("plexus conflicts --limit", () => {
  const items = ["a", "b", "c"].map((name, index) => ({
    dn: `cn=${name}\\0ACNF:0${index},dc=example,dc=com`,
    guid: `0${index}`,
    kind: "name",
    claimedRdn: `cn=${name}`,
    claimedParent: "ff",
    claimedParentDn: "dc=example,dc=com",
    usnChanged: index + 1,
  }));
  let server: Server;
  let url: string;
  before(async () => {
    server = createServer((request, response) => {
      const query = new URL(request.url ?? "/", "http://node").searchParams;
      const limit = Number(query.get("limit") ?? 100);
      const start = items.findIndex((item) => item.guid === query.get("after")) + 1;
      const page = items.slice(start, start + limit);
      const full = page.length === limit;
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ conflicts: page, ...(full ? { next: page.at(-1)?.guid } : {}) }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function run(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = "";
    let stderr = "";
    const code = await conflictsCommand(
      args,
      { write: (text: string) => (stdout += text) },
      { write: (text: string) => (stderr += text) },
      { PLEXUS_URL: url },
    );
    return { code, stdout, stderr };
  }

  it("says that more remain beyond --limit, in text and in JSON", async () => {
    const text = await run(["--limit", "2"]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^# 2 conflicts shown; more remain beyond --limit 2$/m);
    const json = JSON.parse((await run(["--limit", "2", "--json"])).stdout) as {
      conflicts: unknown[];
      more: boolean;
    };
    assert.equal(json.conflicts.length, 2);
    assert.equal(json.more, true);
  });

  it("says nothing of more when the limit is exactly the count, or above it", async () => {
    for (const limit of ["3", "4"]) {
      const text = await run(["--limit", limit]);
      assert.match(text.stdout, /^# 3 conflicts$/m, `--limit ${limit}`);
      const json = JSON.parse((await run(["--limit", limit, "--json"])).stdout) as { more: boolean };
      assert.equal(json.more, false, `--limit ${limit}`);
    }
  });
});
