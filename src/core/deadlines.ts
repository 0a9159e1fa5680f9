/**
 * Deadlines for many calls without a timer per call. All calls of a worker share one timeout,
 * so deadlines arrive in insertion order: a FIFO queue is enough, and a finished call costs only
 * a flag.
 *
 * Given a {@link DeadlineTimer}, the queue keeps one timer armed at its earliest pending
 * deadline, so it wakes the process only when a call may actually be due — about once per
 * timeout while calls finish in time, never when none is in flight. A 20 ms interval per queue
 * (three per worker) woke each worker 150 times a second for nothing, and on this project's VM a
 * wake costs 25–100 µs of CPU (bench/b-floor.ts): ~40 µs of every slow call at 475 calls/s.
 * Pure TypeScript: the timer comes in from outside.
 */

/** setTimeout/clearTimeout and the clock deadlines are read on (Date.now). */
export interface DeadlineTimer {
  set(fire: () => void, ms: number): unknown;
  clear(handle: unknown): void;
  now(): number;
}

/** The runtime's timer functions, as `globalThis` has them (core reads no global itself). */
export interface HostTimers {
  setTimeout(fire: () => void, ms: number): { unref(): unknown };
  clearTimeout(handle: never): void;
  Date: { now(): number };
}

/**
 * A {@link DeadlineTimer} on the runtime's own timers (`hostTimer(globalThis)`), unref'd: a
 * pending deadline never keeps a process alive.
 */
export function hostTimer(host: HostTimers): DeadlineTimer {
  return {
    set: (fire, ms) => host.setTimeout(fire, ms).unref(),
    clear: (handle) => host.clearTimeout(handle as never),
    now: () => host.Date.now(),
  };
}

/** Longest single wait a timer is asked for (setTimeout's limit); a later deadline re-arms. */
const MAX_WAIT_MS = 0x7fff_ffff;

export interface Deadline {
  readonly at: number;
  /** Set when the call finished; the sweep then skips it. */
  done: boolean;
  readonly onExpire: () => void;
}

export class DeadlineQueue {
  private items: Deadline[] = [];
  private head = 0;
  private handle: unknown = null;
  /** The deadline the timer is armed for (Infinity = not armed). */
  private armedAt = Number.POSITIVE_INFINITY;

  /** Without a timer the owner calls {@link sweep} itself (the tests do). */
  constructor(private readonly timer?: DeadlineTimer) {}

  /** Adds a deadline `ms` from now. Deadlines must be added with the same ms, or a later `at` than the previous. */
  add(at: number, onExpire: () => void): Deadline {
    // Finished calls at the front go now, not at the next sweep, which may be a timeout away.
    this.trim();
    const d: Deadline = { at, done: false, onExpire };
    const last = this.items[this.items.length - 1];
    if (last !== undefined && last.at > at && this.items.length > this.head) {
      // Out of order (a hopped call with less time left): insert in place; rare, so linear is fine.
      let i = this.items.length - 1;
      while (i > this.head && this.items[i - 1]!.at > at) i--;
      this.items.splice(i, 0, d);
    } else this.items.push(d);
    // The earliest pending deadline is at the front (the new one, or one a stop() disarmed).
    const first = this.items[this.head]!.at;
    if (this.timer !== undefined && first < this.armedAt) this.arm(first);
    return d;
  }

  /** Stops the timer (the queue's owner is closing); deadlines added later arm it again. */
  stop(): void {
    if (this.handle !== null) this.timer?.clear(this.handle);
    this.handle = null;
    this.armedAt = Number.POSITIVE_INFINITY;
  }

  private arm(at: number): void {
    const timer = this.timer!;
    if (this.handle !== null) timer.clear(this.handle);
    this.armedAt = at;
    this.handle = timer.set(this.fire, Math.min(MAX_WAIT_MS, Math.max(1, at - timer.now())));
  }

  private fire = (): void => {
    this.handle = null;
    this.armedAt = Number.POSITIVE_INFINITY;
    this.sweep(this.timer!.now());
    // The earliest deadline still pending (finished calls at the front are gone after a sweep).
    const next = this.items[this.head];
    if (next !== undefined) this.arm(next.at);
  };

  /** Drops finished deadlines at the front, and the consumed part of the array now and then. */
  private trim(): void {
    while (this.head < this.items.length && this.items[this.head]!.done) this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
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
    this.trim();
    return fired;
  }

  get size(): number {
    return this.items.length - this.head;
  }
}
