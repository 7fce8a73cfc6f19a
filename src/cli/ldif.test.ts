import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type CliRun as Run, startPlexus } from "../../test/support/plexus-cli.ts";
import { parseLdif } from "../edge/ldif/parse.ts";
import { formatRecord, ldifHeader } from "../edge/ldif/write.ts";
import { exportCommand } from "./ldif-export.ts";
import { importCommand } from "./ldif-import.ts";
import { http, LocalCluster } from "./local-cluster.ts";

/**
 * `plexus import` and `plexus export` as real processes against real nodes: a file of a few
 * hundred records with two bad ones (one the parser refuses, one the node refuses) is imported,
 * the rest land and the bad ones are reported by line; an import killed mid-way and run again
 * ends with the same entries and no new failures; an export imported into a fresh node of
 * another cluster gives the same entries.
 */
const base = "dc=example,dc=com";
const topology = { sites: [{ name: "a" }], links: [] };
const people = 1_200;
/** The first import is killed once this many records are done. */
const killAfterRecords = 40;

/** The test file: its text and the lines of the two bad records. */
function sampleLdif(): { text: string; badParseLine: number; badNodeLine: number } {
  const parts = [
    `${ldifHeader}\n`,
    formatRecord({
      kind: "content",
      dn: `ou=people,${base}`,
      attributes: { objectClass: ["organizationalUnit"], ou: ["people"] },
    }),
  ];
  const person = (index: number): string =>
    formatRecord({
      kind: "content",
      dn: `cn=user${index},ou=people,${base}`,
      attributes: {
        objectClass: ["person"],
        cn: [`user${index}`],
        sn: [index % 3 === 0 ? `Ñoño ${index}` : `Smith${index}`],
        description: [
          index % 7 === 0 ? ` leading space and a long value ${"x".repeat(120)}` : `user number ${index}`,
        ],
      },
    });
  for (let index = 0; index < people / 2; index++) parts.push(person(index));
  let lines = parts.join("").split("\n").length - 1;
  parts.push(`# a record the parser refuses\ndn: cn=broken,ou=people,${base}\ncn:: ###\n\n`);
  const badParseLine = lines + 3;
  lines += 4;
  parts.push(
    formatRecord({ kind: "add", dn: `cn=orphan,ou=nowhere,${base}`, attributes: { cn: ["orphan"] } }),
  );
  const badNodeLine = lines + 1;
  for (let index = people / 2; index < people; index++) parts.push(person(index));
  parts.push(
    formatRecord({
      kind: "modify",
      dn: `cn=user1,ou=people,${base}`,
      changes: [
        { operation: "add", attribute: "mail", values: ["user1@example.com"] },
        { operation: "replace", attribute: "sn", values: ["Changed"] },
      ],
    }),
    formatRecord({
      kind: "modrdn",
      dn: `cn=user2,ou=people,${base}`,
      newRdn: "cn=user2b",
      deleteOldRdn: true,
    }),
    formatRecord({ kind: "delete", dn: `cn=user3,ou=people,${base}` }),
  );
  return { text: parts.join(""), badParseLine, badNodeLine };
}

/** Every user entry under the base, comparable across nodes (no GUIDs). */
async function snapshot(url: string): Promise<string[]> {
  type Page = {
    entries: Array<{ dn: string; attributes: Record<string, string[]> }>;
    nextCursor: string | null;
  };
  const entries: Page["entries"] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 20; page++) {
    const answer = await http("POST", `${url}/v1/search`, {
      base,
      scope: "sub",
      sizeLimit: 10_000,
      pageSize: 1_000,
      ...(cursor === null ? {} : { cursor }),
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    entries.push(...(answer.body as Page).entries);
    cursor = (answer.body as Page).nextCursor;
    if (cursor === null) break;
  }
  return entries
    .map((entry) => {
      const attributes = Object.entries(entry.attributes)
        .map(([type, values]) => [type.toLowerCase(), [...values].sort()])
        .sort();
      return JSON.stringify([entry.dn.toLowerCase(), attributes]);
    })
    .sort();
}

/** A command run in this process (faster than a child: no start-up), its output captured. */
async function inProcess(command: "import" | "export", args: readonly string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const out = { write: (text: string) => (stdout += text) };
  const err = { write: (text: string) => (stderr += text) };
  const code =
    command === "import" ? await importCommand(args, out, err, {}) : await exportCommand(args, out, err, {});
  return { code, stdout, stderr };
}

/** Records done according to a checkpoint file; 0 when there is none (yet) or it is mid-rename. */
function doneIn(checkpoint: string): number {
  if (!existsSync(checkpoint)) return 0;
  try {
    return JSON.parse(readFileSync(checkpoint, "utf8")).done;
  } catch {
    return 0;
  }
}

function summaryOf(run: Run): { counts: Record<string, number>; records: number; resumedAfter: number } {
  const line = run.stdout.trim().split("\n").at(-1) ?? "";
  return JSON.parse(line);
}

describe("plexus import and export", { timeout: 180_000 }, () => {
  const first = new LocalCluster(topology, {}, { prefix: "plexus-ldif-a-" });
  const second = new LocalCluster(topology, {}, { prefix: "plexus-ldif-b-" });
  const directory = mkdtempSync(join(tmpdir(), "plexus-ldif-test-"));
  const file = join(directory, "people.ldif");
  const sample = sampleLdif();
  let urlA = "";
  let urlB = "";

  before(async () => {
    writeFileSync(file, sample.text);
    [urlA, urlB] = await Promise.all([first.start("a1", "a"), second.start("b1", "a")]).then((nodes) =>
      nodes.map((node) => node.url),
    );
  });

  after(async () => {
    await Promise.all([first.stopAll(), second.stopAll()]);
    rmSync(directory, { recursive: true, force: true });
  });

  it("imports every good record, reports the bad ones by line, and survives being killed", async () => {
    const checkpoint = `${file}.import-progress`;
    const killed = startPlexus(["import", file, "--url", urlA, "--batch", "1", "--json"]);
    // Polled closely (not with a growing back-off): one record per request leaves seconds to
    // catch the import part-way even on a fast machine.
    const deadline = Date.now() + 30_000;
    for (;;) {
      assert.equal(killed.child.exitCode, null, "the first import ended before it could be killed");
      assert.ok(Date.now() < deadline, "the first import got no records in within 30 s");
      if (doneIn(checkpoint) >= killAfterRecords) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    killed.child.kill("SIGKILL");
    const first = await killed.done;
    const saved = JSON.parse(readFileSync(checkpoint, "utf8")) as { done: number };
    assert.ok(saved.done < people, `killed before the end (done ${saved.done})`);

    const resumed = await inProcess("import", [file, "--url", urlA, "--batch", "50", "--json"]);
    assert.equal(resumed.code, 1, resumed.stderr);
    const summary = summaryOf(resumed);
    assert.ok(summary.resumedAfter >= killAfterRecords, JSON.stringify(summary));
    // The record in flight at the kill may have been applied: the rerun finds it there (skipped).
    const { added = 0, skipped = 0, ...rest } = summary.counts;
    assert.equal(added + skipped, people + 1, JSON.stringify(summary));
    assert.ok(skipped <= 1, JSON.stringify(summary));
    assert.deepEqual(rest, { modified: 2, deleted: 1, failed: 2 });
    assert.equal(existsSync(checkpoint), false, "a finished import removes its checkpoint");

    // Each bad record is reported once, by whichever run reached it, with its line.
    const reported = `${first.stderr}${resumed.stderr}`
      .split("\n")
      .filter((line) => line.startsWith(`${file}:`) && !line.includes("resuming"));
    assert.deepEqual(
      reported.sort(),
      [
        `${file}:${sample.badParseLine}: the value after '::' is not base64`,
        `${file}:${sample.badNodeLine}: no-such-parent: ${reported.find((line) => line.includes("no-such-parent"))?.split("no-such-parent: ")[1]}`,
      ].sort(),
    );
    assert.ok(reported.some((line) => line.startsWith(`${file}:${sample.badNodeLine}: no-such-parent`)));

    const listing = await snapshot(urlA);
    assert.equal(listing.filter((entry) => entry.includes("ou=people")).length, people);
    assert.ok(listing.some((entry) => entry.includes("user1@example.com")));
    assert.ok(listing.some((entry) => entry.includes("cn=user2b,ou=people")));
  });

  it("resumed over a batch that was applied but not acknowledged, takes every record as done", async () => {
    const checkpoint = join(directory, "window.progress");
    const stat = statSync(file);
    const records = parseLdif(sample.text).length;
    // What a crash right after the node applied the last batch leaves: the last 60 records
    // (creates, then the modify, the rename and the delete) not acknowledged but applied.
    const done = records - 60;
    writeFileSync(
      checkpoint,
      JSON.stringify({
        format: 1,
        size: stat.size,
        mtimeMs: Math.trunc(stat.mtimeMs),
        done,
        line: 1,
        applying: records,
        counts: { added: done - 2, modified: 0, deleted: 0, skipped: 0, failed: 2 },
      }),
    );
    const run = await inProcess("import", [file, "--url", urlA, "--resume-file", checkpoint, "--json"]);
    assert.equal(run.code, 1, run.stderr);
    assert.deepEqual(summaryOf(run).counts, {
      added: done - 2,
      modified: 0,
      deleted: 0,
      skipped: 60,
      failed: 2,
    });
  });

  it("exports parents before children, and the export imported into a fresh node gives the same entries", async () => {
    const output = join(directory, "export.ldif");
    const exported = await inProcess("export", ["--url", urlA, "--base", base, "--output", output]);
    assert.equal(exported.code, 0, exported.stderr);
    const seen = new Set<string>();
    for (const item of parseLdif(readFileSync(output, "utf8"))) {
      assert.equal(item.kind, "record");
      if (item.kind !== "record") continue;
      const dn = item.record.dn.toLowerCase();
      const parent = dn.slice(dn.indexOf(",") + 1);
      assert.ok(dn === base || seen.has(parent), `${dn} comes after its parent`);
      seen.add(dn);
    }
    const imported = await inProcess("import", [output, "--url", urlB, "--json"]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.deepEqual(await snapshot(urlB), await snapshot(urlA));
    // Imported again: every entry is there with the same content, which is no error.
    const again = await inProcess("import", [output, "--url", urlB, "--json"]);
    assert.equal(again.code, 0, again.stderr);
    const counts = summaryOf(again).counts;
    assert.equal(counts.skipped, seen.size);
    assert.equal((counts.added ?? 0) + (counts.failed ?? 0), 0);
  });
});
