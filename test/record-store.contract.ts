/**
 * The record store contract, one suite run against every adapter (see `record-store.test.ts`),
 * so the embedded store and MongoDB cannot drift apart in behaviour services rely on.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { RecordStore } from "../src/stores/record-store.ts";

/**
 * Registers the contract tests for one adapter.
 *
 * @param name shown in the test names, e.g. "sqlite"
 * @param factory opens a new store; called once for the suite and again by the tests that close one
 */
export function recordStoreContract(name: string, factory: () => Promise<RecordStore>): void {
  describe(`record store contract: ${name}`, () => {
    let store: RecordStore;
    let n = 0;
    // A fresh collection per test keeps tests independent without wiping a shared database.
    const fresh = (): string => `contract_${Date.now().toString(36)}_${(n++).toString(36)}`;

    beforeAll(async () => {
      store = await factory();
    });
    afterAll(async () => {
      await store?.close();
    });

    test("insert returns a string id and get reads the record back with it", async () => {
      const c = fresh();
      const id = await store.insert(c, { user: "u1", symbol: "ACME", a: 1.5, b: 2 });
      expect(typeof id).toBe("string");
      expect(id.length).toBeGreaterThan(0);
      expect(await store.get(c, id)).toEqual({ id, user: "u1", symbol: "ACME", a: 1.5, b: 2 });
    });

    test("ids are unique", async () => {
      const c = fresh();
      const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => store.insert(c, { user: "u", i })));
      expect(new Set(ids).size).toBe(50);
    });

    test("an unknown id reads as null, in an existing and in an unknown collection", async () => {
      const c = fresh();
      await store.insert(c, { user: "u" });
      expect(await store.get(c, "no-such-id")).toBeNull();
      expect(await store.get(c, "0123456789abcdef01234567")).toBeNull();
      expect(await store.get(c, "01a218d9-f600-7296-938e-4371a785decd")).toBeNull();
      expect(await store.get(fresh(), "0123456789abcdef01234567")).toBeNull();
    });

    test("records of one collection are not visible in another", async () => {
      const c1 = fresh();
      const c2 = fresh();
      const id = await store.insert(c1, { user: "u" });
      expect(await store.get(c2, id)).toBeNull();
      expect(await store.find(c2)).toEqual([]);
    });

    test("find lists newest first", async () => {
      const c = fresh();
      for (let i = 0; i < 5; i++) await store.insert(c, { user: "u", i });
      const found = await store.find(c);
      expect(found.map((r) => r.i)).toEqual([4, 3, 2, 1, 0]);
    });

    test("find honours limit (default 100, 0 gives none)", async () => {
      const c = fresh();
      for (let i = 0; i < 105; i++) await store.insert(c, { user: "u", i });
      expect((await store.find(c, { limit: 3 })).map((r) => r.i)).toEqual([104, 103, 102]);
      expect(await store.find(c)).toHaveLength(100);
      expect(await store.find(c, { limit: 0 })).toEqual([]);
    });

    test("find filters by user", async () => {
      const c = fresh();
      await store.insert(c, { user: "alice", i: 1 });
      await store.insert(c, { user: "bob", i: 2 });
      await store.insert(c, { user: "alice", i: 3 });
      await store.insert(c, { i: 4 }); // no user at all
      expect((await store.find(c, { user: "alice" })).map((r) => r.i)).toEqual([3, 1]);
      expect((await store.find(c, { user: "bob", limit: 5 })).map((r) => r.i)).toEqual([2]);
      expect(await store.find(c, { user: "carol" })).toEqual([]);
      expect(await store.find(c)).toHaveLength(4);
    });

    test("find returns whole records with their ids", async () => {
      const c = fresh();
      const id = await store.insert(c, { user: "u", symbol: "X" });
      expect(await store.find(c, { user: "u" })).toEqual([{ id, user: "u", symbol: "X" }]);
    });

    test("nested objects, arrays, null, booleans and unicode survive a round trip", async () => {
      const c = fresh();
      const record = {
        user: "用户-ü-🙂",
        symbol: "Ünïcødé ✓ 株式",
        a: { price: 12.25, tags: ["x", "ÿ", "😀"], deep: { deeper: { n: -7, ok: true, none: null } } },
        b: [{ k: 1 }, { k: [2, 3] }],
        at: "2025-01-02T03:04:05.678Z",
      };
      const id = await store.insert(c, record);
      expect(await store.get(c, id)).toEqual({ ...record, id });
      expect(await store.find(c, { user: "用户-ü-🙂" })).toEqual([{ ...record, id }]);
    });

    test("the stored id wins over an `id` field in the input", async () => {
      const c = fresh();
      const id = await store.insert(c, { user: "u", id: "caller-chosen" });
      expect(id).not.toBe("caller-chosen");
      expect(await store.get(c, id)).toEqual({ id, user: "u" });
    });

    test("close is idempotent", async () => {
      const own = await factory();
      await own.insert(fresh(), { user: "u" });
      await own.close();
      await own.close();
      await Promise.all([own.close(), own.close()]);
    });
  });
}
