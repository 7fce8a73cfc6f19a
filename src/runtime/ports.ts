import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Millis } from "../core/ids.ts";
import type { Monotonic } from "../core/node/machine.ts";
import type { Clock, Random } from "../core/ports.ts";

/** The ports of a real process: the system's wall clock, crypto randomness, a monotonic timer. */
export const systemClock: Clock = { now: () => Date.now() as Millis };

export const cryptoRandom: Random = { bytes: (count) => new Uint8Array(randomBytes(count)) };

/** Milliseconds that never go back (wall-clock steps do not move pull schedules). */
export const monotonicClock: Monotonic = { now: () => performance.now() };

/** The wall time at which a monotonic instant happened, for people reading a status. */
export function wallTimeOf(monotonicMs: number): string {
  return new Date(Date.now() - (monotonicClock.now() - monotonicMs)).toISOString();
}
