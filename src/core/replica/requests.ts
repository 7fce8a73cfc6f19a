import { dnLengthMax } from "../directory/dn.ts";
import { isGuid } from "../ids.ts";
import { fail, ok, type Result } from "../result.ts";
import type { WriteRequest } from "./originating.ts";
import type { SearchRequest } from "./read.ts";

/**
 * Shape checks for requests that come from outside (edges hand the core whatever JSON, LDAP
 * or CLI input they decoded). A wrong type is an `invalid-request` with a sentence naming the
 * field, never a TypeError; the contents (DN syntax, attribute types, values) are checked by
 * the operations themselves.
 */
function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function bad(message: string): { ok: false; error: { code: "invalid-request"; message: string } } {
  return fail("invalid-request", message) as {
    ok: false;
    error: { code: "invalid-request"; message: string };
  };
}

const operations = new Set(["add", "delete", "replace"]);

export function checkWriteRequest(input: unknown): Result<WriteRequest> {
  if (!isRecord(input)) return bad("a write must be an object");
  const { op, dn } = input;
  if (typeof dn !== "string") return bad("dn must be a string");
  switch (op) {
    case "add":
      return ok(input as WriteRequest);
    case "modify": {
      const { changes } = input;
      if (!Array.isArray(changes)) return bad("changes must be a list");
      for (const change of changes) {
        if (!isRecord(change)) return bad("each change must be an object");
        if (typeof change.operation !== "string" || !operations.has(change.operation)) {
          return bad(`unknown modify operation '${String(change.operation)}'`);
        }
        if (typeof change.attribute !== "string") {
          return fail("invalid-attribute", "each change needs an attribute type string");
        }
        if (change.values !== undefined && !Array.isArray(change.values)) {
          return fail("invalid-value", `values of ${change.attribute} must be a list of strings`);
        }
      }
      return ok(input as WriteRequest);
    }
    case "delete":
      if (input.subtree !== undefined && typeof input.subtree !== "boolean")
        return bad("subtree must be true or false");
      return ok(input as WriteRequest);
    case "modifyDn":
      if (typeof input.newRdn !== "string") return bad("newRdn must be a string");
      if (input.newParent !== undefined && typeof input.newParent !== "string")
        return bad("newParent must be a DN string");
      if (input.deleteOldRdn !== undefined && typeof input.deleteOldRdn !== "boolean") {
        return bad("deleteOldRdn must be true or false");
      }
      return ok(input as WriteRequest);
    default:
      return bad(`unknown write operation '${String(op)}' (add, modify, delete or modifyDn)`);
  }
}

export function checkAttributeList(input: unknown): Result<readonly string[] | undefined> {
  if (input === undefined) return ok(undefined);
  if (!Array.isArray(input) || input.some((name) => typeof name !== "string")) {
    return bad("attributes must be a list of attribute type names");
  }
  return ok(input as string[]);
}

export function checkSearchRequest(input: unknown): Result<SearchRequest> {
  if (!isRecord(input)) return bad("a search must be an object");
  if (typeof input.base !== "string") return bad("base must be a DN string");
  if (input.filter !== undefined && typeof input.filter !== "string") return bad("filter must be a string");
  if (input.scope !== undefined && !["base", "one", "sub"].includes(input.scope as string)) {
    return bad(`unknown scope '${String(input.scope)}' (base, one or sub)`);
  }
  if (input.sizeLimit !== undefined && typeof input.sizeLimit !== "number")
    return bad("sizeLimit must be a number");
  const attributes = checkAttributeList(input.attributes);
  if (!attributes.ok) return attributes;
  if (input.after !== undefined && !isSearchPosition(input.after))
    return bad("after must be the position a page of this search ended at (its next)");
  return ok(input as unknown as SearchRequest);
}

/**
 * A key path (SearchPosition) as a search could have made it: no deeper than a DN can be (a
 * one-character RDN and its comma per level), each key an RDN no longer than a DN and a GUID.
 */
function isSearchPosition(value: unknown): boolean {
  if (!Array.isArray(value) || value.length > dnLengthMax / 2) return false;
  return value.every(
    (key) =>
      isRecord(key) &&
      typeof key.rdnNorm === "string" &&
      key.rdnNorm.length <= dnLengthMax &&
      isGuid(key.guid) &&
      Object.keys(key).length === 2,
  );
}
