import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { nodeId } from "../core/ids.ts";
import { Replica } from "../core/replica/replica.ts";
import { unwrap } from "../core/result.ts";
import { ManualClock, SeededRandom } from "../sim/ports.ts";
import { databaseFileName, markerFileName, openDataDirectory } from "./data-directory.ts";
import { SqliteStore } from "./sqlite-store.ts";
import { dumpStore } from "./store-contract.ts";

let seed = 0;
const ports = () => ({ clock: new ManualClock(1_790_000_000_000), random: new SeededRandom(++seed) });

function withDirectory(run: (directory: string) => void): void {
  const directory = mkdtempSync(join(tmpdir(), "plexus-datadir-"));
  try {
    run(directory);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

function removeDatabase(directory: string): void {
  for (const suffix of ["", "-wal", "-shm"])
    rmSync(join(directory, `${databaseFileName}${suffix}`), { force: true });
}

describe("data directory", () => {
  it("a new directory and plain reopens are not restores", () => {
    withDirectory((directory) => {
      const first = openDataDirectory(directory);
      assert.equal(first.restored, false);
      Replica.create(first.store, ports(), nodeId("node-a"));
      first.close();
      const second = openDataDirectory(directory);
      assert.equal(second.restored, false);
      second.close();
    });
  });

  it("a database file restored from a backup is detected, and the replica takes a new invocation id", () => {
    withDirectory((directory) => {
      const backup = join(directory, "..", `${directory.split("/").at(-1)}-backup.db`);
      try {
        const opened = openDataDirectory(directory);
        const replica = Replica.create(opened.store, ports(), nodeId("node-a"));
        unwrap(replica.createPartition("dc=example,dc=com"));
        opened.backupTo(backup);
        unwrap(
          replica.writeOne({
            op: "add",
            dn: "cn=after,dc=example,dc=com",
            attributes: { objectClass: ["person"] },
          }),
        );
        const before = replica.invocationId;
        opened.close();

        removeDatabase(directory);
        copyFileSync(backup, join(directory, databaseFileName));
        const restored = openDataDirectory(directory);
        assert.equal(restored.restored, true);
        assert.match(restored.reason ?? "", /does not match/);
        const reopened = Replica.open(restored.store, ports(), { restored: restored.restored });
        assert.notEqual(reopened.invocationId, before);
        assert.equal(reopened.get("cn=after,dc=example,dc=com").ok, false);
        restored.close();
      } finally {
        rmSync(backup, { force: true });
      }
    });
  });

  it("a database without its marker (copied into a new directory) counts as restored", () => {
    withDirectory((directory) => {
      const opened = openDataDirectory(directory);
      Replica.create(opened.store, ports(), nodeId("node-a"));
      opened.close();
      rmSync(join(directory, markerFileName));
      const again = openDataDirectory(directory);
      assert.equal(again.restored, true);
      again.close();
    });
  });

  it("a raw copy of the file taken while the node ran is recognised after a clean close", () => {
    withDirectory((directory) => {
      const opened = openDataDirectory(directory);
      Replica.create(opened.store, ports(), nodeId("node-a"));
      const copy = join(directory, "raw-copy.db");
      opened.store.backupTo(copy, opened.store.instanceToken() ?? ""); // as if copied byte for byte
      opened.close();
      removeDatabase(directory);
      copyFileSync(copy, join(directory, databaseFileName));
      const again = openDataDirectory(directory);
      assert.equal(again.restored, true);
      again.close();
    });
  });
});

describe("reopening a replica", () => {
  it("restores exactly the state it had: entries, stamps, USN, invocation, UTD, watermarks, events", () => {
    withDirectory((directory) => {
      const opened = openDataDirectory(directory);
      const replica = Replica.create(opened.store, ports(), nodeId("node-a"));
      unwrap(replica.createPartition("dc=example,dc=com"));
      unwrap(
        replica.writeOne({
          op: "add",
          dn: "cn=x,dc=example,dc=com",
          attributes: { objectClass: ["person"] },
        }),
      );
      unwrap(replica.writeOne({ op: "delete", dn: "cn=x,dc=example,dc=com" }));
      const other = Replica.create(SqliteStore.open({ path: ":memory:" }), ports(), nodeId("node-b"));
      unwrap(other.createPartition("o=other"));
      unwrap(replica.applyChanges(unwrap(other.getChanges(replica.changeRequest(other.nodeId)))));
      const before = dumpStore(opened.store);
      const meta = replica.meta;
      const utd = replica.utd();
      opened.close();

      const again = openDataDirectory(directory);
      const reopened = Replica.open(again.store, ports(), { restored: again.restored });
      assert.equal(again.restored, false);
      assert.deepEqual(reopened.meta, meta);
      assert.deepEqual(reopened.utd(), utd);
      const after = dumpStore(again.store);
      // The instance token is renewed by design; everything else is exactly as it was.
      assert.deepEqual(after, before);
      again.close();
    });
  });
});
