import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { type InProcessNode, startInProcessNode } from "../../../test/support/in-process-node.ts";
import { batchOperationsMax } from "./batch.ts";

/** POST /v1/batch on a node in this process: per-operation results, in order, nothing from a bad batch. */
const base = "dc=example,dc=com";

interface Answer {
  readonly status: number;
  readonly session: string | null;
  readonly body: { results?: Array<Record<string, unknown>>; code?: string };
}

describe("POST /v1/batch", { timeout: 60_000 }, () => {
  let node: InProcessNode;

  before(async () => {
    node = await startInProcessNode("batch", "east");
  });

  after(async () => {
    await node.close();
  });

  const post = async (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
    const response = await fetch(`${node.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    return {
      status: response.status,
      session: response.headers.get("plexus-session"),
      body: (await response.json()) as Answer["body"],
    };
  };
  const exists = async (dn: string): Promise<boolean> => {
    const response = await fetch(`${node.url}/v1/entries/${encodeURIComponent(dn)}`);
    await response.arrayBuffer();
    return response.status === 200;
  };

  it("applies operations in order, one result each, a malformed one refused alone", async () => {
    const answer = await post(
      "/v1/batch",
      {
        operations: [
          {
            op: "create",
            dn: `ou=b,${base}`,
            attributes: { objectClass: ["organizationalUnit"], ou: ["b"] },
          },
          {
            op: "create",
            dn: `cn=x,ou=b,${base}`,
            attributes: { objectClass: ["person"], cn: ["x"], sn: ["x"] },
          },
          {
            op: "create",
            dn: `cn=x,ou=b,${base}`,
            attributes: { objectClass: ["person"], cn: ["x"], sn: ["x"] },
          },
          { op: "create", dn: `cn=y,ou=b,${base}`, attributes: { cn: "not a list" } },
          { op: "explode", dn: `cn=x,ou=b,${base}` },
          {
            op: "modify",
            dn: `cn=x,ou=b,${base}`,
            changes: [{ operation: "add", attribute: "mail", values: ["x@e"] }],
          },
          { op: "rename", dn: `cn=x,ou=b,${base}`, newRdn: "cn=z" },
          { op: "create", dn: `cn=w,ou=nowhere,${base}`, attributes: { objectClass: ["person"], cn: ["w"] } },
          { op: "delete", dn: `cn=z,ou=b,${base}` },
        ],
      },
      { "plexus-write-concern": "local" },
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const results = answer.body.results ?? [];
    assert.deepEqual(
      results.map((result) => [result.status, result.code ?? null]),
      [
        [201, null],
        [201, null],
        [409, "entry-exists"],
        [400, "invalid-value"],
        [400, "invalid-request"],
        [200, null],
        [200, null],
        [422, "no-such-parent"],
        [200, null],
      ],
    );
    assert.deepEqual((results[0] as { writeConcern: { met: boolean } }).writeConcern.met, true);
    assert.ok(answer.session !== null && answer.session.length > 2, "the session token holds the writes");
    assert.equal(await exists(`ou=b,${base}`), true);
    assert.equal(await exists(`cn=z,ou=b,${base}`), false);
  });

  it("refuses a malformed batch as a whole and writes nothing", async () => {
    const create = { op: "create", dn: `ou=never,${base}`, attributes: { ou: ["never"] } };
    for (const [body, headers] of [
      [{ operations: [] }, {}],
      [{ operations: create }, {}],
      [{ operations: [create], extra: 1 }, {}],
      [{ operations: Array.from({ length: batchOperationsMax + 1 }, () => create) }, {}],
      [{ operations: [create] }, { "plexus-write-concern": "nonsense" }],
    ] as const) {
      const answer = await post("/v1/batch", body, headers);
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      assert.equal(answer.body.code, "invalid-request");
    }
    assert.equal(await exists(`ou=never,${base}`), false);
  });

  it("refuses a write concern the servers could never meet as a whole, as a single write is", async () => {
    // This node is the only server of its topology: no other node shares its site.
    const dn = `cn=never,${base}`;
    const create = { op: "create", dn, attributes: { objectClass: ["person"], cn: ["never"], sn: ["n"] } };
    for (const concern of ["site", "sites=2"]) {
      const answer = await post("/v1/batch", { operations: [create] }, { "plexus-write-concern": concern });
      assert.equal(answer.status, 400, `${concern}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.code, "invalid-request");
      assert.equal(answer.body.results, undefined, "one problem for the request, not one per operation");
    }
    assert.equal(await exists(dn), false);
  });

  it("answers random operations with results, never a 500", async () => {
    const operation = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.record(
        {
          op: fc.constantFrom("create", "modify", "delete", "rename", "x"),
          dn: fc.oneof(fc.constantFrom(base, `cn=r,${base}`, ""), fc.string({ maxLength: 12 })),
          attributes: fc.dictionary(fc.string({ maxLength: 6 }), fc.array(fc.string({ maxLength: 6 }))),
          changes: fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 2 }),
          newRdn: fc.string({ maxLength: 8 }),
          subtree: fc.jsonValue({ maxDepth: 0 }),
        },
        { requiredKeys: ["op"] },
      ),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 6 }), async (operations) => {
        const answer = await post("/v1/batch", { operations });
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.equal(answer.body.results?.length, operations.length);
        for (const result of answer.body.results ?? [])
          assert.ok((result.status as number) < 500, JSON.stringify(result));
      }),
      { numRuns: 60, seed: 2849 },
    );
  });
});
