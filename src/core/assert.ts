/**
 * Assertions that stay on in production. They guard programmer errors: a broken invariant,
 * an argument no caller may pass. Expected conditions (entry exists, peer down) are ordinary
 * results, never assertion failures.
 */
export class AssertionError extends Error {
  readonly code = "assertion-failed";
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Exhaustiveness check for discriminated unions: the compiler proves this is unreachable. */
export function unreachable(value: never, what: string): never {
  throw new AssertionError(`unreachable ${what}: ${JSON.stringify(value)}`);
}
