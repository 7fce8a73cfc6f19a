import { MinHeap } from "../core/heap.ts";

/**
 * The simulator's event queue: a min-heap ordered by (time, sequence). The sequence number
 * makes the order of events scheduled for the same instant the order they were scheduled in,
 * so a seed always replays the same way.
 */
export interface Scheduled<T> {
  readonly time: number;
  readonly sequence: number;
  readonly event: T;
}

export class EventQueue<T> {
  private readonly heap = new MinHeap<Scheduled<T>>((a, b) => a.time - b.time || a.sequence - b.sequence);
  private sequence = 0;

  get size(): number {
    return this.heap.size;
  }

  push(time: number, event: T): void {
    this.heap.push({ time, sequence: this.sequence++, event });
  }

  peekTime(): number | undefined {
    return this.heap.peek()?.time;
  }

  pop(): Scheduled<T> | undefined {
    return this.heap.pop();
  }
}
