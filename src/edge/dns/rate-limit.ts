/**
 * A token bucket per source address: each source may ask `ratePerSecond` queries a second on
 * average and `burst` at once. A source over its rate is dropped silently (an answer would be
 * what a reflection attack wants). The table of sources is bounded: when full, sources whose
 * bucket has refilled (idle ones) are forgotten, and if none has, the table starts again.
 */
export const dnsQueriesPerSecondPerSourceDefault = 2_000;
/** Sources tracked at once. */
export const rateSourcesMax = 65_536;

interface Bucket {
  tokens: number;
  atMs: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;

  /** `ratePerSecond` 0 turns the limit off. */
  constructor(
    private readonly ratePerSecond: number,
    burst?: number,
  ) {
    this.burst = burst ?? Math.max(1, ratePerSecond * 2);
  }

  /** Takes one token for `source` at `nowMs` (a monotonic clock); false when it has none. */
  allow(source: string, nowMs: number): boolean {
    if (this.ratePerSecond === 0) return true;
    let bucket = this.buckets.get(source);
    if (bucket === undefined) {
      if (this.buckets.size >= rateSourcesMax) this.forgetIdle(nowMs);
      bucket = { tokens: this.burst, atMs: nowMs };
      this.buckets.set(source, bucket);
    } else {
      const refill = ((nowMs - bucket.atMs) * this.ratePerSecond) / 1000;
      bucket.tokens = Math.min(this.burst, bucket.tokens + Math.max(0, refill));
      bucket.atMs = nowMs;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get sources(): number {
    return this.buckets.size;
  }

  private forgetIdle(nowMs: number): void {
    const refillMs = (this.burst / this.ratePerSecond) * 1000;
    for (const [source, bucket] of this.buckets)
      if (nowMs - bucket.atMs >= refillMs) this.buckets.delete(source);
    if (this.buckets.size >= rateSourcesMax) this.buckets.clear();
  }
}
