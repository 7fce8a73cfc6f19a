import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type InProcessNode, startInProcessNode } from "../../test/support/in-process-node.ts";
import { pagedSearchEntriesMax } from "../core/replica/read.ts";
import { sessionLine, sessionOf } from "./cli-support.ts";
import { entryCommand } from "./entries.ts";
import { formatEntries } from "./entry-text.ts";
import { importCommand } from "./ldif-import.ts";
import { connect, type EntryView } from "./remote.ts";

/**
 * `plexus search` over a result of several pages (printed page by page, up to the API's own
 * ceiling), and the session token the commands print and take: never an empty one.
 */
const base = "dc=example,dc=com";
/** Entries under ou=many: three pages of the CLI's 1,000. */
const manyEntries = 2_500;
const batchSize = 1_000;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The writes to stdout, in order. */
  readonly writes: readonly string[];
}

async function run(
  command: "search" | "get" | "import",
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<Run> {
  const writes: string[] = [];
  let stderr = "";
  const out = { write: (text: string) => writes.push(text) > 0 };
  const err = { write: (text: string) => (stderr += text) };
  const code =
    command === "import"
      ? await importCommand(args, out, err, env)
      : await entryCommand(command, args, out, err, env);
  return { code, stdout: writes.join(""), stderr, writes };
}

describe("plexus search pages and session tokens", { timeout: 120_000 }, () => {
  let node: InProcessNode;
  const directory = mkdtempSync(join(tmpdir(), "plexus-search-session-"));

  before(async () => {
    node = await startInProcessNode("searching", "east");
    const post = async (path: string, body: unknown): Promise<void> => {
      const response = await fetch(`${node.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.ok(response.ok, await response.text());
    };
    await post("/v1/entries", {
      dn: `ou=many,${base}`,
      attributes: { objectClass: ["organizationalUnit"], ou: ["many"] },
    });
    for (let start = 0; start < manyEntries; start += batchSize) {
      const operations = Array.from({ length: Math.min(batchSize, manyEntries - start) }, (_, index) => ({
        op: "create",
        dn: `cn=p${start + index},ou=many,${base}`,
        attributes: { objectClass: ["person"], cn: [`p${start + index}`], sn: ["s"] },
      }));
      await post("/v1/batch", { operations });
    }
  });

  after(async () => {
    await node.close();
    rmSync(directory, { recursive: true, force: true });
  });

  it("takes --size-limit up to the API's paged ceiling, and refuses one above it", async () => {
    const above = await run("search", [
      base,
      "--url",
      node.url,
      "--size-limit",
      String(pagedSearchEntriesMax + 1),
    ]);
    assert.equal(above.code, 2, above.stderr);
    assert.match(
      above.stderr,
      new RegExp(`--size-limit must be a whole number 1\\.\\.${pagedSearchEntriesMax}`),
    );
    const all = await run("search", [
      `ou=many,${base}`,
      "--url",
      node.url,
      "--scope",
      "one",
      "--size-limit",
      "200000",
      "--json",
    ]);
    assert.equal(all.code, 0, all.stderr);
    const parsed = JSON.parse(all.stdout) as { entries: EntryView[]; truncated: boolean; session: string };
    assert.equal(parsed.entries.length, manyEntries);
    assert.equal(parsed.truncated, false);
    assert.equal(typeof parsed.session, "string");
    assert.deepEqual(Object.keys(parsed), ["entries", "truncated", "session"]);
  });

  it("prints each page as it comes, as the whole result would print", async () => {
    const args = [`ou=many,${base}`, "--url", node.url, "--scope", "one", "--size-limit", "2100"];
    const json = await run("search", [...args, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const { entries, truncated } = JSON.parse(json.stdout) as { entries: EntryView[]; truncated: boolean };
    assert.equal(entries.length, 2_100);
    assert.equal(truncated, true);
    const text = await run("search", args);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stdout, formatEntries(entries, true));
    // Three pages (1,000, 1,000, 100) and the count line: never the whole result in one write.
    assert.equal(text.writes.length, 4);
    assert.match(text.writes.at(-1) ?? "", /^# 2100 entries \(truncated/);
    const none = await run("search", [base, "--url", node.url, "--filter", "cn=nobody", "--json"]);
    assert.deepEqual(JSON.parse(none.stdout).entries, []);
    const bare = await run("search", [base, "--url", node.url, "--filter", "cn=p7"]);
    assert.match(bare.stdout, /^dn: cn=p7,ou=many,dc=example,dc=com\n[\s\S]*# 1 entry\n$/);
  });

  it("never prints an empty session token, and takes --session '' as none", async () => {
    const empty = join(directory, "empty.ldif");
    writeFileSync(empty, "version: 1\n");
    for (const extra of [[], ["--session", ""]]) {
      const imported = await run("import", [empty, "--url", node.url, ...extra]);
      assert.equal(imported.code, 0, imported.stderr);
      assert.doesNotMatch(imported.stderr, /plexus-session/);
    }
    const given = await run("import", [empty, "--url", node.url, "--session", "e30"]);
    assert.match(given.stderr, /^plexus-session: e30$/m);
    // An empty --session overrides PLEXUS_SESSION rather than sending an empty token.
    const read = await run("get", [`cn=p1,ou=many,${base}`, "--url", node.url, "--session", ""], {
      PLEXUS_SESSION: "not-a-token",
    });
    assert.equal(read.code, 0, read.stderr);
  });

  it("sessionOf and sessionLine", () => {
    assert.equal(sessionOf(undefined, {}), undefined);
    assert.equal(sessionOf("", { PLEXUS_SESSION: "abc" }), undefined);
    assert.equal(sessionOf(undefined, { PLEXUS_SESSION: " " }), undefined);
    assert.equal(sessionOf(" abc ", {}), "abc");
    assert.equal(sessionOf(undefined, { PLEXUS_SESSION: "abc" }), "abc");
    assert.equal(sessionLine(null), "");
    assert.equal(sessionLine(""), "");
    assert.equal(sessionLine("abc"), "plexus-session: abc\n");
  });
});

describe("searchPages against a node that never stops handing out cursors", () => {
  it("follows a bounded number of pages, then ends the result truncated", async () => {
    let asked = 0;
    // Every page empty with a cursor: what a scan-limited node answers over a huge subtree,
    // or a broken one for ever.
    const fetcher = (async () => {
      asked++;
      return new Response(JSON.stringify({ entries: [], truncated: false, nextCursor: `c${asked}` }), {
        status: 200,
        headers: { "content-type": "application/json" },
      });
    }) as typeof fetch;
    const api = connect("http://127.0.0.1:9", fetcher);
    const answer = await api.search({ base, sizeLimit: 10 }, {});
    assert.deepEqual(answer.body.entries, []);
    assert.equal(answer.body.truncated, true, "cut short by the page bound: truncated, not complete");
    assert.ok(asked > 1 && asked <= 1_001, `${asked} pages asked`);
  });
});
