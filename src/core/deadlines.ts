/**
 * Deadlines for many calls without a timer per call. All calls of a worker share one timeout,
 * so deadlines arrive in insertion order: a FIFO queue swept by one interval is enough, and a
 * finished call costs only a flag. Pure TypeScript.
 */

export interface Deadline {
  readonly at: number;
  /** Set when the call finished; the sweep then skips it. */
  done: boolean;
  readonly onExpire: () => void;
}

export class DeadlineQueue {
  private items: Deadline[] = [];
  private head = 0;

  /** Adds a deadline `ms` from now. Deadlines must be added with the same ms, or a later `at` than the previous. */
  add(at: number, onExpire: () => void): Deadline {
    const d: Deadline = { at, done: false, onExpire };
    const last = this.items[this.items.length - 1];
    if (last !== undefined && last.at > at && this.items.length > this.head) {
      // Out of order (a hopped call with less time left): insert in place; rare, so linear is fine.
      let i = this.items.length - 1;
      while (i > this.head && this.items[i - 1]!.at > at) i--;
      this.items.splice(i, 0, d);
    } else this.items.push(d);
    return d;
  }

  /** Expires everything due at `now`; returns how many fired. */
  sweep(now: number): number {
    let fired = 0;
    while (this.head < this.items.length) {
      const d = this.items[this.head]!;
      if (d.at > now) break;
      this.head++;
      if (!d.done) {
        d.done = true;
        fired++;
        try {
          d.onExpire();
        } catch {}
      }
    }
    // Drop consumed entries and finished ones at the front, in amortised O(1).
    while (this.head < this.items.length && this.items[this.head]!.done) this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return fired;
  }

  get size(): number {
    return this.items.length - this.head;
  }
}
