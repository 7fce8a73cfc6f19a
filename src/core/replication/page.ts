import type { Guid, InvocationId, NodeId, Usn } from "../ids.ts";
import type { Item } from "./items.ts";
import type { UtdVector } from "./utd.ts";

/**
 * How far a destination has pulled from one source, in the source's USN space.
 * `objectUsn` advances with every applied page: every entry whose current usnChanged on the
 * source is at or below it has been delivered. `propertyUsn` advances when a pull cycle ends:
 * every item change the source stored at or below it has been delivered. Items are selected by
 * `propertyUsn`, entries by `objectUsn` (Active Directory's usnHighObjUpdate/usnHighPropUpdate),
 * so an entry that changes again while a cycle is paging never loses an earlier item change.
 */
export interface Watermark {
  /** The source database instance these USNs belong to; null before the first page. */
  readonly invocation: InvocationId | null;
  readonly objectUsn: Usn;
  readonly propertyUsn: Usn;
  /**
   * The origin filter (reverse-path pulling, docs/topology.md): the source leaves out the
   * changes these invocations originated, because the destination gets them from another
   * partner, its next hop toward their site. So this watermark does not vouch for them, and a
   * pull that wants one of them back must start again from zero. Sorted, distinct; absent
   * means none.
   */
  readonly excluded?: readonly InvocationId[];
}

/** Invocation ids sorted and without repeats: the one form a filter is kept and compared in. */
export function sortedInvocations(ids: Iterable<InvocationId>): InvocationId[] {
  return [...new Set(ids)].sort();
}

/** True when every invocation of `inner` is also in `outer` (both sorted, as above). */
export function excludesAll(outer: readonly InvocationId[], inner: readonly InvocationId[]): boolean {
  const set = new Set(outer);
  return inner.every((id) => set.has(id));
}

export function sameExcluded(a: Watermark, b: Watermark): boolean {
  const x = a.excluded ?? [];
  const y = b.excluded ?? [];
  return x.length === y.length && x.every((id, index) => id === y[index]);
}

export const initialWatermark: Watermark = Object.freeze({
  invocation: null,
  objectUsn: 0 as Usn,
  propertyUsn: 0 as Usn,
});

/** Bounds on one page. A page always holds at least one whole entry, so an entry larger than
 * `bytesMax` still travels (entry size is bounded separately by the schema limits). */
export interface PageLimits {
  readonly entriesMax: number;
  readonly bytesMax: number;
}

export const pageEntriesMaxDefault = 500;
export const pageBytesMaxDefault = 1024 * 1024;
export const pageEntriesMaxLimit = 10_000;
export const pageBytesMaxLimit = 64 * 1024 * 1024;

/** What a destination sends to a source to pull the next page. */
export interface ChangeRequest {
  readonly destination: NodeId;
  /** The destination's current database instance (its UTD below is that instance's). */
  readonly destinationInvocation: InvocationId;
  readonly from: Watermark;
  /** The destination's UTD: the source leaves out every item change it already covers. */
  readonly utd: UtdVector;
  /** The destination's purge horizon: a source that lacks deletions in it quarantines itself. */
  readonly purgeHorizon: UtdVector;
  readonly limits: PageLimits;
}

/** One entry's changed items. `partition` and `origin` never change for an entry. */
export interface EntryChange {
  readonly guid: Guid;
  /** Normalised DN of the entry's partition. */
  readonly partition: string;
  /** The write that created the entry. */
  readonly origin: { readonly invocation: InvocationId; readonly usn: Usn };
  readonly items: readonly Item[];
}

/** A bounded page of changes, in the source's USN order. */
export interface ChangePage {
  readonly source: NodeId;
  readonly sourceInvocation: InvocationId;
  /**
   * The destination instance the page was made for (the request's destinationInvocation): its
   * items were left out by that instance's UTD, so only that instance may take the page as the
   * answer to its watermark and merge the source's UTD. A page that reaches a destination
   * restored since it asked still merges its items, but advances nothing.
   */
  readonly destinationInvocation: InvocationId;
  /** The watermark this page answers (copied from the request). */
  readonly from: Watermark;
  /** Every source entry whose usnChanged is in (from.objectUsn, highUsn] is in this page. */
  readonly highUsn: Usn;
  /** True when the source has entries changed after highUsn. */
  readonly more: boolean;
  /** The source's UTD when the page was made, including its own invocation at its current USN. */
  readonly utd: UtdVector;
  /** The source's purge horizon: deletions it purged or heard were purged (it cannot send them). */
  readonly purgeHorizon: UtdVector;
  readonly entries: readonly EntryChange[];
}
