/**
 * A hash table from 53-bit integer keys to unix-second timestamps, kept in one typed array of
 * three words a slot — key high, key low, timestamp — (open addressing, linear probing, deletion
 * by backward shift — no tombstones in a table in use). The three words of a slot lie side by
 * side so a probe reads one cache line, not one in each of three arrays: a table of millions of
 * keys is far larger than the caches, and every fresh nonce probes it.
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
  /** Slot i is words 3i (key high), 3i + 1 (key low) and 3i + 2 (timestamp; 0 = empty). */
  private slots = EMPTY;
  private mask = 0;
  private shift = 32;
  /** The slots being moved out of during a resize (EMPTY otherwise). */
  private old = EMPTY;
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
    if (i >= 0) return this.slots[3 * i + 2] ?? 0;
    if (this.old === EMPTY) return 0;
    const j = this.findOld(h, l);
    return j < 0 ? 0 : (this.old[3 * j + 2] ?? 0);
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
      this.slots[3 * i + 2] = timestampSec;
      this.step();
      return;
    }
    if (this.old !== EMPTY) {
      // Still in an unmoved old slot: it moves now, with its new timestamp.
      const j = this.findOld(h, l);
      if (j >= 0) {
        this.old[3 * j + 2] = TOMBSTONE;
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
      const j = this.old === EMPTY ? -1 : this.findOld(h, l);
      if (j < 0) return false;
      this.old[3 * j + 2] = TOMBSTONE;
    }
    this.count--;
    this.step();
    // Give memory back after a burst: shrink when an eighth full.
    if (this.old === EMPTY && this.count * 8 < this.mask + 1 && this.mask + 1 > MIN_CAPACITY) this.startResize((this.mask + 1) / 2);
    return true;
  }

  /** Calls `fn` for every entry. The table must not change meanwhile. */
  forEach(fn: (key: number, timestampSec: number) => void): void {
    const s = this.slots;
    for (let w = 0; w < s.length; w += 3) {
      const t = s[w + 2] ?? 0;
      if (t !== 0) fn((s[w] ?? 0) * TWO_32 + (s[w + 1] ?? 0), t);
    }
    const o = this.old;
    for (let w = 3 * this.moveAt; w < o.length; w += 3) {
      const t = o[w + 2] ?? 0;
      if (t !== 0 && t !== TOMBSTONE) fn((o[w] ?? 0) * TWO_32 + (o[w + 1] ?? 0), t);
    }
  }

  /** The slot of (h, l) in the table in use, or -1. */
  private find(h: number, l: number): number {
    const { slots, mask } = this;
    let i = home(h, l, this.shift);
    for (;;) {
      const w = 3 * i;
      if (slots[w + 2] === 0) return -1;
      if (slots[w + 1] === l && slots[w] === h) return i;
      i = (i + 1) & mask;
    }
  }

  /**
   * The unmoved old slot holding (h, l), or -1. Tombstones keep probe runs intact; a key found
   * in a slot already moved lives in the table in use (or was deleted there since).
   */
  private findOld(h: number, l: number): number {
    const { old, oldMask } = this;
    let j = home(h, l, this.oldShift);
    for (;;) {
      const w = 3 * j;
      const t = old[w + 2] ?? 0;
      if (t === 0) return -1;
      if (t !== TOMBSTONE && old[w + 1] === l && old[w] === h) return j >= this.moveAt ? j : -1;
      j = (j + 1) & oldMask;
    }
  }

  /** Puts a key known to be absent into the first free slot of its run. */
  private insert(h: number, l: number, t: number): void {
    const { slots, mask } = this;
    let i = home(h, l, this.shift);
    while (slots[3 * i + 2] !== 0) i = (i + 1) & mask;
    const w = 3 * i;
    slots[w] = h;
    slots[w + 1] = l;
    slots[w + 2] = t;
  }

  /**
   * Empties slot `i` by backward shift: moves later entries of the run into the hole when their
   * home slot allows, so every entry stays reachable from its home without tombstones.
   */
  private remove(i: number): void {
    const { mask, slots, shift } = this;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const wj = 3 * j;
      if (slots[wj + 2] === 0) break;
      const k = home(slots[wj] ?? 0, slots[wj + 1] ?? 0, shift);
      // The entry at j may stay when its home lies cyclically in (i, j].
      const stays = i <= j ? i < k && k <= j : i < k || k <= j;
      if (stays) continue;
      const wi = 3 * i;
      slots[wi] = slots[wj] ?? 0;
      slots[wi + 1] = slots[wj + 1] ?? 0;
      slots[wi + 2] = slots[wj + 2] ?? 0;
      i = j;
    }
    slots[3 * i + 2] = 0;
  }

  /** Keeps the current slots as the old ones and starts empty ones of `capacity` slots. */
  private startResize(capacity: number): void {
    this.old = this.slots;
    this.oldMask = this.mask;
    this.oldShift = this.shift;
    this.moveAt = 0;
    this.allocate(capacity);
  }

  /** Moves the next MOVE_STEP old slots, if a resize is under way. */
  private step(): void {
    if (this.old !== EMPTY) this.moveSlots(MOVE_STEP);
  }

  private finishMove(): void {
    if (this.old !== EMPTY) this.moveSlots(this.oldMask + 1);
  }

  private moveSlots(n: number): void {
    const old = this.old;
    const slotCount = this.oldMask + 1;
    const end = Math.min(slotCount, this.moveAt + n);
    for (let j = this.moveAt; j < end; j++) {
      const w = 3 * j;
      const t = old[w + 2] ?? 0;
      if (t !== 0 && t !== TOMBSTONE) this.insert(old[w] ?? 0, old[w + 1] ?? 0, t);
    }
    this.moved += end - this.moveAt;
    this.moveAt = end;
    if (end === slotCount) {
      this.old = EMPTY;
      this.oldMask = 0;
      this.moveAt = 0;
    }
  }

  /** Empty slots, at least `capacity` of them (a power of two). */
  private allocate(capacity: number): void {
    const cap = slotsFor(capacity);
    this.slots = new Uint32Array(3 * cap);
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
