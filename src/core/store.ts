import type { Guid, InvocationId, Millis, NodeId, Usn } from "./ids.ts";
import type { ItemValue } from "./replication/items.ts";
import type { Watermark } from "./replication/page.ts";
import type { Stamp } from "./replication/stamp.ts";
import type { UtdVector } from "./replication/utd.ts";

/**
 * The storage port. `src/core` decides; a Store only keeps rows and answers indexed queries.
 * Every method is synchronous. Rows passed in are copied by the store; rows returned belong to
 * the caller (the store keeps no reference to them). All list methods are bounded by their
 * `limit` argument and return rows in the order their doc comment states.
 *
 * Strings are well-formed UTF-16 and every string order is Unicode code point order (SQLite's
 * BINARY collation over UTF-8), which differs from JavaScript's `<` only outside the BMP.
 *
 * Errors: a Store throws only for programmer errors (a broken constraint such as a duplicate
 * usnChanged) or environmental failures (disk full, I/O error). Such a throw inside
 * `transaction` rolls the whole transaction back.
 */
export interface Store {
  /**
   * Runs `fn` as one atomic, durable transaction: either every write inside it is committed
   * or none is. A nested call joins the outermost transaction (no savepoints): an inner throw
   * that the outer function catches does not undo the inner writes, so callers must not catch
   * there (the core checks everything before it writes instead).
   */
  transaction<T>(fn: () => T): T;

  readMeta(): ReplicaMeta | undefined;
  writeMeta(meta: ReplicaMeta): void;

  getEntry(guid: Guid): EntryRow | undefined;
  /** Inserts or replaces the row with this guid. */
  putEntry(row: EntryRow): void;
  /**
   * Sets only the usnChanged of an existing entry: what every write that changes items but not
   * the name, liveness or placement does. Cheaper than putEntry (only one index changes).
   */
  setUsnChanged(guid: Guid, usnChanged: Usn): void;
  /** Removes the entry and all its items (tombstone purge, lingering-object removal). */
  removeEntry(guid: Guid): void;
  /** Live entries whose effective parent is `parent` and whose claimed RDN normalises to `rdnNorm`, by guid. */
  findByName(parent: Guid, rdnNorm: string): EntryRow[];
  /** Live entries whose effective parent is `parent`, ordered by (rdnNorm, guid), after the cursor. */
  listChildren(parent: Guid, after: ChildCursor | null, limit: number): EntryRow[];
  /** Whether any live entry has `parent` as its effective parent. */
  hasChildren(parent: Guid): boolean;
  /** Live entries whose claimed parent is `parent`, ordered by guid, after the cursor. */
  listClaimants(parent: Guid, afterGuid: Guid | null, limit: number): EntryRow[];
  /** Live entries with placement "cycle", ordered by guid. */
  listCycleBreakers(limit: number): EntryRow[];
  /** Live entries with a naming conflict or a placement other than "normal", ordered by guid. */
  listConflicts(afterGuid: Guid | null, limit: number): EntryRow[];
  /** Entries (live and tombstones) with usnChanged > usn, ordered by usnChanged. */
  entriesChangedAfter(usn: Usn, limit: number): EntryRow[];
  /** Tombstones ordered by (tombstoneSince, guid), after the cursor. */
  listTombstones(after: TombstoneCursor | null, limit: number): EntryRow[];
  /** Entries (live and tombstones) ordered by guid, after the cursor. */
  listEntries(afterGuid: Guid | null, limit: number): EntryRow[];
  /** Live partition roots (entries with no claimed parent), ordered by guid. */
  listRoots(): EntryRow[];

  /** All items of an entry, ordered by (attribute, key). */
  getItems(guid: Guid): ItemRow[];
  /**
   * The items of an entry a destination lacks, ordered by (attribute, key): stored here after
   * `afterLocalUsn`, with a stamp `utd` does not cover. The same as filtering getItems, without
   * building the items that are filtered out (a relay pull passes over most of them).
   */
  getItemsLacking(guid: Guid, afterLocalUsn: Usn, utd: UtdVector): ItemRow[];
  /** Items of one attribute of an entry, ordered by key. */
  getAttributeItems(guid: Guid, attribute: string): ItemRow[];
  getItem(guid: Guid, attribute: string, key: string): ItemRow | undefined;
  /** Inserts or replaces the item with this (guid, attribute, key). */
  putItem(row: ItemRow): void;
  /** Replaces an item that exists (the caller has just read it): one write instead of two. */
  replaceItem(row: ItemRow): void;
  /**
   * Per attribute of an entry (not the name and deletion items), ordered by attribute: the
   * stored size of its items in bytes, an upper bound of its values' UTF-8 bytes. Lets limit
   * checks pass without decoding every item.
   */
  storedSizes(guid: Guid): StoredSize[];
  /** Removes every item of the entry whose attribute is not in `keep`. */
  removeItemsExcept(guid: Guid, keep: readonly string[]): void;
  /**
   * Per invocation id, the highest stamp USN of any item ever stored here (items written in the
   * open transaction included): an upper bound of every stored item's stamp, never lowered when
   * items go. A destination whose UTD covers it lacks nothing this store could send.
   */
  heldStamps(): UtdVector;

  readUtd(): UtdVector;
  /**
   * Replaces the stored vector with `utd`. A caller that knows what is stored passes it as
   * `stored`, and the store writes only the difference (a UTD changes one or two entries at a
   * time, and a replica that saw many restores carries many).
   */
  writeUtd(utd: UtdVector, stored?: UtdVector): void;
  /** A purge horizon vector (see core/replica/tombstones.ts); empty when never written. */
  readHorizon(kind: HorizonKind): UtdVector;
  /** Replaces that vector (an empty one removes it). */
  writeHorizon(kind: HorizonKind, vector: UtdVector): void;
  /** Every non-empty horizon vector, ordered by kind. */
  listHorizons(): Array<{ kind: HorizonKind; vector: UtdVector }>;
  readWatermark(partner: NodeId): Watermark | undefined;
  writeWatermark(partner: NodeId, watermark: Watermark): void;
  /** All partners with a watermark, ordered by node id. */
  listWatermarks(): Array<{ partner: NodeId; watermark: Watermark }>;
  /** Ordered by node id. */
  readPeerReports(): PeerReport[];
  writePeerReport(report: PeerReport): void;

  /** Appends an event; the store keeps at most `eventsKeptMax`, dropping the oldest. */
  appendEvent(event: ReplicaEvent): void;
  /** The newest events first. */
  listEvents(limit: number): ReplicaEvent[];

  counts(): StoreCounts;
  close(): void;
}

/** Replica-wide scalars, written at the end of every transaction that changes them. */
export interface ReplicaMeta {
  readonly nodeId: NodeId;
  readonly invocation: InvocationId;
  /** The highest USN this replica has used. Never goes down except by restoring an old copy. */
  readonly usn: Usn;
  readonly createdAt: Millis;
  /** Local clock at the last completed inbound pull cycle (creation time before the first); for status. */
  readonly lastInboundSuccess: Millis;
}

export type Placement = "normal" | "orphan" | "cycle";

/**
 * Per invocation id, a deletion USN (see core/replica/tombstones.ts). "purged": the highest
 * deletion whose tombstone this replica purged or heard was purged. "checked": what
 * lingering-object checks have settled. "required:<node>": purged deletions that node's last
 * horizon showed this replica may never have received. The replica is quarantined while
 * "checked" does not cover some "required:<node>".
 */
export type HorizonKind = "purged" | "checked" | `required:${string}`;

export interface EntryRow {
  readonly guid: Guid;
  /** Normalised DN of the entry's partition. */
  readonly partition: string;
  /** The write that created the entry (used to tell lingering objects from new ones). */
  readonly origin: { readonly invocation: InvocationId; readonly usn: Usn };
  /** The claimed RDN as written, and its normalised form: copies of the `@name` item. */
  readonly rdn: string;
  readonly rdnNorm: string;
  /** The claimed parent; null only for a partition root. */
  readonly parent: Guid | null;
  readonly deleted: boolean;
  /** Local clock when this replica made the entry a tombstone; null exactly while live. */
  readonly tombstoneSince: Millis | null;
  /** Derived on this replica from replicated state; never replicated. See core/replica/naming.ts. */
  readonly parentEff: Guid | null;
  readonly placement: Placement;
  readonly conflict: boolean;
  readonly usnCreated: Usn;
  /** Unique across entries: every entry update takes a fresh USN. */
  readonly usnChanged: Usn;
}

export interface ChildCursor {
  readonly rdnNorm: string;
  readonly guid: Guid;
}

export interface TombstoneCursor {
  readonly tombstoneSince: Millis;
  readonly guid: Guid;
}

export interface StoredSize {
  readonly attribute: string;
  readonly bytes: number;
}

export interface ItemRow {
  readonly guid: Guid;
  readonly attribute: string;
  readonly key: string;
  readonly value: ItemValue;
  readonly stamp: Stamp;
  /** The local USN at which this replica stored the item. */
  readonly localUsn: Usn;
}

/** What this replica last heard of another replica's UTD (for tombstone purge decisions). */
export interface PeerReport {
  readonly node: NodeId;
  readonly invocation: InvocationId;
  readonly utd: UtdVector;
  /** The reporting node's USN when it reported; a newer report has a higher one. */
  readonly usn: Usn;
  /** Local clock when this replica first received a report with this content. */
  readonly receivedAt: Millis;
}

/** Events beyond this many are dropped, oldest first. */
export const eventsKeptMax = 10_000;

export type ReplicaEventKind =
  | "created"
  | "opened"
  | "invocation-changed"
  | "rollback-detected"
  | "quarantined"
  | "quarantine-ended"
  | "lingering-removed"
  | "tombstones-purged";

export interface ReplicaEvent {
  readonly time: Millis;
  readonly kind: ReplicaEventKind;
  readonly detail: string;
}

export interface StoreCounts {
  readonly entries: number;
  readonly tombstones: number;
  readonly items: number;
}
