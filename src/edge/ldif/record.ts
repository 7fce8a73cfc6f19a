/**
 * LDIF records (RFC 2849) as the codec hands them over: text values (Plexus holds UTF-8 text,
 * so a base64 value must decode to valid UTF-8), attribute types as the file spells them.
 */

/** Attribute values by type, in the order the file first names each type. */
export type LdifAttributes = Record<string, string[]>;

export type ModifyOperation = "add" | "delete" | "replace";

export interface LdifModification {
  readonly operation: ModifyOperation;
  readonly attribute: string;
  /** Empty for `delete` of the whole attribute and for `replace` that removes it. */
  readonly values: string[];
}

/** A record without `changetype`: an entry as it is (what `plexus export` writes). */
export interface LdifContentRecord {
  readonly kind: "content";
  readonly dn: string;
  readonly attributes: LdifAttributes;
}

export interface LdifAddRecord {
  readonly kind: "add";
  readonly dn: string;
  readonly attributes: LdifAttributes;
}

export interface LdifDeleteRecord {
  readonly kind: "delete";
  readonly dn: string;
}

export interface LdifModifyRecord {
  readonly kind: "modify";
  readonly dn: string;
  readonly changes: LdifModification[];
}

/** `changetype: modrdn` and `changetype: moddn` (RFC 2849 treats them alike). */
export interface LdifModRdnRecord {
  readonly kind: "modrdn";
  readonly dn: string;
  readonly newRdn: string;
  readonly deleteOldRdn: boolean;
  /** Absent: the entry stays under its parent. */
  readonly newSuperior?: string;
}

export type LdifRecord =
  | LdifContentRecord
  | LdifAddRecord
  | LdifDeleteRecord
  | LdifModifyRecord
  | LdifModRdnRecord;

/**
 * What the parser yields: a record with the line it starts on, or why the record at `line` is
 * bad. A `fatal` error refuses the whole file (an LDIF version other than 1): it comes before
 * any record, and nothing follows it.
 */
export type LdifItem =
  | { readonly kind: "record"; readonly line: number; readonly record: LdifRecord }
  | { readonly kind: "error"; readonly line: number; readonly message: string; readonly fatal?: true };

/**
 * RFC 2849's SAFE-STRING, a little stricter: a value that may be written after `: ` as it is.
 * Anything else (a leading space, colon or `<`, a trailing space, NUL, CR, LF, any non-ASCII
 * character) must be base64. Two additions keep written files printable and editable: other
 * control characters (tab, DEL) go in base64 too, and so does a trailing space, which the
 * grammar allows but editors strip.
 */
export function isSafeString(value: string): boolean {
  if (value === "") return true;
  const first = value.charCodeAt(0);
  if (first === 0x20 || first === 0x3a || first === 0x3c) return false;
  if (value.charCodeAt(value.length - 1) === 0x20) return false;
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    if (code < 0x20 || code >= 0x7f) return false;
  }
  return true;
}
