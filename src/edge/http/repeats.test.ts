import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../../test/support/in-process-node.ts";
import { keyProblem, parseJsonBody } from "./json-body.ts";

/**
 * What is given twice: a header or a query parameter that takes one value, a key in one JSON
 * object, and `__proto__` as a key. Each is a 400 naming it, never silently the first or the
 * last; a node in this process answers.
 */
const base = "dc=example,dc=com";
const requestTimeoutMs = 10_000;

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** node:http, not fetch: fetch joins a repeated header into one line, node:http sends each line. */
function send(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string | string[]>,
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      `${url}${path}`,
      {
        method,
        headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        timeout: requestTimeoutMs,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({
            status: response.statusCode ?? 0,
            body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>),
          });
        });
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}

const person = (cn: string): string =>
  JSON.stringify({ dn: `cn=${cn},${base}`, attributes: { objectClass: ["person"], cn: [cn], sn: ["s"] } });
const entry = (dn: string): string => `/v1/entries/${encodeURIComponent(dn)}`;

describe("the client API refuses what is given twice", { timeout: 60_000 }, () => {
  let node: InProcessNode;

  before(async () => {
    node = await startInProcessNode("repeats", "east");
  });

  after(async () => {
    await node.close();
  });

  const call = (
    method: string,
    path: string,
    headers: Record<string, string | string[]> = {},
    body?: string,
  ): Promise<Answer> => send(node.url, method, path, headers, body);
  const assertRefused = (answer: Answer, detail: RegExp): void => {
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.equal(answer.body.code, "invalid-request", JSON.stringify(answer.body));
    assert.match(String(answer.body.detail), detail);
  };
  const exists = async (dn: string): Promise<boolean> => (await call("GET", entry(dn))).status === 200;

  it("refuses Plexus-Write-Concern sent twice, as two lines or as a list, and writes nothing", async () => {
    for (const concern of [["local", "local"], ["local", "all"], "local, all"]) {
      const answer = await call("POST", "/v1/entries", { "plexus-write-concern": concern }, person("twice"));
      assertRefused(answer, /^plexus-write-concern holds 2 values .*send it once/);
    }
    const batch = JSON.stringify({ operations: [{ op: "delete", dn: `cn=twice,${base}` }] });
    assertRefused(
      await call("POST", "/v1/batch", { "plexus-write-concern": ["local", "local"] }, batch),
      /plexus-write-concern holds 2 values/,
    );
    assert.equal(await exists(`cn=twice,${base}`), false);
    const once = await call("POST", "/v1/entries", { "plexus-write-concern": "local" }, person("twice"));
    assert.equal(once.status, 201, JSON.stringify(once.body));
  });

  it("refuses Plexus-Session and Last-Event-ID sent twice", async () => {
    // The token of a client that has written nothing: fine once, refused twice.
    const token = "e30";
    assert.equal((await call("GET", "/v1/conflicts", { "plexus-session": token })).status, 200);
    assertRefused(
      await call("GET", entry(`cn=twice,${base}`), { "plexus-session": [token, token] }),
      /^plexus-session holds 2 values/,
    );
    assertRefused(
      await call("GET", "/v1/watch", { "last-event-id": ["1", "2"] }),
      /^last-event-id holds 2 values/,
    );
  });

  it("refuses a query parameter given twice, naming it, on every route that takes one", async () => {
    const twice: [string, string][] = [
      ["GET", "/v1/conflicts?limit=5&limit=6"],
      ["GET", "/v1/conflicts?limit=5&limit=5"],
      ["GET", `${entry(`cn=twice,${base}`)}?attributes=cn&attributes=sn`],
      ["DELETE", `${entry(`cn=twice,${base}`)}?subtree=false&subtree=true`],
      ["GET", "/v1/watch?after=1&after=1"],
      ["GET", "/v1/locate?address=10.0.0.1&address=10.0.0.2"],
    ];
    for (const [method, path] of twice) {
      const name = /\?([a-z]+)=/.exec(path)?.[1];
      assertRefused(await call(method, path), new RegExp(`^parameter '${name}' given 2 times`));
    }
    assert.ok(await exists(`cn=twice,${base}`), "the delete did not run");
    // Unknown parameters are still named first, with the accepted ones.
    assertRefused(
      await call("GET", `${entry(`cn=twice,${base}`)}?atributes=cn`),
      /^unknown parameter 'atributes' \(allowed: attributes\)/,
    );
    assertRefused(await call("GET", "/v1/status?x=1"), /^unknown parameter 'x' \(this route takes none\)/);
  });

  it("refuses a key given twice in one object of a body, naming it and where it is", async () => {
    const create = `{"dn":"cn=first,${base}","dn":"cn=last,${base}","attributes":{"objectClass":["person"],"cn":["first"],"sn":["s"]}}`;
    assertRefused(
      await call("POST", "/v1/entries", {}, create),
      /key "dn" more than once .*at the top level/,
    );
    assert.equal(await exists(`cn=last,${base}`), false);
    const values = `{"dn":"cn=dup,${base}","attributes":{"objectClass":["person"],"cn":["dup"],"sn":["a"],"sn":["b"]}}`;
    assertRefused(await call("POST", "/v1/entries", {}, values), /key "sn" more than once .*in attributes\)/);
    const search = `{"base":"${base}","filter":"(cn=first)","filter":"(objectClass=*)"}`;
    assertRefused(await call("POST", "/v1/search", {}, search), /key "filter" more than once/);
    const batch = `{"operations":[{"op":"delete","dn":"cn=twice,${base}"},{"op":"delete","dn":"cn=a,${base}","subtree":false,"subtree":true}]}`;
    assertRefused(await call("POST", "/v1/batch", {}, batch), /key "subtree" .*in operations\[1\]\)/);
    assert.ok(await exists(`cn=twice,${base}`), "no operation of the batch ran");
    const replicate = '{"timeoutMs":5,"timeoutMs":10}';
    assertRefused(await call("POST", "/v1/replicate", {}, replicate), /key "timeoutMs" more than once/);
    // The same key in two objects is fine.
    const modify = JSON.stringify({
      changes: [
        { operation: "replace", attribute: "sn", values: ["x"] },
        { operation: "add", attribute: "description", values: ["y"] },
      ],
    });
    assert.equal((await call("PATCH", entry(`cn=twice,${base}`), {}, modify)).status, 200);
  });

  it("refuses __proto__ (escaped or not) and constructor.prototype as keys, with a clear message", async () => {
    const bodies = [
      `{"__proto__":{"dn":"cn=proto,${base}"},"attributes":{}}`,
      `{"dn":"cn=proto,${base}","attributes":{"objectClass":["person"],"cn":["proto"],"sn":["s"],"__proto__":["x"]}}`,
      `{"dn":"cn=proto,${base}","attributes":{"objectClass":["person"],"cn":["proto"],"sn":["s"],"\\u005f_proto__":["x"]}}`,
    ];
    for (const body of bodies)
      assertRefused(
        await call("POST", "/v1/entries", {}, body),
        /the key "__proto__" .*never reaches an object's prototype/,
      );
    const viaConstructor = `{"dn":"cn=proto,${base}","attributes":{"constructor":{"prototype":{"polluted":["x"]}}}}`;
    assertRefused(await call("POST", "/v1/entries", {}, viaConstructor), /"constructor": \{"prototype": …\}/);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(await exists(`cn=proto,${base}`), false);
  });

  it("says what is wrong with a body that is empty or not JSON", async () => {
    assertRefused(await call("POST", "/v1/search", {}, ""), /^the body is empty/);
    assertRefused(
      await call("POST", "/v1/search", {}, `{"base":"${base}",}`),
      /^the body is not valid JSON: /,
    );
  });
});

describe("keyProblem", () => {
  it("finds a repeated key at any depth, and only within one object", () => {
    assert.equal(keyProblem('{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}'), null);
    assert.match(keyProblem('{"a":1,"a":1}') ?? "", /"a" more than once .*at the top level/);
    assert.match(keyProblem('{"x":[{"a":1},{"b":{"c":1,"c":2}}]}') ?? "", /"c" .*in x\[1\]\.b\)/);
    assert.match(keyProblem('[0,{"a":1,"a":2}]') ?? "", /in \[1\]\)/);
  });

  it("compares keys as decoded, and reads strings with escapes and brackets in them", () => {
    assert.match(keyProblem('{"a":1,"\\u0061":2}') ?? "", /"a" more than once/);
    assert.equal(keyProblem('{"a":"},{\\"a\\":1,","b":"\\\\","c":"[\\"{"}'), null);
    assert.equal(keyProblem('{"a\\"":1,"a":2}'), null);
  });

  it("shortens a long key and a deep path in its message", () => {
    const key = "k".repeat(10_000);
    const message = keyProblem(`{"${key}":1,"${key}":2}`) ?? "";
    assert.ok(message.length < 400, message);
    const deep = `${'{"n":'.repeat(1_000)}{"a":1,"a":2}${"}".repeat(1_000)}`;
    const deepMessage = keyProblem(deep) ?? "";
    assert.match(deepMessage, /in n\.n\.n\.n\.….n\.n\.n\.n\)/);
  });

  it("parseJsonBody skips a byte order mark and keeps what JSON.parse reads", () => {
    assert.deepEqual(parseJsonBody('\uFEFF{"a":[1,"x"]}'), { a: [1, "x"] });
    assert.equal(parseJsonBody("3"), 3);
    assert.throws(() => parseJsonBody('{"__proto__":1}'), { statusCode: 400 });
  });
});
