/**
 * `npm run bench:ldif [-- --records N]`
 *
 * `plexus import` of an N-record LDIF file (default 10,000: one `ou` and persons with four
 * attributes) into one `plexus start` node on loopback, as a separate process like a person
 * would run it; baseline in the same run: the same number of entries sent one
 * `POST /v1/entries` each, 16 at a time, into another `ou` of the same node. Prints both rates,
 * their ratio and the load average; the last line of stdout is one JSON object. Bounded: the
 * baseline stops at its count or after 5 minutes, the import after 10 minutes.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { http, LocalCluster } from "../src/cli/local-cluster.ts";
import { formatRecord, ldifHeader } from "../src/edge/ldif/write.ts";
import { loadAverage, round } from "./support.ts";

const root = new URL("..", import.meta.url).pathname;
const base = "dc=example,dc=com";
const baselineConcurrency = 16;
const baselineTimeMaxMs = 5 * 60_000;
const importTimeMaxMs = 10 * 60_000;

const { values } = parseArgs({ options: { records: { type: "string" } } });
const records = Number(values.records ?? 10_000);
if (!Number.isSafeInteger(records) || records < 2 || records > 1_000_000) {
  process.stderr.write("--records must be a whole number 2..1000000\n");
  process.exit(2);
}

function person(ou: string, index: number): { dn: string; attributes: Record<string, string[]> } {
  return {
    dn: `cn=user${index},ou=${ou},${base}`,
    attributes: {
      objectClass: ["person"],
      cn: [`user${index}`],
      sn: [`Smith ${index}`],
      description: [`user number ${index} of the import measurement`],
    },
  };
}

const organizationalUnit = (ou: string) => ({
  dn: `ou=${ou},${base}`,
  attributes: { objectClass: ["organizationalUnit"], ou: [ou] },
});

/** Single writes, `baselineConcurrency` at a time: entries per second. */
async function baseline(url: string, count: number): Promise<number> {
  const answer = await http("POST", `${url}/v1/entries`, organizationalUnit("baseline"));
  if (answer.status !== 201) throw new Error(`baseline ou: HTTP ${answer.status}`);
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let index = next++; index < count; index = next++) {
      if (performance.now() - started > baselineTimeMaxMs) throw new Error("the baseline took too long");
      const written = await http("POST", `${url}/v1/entries`, person("baseline", index));
      if (written.status !== 201) throw new Error(`baseline write: HTTP ${written.status}`);
    }
  };
  await Promise.all(Array.from({ length: baselineConcurrency }, worker));
  return count / ((performance.now() - started) / 1000);
}

const cluster = new LocalCluster(
  { sites: [{ name: "bench" }], links: [] },
  {},
  { prefix: "plexus-bench-ldif-" },
);
process.once("SIGINT", () => void cluster.stopAll().then(() => process.exit(130)));
try {
  const node = await cluster.start("n1", "bench");
  const file = join(cluster.directory, "import.ldif");
  let text = `${ldifHeader}\n${formatRecord({ kind: "content", ...organizationalUnit("people") })}`;
  for (let index = 0; index < records - 1; index++)
    text += formatRecord({ kind: "content", ...person("people", index) });
  writeFileSync(file, text);
  const loadBefore = loadAverage();
  const baselineRate = await baseline(node.url, records - 1);
  const run = spawnSync(
    process.execPath,
    ["--import", "tsx", join(root, "src/cli/main.ts"), "import", file, "--url", node.url, "--json"],
    { cwd: root, encoding: "utf8", timeout: importTimeMaxMs },
  );
  if (run.status !== 0) throw new Error(`plexus import exited ${run.status}:\n${run.stderr}`);
  const summary = JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "{}") as {
    counts: { added: number };
    thisRun: { seconds: number; recordsPerSecond: number };
  };
  const loadAfter = loadAverage();
  const importRate = summary.thisRun.recordsPerSecond;
  process.stdout.write(
    `plexus import: ${records} records (${text.length} bytes) in ${summary.thisRun.seconds.toFixed(1)} s = ${Math.round(importRate)} records/s (added ${summary.counts.added})\n` +
      `baseline: ${records - 1} single POST /v1/entries at concurrency ${baselineConcurrency} = ${Math.round(baselineRate)} writes/s\n` +
      `ratio import/baseline: ${round(importRate / baselineRate, 2)}; load average ${loadBefore.join(" ")} -> ${loadAfter.join(" ")}\n`,
  );
  process.stdout.write(
    `${JSON.stringify({
      records,
      importRecordsPerSec: Math.round(importRate),
      baselineWritesPerSec: Math.round(baselineRate),
      importRatio: round(importRate / baselineRate, 2),
      loadBefore,
      loadAfter,
    })}\n`,
  );
} finally {
  await cluster.stopAll();
}
