import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { importCommand, operationOf } from "./ldif-import.ts";
import { progressBytesMin } from "./ldif-progress.ts";
import { applyChanges, sameAttributes, withNamingValues } from "./ldif-replay.ts";
import { fileUrlReader, urlFileBytesMax } from "./ldif-url.ts";

const root = new URL("../..", import.meta.url).pathname;

/** Runs `plexus import ARGS` in a child process whose stderr claims to be a terminal; bounded in time. */
async function importOnTerminal(
  directory: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ exited: boolean; stdout: string; stderr: string }> {
  const script = join(directory, "import-on-terminal.mts");
  const command = new URL("./ldif-import.ts", import.meta.url).pathname;
  writeFileSync(
    script,
    [
      `import { importCommand } from ${JSON.stringify(command)};`,
      "const terminal = { isTTY: true, columns: 100, write: (text) => process.stderr.write(text) };",
      "const code = await importCommand(process.argv.slice(2), process.stdout, terminal, {});",
      'process.stdout.write("exit " + code + "\\n");',
      // No process.exit: the process must end by itself, as bin/plexus.mjs's does.
    ].join("\n"),
  );
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(false);
    }, timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  return { exited, stdout, stderr };
}

/** The pieces of `plexus import` that need no node: record to operation, replay checks, `:<` files. */
describe("LDIF import pieces", () => {
  it("turns each record kind into its batch operation", () => {
    assert.deepEqual(operationOf({ kind: "content", dn: "cn=a", attributes: { cn: ["a"] } }), {
      op: "create",
      dn: "cn=a",
      attributes: { cn: ["a"] },
    });
    assert.deepEqual(operationOf({ kind: "delete", dn: "cn=a" }), { op: "delete", dn: "cn=a" });
    assert.deepEqual(
      operationOf({
        kind: "modify",
        dn: "cn=a",
        changes: [
          { operation: "delete", attribute: "mail", values: [] },
          { operation: "replace", attribute: "sn", values: ["b"] },
        ],
      }),
      {
        op: "modify",
        dn: "cn=a",
        changes: [
          { operation: "delete", attribute: "mail" },
          { operation: "replace", attribute: "sn", values: ["b"] },
        ],
      },
    );
    assert.deepEqual(
      operationOf({
        kind: "modrdn",
        dn: "cn=a,dc=x",
        newRdn: "cn=b",
        deleteOldRdn: false,
        newSuperior: "ou=y",
      }),
      { op: "rename", dn: "cn=a,dc=x", newRdn: "cn=b", deleteOldRdn: false, newParent: "ou=y" },
    );
  });

  it("sees a modify as applied when applying it again changes nothing", () => {
    const entry = new Map([
      ["cn", ["a"]],
      ["mail", ["a@x", "b@x"]],
    ]);
    const same = (changes: Parameters<typeof applyChanges>[1]) =>
      sameAttributes(entry, applyChanges(entry, changes));
    assert.equal(same([{ operation: "add", attribute: "MAIL", values: ["a@x"] }]), true);
    assert.equal(same([{ operation: "add", attribute: "mail", values: ["c@x"] }]), false);
    assert.equal(same([{ operation: "delete", attribute: "description", values: [] }]), true);
    assert.equal(same([{ operation: "delete", attribute: "mail", values: ["z@x"] }]), true);
    assert.equal(same([{ operation: "delete", attribute: "mail", values: ["a@x"] }]), false);
    assert.equal(same([{ operation: "replace", attribute: "mail", values: ["b@x", "a@x"] }]), true);
    assert.equal(same([{ operation: "replace", attribute: "cn", values: [] }]), false);
  });

  it("counts the values the node adds from the RDN as part of a create", () => {
    const attributes = new Map([["objectclass", ["person"]]]);
    assert.deepEqual(
      withNamingValues("cn=Idem1+sn=X,ou=people,dc=example,dc=com", attributes),
      new Map([
        ["objectclass", ["person"]],
        ["cn", ["Idem1"]],
        ["sn", ["X"]],
      ]),
    );
    // A value equal to the RDN's as the node compares values is kept, none added.
    assert.deepEqual(
      withNamingValues("cn=idem  one,dc=x", new Map([["cn", ["IDEM one", "other"]]])),
      new Map([["cn", ["IDEM one", "other"]]]),
    );
    assert.deepEqual(attributes, new Map([["objectclass", ["person"]]]), "the input is left as it was");
  });

  it("refuses a directory as its input file with a usage error", async () => {
    const directory = mkdtempSync(join(tmpdir(), "plexus-ldif-dir-"));
    try {
      let stderr = "";
      const code = await importCommand(
        [directory, "--url", "http://127.0.0.1:1"],
        { write: () => {} },
        { write: (text: string) => (stderr += text) },
        {},
      );
      assert.equal(code, 2, stderr);
      assert.match(stderr, /^plexus import: .* is a directory: give an LDIF file\n/);
      assert.doesNotMatch(stderr, /EISDIR|\n\s+at /);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it("stops its progress bar when the import fails, so that the process ends", async () => {
    const directory = mkdtempSync(join(tmpdir(), "plexus-ldif-bar-"));
    // A node that refuses every request: the import fails at its first one, after the bar is up.
    const node = createServer((_request, response) => {
      response.writeHead(400, { "content-type": "application/problem+json" });
      response.end(JSON.stringify({ status: 400, code: "invalid-request", detail: "refused by the test" }));
    });
    try {
      await new Promise<void>((resolve) => node.listen(0, "127.0.0.1", resolve));
      const url = `http://127.0.0.1:${(node.address() as AddressInfo).port}`;
      const file = join(directory, "large.ldif");
      writeFileSync(file, "# a comment line that makes the file large\n".repeat(progressBytesMin / 32));
      const run = await importOnTerminal(directory, [file, "--url", url], 20_000);
      assert.ok(
        run.exited,
        `the import did not end within 20 s:\n${run.stdout}\n${run.stderr.slice(0, 2000)}`,
      );
      assert.match(run.stdout, /^exit 1\n$/);
      assert.match(run.stderr, /invalid-request: refused by the test/);
      assert.ok(run.stderr.includes("\x1b[?25h"), "the cursor the bar hid is shown again");
      assert.doesNotMatch(run.stderr, /100%/, "a failed import is not shown complete");
    } finally {
      node.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it("reads :< values from regular files in the LDIF file's directory only, bounded", () => {
    const directory = mkdtempSync(join(tmpdir(), "plexus-ldif-url-"));
    const elsewhere = mkdtempSync(join(tmpdir(), "plexus-ldif-elsewhere-"));
    try {
      mkdirSync(join(directory, "values"));
      const inside = join(directory, "values", "value.txt");
      writeFileSync(inside, "from a file");
      const secret = join(elsewhere, "secret");
      writeFileSync(secret, "not for the directory");
      symlinkSync(secret, join(directory, "link"));
      execFileSync("mkfifo", [join(directory, "fifo")]);
      writeFileSync(join(directory, "big"), Buffer.alloc(urlFileBytesMax + 1));
      const read = fileUrlReader(join(directory, "import.ldif"));
      const url = (path: string): string => pathToFileURL(path).href;
      const error = (value: string): string => (read(value) as { error: string }).error ?? "";
      assert.equal(Buffer.from(read(url(inside)) as Uint8Array).toString(), "from a file");
      assert.match(error("http://example.com/x"), /only file:\/\//);
      assert.match(error(url(join(directory, "none"))), /ENOENT/);
      for (const outside of [secret, join(directory, "link"), "/proc/self/environ", "/dev/zero"])
        assert.match(error(url(outside)), /the LDIF file's directory/, outside);
      assert.match(error(url(join(directory, "fifo"))), /not a regular file/);
      assert.match(error(url(join(directory, "big"))), /larger than 4194304 bytes/);
    } finally {
      rmSync(directory, { recursive: true, force: true });
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
