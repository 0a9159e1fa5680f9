/**
 * A hash table from 53-bit integer keys to unix-second timestamps, kept in three typed arrays
 * (open addressing, linear probing, deletion by backward shift — no tombstones).
 *
 * Why not a `Map<number, number>`: the replay cache (replay-cache.ts) holds up to millions of
 * entries per worker, and a JavaScript Map keeps them in the collected heap, which every full
 * collection traces. Measured on this project's 2-core box (Bun 1.4.5, bench/verify-cost.ts) at
 * 2,000,000 entries: a full GC took ~48 ms with the Map (a stall of a busy signed worker) and
 * ~1.3 ms with this table; RSS +118 MiB against +69 MiB. Typed arrays hold no pointers, so the
 * collector never looks inside them: 12 bytes per slot, at most half the slots in use.
 *
 * Growing rehashes the whole table in one go, a pause while the cache first fills: ~70 ms on
 * this project's box when it passes 1,048,576 entries (the Map it replaced paused ~90–100 ms
 * on its own rehash near 1.5 million). Not incremental yet.
 *
 * Timestamps are stored as unsigned 32-bit seconds; 0 marks an empty slot, so 0 is not a
 * storable timestamp (the replay cache stores only timestamps inside the signature window).
 * Pure TypeScript.
 */

const MIN_CAPACITY = 1024;
const TWO_32 = 0x1_0000_0000;
const EMPTY = new Uint32Array(0);

export class KeyTimeTable {
  private hi = EMPTY;
  private lo = EMPTY;
  private ts = EMPTY;
  private mask = 0;
  private shift = 32;
  private count = 0;

  constructor(capacity = MIN_CAPACITY) {
    this.allocate(capacity);
  }

  /** Entries held. */
  get size(): number {
    return this.count;
  }

  /** Slots allocated (a power of two, at least twice the entries): 12 bytes each. */
  get capacity(): number {
    return this.mask + 1;
  }

  /** The timestamp stored for `key`, or 0 when absent. */
  get(key: number): number {
    const i = this.find(key);
    return i < 0 ? 0 : (this.ts[i] ?? 0);
  }

  has(key: number): boolean {
    return this.find(key) >= 0;
  }

  /**
   * Stores `timestampSec` for `key` (replacing an earlier one).
   * @param key a non-negative safe integer below 2^53
   * @param timestampSec 1 … 2^32 − 1
   */
  set(key: number, timestampSec: number): void {
    if (!(Number.isInteger(timestampSec) && timestampSec >= 1 && timestampSec < TWO_32)) throw new RangeError(`timestamp ${timestampSec} is not storable`);
    if (!(Number.isSafeInteger(key) && key >= 0)) throw new RangeError(`key ${key} is not a non-negative safe integer`);
    const h = Math.floor(key / TWO_32);
    const l = key >>> 0;
    let i = this.home(h, l);
    for (;;) {
      if (this.ts[i] === 0) break;
      if (this.lo[i] === l && this.hi[i] === h) {
        this.ts[i] = timestampSec;
        return;
      }
      i = (i + 1) & this.mask;
    }
    // Grow before the table is half full, so probe runs stay short.
    if ((this.count + 1) * 2 > this.mask + 1) {
      this.resize((this.mask + 1) * 2);
      i = this.home(h, l);
      while (this.ts[i] !== 0) i = (i + 1) & this.mask;
    }
    this.hi[i] = h;
    this.lo[i] = l;
    this.ts[i] = timestampSec;
    this.count++;
  }

  /** Removes `key`; returns whether it was there. */
  delete(key: number): boolean {
    let i = this.find(key);
    if (i < 0) return false;
    // Backward shift: move later entries of the run into the hole when their home slot allows,
    // so every entry stays reachable from its home without tombstones.
    const { mask, hi, lo, ts } = this;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (ts[j] === 0) break;
      const k = this.home(hi[j] ?? 0, lo[j] ?? 0);
      // The entry at j may stay when its home lies cyclically in (i, j].
      const stays = i <= j ? i < k && k <= j : i < k || k <= j;
      if (stays) continue;
      hi[i] = hi[j] ?? 0;
      lo[i] = lo[j] ?? 0;
      ts[i] = ts[j] ?? 0;
      i = j;
    }
    ts[i] = 0;
    this.count--;
    // Give memory back after a burst: shrink when an eighth full.
    if (this.count * 8 < this.mask + 1 && this.mask + 1 > MIN_CAPACITY) this.resize((this.mask + 1) / 2);
    return true;
  }

  /** Calls `fn` for every entry, in slot order. The table must not change meanwhile. */
  forEach(fn: (key: number, timestampSec: number) => void): void {
    const { hi, lo, ts } = this;
    for (let i = 0; i <= this.mask; i++) {
      const t = ts[i] ?? 0;
      if (t !== 0) fn((hi[i] ?? 0) * TWO_32 + (lo[i] ?? 0), t);
    }
  }

  private find(key: number): number {
    const h = Math.floor(key / TWO_32);
    const l = key >>> 0;
    const { hi, lo, ts, mask } = this;
    let i = this.home(h, l);
    while (ts[i] !== 0) {
      if (lo[i] === l && hi[i] === h) return i;
      i = (i + 1) & mask;
    }
    return -1;
  }

  /** Fibonacci hashing of both halves: the top bits of the product pick the slot. */
  private home(h: number, l: number): number {
    return Math.imul(l ^ Math.imul(h, 0x85ebca6b), 0x9e3779b1) >>> this.shift;
  }

  /** Empty arrays of at least `capacity` slots (a power of two). */
  private allocate(capacity: number): void {
    const cap = slotsFor(capacity);
    this.hi = new Uint32Array(cap);
    this.lo = new Uint32Array(cap);
    this.ts = new Uint32Array(cap);
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
  }

  private resize(capacity: number): void {
    const { hi, lo, ts } = this;
    this.allocate(capacity);
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i] ?? 0;
      if (t === 0) continue;
      const h = hi[i] ?? 0;
      const l = lo[i] ?? 0;
      let j = this.home(h, l);
      while (this.ts[j] !== 0) j = (j + 1) & this.mask;
      this.hi[j] = h;
      this.lo[j] = l;
      this.ts[j] = t;
    }
  }
}

/** A power of two ≥ `n` and ≥ the minimum. */
function slotsFor(n: number): number {
  let cap = MIN_CAPACITY;
  while (cap < n) cap *= 2;
  return cap;
}
