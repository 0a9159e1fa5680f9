import { describe, expect, test } from "bun:test";
import { KeyTimeTable, MOVE_STEP } from "../src/core/key-time-table.ts";

const T = 1_700_000_000;

/** A small deterministic generator (xorshift32), so a failing sequence can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

describe("KeyTimeTable", () => {
  test("behaves like a Map under random sets and deletes, through growth, shrinking and wrap-around", () => {
    for (const seed of [1, 7, 42, 2024]) {
      const rand = rng(seed);
      const table = new KeyTimeTable();
      const model = new Map<number, number>();
      // Few distinct keys at first (many collisions, deletes hit present keys), then many (growth).
      for (let step = 0; step < 60_000; step++) {
        const space = step < 20_000 ? 3_000 : 200_000;
        // Keys across the whole 53-bit range, including both halves' extremes.
        const pick = Math.floor(rand() * space);
        const key = pick === 0 ? 2 ** 53 - 1 : pick === 1 ? 0 : pick * 0x2_0000_0001 + (pick % 7);
        const op = rand();
        if (op < 0.55) {
          const ts = T + Math.floor(rand() * 600);
          table.set(key, ts);
          model.set(key, ts);
        } else if (op < 0.85) {
          expect(table.delete(key)).toBe(model.delete(key));
        } else {
          expect(table.get(key)).toBe(model.get(key) ?? 0);
          expect(table.has(key)).toBe(model.has(key));
        }
        // Then empty most of it, so the table shrinks while entries sit in long runs.
        if (step === 50_000) for (const k of [...model.keys()].slice(0, Math.floor(model.size * 0.95))) expect(table.delete(k)).toBe(model.delete(k));
      }
      expect(table.size).toBe(model.size);
      const seen = new Map<number, number>();
      table.forEach((k, ts) => {
        seen.set(k, ts);
      });
      expect(seen).toEqual(model);
      expect(table.capacity).toBeGreaterThanOrEqual(2 * table.size);
    }
  });

  test("grows to keep at most half of its slots in use, and gives memory back when emptied", () => {
    const table = new KeyTimeTable();
    for (let i = 1; i <= 100_000; i++) table.set(i * 977, T);
    expect(table.capacity).toBe(262_144);
    for (let i = 1; i <= 100_000; i++) expect(table.get(i * 977)).toBe(T);
    for (let i = 1; i <= 99_990; i++) table.delete(i * 977);
    expect(table.size).toBe(10);
    expect(table.capacity).toBe(1024);
    for (let i = 99_991; i <= 100_000; i++) expect(table.get(i * 977)).toBe(T);
  });

  test("refuses what it cannot store exactly instead of storing something else", () => {
    const table = new KeyTimeTable();
    expect(() => table.set(1, 0)).toThrow(RangeError);
    expect(() => table.set(1, 2 ** 32)).toThrow(RangeError);
    // 2^32 − 1 marks a slot emptied during a resize.
    expect(() => table.set(1, 2 ** 32 - 1)).toThrow(RangeError);
    expect(() => table.set(1, T + 0.5)).toThrow(RangeError);
    expect(() => table.set(-1, T)).toThrow(RangeError);
    expect(() => table.set(2 ** 53, T)).toThrow(RangeError);
    expect(() => table.set(1.5, T)).toThrow(RangeError);
    expect(table.size).toBe(0);
  });

  test("no operation moves more than a few slots: resizes are spread over the operations after them", () => {
    // Rehashing in one go stalled the worker 38 ms at 1,048,576 entries (bench/verify-cost.ts).
    const table = new KeyTimeTable();
    let most = 0;
    const measure = (op: () => void) => {
      const before = table.slotsMoved;
      op();
      most = Math.max(most, table.slotsMoved - before);
    };
    for (let i = 1; i <= 1_100_000; i++) measure(() => table.set(i * 977, T));
    expect(table.capacity).toBe(4_194_304);
    for (let i = 1; i <= 1_100_000; i++) measure(() => table.delete(i * 977));
    expect(table.size).toBe(0);
    expect(table.slotsMoved).toBeGreaterThan(4_000_000);
    expect(most).toBeLessThanOrEqual(MOVE_STEP);
  });

  test("keys set, deleted and listed while a resize is under way keep their latest value", () => {
    const table = new KeyTimeTable();
    const model = new Map<number, number>();
    const set = (k: number, ts: number) => {
      table.set(k, ts);
      model.set(k, ts);
    };
    // 512 entries fill half of the first 1,024 slots: the 513th starts a grow.
    for (let k = 1; k <= 513; k++) set(k, T);
    expect(table.capacity).toBe(2048);
    // Most of the old entries are not moved yet: update some, delete others, list all.
    for (let k = 500; k >= 300; k--) set(k, T + k);
    for (let k = 1; k <= 100; k++) expect(table.delete(k)).toBe(model.delete(k));
    expect(table.delete(100)).toBe(false);
    const listed = new Map<number, number>();
    table.forEach((k, ts) => {
      listed.set(k, ts);
    });
    expect(listed).toEqual(model);
    for (let k = 1; k <= 600; k++) expect(table.get(k)).toBe(model.get(k) ?? 0);
    expect(table.size).toBe(model.size);
  });

  test("a burst of inserts right after emptying outruns the shrink without losing a key", () => {
    const table = new KeyTimeTable();
    const model = new Map<number, number>();
    for (let k = 1; k <= 40_000; k++) {
      table.set(k * 31, T);
      model.set(k * 31, T);
    }
    // Down to an eighth of 131,072 slots: a shrink to 65,536 starts, then 60,000 new keys.
    for (let k = 1; k <= 23_700; k++) {
      table.delete(k * 31);
      model.delete(k * 31);
    }
    for (let k = 1; k <= 60_000; k++) {
      table.set(k * 131_071, T + 1);
      model.set(k * 131_071, T + 1);
    }
    expect(table.size).toBe(model.size);
    for (const [k, ts] of model) expect(table.get(k)).toBe(ts);
    expect(table.get(31)).toBe(0);
    expect(table.capacity).toBeGreaterThanOrEqual(2 * table.size);
  });
});
