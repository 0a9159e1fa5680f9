/**
 * The session store contract, one suite run against every adapter of the port (see
 * `session-store.test.ts`): versions, the atomic check-and-write, expiry after the last write,
 * and a burst of concurrent writers of which exactly one wins each version.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { SessionBackend } from "../src/stores/session-store.ts";

/**
 * @param name shown in the test names
 * @param factory opens a store whose sessions expire `ttlMs` after their last write
 * @param ttlMs the expiry the factory configured (kept short so the test can watch it pass)
 */
export function sessionStoreContract(name: string, factory: () => Promise<SessionBackend>, ttlMs: number): void {
  describe(`session store contract: ${name}`, () => {
    let store: SessionBackend;
    let n = 0;
    const fresh = (): string => `user-${Date.now().toString(36)}-${(n++).toString(36)}`;

    beforeAll(async () => {
      store = await factory();
    });
    afterAll(() => store?.close());

    test("nothing stored: load is null and the version 0", async () => {
      const u = fresh();
      expect(await store.load(u)).toBeNull();
      expect(await store.version(u)).toBe(0);
    });

    test("the first write names version 0 and makes 1; load reads it back", async () => {
      const u = fresh();
      expect(await store.save(u, '{"count":1}', 0)).toEqual({ ok: true, version: 1 });
      expect(await store.load(u)).toEqual({ version: 1, text: '{"count":1}' });
      expect(await store.version(u)).toBe(1);
      expect(await store.save(u, '{"count":2}', 1)).toEqual({ ok: true, version: 2 });
      expect(await store.load(u)).toEqual({ version: 2, text: '{"count":2}' });
    });

    test("a write naming another version is refused and changes nothing", async () => {
      const u = fresh();
      await store.save(u, '{"a":1}', 0);
      await store.save(u, '{"a":2}', 1);
      expect(await store.save(u, '{"stale":true}', 1)).toEqual({ ok: false, stored: 2 });
      expect(await store.save(u, '{"stale":true}', 0)).toEqual({ ok: false, stored: 2 });
      expect(await store.save(u, '{"ahead":true}', 7)).toEqual({ ok: false, stored: 2 });
      expect(await store.load(u)).toEqual({ version: 2, text: '{"a":2}' });
      expect(await store.save(fresh(), "{}", 3)).toEqual({ ok: false, stored: 0 });
    });

    test("users are independent, and any user id (UTF-8, spaces, colons) is its own key", async () => {
      const a = `${fresh()} é:x`;
      const b = `${fresh()}:*`;
      await store.save(a, '"a"', 0);
      expect(await store.load(b)).toBeNull();
      await store.save(b, '"b"', 0);
      expect(await store.load(a)).toEqual({ version: 1, text: '"a"' });
      expect(await store.load(b)).toEqual({ version: 1, text: '"b"' });
    });

    test("of concurrent writers naming the same version, exactly one wins", async () => {
      const u = fresh();
      await store.save(u, "0", 0);
      const r = await Promise.all(Array.from({ length: 20 }, (_, i) => store.save(u, String(i + 1), 1)));
      expect(r.filter((x) => x.ok).length).toBe(1);
      expect(r.filter((x) => !x.ok).every((x) => !x.ok && x.stored === 2)).toBe(true);
      expect((await store.load(u))!.version).toBe(2);
    });

    test("a stored session expires ttl after its last write; a write restarts the clock", async () => {
      const u = fresh();
      await store.save(u, "1", 0);
      await Bun.sleep(ttlMs * 0.6);
      await store.save(u, "2", 1);
      await Bun.sleep(ttlMs * 0.6);
      expect(await store.version(u)).toBe(2);
      await Bun.sleep(ttlMs * 0.6);
      expect(await store.load(u)).toBeNull();
      expect(await store.version(u)).toBe(0);
      // Expired means "nothing stored": the next first write names 0 again.
      expect(await store.save(u, "3", 0)).toEqual({ ok: true, version: 1 });
    });
  });
}
