import { randomFillSync } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { Millis } from "../core/ids.ts";
import type { Monotonic } from "../core/node/machine.ts";
import type { Clock, Random } from "../core/ports.ts";

/** The ports of a real process: the system's wall clock, crypto randomness, a monotonic timer. */
export const systemClock: Clock = { now: () => Date.now() as Millis };

/**
 * Random bytes are drawn from the system generator this many at a time: a GUID per new entry
 * asked for one call each, and that call cost more than the rest of the id (about 1 % of a
 * node's CPU under write load). Every byte is handed out once, then the pool is refilled.
 */
const randomPoolBytes = 4096;
const randomPool = new Uint8Array(randomPoolBytes);
let randomPoolOffset = randomPoolBytes;

function poolBytes(count: number): Uint8Array {
  if (count > randomPoolBytes) return randomFillSync(new Uint8Array(count));
  if (randomPoolOffset + count > randomPoolBytes) {
    randomFillSync(randomPool);
    randomPoolOffset = 0;
  }
  const bytes = randomPool.slice(randomPoolOffset, randomPoolOffset + count);
  randomPoolOffset += count;
  return bytes;
}

export const cryptoRandom: Random = { bytes: poolBytes };

/** Milliseconds that never go back (wall-clock steps do not move pull schedules). */
export const monotonicClock: Monotonic = { now: () => performance.now() };

/** The wall time at which a monotonic instant happened, for people reading a status. */
export function wallTimeOf(monotonicMs: number): string {
  return new Date(Date.now() - (monotonicClock.now() - monotonicMs)).toISOString();
}
