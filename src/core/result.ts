/**
 * Expected failures are values, not exceptions. Every failure carries a stable literal `code`
 * (edges map codes to HTTP status, LDAP result code and DNS rcode in one table each) and a
 * human sentence. `cause` holds a lower-level error when there is one.
 */
export type ErrorCode =
  // bad input: nothing was changed
  | "invalid-dn"
  | "invalid-filter"
  | "invalid-attribute"
  | "invalid-value"
  | "invalid-request"
  | "invalid-page"
  | "invalid-config"
  | "limit-exceeded"
  // directory state: nothing was changed
  | "no-such-entry"
  | "no-such-parent"
  | "no-such-partition"
  | "entry-exists"
  | "partition-exists"
  | "not-leaf"
  | "no-such-attribute"
  | "attribute-or-value-exists"
  | "not-allowed-on-rdn"
  | "object-class-violation"
  | "system-entry"
  | "cross-partition-move"
  | "move-into-own-subtree"
  // replication state
  | "quarantined"
  // this node's standing: its server entry is gone from the topology (decommissioned)
  | "not-a-server"
  // this node's storage refused the transaction (its disk is full): nothing was changed
  | "storage-full";

export interface PlexusError {
  readonly code: ErrorCode;
  readonly message: string;
  /** For no-such-entry / no-such-parent: the longest existing ancestor DN, as LDAP's matchedDN. */
  readonly matchedDn?: string;
  readonly cause?: unknown;
}

export type Result<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: PlexusError };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail(
  code: ErrorCode,
  message: string,
  extra: { matchedDn?: string; cause?: unknown } = {},
): {
  readonly ok: false;
  readonly error: PlexusError;
} {
  return { ok: false, error: { code, message, ...extra } };
}

/** The error raised when a Result is unwrapped by code that expects success (tests, tools). */
export class PlexusFailure extends Error {
  readonly code: ErrorCode;
  constructor(error: PlexusError) {
    super(`${error.code}: ${error.message}`, { cause: error.cause });
    this.code = error.code;
  }
}

export function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new PlexusFailure(result.error);
  return result.value;
}
