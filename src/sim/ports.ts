import type { Millis } from "../core/ids.ts";
import type { Clock, Random } from "../core/ports.ts";

/**
 * Deterministic ports for the simulator and tests: a seeded generator (xoshiro128**, seeded by
 * splitmix32) and a clock that only moves when told to. The same seed gives the same bytes on
 * every machine.
 */
export class SeededRandom implements Random {
  private state: Uint32Array;

  constructor(seed: number) {
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.state = new Uint32Array([next(), next(), next(), next()]);
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.state;
    const s0 = s[0] as number;
    const s1 = s[1] as number;
    const s2 = s[2] as number;
    const s3 = s[3] as number;
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s[2] = s2 ^ s0;
    s[3] = s3 ^ s1;
    s[1] = s1 ^ (s[2] as number);
    s[0] = s0 ^ (s[3] as number);
    s[2] = (s[2] as number) ^ t;
    s[3] = rotl(s[3] as number, 11);
    return result;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.nextUint32() / 0x1_0000_0000;
  }

  /** An integer in [min, max] (inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.float() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[this.int(0, items.length - 1)] as T;
  }

  bytes(count: number): Uint8Array {
    const out = new Uint8Array(count);
    for (let index = 0; index < count; index += 4) {
      let word = this.nextUint32();
      for (let offset = 0; offset < 4 && index + offset < count; offset++) {
        out[index + offset] = word & 0xff;
        word >>>= 8;
      }
    }
    return out;
  }
}

function rotl(value: number, bits: number): number {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}

export class ManualClock implements Clock {
  constructor(private current: number) {}

  now(): Millis {
    return this.current as Millis;
  }

  set(time: number): void {
    this.current = time;
  }

  advance(ms: number): void {
    this.current += ms;
  }
}
