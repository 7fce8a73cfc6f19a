import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { topologyCommand } from "./topology.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const example = join(root, "examples", "topology.json");

function run(args: readonly string[]): { code: number; out: string; err: string } {
  let out = "";
  let err = "";
  // A topology file is read synchronously; only --url (not used here) answers with a promise.
  const code = topologyCommand(
    args,
    { write: (text: string) => (out += text) },
    { write: (text: string) => (err += text) },
  ) as number;
  return { code, out, err };
}

describe("plexus topology", () => {
  it("prints the example's sites, links, bridgeheads, connections and routes", () => {
    const { code, out, err } = run(["--config", example]);
    assert.equal(code, 0, err);
    assert.match(out, /^Sites \(5\)/);
    assert.match(out, /backbone {2}paris — frankfurt, cost 10, every 5 min, always open, notify, compressed/);
    assert.match(out, /paris: routing bridgehead par\d/);
    assert.match(out, /intra-site \(3 live, diameter 1\)/);
    assert.match(out, /bonn → lyon: cost 50 via frankfurt → paris → lyon/);
    assert.doesNotMatch(out, /lab →/, "a site without servers holds no routes");
  });

  it("limits routes to one site with --site", () => {
    const { code, out } = run(["--config", example, "--site", "LYON"]);
    assert.equal(code, 0);
    assert.match(out, /Routes from lyon\n {2}lyon → bonn/);
    assert.doesNotMatch(out, /paris → bonn/);
  });

  it("reports bad input clearly and exits non-zero", () => {
    const dir = mkdtempSync(join(tmpdir(), "plexus-topology-"));
    try {
      const broken = join(dir, "broken.json");
      writeFileSync(
        broken,
        JSON.stringify({ sites: [{ name: "a" }], links: [{ name: "l", sites: ["a", "b"], cost: 1 }] }),
      );
      const notJson = join(dir, "not.json");
      writeFileSync(notJson, "{ sites: ");
      assert.deepEqual([run([]).code, run([]).err.includes("--config is required")], [2, true]);
      assert.equal(run(["--config", example, "--bogus"]).code, 2);
      assert.match(run(["--config", broken]).err, /link l: no such site: b/);
      assert.equal(run(["--config", notJson]).code, 1);
      assert.match(run(["--config", join(dir, "missing.json")]).err, /cannot read/);
      const rome = run(["--config", example, "--site", "rome"]);
      assert.match(rome.err, /no site named rome/);
      assert.equal(rome.code, 2, "a site the topology lacks is bad usage, as with --url");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs as the real command", () => {
    const result = spawnSync(
      process.execPath,
      [join(root, "bin", "plexus.mjs"), "topology", "--config", example, "--site", "bonn"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /bonn → paris: cost 30 via frankfurt → paris/);
  });
});
