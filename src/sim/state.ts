import type { Guid } from "../core/ids.ts";
import { entryDn } from "../core/replica/lookup.ts";
import type { Item } from "../core/replication/items.ts";
import type { EntryRow, Store } from "../core/store.ts";

/**
 * The part of a replica's state that must be identical on every replica once they have
 * converged: every entry (live and tombstone) with its replicated fields and stamped items, and
 * the derived view (effective parent, placement, conflict, DN). Local bookkeeping (USNs, local
 * USNs, tombstone times) differs between replicas by design and is left out.
 */
export interface ConvergedEntry {
  readonly guid: Guid;
  readonly partition: string;
  readonly origin: EntryRow["origin"];
  readonly rdn: string;
  readonly parent: Guid | null;
  readonly deleted: boolean;
  readonly parentEff: Guid | null;
  readonly placement: EntryRow["placement"];
  readonly conflict: boolean;
  readonly dn: string | null;
  readonly items: readonly Item[];
}

const pageSize = 1000;

export function convergedState(store: Store): ConvergedEntry[] {
  const out: ConvergedEntry[] = [];
  let after: Guid | null = null;
  for (;;) {
    const page = store.listEntries(after, pageSize);
    for (const row of page) out.push(convergedEntry(store, row));
    const last = page.at(-1);
    if (last === undefined || page.length < pageSize) return out;
    after = last.guid;
  }
}

function convergedEntry(store: Store, row: EntryRow): ConvergedEntry {
  return {
    guid: row.guid,
    partition: row.partition,
    origin: row.origin,
    rdn: row.rdn,
    parent: row.parent,
    deleted: row.deleted,
    parentEff: row.parentEff,
    placement: row.placement,
    conflict: row.conflict,
    dn: row.deleted ? null : entryDn(store, row),
    items: store
      .getItems(row.guid)
      .map(({ attribute, key, value, stamp }) => ({ attribute, key, value, stamp })),
  };
}

/** Live DNs on a replica, sorted, for readable assertions. */
export function liveDns(store: Store): string[] {
  return convergedState(store)
    .flatMap((entry) => (entry.dn === null ? [] : [entry.dn]))
    .sort();
}
