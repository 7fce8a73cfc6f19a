import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../../test/support/in-process-node.ts";
import { bodyDepthMax } from "./api.ts";

/**
 * What the client API refuses in a body or a parameter as a whole, on a node in this process:
 * bodies nested too deep, strings that are not well-formed Unicode, a body on a route that
 * takes none, counts that are not plain digits. Each is a 400 problem that changes nothing.
 */
const base = "dc=example,dc=com";
const requestTimeoutMs = 10_000;
/** Nesting that ran JSON.stringify (and the core's messages) out of stack: far beyond bodyDepthMax. */
const deepNesting = 20_000;

interface Answer {
  readonly status: number;
  readonly type: string;
  readonly body: Record<string, unknown>;
}

describe("the client API's checks of whole bodies", { timeout: 60_000 }, () => {
  let node: InProcessNode;

  before(async () => {
    node = await startInProcessNode("bodies", "east");
  });

  after(async () => {
    await node.close();
  });

  /** Sends `body` as raw JSON text (so that it may hold escapes JSON.stringify would not write). */
  const call = async (method: string, path: string, body?: string): Promise<Answer> => {
    const response = await fetch(`${node.url}${path}`, {
      method,
      ...(body === undefined ? {} : { body, headers: { "content-type": "application/json" } }),
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    const text = await response.text();
    return {
      status: response.status,
      type: response.headers.get("content-type") ?? "",
      body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>),
    };
  };
  const entry = (dn: string): string => `/v1/entries/${encodeURIComponent(dn)}`;
  const assertRefused = (answer: Answer): void => {
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.match(answer.type, /^application\/problem\+json/);
    assert.equal(answer.body.code, "invalid-request", JSON.stringify(answer.body));
  };
  const person = (cn: string, sn = "s"): string =>
    `{"dn":"cn=${cn},${base}","attributes":{"objectClass":["person"],"cn":["${cn}"],"sn":["${sn}"]}}`;
  const exists = async (dn: string): Promise<boolean> => (await call("GET", entry(dn))).status === 200;

  it("refuses a body nested deeper than bodyDepthMax with a 400, not a 500", async () => {
    const list = (depth: number): string => "[".repeat(depth) + "]".repeat(depth);
    assertRefused(await call("POST", "/v1/search", `{"base":${list(deepNesting)}}`));
    assertRefused(await call("POST", "/v1/search", `{"base":"${base}","attributes":[${list(deepNesting)}]}`));
    const created = await call("POST", "/v1/entries", person("deep"));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const change = `{"changes":[{"operation":${list(deepNesting)},"attribute":"sn","values":["x"]}]}`;
    assertRefused(await call("PATCH", entry(`cn=deep,${base}`), change));
    const batch = `{"operations":[{"op":"modify","dn":"cn=deep,${base}","changes":[{"operation":${list(deepNesting)},"attribute":"sn","values":["x"]}]}]}`;
    assertRefused(await call("POST", "/v1/batch", batch));
    // The limit itself: a body of exactly bodyDepthMax levels is read (and refused by the route, for its shape).
    const atLimit = await call("POST", "/v1/search", `{"base":${list(bodyDepthMax - 1)}}`);
    assert.equal(atLimit.body.detail, "base must be a DN string");
    const read = await call("GET", `${entry(`cn=deep,${base}`)}?attributes=sn`);
    assert.deepEqual(read.body.attributes, { sn: ["s"] });
  });

  it("refuses a lone surrogate in a DN, a value or a key, and stores nothing", async () => {
    assertRefused(await call("POST", "/v1/entries", person("lone\\ud800")));
    assertRefused(await call("POST", "/v1/entries", person("lone", "\\udc00x")));
    const key = `{"dn":"cn=lone,${base}","attributes":{"objectClass":["person"],"cn":["lone"],"sn":["s"],"d\\ud800":["x"]}}`;
    assertRefused(await call("POST", "/v1/entries", key));
    assertRefused(
      await call(
        "POST",
        "/v1/batch",
        `{"operations":[${person("lone\\ud800")}]}`.replace('{"dn"', '{"op":"create","dn"'),
      ),
    );
    const found = await call(
      "POST",
      "/v1/search",
      JSON.stringify({ base, filter: "(cn=lone*)", attributes: ["1.1"] }),
    );
    assert.deepEqual(found.body.entries, []);
    // A pair is one character, and fine.
    const pair = await call("POST", "/v1/entries", person("pair\\ud83d\\ude00"));
    assert.equal(pair.status, 201, JSON.stringify(pair.body));
    assert.ok(await exists(`cn=pair😀,${base}`));
  });

  it("refuses a body that is not UTF-8 rather than storing U+FFFD for its bad bytes, and stores nothing", async () => {
    /** `text` as UTF-8 with `bytes` in place of its `@`. */
    const withBytes = (text: string, bytes: readonly number[]): Buffer => {
      const [before = "", after = ""] = text.split("@");
      return Buffer.concat([Buffer.from(before, "utf8"), Buffer.from(bytes), Buffer.from(after, "utf8")]);
    };
    const send = async (path: string, body: Buffer): Promise<Answer> => {
      const response = await fetch(`${node.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      return {
        status: response.status,
        type: response.headers.get("content-type") ?? "",
        body: (await response.json()) as Record<string, unknown>,
      };
    };
    // A stray byte, a cut-short sequence, an overlong "/", an encoded surrogate (CESU-8).
    for (const bytes of [[0xff], [0xe2, 0x82], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
      const refused = await send("/v1/entries", withBytes(person("bad@"), bytes));
      assertRefused(refused);
      assert.match(String(refused.body.detail), /not UTF-8/);
      assertRefused(await send("/v1/entries", withBytes(person("bad", "v@"), bytes)));
      const batch = `{"operations":[${person("bad@").replace('{"dn"', '{"op":"create","dn"')}]}`;
      assertRefused(await send("/v1/batch", withBytes(batch, bytes)));
    }
    const found = await call(
      "POST",
      "/v1/search",
      JSON.stringify({ base, filter: "(cn=bad*)", attributes: ["1.1"] }),
    );
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.deepEqual(found.body.entries, []);
    // Well-formed UTF-8 (after a byte order mark, which is skipped) is taken as it is.
    const good = await send("/v1/entries", withBytes(`@${person("good-é😀")}`, [0xef, 0xbb, 0xbf]));
    assert.equal(good.status, 201, JSON.stringify(good.body));
    assert.ok(await exists(`cn=good-é😀,${base}`));
  });

  it("refuses a body on DELETE rather than ignoring it", async () => {
    for (const cn of ["kept", "kept-child"]) {
      const dn = cn === "kept" ? `cn=kept,${base}` : `cn=kept-child,cn=kept,${base}`;
      const created = await call(
        "POST",
        "/v1/entries",
        JSON.stringify({ dn, attributes: { objectClass: ["person"], cn: [cn], sn: ["s"] } }),
      );
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }
    assertRefused(await call("DELETE", entry(`cn=kept-child,cn=kept,${base}`), '{"subtree":false}'));
    assertRefused(await call("DELETE", entry(`cn=kept,${base}`), '{"subtree":true}'));
    assertRefused(await call("DELETE", entry(`cn=kept,${base}`), "[]"));
    assert.ok(await exists(`cn=kept-child,cn=kept,${base}`));
    const emptyBody = await call("DELETE", entry(`cn=kept-child,cn=kept,${base}`), "{}");
    assert.equal(emptyBody.status, 200, JSON.stringify(emptyBody.body));
  });

  it("refuses a body with a content coding (415), rather than reading it as plain JSON", async () => {
    for (const coding of ["gzip", "deflate, gzip"]) {
      const response = await fetch(`${node.url}/v1/entries`, {
        method: "POST",
        headers: { "content-type": "application/json", "content-encoding": coding },
        body: person("coded"),
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      assert.equal(response.status, 415, coding);
      assert.equal(((await response.json()) as { code: string }).code, "unsupported-media-type");
    }
    assert.equal(await exists(`cn=coded,${base}`), false);
    const identity = await fetch(`${node.url}/v1/entries`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "identity" },
      body: person("coded"),
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    assert.equal(identity.status, 201);
    const bodiless = await fetch(`${node.url}/v1/conflicts`, {
      headers: { "content-encoding": "gzip" },
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    assert.equal(bodiless.status, 200, "no body, nothing coded");
  });

  it("takes GET /v1/conflicts?limit= as plain digits only", async () => {
    for (const limit of ["1e2", "0x10", "%2010", "10.0", "+5", "-0"])
      assertRefused(await call("GET", `/v1/conflicts?limit=${limit}`));
    const plain = await call("GET", "/v1/conflicts?limit=10");
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
  });
});
