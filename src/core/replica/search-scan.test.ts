import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { makeDirectory } from "../../../test/support/replicas.ts";
import { unwrap } from "../result.ts";
import { type SearchPosition, type SearchRequest, search } from "./read.ts";

/**
 * A search examines at most searchScanMax entries. When that stops it, the result must say it
 * was cut short and where to go on: a selective filter over a large subtree otherwise returned
 * fewer entries than exist, with nothing to tell the client.
 */
const base = "dc=example,dc=com";

function directoryWithPeople(): ReturnType<typeof makeDirectory>[number] {
  const [a] = makeDirectory(["node-a"]);
  assert.ok(a !== undefined);
  for (const ou of ["ou=a", "ou=b", "ou=c"]) {
    unwrap(
      a.replica.writeOne({
        op: "add",
        dn: `${ou},${base}`,
        attributes: { objectClass: ["organizationalUnit"] },
      }),
    );
    for (let index = 0; index < 12; index++) {
      const cn = `cn=p${String(index).padStart(2, "0")},${ou},${base}`;
      // One in four is a manager: a selective filter.
      const title = index % 4 === 0 ? ["manager"] : ["staff"];
      unwrap(
        a.replica.writeOne({ op: "add", dn: cn, attributes: { objectClass: ["person"], sn: ["x"], title } }),
      );
    }
  }
  return a;
}

/** Every page of `request` with the scan limit `scanMax`, following `next`. */
function pages(a: ReturnType<typeof directoryWithPeople>, request: SearchRequest, scanMax: number) {
  const found: string[][] = [];
  let after: SearchPosition | undefined;
  for (let guard = 0; guard < 1_000; guard++) {
    const page = unwrap(search(a.store, { ...request, ...(after === undefined ? {} : { after }) }, scanMax));
    found.push(page.entries.map((entry) => entry.dn));
    if (!page.truncated) return found;
    assert.ok(page.next !== null, "a truncated page says where to go on");
    after = page.next;
  }
  throw new Error("the pages never ended");
}

describe("search: the scan limit", () => {
  const request: SearchRequest = { base, scope: "sub", filter: "(title=manager)", attributes: ["1.1"] };

  it("a page the scan limit stops is truncated, and the pages after it find the rest", () => {
    const a = directoryWithPeople();
    const whole = unwrap(search(a.store, request)).entries.map((entry) => entry.dn);
    assert.equal(whole.length, 9);
    for (const scanMax of [1, 2, 5, 7, 13, 40]) {
      const found = pages(a, request, scanMax);
      assert.deepEqual(found.flat(), whole, `scan limit ${scanMax}`);
      assert.ok(found.length > 1, `scan limit ${scanMax}: more than one page`);
    }
  });

  it("a page can hold no entry at all and still go on", () => {
    const a = directoryWithPeople();
    const found = pages(a, request, 2);
    assert.ok(
      found.some((page) => page.length === 0),
      "with 2 entries examined per page, some pages match nothing",
    );
  });

  it("one level and a size limit together", () => {
    const a = directoryWithPeople();
    const oneLevel: SearchRequest = {
      base: `ou=b,${base}`,
      scope: "one",
      filter: "(title=staff)",
      sizeLimit: 4,
    };
    const whole: string[] = [];
    let after: SearchPosition | undefined;
    for (let guard = 0; guard < 100; guard++) {
      const page = unwrap(search(a.store, { ...oneLevel, ...(after === undefined ? {} : { after }) }, 3));
      assert.ok(page.entries.length <= 4);
      whole.push(...page.entries.map((entry) => entry.dn));
      if (!page.truncated) break;
      after = page.next ?? undefined;
    }
    assert.equal(whole.length, 9);
    assert.equal(new Set(whole).size, 9);
  });

  it("without the limit in reach, nothing changes", () => {
    const a = directoryWithPeople();
    const page = unwrap(search(a.store, request));
    assert.equal(page.truncated, false);
    assert.equal(page.next, null);
  });
});
