import type { Guid } from "../ids.ts";
import type { Stamp } from "./stamp.ts";

/**
 * An entry's replicated state is a set of stamped items, each merged on its own:
 * - the name item (`@name`): the entry's claimed RDN and parent,
 * - the deletion item (`@deleted`): present once the entry is a tombstone (there is no undelete),
 * - one `values` item per ordinary attribute: the whole value set, stamped as one,
 * - one `link` item per value of a link-valued attribute (e.g. `member`), so that concurrent
 *   adds and removes of different values all survive.
 * Attribute types never contain `@`, so the two system item names cannot collide with them.
 */
export const nameItem = "@name";
export const deletedItem = "@deleted";

export type ItemValue =
  | { readonly kind: "name"; readonly rdn: string; readonly parent: Guid | null }
  | { readonly kind: "deleted" }
  | { readonly kind: "values"; readonly type: string; readonly values: readonly string[] }
  | { readonly kind: "link"; readonly type: string; readonly value: string; readonly present: boolean };

/** One item as it travels in a change page and as it is merged. */
export interface Item {
  /** `@name`, `@deleted`, or a lowercased attribute type. */
  readonly attribute: string;
  /** "" except for link values, where it is the normalised value. */
  readonly key: string;
  readonly value: ItemValue;
  readonly stamp: Stamp;
}

export function itemIdentity(item: Pick<Item, "attribute" | "key">): string {
  return item.key === "" ? item.attribute : `${item.attribute}\u0000${item.key}`;
}
