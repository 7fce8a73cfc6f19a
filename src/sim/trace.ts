/**
 * The run's trace: a running 64-bit FNV-1a hash of every event (the determinism check compares
 * it between two runs of one seed) and the last events in a ring, printed with a violation.
 */
export const traceTailMax = 60;

export class Trace {
  private high = 0xcbf29ce4;
  private low = 0x84222325;
  private readonly tail: string[] = [];
  /** Receives every noted line as it happens (`--verbose`). */
  echo: ((line: string) => void) | null = null;

  note(time: number, line: string): void {
    const text = `${time} ${line}`;
    this.hash64(text);
    this.tail.push(text);
    this.echo?.(text);
    if (this.tail.length > traceTailMax) this.tail.shift();
  }

  /** Hashes without keeping the line (for high-volume events); only `echo` sees it. */
  mix(text: string): void {
    this.echo?.(text);
    this.hash64(text);
  }

  private hash64(text: string): void {
    for (let index = 0; index < text.length; index++) {
      // FNV-1a over 64 bits in two 32-bit halves: xor the byte in, multiply by the FNV prime.
      this.low ^= text.charCodeAt(index) & 0xff;
      const low = this.low;
      const high = this.high;
      const productLow = Math.imul(low, 0x1b3);
      const carry = Math.floor(((low >>> 0) * 0x1b3) / 0x1_0000_0000);
      this.high = (Math.imul(high, 0x1b3) + Math.imul(low, 0x100) + carry) >>> 0;
      this.low = productLow >>> 0;
    }
  }

  hash(): string {
    return (this.high >>> 0).toString(16).padStart(8, "0") + (this.low >>> 0).toString(16).padStart(8, "0");
  }

  lines(): readonly string[] {
    return this.tail;
  }
}
