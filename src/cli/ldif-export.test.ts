import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { exportCommand } from "./ldif-export.ts";

/**
 * `plexus export` and its output, against a stand-in node that answers POST /v1/search with
 * pages of generated entries (the export against real nodes is in ldif.test.ts): what is left
 * behind when the node or the output fails, and how it writes to a slow or closed pipe.
 */
const pages = 5;
const perPage = 1_000;

function entry(page: number, index: number): { dn: string; attributes: Record<string, string[]> } {
  const cn = `user-${page}-${index}`;
  return {
    dn: `cn=${cn},dc=example,dc=com`,
    attributes: { objectClass: ["person"], cn: [cn], sn: ["x".repeat(200)] },
  };
}

function startNode(): Promise<Server> {
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      const cursor = (JSON.parse(body) as { cursor?: string }).cursor;
      const page = cursor === undefined ? 0 : Number(cursor);
      const entries = Array.from({ length: perPage }, (_, index) => entry(page, index));
      const nextCursor = page + 1 < pages ? String(page + 1) : null;
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ entries, truncated: false, nextCursor }));
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function exportTo(args: readonly string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await exportCommand(
    args,
    { write: (text: string) => (stdout += text) },
    { write: (text: string) => (stderr += text) },
    {},
  );
  return { code, stdout, stderr };
}

describe("plexus export: its output", () => {
  let server: Server;
  let url = "";
  let directory = "";

  before(async () => {
    server = await startNode();
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    directory = mkdtempSync(join(tmpdir(), "plexus-export-"));
  });

  after(() => {
    server.close();
    rmSync(directory, { recursive: true, force: true });
  });

  it("leaves no file at all when the node cannot be reached", async () => {
    const output = join(directory, "unreachable.ldif");
    const run = await exportTo(["--url", "http://127.0.0.1:1", "--output", output]);
    assert.equal(run.code, 3, run.stderr);
    // Let a file opened asynchronously appear, as it did before.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(
      readdirSync(directory).filter((name) => name.startsWith("unreachable")),
      [],
    );
  });

  it("refuses an output in a directory that does not exist, or that is a directory, before asking the node", async () => {
    const missing = await exportTo(["--url", url, "--output", join(directory, "nowhere", "x.ldif")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^plexus export: --output: the directory .*nowhere does not exist\n/);
    const isDirectory = await exportTo(["--url", url, "--output", directory]);
    assert.equal(isDirectory.code, 2);
    assert.match(isDirectory.stderr, /^plexus export: --output: .* is a directory; name a file\n/);
    assert.ok(!existsSync(`${directory}.partial`));
  });

  it("replaces an existing file only once the export is complete", async () => {
    const output = join(directory, "existing.ldif");
    writeFileSync(output, "precious\n");
    const failed = await exportTo(["--url", "http://127.0.0.1:1", "--output", output]);
    assert.equal(failed.code, 3);
    assert.equal(readFileSync(output, "utf8"), "precious\n");
    const done = await exportTo(["--url", url, "--output", output]);
    assert.equal(done.code, 0, done.stderr);
    assert.equal(readFileSync(output, "utf8").match(/^dn: /gm)?.length, pages * perPage);
  });

  it("waits for a slow reader instead of holding the whole export in memory", async () => {
    const pipe = new PassThrough({ highWaterMark: 16 * 1024 });
    let stderr = "";
    const exporting = exportCommand(["--url", url], pipe, { write: (text: string) => (stderr += text) }, {});
    // Nobody reads yet: the export must stop at the stream's limit (plus one record).
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(
      pipe.writableLength < 64 * 1024,
      `${pipe.writableLength} bytes queued for a reader that has read nothing`,
    );
    let read = "";
    pipe.on("data", (chunk: Buffer) => (read += chunk.toString("utf8")));
    assert.equal(await exporting, 0, stderr);
    assert.equal(read.match(/^dn: /gm)?.length, pages * perPage);
  });

  it("ends with one line, exit 1, when its reader has gone (plexus export | head)", async () => {
    const pipe = new PassThrough({ highWaterMark: 16 * 1024 });
    let stderr = "";
    const exporting = exportCommand(["--url", url], pipe, { write: (text: string) => (stderr += text) }, {});
    await new Promise((resolve) => setTimeout(resolve, 100));
    pipe.destroy(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
    assert.equal(await exporting, 1);
    assert.match(stderr, /^plexus export: cannot write to stdout: write EPIPE\n$/);
  });
});
