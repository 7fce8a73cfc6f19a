import { dnParent, formatDn, parseDn } from "../core/directory/dn.ts";
import { normalizeValue } from "../core/directory/values.ts";
import type { LdifAttributes, LdifModification, LdifRecord } from "../edge/ldif/record.ts";
import { type NodeApi, ProblemError } from "./remote.ts";

/**
 * Whether a record that the node refused is in fact already there — from an earlier run of the
 * same import that stopped before it learnt the result. A create whose entry exists with the
 * same content is always "already there"; a delete, modify or rename only when the record was
 * in the batch in flight when the earlier run stopped (`maybeApplied`), since elsewhere "no
 * such entry" or "value exists" are real mistakes in the file.
 */

type Values = ReadonlyMap<string, readonly string[]>;

/** Attributes keyed by lower-case type, for comparison. */
function byType(
  attributes: LdifAttributes | Readonly<Record<string, readonly string[]>>,
): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const [type, values] of Object.entries(attributes))
    map.set(type.toLowerCase(), [...(map.get(type.toLowerCase()) ?? []), ...values]);
  return map;
}

function sameValues(a: readonly string[], b: readonly string[]): boolean {
  const left = [...new Set(a)].sort();
  const right = [...new Set(b)].sort();
  return left.length === right.length && left.every((value, index) => value === right[index]);
}

/**
 * A create's attributes as the node stores them: it adds each value of the DN's RDN that the
 * attributes lack (LDAP keeps the naming values in the entry), comparing values as it does
 * (normalizeValue). Without this, a record that leaves out its RDN attribute would never
 * match the entry it created.
 */
export function withNamingValues(dn: string, attributes: Values): Map<string, string[]> {
  const result = new Map([...attributes].map(([type, values]) => [type, [...values]]));
  const parsed = parseDn(dn);
  const rdn = parsed.ok ? parsed.value.rdns[0] : undefined;
  for (const ava of rdn?.avas ?? []) {
    const values = result.get(ava.typeNorm) ?? [];
    if (!values.some((value) => normalizeValue(value) === ava.valueNorm)) values.push(ava.value);
    result.set(ava.typeNorm, values);
  }
  return result;
}

export function sameAttributes(a: Values, b: Values): boolean {
  if (a.size !== b.size) return false;
  for (const [type, values] of a) {
    const other = b.get(type);
    if (other === undefined || !sameValues(values, other)) return false;
  }
  return true;
}

/** The entry's attributes after `changes` (LDAP modify, errors ignored): equal to before = already applied. */
export function applyChanges(entry: Values, changes: readonly LdifModification[]): Map<string, string[]> {
  const after = new Map([...entry].map(([type, values]) => [type, [...values]]));
  for (const change of changes) {
    const type = change.attribute.toLowerCase();
    const current = after.get(type) ?? [];
    if (change.operation === "add") after.set(type, [...new Set([...current, ...change.values])]);
    else if (change.operation === "replace" || change.values.length === 0)
      after.set(type, [...change.values]);
    else
      after.set(
        type,
        current.filter((value) => !change.values.includes(value)),
      );
    if (after.get(type)?.length === 0) after.delete(type);
  }
  return after;
}

async function entryAttributes(
  api: NodeApi,
  dn: string,
  session: string | undefined,
): Promise<Values | null> {
  try {
    const answer = await api.get(dn, ["*"], { session });
    return byType(answer.body.attributes);
  } catch (error) {
    if (error instanceof ProblemError && error.code === "no-such-entry") return null;
    throw error;
  }
}

function renamedDn(dn: string, newRdn: string, newSuperior: string | undefined): string | null {
  if (newSuperior !== undefined) return `${newRdn},${newSuperior}`;
  const parsed = parseDn(dn);
  if (!parsed.ok || parsed.value.rdns.length === 0) return null;
  const parent = formatDn(dnParent(parsed.value));
  return parent === "" ? newRdn : `${newRdn},${parent}`;
}

/** True when the node's refusal `code` of `record` means the record is already in place. */
export async function alreadyApplied(
  api: NodeApi,
  record: LdifRecord,
  code: string,
  maybeApplied: boolean,
  session: string | undefined,
  laterChanges: readonly LdifModification[] = [],
): Promise<boolean> {
  switch (record.kind) {
    case "content":
    case "add": {
      if (code !== "entry-exists") return false;
      const existing = await entryAttributes(api, record.dn, session);
      const created = withNamingValues(record.dn, byType(record.attributes));
      // Applied with its batch, the create's entry also has the batch's later modifies of it.
      const expected = maybeApplied ? applyChanges(created, laterChanges) : created;
      return existing !== null && sameAttributes(existing, expected);
    }
    case "delete":
      return maybeApplied && code === "no-such-entry";
    case "modify": {
      if (!maybeApplied || (code !== "attribute-or-value-exists" && code !== "no-such-attribute"))
        return false;
      const existing = await entryAttributes(api, record.dn, session);
      return existing !== null && sameAttributes(existing, applyChanges(existing, record.changes));
    }
    case "modrdn": {
      if (!maybeApplied || code !== "no-such-entry") return false;
      const target = renamedDn(record.dn, record.newRdn, record.newSuperior);
      return target !== null && (await entryAttributes(api, target, session)) !== null;
    }
    default: {
      const never: never = record;
      throw new Error(`unknown record ${JSON.stringify(never)}`);
    }
  }
}
