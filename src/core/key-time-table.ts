/**
 * A hash table from 53-bit integer keys to unix-second timestamps, kept in three typed arrays
 * (open addressing, linear probing, deletion by backward shift — no tombstones in a table in use).
 *
 * Why not a `Map<number, number>`: the replay cache (replay-cache.ts) holds up to millions of
 * entries per worker, and a JavaScript Map keeps them in the collected heap, which every full
 * collection traces. Measured on this project's 2-core box (Bun 1.4.5, bench/verify-cost.ts) at
 * 2,000,000 entries: a full GC took ~48 ms with the Map (a stall of a busy signed worker) and
 * ~1.3 ms with this table; RSS +118 MiB against +69 MiB. Typed arrays hold no pointers, so the
 * collector never looks inside them: 12 bytes per slot, at most half the slots in use.
 *
 * Resizing is incremental. Rehashing in one go stalled the worker — every call it owns — for
 * the whole copy: 38 ms for the `set` that passed 1,048,576 entries and 17–22 ms for a `delete`
 * that shrank the table (bench/verify-cost.ts, "longest single set/delete"). Now a resize
 * allocates the new arrays and every later operation moves the next {@link MOVE_STEP} slots of
 * the old ones, so no operation copies more than that. Meanwhile a key lives in exactly one of
 * the two: lookups try the new arrays, then the old slots not moved yet; a key set or deleted
 * while it still sits in an unmoved old slot leaves a tombstone there, which the move skips.
 * A grow starts at half full and must finish before the new arrays are half full: a quarter of
 * their slots in operations, which MOVE_STEP ≥ 2 guarantees (see `set` for the rare case a
 * shrink's move is overtaken by a burst of inserts).
 *
 * Timestamps are stored as unsigned 32-bit seconds; 0 marks an empty slot and 2^32 − 1 a
 * tombstone, so neither is a storable timestamp (the replay cache stores only timestamps inside
 * the signature window). Pure TypeScript.
 */

const MIN_CAPACITY = 1024;
const TWO_32 = 0x1_0000_0000;
/** An old slot whose entry was set or deleted again before its move: skipped by the move. */
const TOMBSTONE = 0xffff_ffff;
/** Old slots moved per operation while a resize is under way. */
export const MOVE_STEP = 16;
const EMPTY = new Uint32Array(0);

export class KeyTimeTable {
  private hi = EMPTY;
  private lo = EMPTY;
  private ts = EMPTY;
  private mask = 0;
  private shift = 32;
  /** The arrays being moved out of during a resize (EMPTY otherwise). */
  private oldHi = EMPTY;
  private oldLo = EMPTY;
  private oldTs = EMPTY;
  private oldMask = 0;
  private oldShift = 32;
  /** Old slots below this one are moved (or were empty or tombstones). */
  private moveAt = 0;
  /** Entries held, in both arrays. */
  private count = 0;
  private moved = 0;

  constructor(capacity = MIN_CAPACITY) {
    this.allocate(capacity);
  }

  /** Entries held. */
  get size(): number {
    return this.count;
  }

  /** Slots allocated in the table in use (a power of two, at least twice the entries): 12 bytes each. */
  get capacity(): number {
    return this.mask + 1;
  }

  /** Old slots moved by resizes so far (what bounds one operation's work; read by the tests). */
  get slotsMoved(): number {
    return this.moved;
  }

  /** The timestamp stored for `key`, or 0 when absent. */
  get(key: number): number {
    const h = Math.floor(key / TWO_32);
    const l = key >>> 0;
    const i = this.find(h, l);
    if (i >= 0) return this.ts[i] ?? 0;
    if (this.oldTs === EMPTY) return 0;
    const j = this.findOld(h, l);
    return j < 0 ? 0 : (this.oldTs[j] ?? 0);
  }

  has(key: number): boolean {
    return this.get(key) !== 0;
  }

  /**
   * Stores `timestampSec` for `key` (replacing an earlier one).
   * @param key a non-negative safe integer below 2^53
   * @param timestampSec 1 … 2^32 − 2
   */
  set(key: number, timestampSec: number): void {
    if (!(Number.isInteger(timestampSec) && timestampSec >= 1 && timestampSec < TOMBSTONE)) throw new RangeError(`timestamp ${timestampSec} is not storable`);
    if (!(Number.isSafeInteger(key) && key >= 0)) throw new RangeError(`key ${key} is not a non-negative safe integer`);
    const h = Math.floor(key / TWO_32);
    const l = key >>> 0;
    const i = this.find(h, l);
    if (i >= 0) {
      this.ts[i] = timestampSec;
      this.step();
      return;
    }
    if (this.oldTs !== EMPTY) {
      // Still in an unmoved old slot: it moves now, with its new timestamp.
      const j = this.findOld(h, l);
      if (j >= 0) {
        this.oldTs[j] = TOMBSTONE;
        this.count--;
      }
    }
    // Grow before the table is half full, so probe runs stay short. A resize already under way
    // (only a shrink's can be overtaken like this: a burst of inserts right after emptying)
    // finishes first, in one go.
    if ((this.count + 1) * 2 > this.mask + 1) {
      this.finishMove();
      this.startResize((this.mask + 1) * 2);
    }
    this.insert(h, l, timestampSec);
    this.count++;
    this.step();
  }

  /** Removes `key`; returns whether it was there. */
  delete(key: number): boolean {
    const h = Math.floor(key / TWO_32);
    const l = key >>> 0;
    const i = this.find(h, l);
    if (i >= 0) this.remove(i);
    else {
      const j = this.oldTs === EMPTY ? -1 : this.findOld(h, l);
      if (j < 0) return false;
      this.oldTs[j] = TOMBSTONE;
    }
    this.count--;
    this.step();
    // Give memory back after a burst: shrink when an eighth full.
    if (this.oldTs === EMPTY && this.count * 8 < this.mask + 1 && this.mask + 1 > MIN_CAPACITY) this.startResize((this.mask + 1) / 2);
    return true;
  }

  /** Calls `fn` for every entry. The table must not change meanwhile. */
  forEach(fn: (key: number, timestampSec: number) => void): void {
    const { hi, lo, ts } = this;
    for (let i = 0; i <= this.mask; i++) {
      const t = ts[i] ?? 0;
      if (t !== 0) fn((hi[i] ?? 0) * TWO_32 + (lo[i] ?? 0), t);
    }
    const { oldHi, oldLo, oldTs } = this;
    for (let j = this.moveAt; j < oldTs.length; j++) {
      const t = oldTs[j] ?? 0;
      if (t !== 0 && t !== TOMBSTONE) fn((oldHi[j] ?? 0) * TWO_32 + (oldLo[j] ?? 0), t);
    }
  }

  /** The slot of (h, l) in the table in use, or -1. */
  private find(h: number, l: number): number {
    const { hi, lo, ts, mask } = this;
    let i = home(h, l, this.shift);
    while (ts[i] !== 0) {
      if (lo[i] === l && hi[i] === h) return i;
      i = (i + 1) & mask;
    }
    return -1;
  }

  /**
   * The unmoved old slot holding (h, l), or -1. Tombstones keep probe runs intact; a key found
   * in a slot already moved lives in the table in use (or was deleted there since).
   */
  private findOld(h: number, l: number): number {
    const { oldHi, oldLo, oldTs, oldMask } = this;
    let j = home(h, l, this.oldShift);
    for (;;) {
      const t = oldTs[j] ?? 0;
      if (t === 0) return -1;
      if (t !== TOMBSTONE && oldLo[j] === l && oldHi[j] === h) return j >= this.moveAt ? j : -1;
      j = (j + 1) & oldMask;
    }
  }

  /** Puts a key known to be absent into the first free slot of its run. */
  private insert(h: number, l: number, t: number): void {
    const { ts, mask } = this;
    let i = home(h, l, this.shift);
    while (ts[i] !== 0) i = (i + 1) & mask;
    this.hi[i] = h;
    this.lo[i] = l;
    ts[i] = t;
  }

  /**
   * Empties slot `i` by backward shift: moves later entries of the run into the hole when their
   * home slot allows, so every entry stays reachable from its home without tombstones.
   */
  private remove(i: number): void {
    const { mask, hi, lo, ts, shift } = this;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      if (ts[j] === 0) break;
      const k = home(hi[j] ?? 0, lo[j] ?? 0, shift);
      // The entry at j may stay when its home lies cyclically in (i, j].
      const stays = i <= j ? i < k && k <= j : i < k || k <= j;
      if (stays) continue;
      hi[i] = hi[j] ?? 0;
      lo[i] = lo[j] ?? 0;
      ts[i] = ts[j] ?? 0;
      i = j;
    }
    ts[i] = 0;
  }

  /** Keeps the current arrays as the old ones and starts empty ones of `capacity` slots. */
  private startResize(capacity: number): void {
    this.oldHi = this.hi;
    this.oldLo = this.lo;
    this.oldTs = this.ts;
    this.oldMask = this.mask;
    this.oldShift = this.shift;
    this.moveAt = 0;
    this.allocate(capacity);
  }

  /** Moves the next MOVE_STEP old slots, if a resize is under way. */
  private step(): void {
    if (this.oldTs !== EMPTY) this.moveSlots(MOVE_STEP);
  }

  private finishMove(): void {
    if (this.oldTs !== EMPTY) this.moveSlots(this.oldTs.length);
  }

  private moveSlots(n: number): void {
    const { oldHi, oldLo, oldTs } = this;
    const end = Math.min(oldTs.length, this.moveAt + n);
    for (let j = this.moveAt; j < end; j++) {
      const t = oldTs[j] ?? 0;
      if (t !== 0 && t !== TOMBSTONE) this.insert(oldHi[j] ?? 0, oldLo[j] ?? 0, t);
    }
    this.moved += end - this.moveAt;
    this.moveAt = end;
    if (end === oldTs.length) {
      this.oldHi = this.oldLo = this.oldTs = EMPTY;
      this.oldMask = 0;
      this.moveAt = 0;
    }
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
}

/** Fibonacci hashing of both halves: the top bits of the product pick the slot. */
function home(h: number, l: number, shift: number): number {
  return Math.imul(l ^ Math.imul(h, 0x85ebca6b), 0x9e3779b1) >>> shift;
}

/** A power of two ≥ `n` and ≥ the minimum. */
function slotsFor(n: number): number {
  let cap = MIN_CAPACITY;
  while (cap < n) cap *= 2;
  return cap;
}
