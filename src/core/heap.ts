/**
 * A binary min-heap ordered by a comparison the caller gives (negative: `a` comes first). Used
 * where the core needs a priority queue (route computation) and by the simulators' event queues.
 */
export class MinHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly compare: (a: T, b: T) => number) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let child = items.length - 1;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (this.compare(items[child] as T, items[parent] as T) >= 0) return;
      this.swap(child, parent);
      child = parent;
    }
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    items[0] = last;
    let parent = 0;
    for (;;) {
      const left = parent * 2 + 1;
      const right = left + 1;
      let first = parent;
      if (left < items.length && this.compare(items[left] as T, items[first] as T) < 0) first = left;
      if (right < items.length && this.compare(items[right] as T, items[first] as T) < 0) first = right;
      if (first === parent) return top;
      this.swap(parent, first);
      parent = first;
    }
  }

  private swap(a: number, b: number): void {
    const items = this.items;
    const held = items[a] as T;
    items[a] = items[b] as T;
    items[b] = held;
  }
}
