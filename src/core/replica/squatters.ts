import { isSystemGuid } from "../directory/partition.ts";
import type { Guid } from "../ids.ts";
import type { EntryRow } from "../store.ts";
import type { ReplicaContext } from "./context.ts";
import type { NamingChange } from "./naming.ts";

/**
 * GUID squatting. A partition's root and LostAndFound have GUIDs derived from its DN
 * (directory/partition.ts), so every replica knows them before the partition exists anywhere.
 * No write makes an entry of another partition with one of them (a new entry's GUID is 48 bits
 * of time and 80 random ones: it meets a given derived GUID by chance once in 2^80 at best), but
 * a page can bring one: only a broken or hostile node sends it. Stored first, it held the GUID,
 * and the partition's own root or LostAndFound arriving later was dropped as "a GUID that moved
 * to another partition" while the UTD recorded it as received: the partition stayed out of
 * reach on that replica for good, and on any replica that took that UTD before it had them.
 *
 * A page cannot be refused for it: when the squatter arrives the partition may not exist
 * anywhere yet (its derived GUIDs cannot be told from random ones without its DN), and an honest
 * replica that stored the squatter then relays it. So the GUID's own partition wins whenever it
 * shows up: its root or LostAndFound evicts the squatter (inbound.ts), and so does creating the
 * partition here (originating.ts). A squatter that arrives after them is dropped as before.
 * Every replica ends without the squatter, whatever the order, and no page is refused for it.
 */

/** Whether `row`, stored under `guid`, squats a GUID derived for `partition` (another partition). */
export function squats(row: EntryRow, guid: Guid, partition: string): boolean {
  return row.partition !== partition && isSystemGuid(guid, partition);
}

/**
 * Removes a squatter and all its items. Returns the naming change the caller must refresh:
 * the squatter's name group loses a member, and every entry that claims its GUID as a parent is
 * placed again (one of another partition than the GUID's becomes an orphan of its own).
 */
export function evictSquatter(ctx: ReplicaContext, row: EntryRow): NamingChange {
  ctx.store.removeEntry(row.guid);
  const previousGroup =
    row.deleted || row.parentEff === null ? null : { parent: row.parentEff, rdnNorm: row.rdnNorm };
  return { guid: row.guid, previousGroup, existenceChanged: true };
}
