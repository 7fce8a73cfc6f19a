#!/usr/bin/env node
// `npm test`: type-check, lint, then node's test runner over every *.test.ts file, listed
// explicitly (a bare `--test` on Node 20 finds no .ts files and passes with zero tests).
// Fails when any step fails or when no test ran at all.
// Usage: npm test [-- file-or-folder ...]   (default: src and test)
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const skipStatic = process.env.PLEXUS_TEST_SKIP_STATIC === "1";

function run(label, command, commandArgs) {
  process.stdout.write(`\n== ${label}\n`);
  const result = spawnSync(command, commandArgs, { cwd: root, stdio: "inherit" });
  if (result.status !== 0) {
    process.stderr.write(`\nnpm test: ${label} failed (exit ${result.status ?? result.signal})\n`);
    process.exit(1);
  }
}

function collect(path, out) {
  const stat = statSync(path);
  if (stat.isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (name === "node_modules" || name.startsWith(".")) continue;
      collect(join(path, name), out);
    }
  } else if (path.endsWith(".test.ts")) {
    out.push(relative(root, path));
  }
  return out;
}

const targets = args.length > 0 ? args : ["src", "test"];
const files = targets.flatMap((target) => collect(join(root, target), []));
if (files.length === 0) {
  process.stderr.write("npm test: no test files found\n");
  process.exit(1);
}

if (!skipStatic) {
  run("tsc --noEmit", join(root, "node_modules/.bin/tsc"), ["--noEmit", "-p", root]);
  run("biome check", join(root, "node_modules/.bin/biome"), ["check", root]);
}

/** The slowest tests (real clusters under load) take about a minute; none should take ten. */
const testTimeoutMs = 600_000;
const reportDir = mkdtempSync(join(tmpdir(), "plexus-test-"));
// Removed however the run ends (a failing step exits early).
process.on("exit", () => rmSync(reportDir, { recursive: true, force: true }));
const tapFile = join(reportDir, "report.tap");
run(`node --test (${files.length} files)`, process.execPath, [
  "--import",
  "tsx",
  "--test",
  // A test that hangs fails after this, rather than holding CI until its own limit.
  `--test-timeout=${testTimeoutMs}`,
  "--test-reporter=spec",
  "--test-reporter-destination=stdout",
  "--test-reporter=tap",
  `--test-reporter-destination=${tapFile}`,
  ...files,
]);

// The tap summary is the independent count of what ran; zero tests is a failure.
const tap = readFileSync(tapFile, "utf8");
const count = (name) => Number(tap.match(new RegExp(`^# ${name} (\\d+)$`, "m"))?.[1] ?? "0");
const tests = count("tests");
const failed = count("fail");
process.stdout.write(`\nnpm test: ${tests} tests, ${count("pass")} passed, ${failed} failed\n`);
if (tests === 0) {
  process.stderr.write("npm test: no test ran — that is a failure, not a pass\n");
  process.exit(1);
}
if (failed > 0) process.exit(1);
