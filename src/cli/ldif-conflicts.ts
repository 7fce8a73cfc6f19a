import {
  type Dn,
  dnChild,
  dnParent,
  normalizeDn,
  normalizeRdn,
  parseDn,
  parseRdn,
} from "../core/directory/dn.ts";
import type { LdifModification, LdifRecord } from "../edge/ldif/record.ts";

/**
 * Which records may not share a batch with the ones before them, so that a batch can always be
 * sent again. A batch whose answer never came (the import killed, the node gone) is sent again
 * on resume, and each record the node then refuses is checked against the directory as it is
 * (ldif-replay.ts). That check reads the entry the record names; it is only sound when no later
 * record of the same batch changed that entry. Two records in one batch where the second does
 * change what the first's check reads would, sent again, re-create an entry that was renamed
 * away (a duplicate) or report a create or modify as failed although it was applied. So such a
 * second record starts a new batch; the batch before it is sent first.
 *
 * What a later record changes, and which earlier records' checks read it:
 * - a rename moves its entry and subtree, and takes its new name: every earlier create, modify
 *   or rename naming either name or anything below it;
 * - a delete removes its entry: every earlier create, modify or rename naming it or anything
 *   below it (earlier deletes, say children before their parent, check no more than absence);
 * - a create makes its name exist: any earlier record naming it.
 * Creates under a parent created earlier, modifies of one entry, deletes of a subtree from
 * its leaves up stay in one batch: their checks hold whatever the later records did. So does
 * a create followed by modifies of its entry, common in change files: the create's check
 * applies those modifies first (`laterChanges`).
 */
export class BatchConflicts {
  /** Every name a record of the batch names (normalized DNs). */
  private readonly named = new Set<string>();
  /**
   * The names of the batch's creates, modifies and renames, whose DNs and every DN above them
   * a later rename or delete may not touch. Their keys (atOrAbove) are worked out only once the
   * batch meets a rename or a delete: a batch of creates (an export's file) never needs them.
   */
  private readonly kept: NormalizedName[] = [];
  private atOrAbove: Set<string> | null = null;

  /**
   * True when `record` must go in the next batch (see above); else it is taken into this one.
   * One call per record: its names are parsed and normalized once.
   */
  admit(record: LdifRecord): boolean {
    const names = namesOf(record);
    if (names === null) return false;
    if (this.conflicts(record, names)) return true;
    this.add(record, names);
    return false;
  }

  clear(): void {
    this.named.clear();
    this.kept.length = 0;
    this.atOrAbove = null;
  }

  private conflicts(record: LdifRecord, names: readonly NormalizedName[]): boolean {
    switch (record.kind) {
      case "content":
      case "add":
        return names.some((name) => this.named.has(name.key));
      case "modify":
        return false;
      case "delete":
      case "modrdn": {
        const above = this.keysAtOrAbove();
        return names.some((name) => above.has(name.key));
      }
      default: {
        const never: never = record;
        throw new Error(`unknown record ${JSON.stringify(never)}`);
      }
    }
  }

  private add(record: LdifRecord, names: readonly NormalizedName[]): void {
    for (const name of names) {
      this.named.add(name.key);
      if (record.kind === "delete") continue;
      this.kept.push(name);
      if (this.atOrAbove !== null) addSelfAndAbove(this.atOrAbove, name);
    }
  }

  private keysAtOrAbove(): Set<string> {
    if (this.atOrAbove === null) {
      this.atOrAbove = new Set();
      for (const name of this.kept) addSelfAndAbove(this.atOrAbove, name);
    }
    return this.atOrAbove;
  }
}

/** The keys of `name` and of every DN above it: the RDNs' keys from each depth on (normalizeDn's form). */
function addSelfAndAbove(keys: Set<string>, name: NormalizedName): void {
  for (let depth = 0; depth < name.rdnKeys.length; depth++) keys.add(name.rdnKeys.slice(depth).join(","));
}

/** A DN's key (normalizeDn) and its RDNs' keys, from the entry up. */
interface NormalizedName {
  readonly key: string;
  readonly rdnKeys: readonly string[];
}

function normalizedName(dn: Dn): NormalizedName {
  const rdnKeys = dn.rdns.map(normalizeRdn);
  return { key: rdnKeys.join(","), rdnKeys };
}

/** The DNs a record names (a rename: old and new); null when one does not parse (the node refuses it). */
function namesOf(record: LdifRecord): NormalizedName[] | null {
  const dn = parseDn(record.dn);
  if (!dn.ok) return null;
  if (record.kind !== "modrdn") return [normalizedName(dn.value)];
  const rdn = parseRdn(record.newRdn);
  const superior =
    record.newSuperior === undefined
      ? dn.value.rdns.length > 0
        ? { ok: true as const, value: dnParent(dn.value) }
        : null
      : parseDn(record.newSuperior);
  if (!rdn.ok || superior === null || !superior.ok) return null;
  return [normalizedName(dn.value), normalizedName(dnChild(rdn.value, superior.value))];
}

/**
 * The modifies of a create's entry that follow it in its batch, in order: sent again, the
 * create finds its entry with them applied. Keyed by the create's position in `records`.
 */
export function laterChanges(records: readonly LdifRecord[]): Map<number, LdifModification[]> {
  // A batch of creates only (an export's file) has none: no name is parsed again for it.
  if (!records.some((record) => record.kind === "modify")) return new Map();
  const creates = new Map<string, number>();
  const changes = new Map<number, LdifModification[]>();
  for (const [position, record] of records.entries()) {
    const dn = parseDn(record.dn);
    if (!dn.ok) continue;
    const key = normalizeDn(dn.value);
    if (record.kind === "content" || record.kind === "add") creates.set(key, position);
    const create = creates.get(key);
    if (record.kind === "modify" && create !== undefined)
      changes.set(create, [...(changes.get(create) ?? []), ...record.changes]);
  }
  return changes;
}
