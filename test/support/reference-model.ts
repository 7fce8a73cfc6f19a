import { normalizeDn, normalizeRdn, parseDn, parseRdn } from "../../src/core/directory/dn.ts";
import { lostAndFoundGuid, partitionRootGuid } from "../../src/core/directory/partition.ts";
import type { Guid } from "../../src/core/ids.ts";
import { conflictRdn } from "../../src/core/replica/lookup.ts";
import { deletedItem, type Item, itemIdentity, nameItem } from "../../src/core/replication/items.ts";
import { compareStamps, type Stamp } from "../../src/core/replication/stamp.ts";
import type { Placement } from "../../src/core/store.ts";
import type { ConvergedEntry } from "../../src/sim/state.ts";
import type { WriteLog } from "./recording-store.ts";

/**
 * A deliberately simple reference implementation of the merge rules, computed from scratch
 * over every item version any replica ever stored: per item the greatest stamp wins; a deleted
 * entry keeps only its name and deletion items; placement, cycles and name conflicts are found
 * by whole-graph passes instead of the core's incremental maintenance. Converged replicas must
 * hold exactly this state.
 */
interface ModelEntry {
  readonly guid: Guid;
  readonly partition: string;
  readonly origin: ConvergedEntry["origin"];
  readonly items: Map<string, Item>;
  rdn: string;
  rdnNorm: string;
  parent: Guid | null;
  nameStamp: Stamp;
  deleted: boolean;
  parentEff: Guid | null;
  placement: Placement;
  conflict: boolean;
}

export function referenceState(log: WriteLog): ConvergedEntry[] {
  const entries = mergeItems(log);
  const live = [...entries.values()].filter((entry) => !entry.deleted);
  for (const entry of live) placeTentatively(entry, entries);
  breakCycles(live, entries);
  markConflicts(live);
  return [...entries.values()]
    .sort((a, b) => (a.guid < b.guid ? -1 : 1))
    .map((entry) => ({
      guid: entry.guid,
      partition: entry.partition,
      origin: entry.origin,
      rdn: entry.rdn,
      parent: entry.parent,
      deleted: entry.deleted,
      parentEff: entry.parentEff,
      placement: entry.placement,
      conflict: entry.conflict,
      dn: entry.deleted ? null : dnOf(entry, entries),
      items: [...entry.items.values()].sort(byAttributeAndKey),
    }));
}

function byAttributeAndKey(a: Item, b: Item): number {
  if (a.attribute !== b.attribute) return a.attribute < b.attribute ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

function mergeItems(log: WriteLog): Map<Guid, ModelEntry> {
  const winners = new Map<Guid, Map<string, Item>>();
  for (const logged of log.items) {
    const { guid, ...item } = logged;
    const items = winners.get(guid) ?? new Map<string, Item>();
    winners.set(guid, items);
    const current = items.get(itemIdentity(item));
    if (current === undefined || compareStamps(item.stamp, current.stamp) > 0)
      items.set(itemIdentity(item), item);
  }
  const entries = new Map<Guid, ModelEntry>();
  for (const [guid, items] of winners) {
    const identity = log.entries.get(guid);
    const name = items.get(nameItem);
    if (identity === undefined || name === undefined || name.value.kind !== "name") continue;
    const deleted = items.has(deletedItem);
    if (deleted)
      for (const key of [...items.keys()]) if (key !== nameItem && key !== deletedItem) items.delete(key);
    entries.set(guid, {
      guid,
      partition: identity.partition,
      origin: identity.origin,
      items,
      rdn: name.value.rdn,
      rdnNorm: rdnNorm(name.value.rdn, name.value.parent),
      parent: name.value.parent,
      nameStamp: name.stamp,
      deleted,
      parentEff: null,
      placement: "normal",
      conflict: false,
    });
  }
  return entries;
}

function rdnNorm(rdn: string, parent: Guid | null): string {
  if (parent === null) {
    const dn = parseDn(rdn);
    return dn.ok ? normalizeDn(dn.value) : rdn;
  }
  const parsed = parseRdn(rdn);
  return parsed.ok ? normalizeRdn(parsed.value) : rdn;
}

function isSystem(guid: Guid, partition: string): boolean {
  return guid === partitionRootGuid(partition) || guid === lostAndFoundGuid(partition);
}

function placeTentatively(entry: ModelEntry, entries: Map<Guid, ModelEntry>): void {
  const parent = entry.parent;
  const parentEntry = parent === null ? undefined : entries.get(parent);
  if (parent === null || isSystem(parent, entry.partition)) {
    entry.parentEff = parent;
  } else if (parentEntry === undefined || parentEntry.deleted || parentEntry.partition !== entry.partition) {
    entry.parentEff = lostAndFoundGuid(entry.partition);
    entry.placement = "orphan";
  } else {
    entry.parentEff = parent;
  }
}

/** Walks from every live entry; any walk that comes back to a visited node of its own walk found a cycle. */
function breakCycles(live: readonly ModelEntry[], entries: Map<Guid, ModelEntry>): void {
  const done = new Set<Guid>();
  for (const start of live) {
    const path: ModelEntry[] = [];
    const onPath = new Map<Guid, number>();
    let current: ModelEntry | undefined = start;
    while (current !== undefined && !done.has(current.guid)) {
      if (onPath.has(current.guid)) {
        const cycle = path.slice(onPath.get(current.guid));
        const breaker = cycle.reduce((best, member) => (beatsByName(member, best) ? member : best));
        breaker.parentEff = lostAndFoundGuid(breaker.partition);
        breaker.placement = "cycle";
        break;
      }
      onPath.set(current.guid, path.length);
      path.push(current);
      if (
        current.placement !== "normal" ||
        current.parentEff === null ||
        isSystem(current.parentEff, current.partition)
      )
        break;
      current = entries.get(current.parentEff);
    }
    for (const member of path) done.add(member.guid);
  }
}

function beatsByName(a: ModelEntry, b: ModelEntry): boolean {
  const order = compareStamps(a.nameStamp, b.nameStamp);
  return order > 0 || (order === 0 && a.guid > b.guid);
}

function markConflicts(live: readonly ModelEntry[]): void {
  const groups = new Map<string, ModelEntry[]>();
  for (const entry of live) {
    if (entry.parentEff === null) continue;
    const key = `${entry.parentEff}\u0000${entry.rdnNorm}`;
    groups.set(key, [...(groups.get(key) ?? []), entry]);
  }
  for (const members of groups.values()) {
    const winner = members.reduce((best, member) => {
      const system = isSystem(member.guid, member.partition);
      const bestSystem = isSystem(best.guid, best.partition);
      if (system !== bestSystem) return system ? member : best;
      return beatsByName(member, best) ? member : best;
    });
    for (const member of members) member.conflict = member !== winner;
  }
}

function dnOf(entry: ModelEntry, entries: Map<Guid, ModelEntry>): string {
  const parts: string[] = [];
  let current: ModelEntry | undefined = entry;
  for (let steps = 0; current !== undefined && steps < 10_000; steps++) {
    parts.push(current.conflict ? conflictRdn(current.rdn, current.guid) : current.rdn);
    const parent: Guid | null = current.parentEff;
    if (parent === null) break;
    current = entries.get(parent);
  }
  return parts.join(",");
}
