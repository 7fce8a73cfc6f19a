import { isAttributeType, normalizeDn, parseDn } from "../directory/dn.ts";
import {
  entryBytesMax,
  isLinkAttribute,
  isOperationalAttribute,
  type Schema,
  utf8Length,
  valueBytesMax,
  valuesPerAttributeMax,
} from "../directory/schema.ts";
import { normalizeValue } from "../directory/values.ts";
import type { Guid } from "../ids.ts";
import { fail, ok, type Result } from "../result.ts";
import type { ItemRow, Store } from "../store.ts";

/** One attribute value and the key that decides equality (normalised value, or DN for links). */
export interface KeyedValue {
  readonly value: string;
  readonly key: string;
}

export function attributeTypeOf(type: unknown): Result<{ type: string; typeNorm: string }> {
  if (typeof type !== "string" || !isAttributeType(type)) {
    return fail("invalid-attribute", `'${String(type)}' is not a valid attribute type`);
  }
  return ok({ type, typeNorm: type.toLowerCase() });
}

/** The equality key of a value: link values are DNs compared as DNs, others caseIgnore. */
export function valueKey(schema: Schema, typeNorm: string, value: string): Result<string> {
  if (!isLinkAttribute(schema, typeNorm)) return ok(normalizeValue(value));
  const dn = parseDn(value);
  if (!dn.ok) return fail("invalid-value", `a value of ${typeNorm} must be a DN: ${dn.error.message}`);
  return ok(normalizeDn(dn.value));
}

/** Checks a list of values of one attribute: strings, sizes, no duplicates. */
export function keyedValues(schema: Schema, type: string, values: unknown): Result<KeyedValue[]> {
  if (!Array.isArray(values)) return fail("invalid-value", `values of ${type} must be a list of strings`);
  if (values.length > valuesPerAttributeMax) {
    return fail("limit-exceeded", `${type} has more than ${valuesPerAttributeMax} values`);
  }
  const typeNorm = type.toLowerCase();
  const seen = new Set<string>();
  const out: KeyedValue[] = [];
  let bytes = 0;
  for (const value of values) {
    if (typeof value !== "string") return fail("invalid-value", `values of ${type} must be strings`);
    const size = utf8Length(value);
    if (size > valueBytesMax)
      return fail("limit-exceeded", `a value of ${type} exceeds ${valueBytesMax} bytes`);
    bytes += size;
    const key = valueKey(schema, typeNorm, value);
    if (!key.ok) return key;
    if (seen.has(key.value))
      return fail("attribute-or-value-exists", `${type} lists the value '${value}' twice`);
    seen.add(key.value);
    out.push({ value, key: key.value });
  }
  if (bytes > entryBytesMax) return fail("limit-exceeded", `values of ${type} exceed ${entryBytesMax} bytes`);
  return ok(out);
}

/** A client cannot write an attribute the node computes (operationalAttributeTypes in schema.ts). */
export function refuseOperational(type: string): Result<void> {
  if (!isOperationalAttribute(type.toLowerCase())) return ok(undefined);
  return fail(
    "invalid-attribute",
    `${type} is an operational attribute: the node computes it and clients cannot write it`,
  );
}

/**
 * LDAP's string syntaxes have no empty value (RFC 4517: a Directory String holds at least one
 * character), and an empty DN-valued one would name the root DN: a client cannot store one.
 */
export function refuseEmptyValue(type: string, values: readonly { readonly value: string }[]): Result<void> {
  if (!values.some((value) => value.value === "")) return ok(undefined);
  return fail("invalid-value", `${type} cannot have an empty value`);
}

/**
 * What a client's modification may do beyond LDAP's rules: store no empty value and write no
 * operational attribute. Removing stays allowed where there is something to remove, so that
 * values stored before these checks existed (they replicate as they are) can be cleaned up.
 */
export function checkClientChange(
  type: string,
  working: WorkingAttribute,
  operation: ModificationOperation,
  values: readonly KeyedValue[],
): Result<void> {
  const removes = operation === "delete" || (operation === "replace" && values.length === 0);
  if (!(removes && working.current.length > 0)) {
    const operational = refuseOperational(type);
    if (!operational.ok) return operational;
  }
  return operation === "delete" ? ok(undefined) : refuseEmptyValue(type, values);
}

/**
 * The values of one attribute of an entry while a write is being planned. `original` is what
 * the store holds; `current` is the result of the modifications applied so far.
 */
export interface WorkingAttribute {
  readonly type: string;
  readonly typeNorm: string;
  readonly link: boolean;
  readonly items: readonly ItemRow[];
  readonly original: readonly KeyedValue[];
  current: KeyedValue[];
}

export function loadAttribute(store: Store, schema: Schema, guid: Guid, type: string): WorkingAttribute {
  const typeNorm = type.toLowerCase();
  const link = isLinkAttribute(schema, typeNorm);
  const items = link ? store.getAttributeItems(guid, typeNorm) : nonEmpty(store.getItem(guid, typeNorm, ""));
  const original = presentValues(schema, items);
  const shownType = items.find((item) => item.value.kind === "values" || item.value.kind === "link");
  const storedType =
    shownType?.value.kind === "values" || shownType?.value.kind === "link" ? shownType.value.type : type;
  return { type: storedType, typeNorm, link, items, original, current: [...original] };
}

function nonEmpty(item: ItemRow | undefined): ItemRow[] {
  return item === undefined ? [] : [item];
}

/** The values an attribute's items say are present. */
export function presentValues(schema: Schema, items: readonly ItemRow[]): KeyedValue[] {
  const out: KeyedValue[] = [];
  for (const item of items) {
    const value = item.value;
    if (value.kind === "link" && value.present) out.push({ value: value.value, key: item.key });
    if (value.kind === "values") {
      for (const text of value.values) {
        const key = valueKey(schema, item.attribute, text);
        out.push({ value: text, key: key.ok ? key.value : normalizeValue(text) });
      }
    }
  }
  return out;
}

export type ModificationOperation = "add" | "delete" | "replace";

export interface Modification {
  readonly operation: ModificationOperation;
  readonly attribute: string;
  readonly values: readonly string[];
}

/** Applies one LDAP modification to the working values (RFC 4511 section 4.6 semantics). */
export function applyModification(
  working: WorkingAttribute,
  operation: ModificationOperation,
  values: readonly KeyedValue[],
): Result<void> {
  const present = new Set(working.current.map((value) => value.key));
  switch (operation) {
    case "add": {
      if (values.length === 0)
        return fail("invalid-request", `add to ${working.type} needs at least one value`);
      const duplicate = values.find((value) => present.has(value.key));
      if (duplicate !== undefined) {
        return fail(
          "attribute-or-value-exists",
          `${working.type} already has the value '${duplicate.value}'`,
        );
      }
      working.current.push(...values);
      break;
    }
    case "delete": {
      if (values.length === 0) {
        if (working.current.length === 0)
          return fail("no-such-attribute", `the entry has no ${working.type}`);
        working.current = [];
        break;
      }
      const missing = values.find((value) => !present.has(value.key));
      if (missing !== undefined) {
        return fail("no-such-attribute", `${working.type} has no value '${missing.value}'`);
      }
      const removed = new Set(values.map((value) => value.key));
      working.current = working.current.filter((value) => !removed.has(value.key));
      break;
    }
    case "replace":
      working.current = [...values];
      break;
  }
  if (working.current.length > valuesPerAttributeMax) {
    return fail("limit-exceeded", `${working.type} would have more than ${valuesPerAttributeMax} values`);
  }
  return ok(undefined);
}

/**
 * Whether the write must store anything for this attribute. A values item is rewritten when
 * its text changes at all (even only in case); link values are present or not by key, so
 * `CN=Bob, DC=x` replacing `cn=bob,dc=x` changes nothing.
 */
export function attributeChanged(working: WorkingAttribute): boolean {
  if (working.current.length !== working.original.length) return true;
  if (working.link) {
    const original = new Set(working.original.map((value) => value.key));
    return working.current.some((value) => !original.has(value.key));
  }
  return working.current.some((value, index) => value.value !== working.original[index]?.value);
}

export function attributeBytes(values: readonly KeyedValue[]): number {
  let bytes = 0;
  for (const value of values) bytes += utf8Length(value.value);
  return bytes;
}
