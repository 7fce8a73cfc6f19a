import type { Millis } from "./ids.ts";

/**
 * Time comes in through this port. The runtime reads the system clock; the simulator hands
 * out simulated, skewed, drifting time. The core never assumes monotonicity of wall time.
 */
export interface Clock {
  now(): Millis;
}

/**
 * Randomness comes in through this port: the runtime uses crypto, the simulator a seeded
 * generator so that every run replays exactly.
 */
export interface Random {
  /** Returns `count` fresh random bytes; the caller owns the returned array. */
  bytes(count: number): Uint8Array;
}
