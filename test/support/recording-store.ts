import type { Guid } from "../../src/core/ids.ts";
import type { Item } from "../../src/core/replication/items.ts";
import type { EntryRow, ItemRow, Store } from "../../src/core/store.ts";

export interface LoggedItem extends Item {
  readonly guid: Guid;
}

/** Every entry identity and item version any replica ever stored, for the reference model. */
export class WriteLog {
  readonly entries = new Map<Guid, Pick<EntryRow, "partition" | "origin">>();
  readonly items: LoggedItem[] = [];
}

/** Wraps a store so that every putEntry and putItem is also recorded in `log`. */
export function recordingStore(store: Store, log: WriteLog): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === "putEntry") {
        return (row: EntryRow) => {
          if (!log.entries.has(row.guid))
            log.entries.set(row.guid, { partition: row.partition, origin: row.origin });
          target.putEntry(row);
        };
      }
      if (property === "putItem" || property === "replaceItem") {
        return (row: ItemRow) => {
          log.items.push({
            guid: row.guid,
            attribute: row.attribute,
            key: row.key,
            value: row.value,
            stamp: row.stamp,
          });
          target.putItem(row);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
