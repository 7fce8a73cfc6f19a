/**
 * The simulator's event queue: a binary min-heap ordered by (time, sequence). The sequence
 * number makes the order of events scheduled for the same instant the order they were
 * scheduled in, so a seed always replays the same way.
 */
export interface Scheduled<T> {
  readonly time: number;
  readonly sequence: number;
  readonly event: T;
}

export class EventQueue<T> {
  private readonly items: Scheduled<T>[] = [];
  private sequence = 0;

  get size(): number {
    return this.items.length;
  }

  push(time: number, event: T): void {
    this.items.push({ time, sequence: this.sequence++, event });
    this.up(this.items.length - 1);
  }

  peekTime(): number | undefined {
    return this.items[0]?.time;
  }

  pop(): Scheduled<T> | undefined {
    const top = this.items[0];
    const last = this.items.pop();
    if (top === undefined || last === undefined) return undefined;
    if (this.items.length > 0) {
      this.items[0] = last;
      this.down(0);
    }
    return top;
  }

  private less(a: number, b: number): boolean {
    const x = this.items[a] as Scheduled<T>;
    const y = this.items[b] as Scheduled<T>;
    return x.time < y.time || (x.time === y.time && x.sequence < y.sequence);
  }

  private swap(a: number, b: number): void {
    const x = this.items[a] as Scheduled<T>;
    this.items[a] = this.items[b] as Scheduled<T>;
    this.items[b] = x;
  }

  private up(index: number): void {
    let child = index;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (!this.less(child, parent)) return;
      this.swap(child, parent);
      child = parent;
    }
  }

  private down(index: number): void {
    let parent = index;
    for (;;) {
      const left = parent * 2 + 1;
      const right = left + 1;
      let smallest = parent;
      if (left < this.items.length && this.less(left, smallest)) smallest = left;
      if (right < this.items.length && this.less(right, smallest)) smallest = right;
      if (smallest === parent) return;
      this.swap(parent, smallest);
      parent = smallest;
    }
  }
}
