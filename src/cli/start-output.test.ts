import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { http } from "../../test/support/cluster.ts";
import { startPlexus } from "../../test/support/plexus-cli.ts";
import { peerPaths } from "../runtime/peer-client.ts";

/**
 * `plexus start` whose output's reader goes away (`plexus start 2>&1 | head`, a log collector
 * restarted): a real node process whose stdout and stderr pipes its reader closes once it
 * serves, then made to log (an unsigned replication request is refused and logged). It keeps
 * serving, and stops cleanly on SIGTERM.
 */
const listeningWithinMs = 30_000;
const unsignedRequests = 5;

describe("plexus start whose output is closed", { timeout: 60_000 }, () => {
  const directory = mkdtempSync(join(tmpdir(), "plexus-start-output-"));
  after(() => rmSync(directory, { recursive: true, force: true }));

  it("keeps serving, and stops cleanly on SIGTERM", async () => {
    const secretFile = join(directory, "secret");
    writeFileSync(secretFile, "a cluster secret long enough for its minimum\n", { mode: 0o600 });
    const { child, done } = startPlexus(
      ["start", "--data", join(directory, "n1"), "--node", "n1", "--site", "hq"].concat([
        "--secret-file",
        secretFile,
        "--dns",
        "off",
      ]),
      { timeoutMs: 50_000 },
    );
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(
        () => reject(new Error(`no 'listening' line in ${listeningWithinMs} ms`)),
        listeningWithinMs,
      );
      child.stdout?.on("data", (chunk: string) => {
        out += chunk;
        const match = /^listening (\S+)$/m.exec(out);
        if (match?.[1] !== undefined) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
    });
    child.stdout?.destroy();
    child.stderr?.destroy();
    for (let attempt = 0; attempt < unsignedRequests; attempt++) {
      const refused = await http("POST", `${url}${peerPaths.messages}`, { kind: "notify" });
      assert.equal(refused.status, 401);
    }
    const status = await http("GET", `${url}/v1/status`);
    assert.equal(status.status, 200, "the node serves after its log lines met a closed pipe");
    child.kill("SIGTERM");
    assert.equal((await done).code, 0);
  });
});
