/**
 * The floor under `npm run bench:core`'s batched writes: the same single-attribute modifies,
 * 100 per transaction, as the bare SQL statements the SQLite store runs for them (find the
 * entry by name, read the item, update it, update the entry's usnChanged), with no Plexus code
 * around them — no DN parsing, checks, stamps, caches or bookkeeping rows. What the store
 * costs beyond this is Plexus's; a target above this is out of reach of the store's schema on
 * this machine, however lean the code around it.
 *
 * It runs on a store file whose replica is closed, with the store's journal mode, synchronous
 * and cache settings; it takes USNs above the store's and moves the meta row's USN past them, so
 * the file still opens as a store (for reading: the held stamps are not kept up).
 */
import Database from "better-sqlite3";
import { assert } from "../src/core/assert.ts";
import { normalizeDn, normalizeRdn, parseDn, parseRdn } from "../src/core/directory/dn.ts";
import { partitionRootGuid } from "../src/core/directory/partition.ts";
import { unwrap } from "../src/core/result.ts";
import type { SeededRandom } from "../src/sim/ports.ts";
import { sqliteStoreQueries as q, sqliteCacheSizeKib } from "../src/store/sqlite-store.ts";
import { type Bounds, type Measured, runBounded } from "./support.ts";

export interface FloorWorkload {
  readonly partitionDn: string;
  /** The RDN of the container that holds user `index`, and that user's RDN. */
  readonly containerRdn: (index: number) => string;
  readonly userRdn: (index: number) => string;
  readonly writesPerTransaction: number;
}

type Row = readonly unknown[];

function rdnNorm(rdn: string): string {
  return normalizeRdn(unwrap(parseRdn(rdn)));
}

export async function measureModifyFloor(
  path: string,
  loaded: number,
  picker: SeededRandom,
  workload: FloorWorkload,
  bounds: Bounds,
): Promise<Measured> {
  const db = new Database(path);
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma(`cache_size = ${-sqliteCacheSizeKib}`);
    const findByName = db.prepare(q.findByName).raw();
    const getItem = db.prepare(q.getItem).raw();
    const updateItem = db.prepare(q.updateItem);
    const setUsnChanged = db.prepare(q.setUsnChanged);
    const root = partitionRootGuid(normalizeDn(unwrap(parseDn(workload.partitionDn))));
    const containers = new Map<string, string>();
    const containerGuid = (index: number): string => {
      const norm = rdnNorm(workload.containerRdn(index));
      let guid = containers.get(norm);
      if (guid === undefined) {
        const found = findByName.all(root, norm) as Row[];
        guid = String(found[0]?.[1]);
        containers.set(norm, guid);
      }
      return guid;
    };
    const maxUsn = db.prepare("SELECT usn FROM meta WHERE id = 1").pluck().get();
    let usn = Number(maxUsn) + 1;
    // The names are worked out before the clock starts: parsing them is Plexus's work, not SQLite's.
    const picks = Array.from({ length: bounds.stepsMax * workload.writesPerTransaction }, () => {
      const index = picker.int(0, loaded - 1);
      return { index, parent: containerGuid(index), rdn: rdnNorm(workload.userRdn(index)) };
    });
    const batch = db.transaction((serial: number) => {
      for (let offset = 0; offset < workload.writesPerTransaction; offset++) {
        const pick = picks[serial * workload.writesPerTransaction + offset];
        assert(pick !== undefined, "a pick per write");
        const [row] = findByName.all(pick.parent, pick.rdn) as Row[];
        assert(row !== undefined, `the floor found no entry for user ${pick.index}`);
        const id = row[0];
        const item = getItem.get(id, "description", "") as Row | undefined;
        assert(item !== undefined, "every bench user has a description");
        const value = JSON.stringify({
          kind: "values",
          type: "description",
          values: [`floor ${serial} ${offset}`],
        });
        updateItem.run(value, Number(item[3]) + 1, Date.now(), item[5], usn, usn, id, "description", "");
        setUsnChanged.run(usn, id);
        usn++;
      }
    });
    const measured = await runBounded(bounds, (serial) => {
      batch(serial);
      return workload.writesPerTransaction;
    });
    db.prepare("UPDATE meta SET usn = max(usn, ?) WHERE id = 1").run(usn - 1);
    return measured;
  } finally {
    db.close();
  }
}
