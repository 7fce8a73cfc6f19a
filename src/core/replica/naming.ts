import { assert } from "../assert.ts";
import { lostAndFoundGuid, partitionRootGuid } from "../directory/partition.ts";
import type { Guid } from "../ids.ts";
import { nameItem } from "../replication/items.ts";
import { compareStamps, type Stamp } from "../replication/stamp.ts";
import type { EntryRow, Placement, Store } from "../store.ts";

/**
 * Derived naming. The replicated state of an entry holds only its *claimed* name: an RDN and a
 * parent GUID. Where the entry actually appears is a pure function of the replicated state of
 * all entries, so every replica that holds the same replicated state shows the same tree,
 * whatever order the changes arrived in:
 *
 * 1. Placement. A live entry whose claimed parent is missing, a tombstone, or in another
 *    partition is an *orphan*: it appears under its partition's LostAndFound. Concurrent moves
 *    can make claimed parents form a cycle; in each cycle the member with the greatest name
 *    stamp (then GUID) is the *cycle breaker* and also appears under LostAndFound. The root and
 *    LostAndFound of a partition always count as present (their GUIDs are derived).
 * 2. Conflicts. Among live entries with the same effective parent and the same normalised RDN,
 *    the winner is the system entry, else the one with the greatest name stamp, then GUID; every
 *    other one is a *conflict* and is shown under the name `<rdn value>\nCNF:<guid>` (the newline
 *    is written `\0A` in DN strings), as Active Directory does.
 *
 * The derived columns (parentEff, placement, conflict) are maintained incrementally by
 * refreshNaming after every change of a claim, of liveness, or of existence: after each
 * originating write, and once per applied page for all the page's changes.
 */
export interface NamingChange {
  readonly guid: Guid;
  /** The (effective parent, rdnNorm) the entry was listed under before, if it was live. */
  readonly previousGroup: NameGroup | null;
  /** The entry is new on this replica, or just became a tombstone: its claimants move. */
  readonly existenceChanged: boolean;
}

export interface NameGroup {
  readonly parent: Guid;
  readonly rdnNorm: string;
}

/** Claimed-parent chains longer than this are a broken invariant, not data. */
export const namingWalkMax = 1_000_000;
const claimantsPageSize = 1000;
const cycleBreakersMax = 10_000;

/**
 * Bumped by every naming refresh (and by a rolled-back transaction): a cache of resolved DNs
 * built at an older generation is stale. Per store, like the store's own lifetime.
 */
const generations = new WeakMap<Store, number>();

export function namingGeneration(store: Store): number {
  return generations.get(store) ?? 0;
}

export function invalidateNaming(store: Store): void {
  generations.set(store, namingGeneration(store) + 1);
}

/**
 * Re-derives placement and conflicts for the entries `changes` name and those they affect. The
 * result depends only on the store's replicated state, so a caller that applies many changes
 * (a page) may pass them all at once, after writing them: one refresh then reads the cycle
 * breakers, and each shared parent, once instead of once per entry.
 */
export function refreshNaming(store: Store, changes: readonly NamingChange[]): void {
  invalidateNaming(store);
  const affected = new Map<Guid, true>();
  const groups = new Map<string, NameGroup>();
  const reads = new PlacementReads(store);
  for (const change of changes) {
    affected.set(change.guid, true);
    if (change.previousGroup !== null) addGroup(groups, change.previousGroup);
    if (change.existenceChanged) {
      const claimants = allClaimants(store, change.guid);
      if (claimants.length === 0) reads.unclaimed.add(change.guid);
      for (const guid of claimants) affected.set(guid, true);
    }
  }
  // A cycle breaker goes back under its claimed parent once any change broke its cycle.
  for (const breaker of store.listCycleBreakers(cycleBreakersMax)) affected.set(breaker.guid, true);

  for (const guid of affected.keys()) {
    const row = store.getEntry(guid);
    if (row === undefined || row.deleted) continue;
    const updates = placementUpdates(reads, row);
    for (const update of updates) {
      addGroupOf(groups, update.before);
      addGroupOf(groups, update.after);
      store.putEntry(update.after);
    }
    // Updates may have moved other members of a cycle, never left this row as it was read.
    const current = updates.length === 0 ? row : store.getEntry(guid);
    if (current !== undefined) addGroupOf(groups, current);
  }
  for (const group of groups.values()) resolveConflictGroup(store, group);
}

/**
 * The reads placement makes during one refresh. Placement depends only on replicated fields
 * (claimed parent, liveness, partition), which a refresh never writes: so a claimed parent read
 * once serves every entry under it, and an entry found to have no claimants keeps none.
 */
class PlacementReads {
  private readonly parents = new Map<Guid, EntryRow | undefined>();
  /** Entries no live entry claims as its parent. */
  readonly unclaimed = new Set<Guid>();

  constructor(readonly store: Store) {}

  /** An entry's replicated fields; its derived ones may be stale within the refresh. */
  claimedParent(guid: Guid): EntryRow | undefined {
    if (this.parents.has(guid)) return this.parents.get(guid);
    if (this.parents.size >= placementReadsMax) this.parents.clear();
    const row = this.store.getEntry(guid);
    this.parents.set(guid, row);
    return row;
  }

  isClaimed(guid: Guid): boolean {
    return !this.unclaimed.has(guid) && this.store.listClaimants(guid, null, 1).length > 0;
  }
}

/** Parent rows one refresh keeps (a page's entries share few parents; cycles are short). */
const placementReadsMax = 10_000;

function addGroupOf(groups: Map<string, NameGroup>, row: EntryRow): void {
  if (row.parentEff !== null && !row.deleted)
    addGroup(groups, { parent: row.parentEff, rdnNorm: row.rdnNorm });
}

function addGroup(groups: Map<string, NameGroup>, group: NameGroup): void {
  groups.set(`${group.parent}\u0000${group.rdnNorm}`, group);
}

function allClaimants(store: Store, parent: Guid): Guid[] {
  const out: Guid[] = [];
  let after: Guid | null = null;
  for (;;) {
    const page = store.listClaimants(parent, after, claimantsPageSize);
    for (const row of page) out.push(row.guid);
    const last = page.at(-1);
    if (last === undefined || page.length < claimantsPageSize) return out;
    after = last.guid;
  }
}

interface PlacementUpdate {
  readonly before: EntryRow;
  readonly after: EntryRow;
}

/** The rows whose derived placement must change for `row` (itself, or a whole cycle). */
function placementUpdates(reads: PlacementReads, row: EntryRow): PlacementUpdate[] {
  const target = placementOf(reads, row);
  if (target.kind === "cycle") return cycleUpdates(reads.store, cycleMembers(reads.store, target.members));
  const after = withPlacement(row, target.parentEff, target.placement);
  return after === row ? [] : [{ before: row, after }];
}

type PlacementTarget =
  | { readonly kind: "placed"; readonly parentEff: Guid | null; readonly placement: Placement }
  | { readonly kind: "cycle"; readonly members: readonly EntryRow[] };

function placementOf(reads: PlacementReads, row: EntryRow): PlacementTarget {
  const claimed = row.parent;
  if (claimed === null) return { kind: "placed", parentEff: null, placement: "normal" };
  if (isAlwaysPresent(claimed, row.partition))
    return { kind: "placed", parentEff: claimed, placement: "normal" };
  const parent = reads.claimedParent(claimed);
  if (parent === undefined || parent.deleted || parent.partition !== row.partition) {
    return { kind: "placed", parentEff: lostAndFoundGuid(row.partition), placement: "orphan" };
  }
  // Only an entry that something claims as its parent can be on a cycle.
  if (!reads.isClaimed(row.guid)) return { kind: "placed", parentEff: claimed, placement: "normal" };
  const members = cycleThrough(reads.store, row, parent);
  if (members === null) return { kind: "placed", parentEff: claimed, placement: "normal" };
  return { kind: "cycle", members };
}

/** Follows claimed parents up from `parent`; returns the cycle's members if it leads back to `row`. */
function cycleThrough(store: Store, row: EntryRow, parent: EntryRow): EntryRow[] | null {
  const chain: EntryRow[] = [row];
  const seen = new Set<Guid>([row.guid]);
  let current = parent;
  for (let steps = 0; ; steps++) {
    assert(steps < namingWalkMax, "claimed-parent chain exceeds namingWalkMax");
    if (current.guid === row.guid) return chain;
    if (seen.has(current.guid)) return null; // hangs off another cycle, which has its own breaker
    seen.add(current.guid);
    chain.push(current);
    const next = current.parent;
    if (next === null || isAlwaysPresent(next, row.partition)) return null;
    const nextRow = store.getEntry(next);
    if (nextRow === undefined || nextRow.deleted || nextRow.partition !== row.partition) return null;
    current = nextRow;
  }
}

/** The members as stored now: a cycle's rows are written whole, so none may be a stale read. */
function cycleMembers(store: Store, members: readonly EntryRow[]): EntryRow[] {
  return members.map((member) => {
    const current = store.getEntry(member.guid);
    assert(current !== undefined, `cycle member ${member.guid} vanished`);
    return current;
  });
}

function cycleUpdates(store: Store, members: readonly EntryRow[]): PlacementUpdate[] {
  let breaker: { guid: Guid; stamp: Stamp } | undefined;
  for (const member of members) {
    const stamp = nameStamp(store, member.guid);
    if (breaker === undefined || compareNames(stamp, member.guid, breaker.stamp, breaker.guid) > 0) {
      breaker = { guid: member.guid, stamp };
    }
  }
  const updates: PlacementUpdate[] = [];
  for (const member of members) {
    const isBreaker = member.guid === breaker?.guid;
    const after = isBreaker
      ? withPlacement(member, lostAndFoundGuid(member.partition), "cycle")
      : withPlacement(member, member.parent, "normal");
    if (after !== member) updates.push({ before: member, after });
  }
  return updates;
}

function withPlacement(row: EntryRow, parentEff: Guid | null, placement: Placement): EntryRow {
  if (row.parentEff === parentEff && row.placement === placement) return row;
  return { ...row, parentEff, placement };
}

function isAlwaysPresent(guid: Guid, partition: string): boolean {
  const system = systemGuidsOf(partition);
  return guid === system.root || guid === system.lostAndFound;
}

/** Derived GUIDs of a partition's root and LostAndFound, hashed once per partition (they are few). */
const systemGuids = new Map<string, { readonly root: Guid; readonly lostAndFound: Guid }>();
const systemGuidsMax = 1024;

function systemGuidsOf(partition: string): { readonly root: Guid; readonly lostAndFound: Guid } {
  let system = systemGuids.get(partition);
  if (system === undefined) {
    if (systemGuids.size >= systemGuidsMax) systemGuids.clear();
    system = { root: partitionRootGuid(partition), lostAndFound: lostAndFoundGuid(partition) };
    systemGuids.set(partition, system);
  }
  return system;
}

function nameStamp(store: Store, guid: Guid): Stamp {
  const item = store.getItem(guid, nameItem, "");
  assert(item !== undefined, `entry ${guid} has no name item`);
  return item.stamp;
}

function compareNames(a: Stamp, aGuid: Guid, b: Stamp, bGuid: Guid): number {
  const byStamp = compareStamps(a, b);
  if (byStamp !== 0) return byStamp;
  return aGuid < bGuid ? -1 : aGuid > bGuid ? 1 : 0;
}

/** Marks every member of a name group but its winner as a conflict. */
function resolveConflictGroup(store: Store, group: NameGroup): void {
  const members = store.findByName(group.parent, group.rdnNorm);
  const only = members[0];
  if (members.length === 1 && only !== undefined) {
    // The usual case: a name held once is no conflict, and no stamp need be read.
    if (only.conflict) store.putEntry({ ...only, conflict: false });
    return;
  }
  let winner: { row: EntryRow; stamp: Stamp } | undefined;
  for (const row of members) {
    const stamp = nameStamp(store, row.guid);
    if (winner === undefined || beats(row, stamp, winner.row, winner.stamp)) winner = { row, stamp };
  }
  for (const row of members) {
    const conflict = row.guid !== winner?.row.guid;
    if (row.conflict !== conflict) store.putEntry({ ...row, conflict });
  }
}

function beats(row: EntryRow, stamp: Stamp, other: EntryRow, otherStamp: Stamp): boolean {
  const system = isAlwaysPresent(row.guid, row.partition);
  const otherSystem = isAlwaysPresent(other.guid, other.partition);
  if (system !== otherSystem) return system;
  return compareNames(stamp, row.guid, otherStamp, other.guid) > 0;
}
