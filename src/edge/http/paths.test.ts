import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../../test/support/in-process-node.ts";
import { dnLengthMax } from "../../core/directory/dn.ts";
import { requestHeadBytesMax } from "./server.ts";

/**
 * The client API's paths, methods and parameters on a node in this process: DNs as long as
 * the core allows in every path route, what Node's parser refuses, a wrong method, unknown
 * parameters, empty names, attribute selections and search cursors.
 */
const suffix = "dc=example,dc=com";
/** Characters of each ancestor's `ou` value: under dnValueLengthMax, so a maximal DN needs several levels. */
const ancestorValueLength = 1000;
const ancestorLevels = 8;
const requestTimeoutMs = 10_000;

interface Answer {
  readonly status: number;
  readonly type: string;
  readonly allow: string | null;
  readonly body: Record<string, unknown>;
}

/** A DN of exactly dnLengthMax characters, made of `character`, and its ancestors (top first). */
function maximalDn(character: string): { ancestors: string[]; dn: string; leafValue: string } {
  const ancestors: string[] = [];
  let parent = suffix;
  for (let level = 0; level < ancestorLevels; level++) {
    parent = `ou=${character.repeat(ancestorValueLength - level)}${level},${parent}`;
    ancestors.push(parent);
  }
  const leafValue = character.repeat(dnLengthMax - "cn=,".length - parent.length);
  return { ancestors, dn: `cn=${leafValue},${parent}`, leafValue };
}

describe("the client API's paths, methods and parameters", { timeout: 60_000 }, () => {
  let node: InProcessNode;

  before(async () => {
    node = await startInProcessNode("paths", "east");
  });

  after(async () => {
    await node.close();
  });

  const call = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const response = await fetch(`${node.url}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    const text = await response.text();
    return {
      status: response.status,
      type: response.headers.get("content-type") ?? "",
      allow: response.headers.get("allow"),
      body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>),
    };
  };
  const entry = (dn: string): string => `/v1/entries/${encodeURIComponent(dn)}`;
  const assertProblem = (answer: Answer, status: number, code: string): void => {
    assert.equal(answer.status, status, JSON.stringify(answer.body));
    assert.match(answer.type, /^application\/problem\+json/);
    assert.equal(answer.body.code, code, JSON.stringify(answer.body));
  };

  const roundTrip = async (character: string, renamed: string): Promise<void> => {
    const { ancestors, dn, leafValue } = maximalDn(character);
    assert.equal(dn.length, dnLengthMax);
    for (const ancestor of ancestors) {
      const value = ancestor.slice("ou=".length, ancestor.indexOf(","));
      const created = await call("POST", "/v1/entries", {
        dn: ancestor,
        attributes: { objectClass: ["organizationalUnit"], ou: [value] },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }
    const created = await call("POST", "/v1/entries", {
      dn,
      attributes: { objectClass: ["person"], cn: [leafValue], sn: ["long"] },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const read = await call("GET", `${entry(dn)}?attributes=sn`);
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.deepEqual(read.body.attributes, { sn: ["long"] });
    const modified = await call("PATCH", entry(dn), {
      changes: [{ operation: "replace", attribute: "sn", values: ["longer"] }],
    });
    assert.equal(modified.status, 200, JSON.stringify(modified.body));
    // The new RDN keeps the DN at the limit: one character changed.
    const newValue = renamed + leafValue.slice(1);
    const moved = await call("POST", `${entry(dn)}/rename`, { newRdn: `cn=${newValue}` });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    const newDn = dn.replace(`cn=${leafValue}`, `cn=${newValue}`);
    assert.equal(newDn.length, dnLengthMax);
    assertProblem(await call("GET", entry(dn)), 404, "no-such-entry");
    const gone = await call("DELETE", entry(newDn));
    assert.equal(gone.status, 200, JSON.stringify(gone.body));
    assertProblem(await call("GET", entry(newDn)), 404, "no-such-entry");
  };

  it("serves a DN of exactly dnLengthMax ASCII characters through every path route", async () => {
    await roundTrip("a", "b");
  });

  it("serves a DN of exactly dnLengthMax CJK characters (9 characters each encoded) through every path route", async () => {
    await roundTrip("中", "文");
  });

  it("answers a DN one character over the limit with the core's limit-exceeded, not a routing error", async () => {
    const { dn } = maximalDn("a");
    assertProblem(await call("GET", entry(`a${dn}`)), 400, "limit-exceeded");
  });

  it("answers a request head beyond requestHeadBytesMax with 431 headers-too-large as problem+json", async () => {
    const answer = await call("GET", `/v1/entries/${"a".repeat(requestHeadBytesMax)}`);
    assertProblem(answer, 431, "headers-too-large");
  });

  it("answers a known path with a wrong method 405 method-not-allowed and an Allow header", async () => {
    const put = await call("PUT", entry(`cn=x,${suffix}`), {});
    assertProblem(put, 405, "method-not-allowed");
    assert.equal(put.allow, "DELETE, GET, HEAD, PATCH");
    const search = await call("GET", "/v1/search");
    assertProblem(search, 405, "method-not-allowed");
    assert.equal(search.allow, "POST");
    assertProblem(await call("GET", "/v1/nothing"), 404, "not-found");
  });

  it("refuses unknown query parameters on every /v1 route with 400 invalid-request", async () => {
    const routes: [string, string, unknown?][] = [
      ["GET", "/v1/status?x=1"],
      ["GET", `${entry(suffix)}?x=1`],
      ["DELETE", `${entry(`cn=nobody,${suffix}`)}?x=1`],
      ["PATCH", `${entry(`cn=nobody,${suffix}`)}?x=1`, { changes: [] }],
      ["POST", `${entry(`cn=nobody,${suffix}`)}/rename?x=1`, { newRdn: "cn=y" }],
      ["POST", "/v1/entries?x=1", { dn: `cn=y,${suffix}`, attributes: {} }],
      ["POST", "/v1/search?x=1", { base: suffix }],
      ["POST", "/v1/batch?x=1", { operations: [] }],
      ["GET", "/v1/conflicts?x=1"],
      ["GET", "/v1/watch?x=1"],
      ["GET", "/v1/locate?x=1"],
      ["POST", "/v1/replicate?x=1", {}],
    ];
    for (const [method, path, body] of routes) {
      const answer = await call(method, path, body);
      assertProblem(answer, 400, "invalid-request");
      assert.match(String(answer.body.detail), /unknown parameter 'x'/, `${method} ${path}`);
    }
  });

  it("says what is true of an empty DN, an empty base and a DN without a parent", async () => {
    const top = await call("POST", "/v1/entries", {
      dn: "cn=x",
      attributes: { objectClass: ["person"], cn: ["x"], sn: ["x"] },
    });
    assertProblem(top, 422, "no-such-parent");
    assert.match(String(top.body.detail), /^cn=x has no parent entry: a DN must be under a partition/);
    const base = await call("POST", "/v1/search", { base: "" });
    assertProblem(base, 404, "no-such-entry");
    assert.match(String(base.body.detail), /^the base DN is empty/);
    for (const [method, path, body] of [
      ["GET", "/v1/entries/"],
      ["DELETE", "/v1/entries/"],
      ["PATCH", "/v1/entries/", { changes: [] }],
      ["POST", "/v1/entries//rename", { newRdn: "cn=y" }],
    ] as [string, string, unknown?][]) {
      const answer = await call(method, path, body);
      assertProblem(answer, 404, "no-such-entry");
      assert.match(String(answer.body.detail), /^the DN is empty/, `${method} ${path}`);
    }
    const moved = await call("POST", `${entry(suffix)}/rename`, { newRdn: "dc=x", newParent: "" });
    assertProblem(moved, 422, "no-such-parent");
    assert.match(String(moved.body.detail), /^newParent is the empty DN/);
  });

  it("refuses an attribute selection naming something that is not an attribute type", async () => {
    const read = await call("GET", `${entry(suffix)}?attributes=cn,bad%20attr`);
    assertProblem(read, 400, "invalid-request");
    assert.match(String(read.body.detail), /"bad attr" is not an attribute type/);
    const search = await call("POST", "/v1/search", { base: suffix, attributes: ["bad attr"] });
    assertProblem(search, 400, "invalid-request");
    for (const selection of ["*", "+", "1.1", "cn,sn", "2.5.4.3", ""]) {
      const answer = await call("GET", `${entry(suffix)}?attributes=${encodeURIComponent(selection)}`);
      assert.equal(answer.status, 200, selection);
    }
  });

  it("refuses a search cursor used with another search", async () => {
    for (const name of ["c1", "c2", "c3"]) {
      const created = await call("POST", "/v1/entries", {
        dn: `cn=${name},${suffix}`,
        attributes: { objectClass: ["person"], cn: [name], sn: ["cursor"] },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }
    const search = { base: suffix, filter: "(sn=cursor)", pageSize: 1 };
    const first = await call("POST", "/v1/search", search);
    assert.equal(first.status, 200);
    const cursor = first.body.nextCursor;
    assert.equal(typeof cursor, "string");
    const next = await call("POST", "/v1/search", { ...search, cursor });
    assert.equal(next.status, 200);
    assert.notDeepEqual(next.body.entries, first.body.entries);
    for (const other of [
      { ...search, base: `cn=c1,${suffix}` },
      { ...search, filter: "(cn=*)" },
      { ...search, scope: "one" },
      { ...search, attributes: ["cn"] },
    ]) {
      const answer = await call("POST", "/v1/search", { ...other, cursor });
      assertProblem(answer, 400, "invalid-request");
      assert.equal(
        answer.body.detail,
        "the cursor belongs to another search: page with the same base, scope, filter and attributes",
      );
    }
    const forged = Buffer.from(JSON.stringify({ offset: 1 })).toString("base64url");
    assertProblem(await call("POST", "/v1/search", { ...search, cursor: forged }), 400, "invalid-request");
  });
});
