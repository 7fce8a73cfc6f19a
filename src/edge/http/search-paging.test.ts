import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../../test/support/in-process-node.ts";
import { pagedSearchEntriesMax, searchSizeLimitMax } from "../../core/replica/read.ts";

/**
 * Paged searches (POST /v1/search with pageSize and cursors) on a node in this process: every
 * entry once, in the order of the unpaged search, parents before children; sizeLimit counted
 * over all the pages; a cursor checked, whatever it holds.
 */
const base = "dc=example,dc=com";
const requestTimeoutMs = 10_000;
const people = 120;
const pagesMax = 500;

interface Page {
  readonly entries: { dn: string }[];
  readonly truncated: boolean;
  readonly nextCursor: string | null;
}

describe("paged searches", { timeout: 60_000 }, () => {
  let node: InProcessNode;

  const post = async (
    path: string,
    body: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> => {
    const response = await fetch(`${node.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  /** Every page of `search` in pages of `pageSize`: the DNs in order, and the last page. */
  const pages = async (
    search: Record<string, unknown>,
    pageSize: number,
  ): Promise<{ dns: string[]; last: Page }> => {
    const dns: string[] = [];
    let cursor: string | null = null;
    for (let count = 0; count < pagesMax; count++) {
      const answer = await post("/v1/search", {
        ...search,
        pageSize,
        ...(cursor === null ? {} : { cursor }),
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const page = answer.body as unknown as Page;
      dns.push(...page.entries.map((entry) => entry.dn));
      cursor = page.nextCursor;
      if (cursor === null) return { dns, last: page };
    }
    throw new Error(`more than ${pagesMax} pages`);
  };

  before(async () => {
    node = await startInProcessNode("paging", "east");
    const operations: unknown[] = [
      {
        op: "create",
        dn: `ou=people,${base}`,
        attributes: { objectClass: ["organizationalUnit"], ou: ["people"] },
      },
      {
        op: "create",
        dn: `ou=teams,${base}`,
        attributes: { objectClass: ["organizationalUnit"], ou: ["teams"] },
      },
    ];
    for (let index = 0; index < people; index++) {
      const parent = index % 3 === 0 ? `ou=teams,${base}` : `ou=people,${base}`;
      operations.push({
        op: "create",
        dn: `cn=p${index},${parent}`,
        attributes: { objectClass: ["person"], cn: [`p${index}`], sn: [index % 2 === 0 ? "even" : "odd"] },
      });
    }
    const answer = await post("/v1/batch", { operations });
    assert.equal(answer.status, 200, JSON.stringify(answer.body).slice(0, 500));
  });

  after(async () => {
    await node.close();
  });

  it("returns every entry once, as the unpaged search orders them, parents first", async () => {
    for (const search of [
      { base, sizeLimit: 1_000 },
      { base, filter: "(sn=even)", sizeLimit: 1_000 },
      { base: `ou=people,${base}`, scope: "one", sizeLimit: 1_000 },
    ]) {
      const whole = (await post("/v1/search", search)).body as unknown as Page;
      assert.equal(whole.nextCursor, null);
      for (const pageSize of [1, 7, 50]) {
        const { dns, last } = await pages(search, pageSize);
        assert.deepEqual(
          dns,
          whole.entries.map((entry) => entry.dn),
          `${JSON.stringify(search)} by ${pageSize}`,
        );
        assert.equal(last.truncated, false);
      }
    }
    const { dns } = await pages({ base, sizeLimit: 1_000 }, 9);
    for (const [index, dn] of dns.entries()) {
      const parent = dn.slice(dn.indexOf(",") + 1);
      if (dn !== base) assert.ok(dns.indexOf(parent) < index, `${dn} after ${parent}`);
    }
  });

  it("counts sizeLimit over all the pages, and says the last one was cut short", async () => {
    const { dns, last } = await pages({ base, sizeLimit: 25 }, 10);
    assert.equal(dns.length, 25);
    assert.equal(last.truncated, true);
    const exact = await pages({ base, filter: "(cn=p1*)", sizeLimit: 31 }, 10);
    // p1, p10–p19, p100–p119: 31 entries, exactly the limit.
    assert.equal(exact.dns.length, 31);
    assert.equal(exact.last.truncated, false);
  });

  it("takes a sizeLimit beyond one search's (a page is a search of its own), up to pagedSearchEntriesMax", async () => {
    const large = await post("/v1/search", { base, sizeLimit: searchSizeLimitMax + 1, pageSize: 10 });
    assert.equal(large.status, 200, JSON.stringify(large.body));
    assert.equal((large.body as unknown as Page).entries.length, 10);
    const over = await post("/v1/search", { base, sizeLimit: pagedSearchEntriesMax + 1 });
    assert.equal(over.status, 400);
    assert.match(String(over.body.detail), /sizeLimit must be an integer 1\.\.10000000/);
  });

  it("refuses a cursor that is not one this search made, whatever it holds", async () => {
    const first = (await post("/v1/search", { base, pageSize: 5 })).body as unknown as Page;
    const cursor = first.nextCursor as string;
    const other = await post("/v1/search", { base, filter: "(sn=odd)", pageSize: 5, cursor });
    assert.equal(other.status, 400);
    assert.match(String(other.body.detail), /another search/);
    const decoded = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as Record<string, unknown>;
    for (const position of [[{ rdnNorm: 7, guid: "x" }], [{ rdnNorm: "cn=a" }], "x", [[]], null]) {
      const forged = Buffer.from(JSON.stringify({ ...decoded, position }), "utf8").toString("base64url");
      const answer = await post("/v1/search", { base, pageSize: 5, cursor: forged });
      assert.equal(answer.status, 400, JSON.stringify({ position, body: answer.body }));
      assert.equal(answer.body.code, "invalid-request");
    }
    const negative = Buffer.from(JSON.stringify({ ...decoded, returned: -1 }), "utf8").toString("base64url");
    assert.equal((await post("/v1/search", { base, pageSize: 5, cursor: negative })).status, 400);
  });
});
