/**
 * The shared replay store (QDP_REPLAY_STORE=redis) against a real redis-server: one atomic
 * `SET NX EX` claim per accepted nonce, keyed by user + nonce, living as long as the window;
 * two owners (as on two hosts) sharing one Redis refuse each other's nonces, with and without a
 * user; and with Redis away a signed call is refused 503 OVERLOADED and never runs (fail
 * closed). The same through nginx and three real hosts is test/multi-host.test.ts.
 */
import { Type as t } from "@sinclair/typebox";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Executor } from "../src/affinity/executor.ts";
import { SessionStore } from "../src/affinity/sessions.ts";
import { SharedReplay } from "../src/affinity/shared-replay.ts";
import { QdpError } from "../src/core/errors.ts";
import { createReplayCache } from "../src/core/replay-cache.ts";
import { createReplayFence, guardReplay } from "../src/core/replay-fence.ts";
import { createLogger } from "../src/telemetry/logger.ts";
import { defineService } from "../src/services/types.ts";
import { createRedisClient, type RedisClient } from "../src/stores/redis-client.ts";
import { CLOCK_SKEW_MARGIN_SEC, createRedisReplayStore, nonceKey, nonceTtlSec } from "../src/stores/replay-redis.ts";
import { ReplayStoreUnavailable, type ReplayStore } from "../src/stores/replay-store.ts";
import type { RecordStore } from "../src/stores/record-store.ts";
import { createSqliteStore } from "../src/stores/sqlite-store.ts";
import type { Call } from "../src/affinity/executor.ts";
import { Registry } from "../src/services/registry.ts";
import { ensureRedis, startRedis, type TestRedis } from "./support/redis.ts";

const nonce = (i: number) => `claim-nonce-${i.toString().padStart(8, "0")}`;

test("a nonce key lives for the rest of the window plus the clock margin", () => {
  expect(nonceKey("qdp:", "u1", nonce(1))).toBe(`qdp:nonce:${nonce(1)}:u1`);
  expect(nonceKey("qdp:", null, nonce(1))).toBe(`qdp:nonce:${nonce(1)}:`);
  // A user containing ':' cannot collide: a valid nonce ([A-Za-z0-9_-]) has no ':' and comes first.
  expect(nonceKey("p:", "a:b", "n1")).not.toBe(nonceKey("p:", "b", "n1"));
  const now = 1_700_000_000;
  expect(nonceTtlSec(now, now)).toBe(301 + CLOCK_SKEW_MARGIN_SEC);
  expect(nonceTtlSec(now + 300, now)).toBe(601 + CLOCK_SKEW_MARGIN_SEC);
  expect(nonceTtlSec(now - 300, now)).toBe(1 + CLOCK_SKEW_MARGIN_SEC);
  expect(nonceTtlSec(now - 400, now)).toBe(1 + CLOCK_SKEW_MARGIN_SEC);
});

const redisBin = ensureRedis();
if (!redisBin.path) console.warn(`replay-store: server tests skipped — ${redisBin.why}`);
test.if(!redisBin.path && !!process.env.CI)("redis-server is available in CI", () => {
  throw new Error(`redis-server is required in CI: ${redisBin.why}`);
});

describe.if(!!redisBin.path)("against a real redis-server", () => {
  let redis: TestRedis;
  let clients: RedisClient[] = [];
  const client = async (timeoutMs = 300) => {
    const c = createRedisClient({ url: redis.url, timeoutMs });
    clients.push(c);
    await c.waitConnected(5000);
    return c;
  };

  beforeAll(async () => {
    redis = await startRedis(redisBin.path!);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    clients = [];
    await redis?.dispose();
  });

  test("SET NX EX: the first claim wins, every later one is a replay; users and no-user are separate", async () => {
    const c = await client();
    const store = createRedisReplayStore({ client: c, prefix: "t1:" });
    const now = Math.floor(Date.now() / 1000);
    expect(await store.claim("u1", nonce(1), now, now)).toBe("fresh");
    expect(await store.claim("u1", nonce(1), now, now)).toBe("replay");
    expect(await store.claim("u2", nonce(1), now, now)).toBe("fresh");
    expect(await store.claim(null, nonce(1), now, now)).toBe("fresh");
    expect(await store.claim(null, nonce(1), now, now)).toBe("replay");
    const ttl = Number(await c.send(["TTL", nonceKey("t1:", "u1", nonce(1))]));
    expect(ttl).toBeGreaterThan(300);
    expect(ttl).toBeLessThanOrEqual(301 + CLOCK_SKEW_MARGIN_SEC);
  });

  test("claims racing from several connections (as from several hosts): exactly one wins each nonce", async () => {
    const stores = await Promise.all([0, 1, 2].map(async () => createRedisReplayStore({ client: await client(), prefix: "t2:" })));
    const now = Math.floor(Date.now() / 1000);
    const N = 300;
    const verdicts = await Promise.all(Array.from({ length: N }, (_, i) => Promise.all(stores.map((s) => s.claim("u", nonce(i), now, now)))));
    for (const v of verdicts) expect(v.filter((x) => x === "fresh").length).toBe(1);
  });

  test("no answer is never taken as fresh: a closed client and a hung server reject", async () => {
    const c = await client(200);
    const store = createRedisReplayStore({ client: c, prefix: "t3:" });
    const now = Math.floor(Date.now() / 1000);
    redis.pause();
    try {
      const t0 = performance.now();
      const err = await store.claim("u", nonce(1), now, now).then(
        () => null,
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(ReplayStoreUnavailable);
      expect(performance.now() - t0).toBeLessThan(1500);
    } finally {
      redis.resume();
    }
    c.close();
    expect(
      await store.claim("u", nonce(2), now, now).then(
        () => null,
        (e: Error) => e,
      ),
    ).toBeInstanceOf(ReplayStoreUnavailable);
  });

  describe("two owners sharing one Redis, as on two hosts", () => {
    let dir = "";
    let records: RecordStore;
    const runs: string[] = [];
    const registry = new Registry([
      defineService({
        funcNo: 9001,
        name: "t.recorder",
        description: "records that it ran",
        stateful: false,
        input: t.Unknown(),
        output: t.Unknown(),
        handler: (ctx) => {
          runs.push(`9001:${ctx.user}:${String((ctx.input as { tag?: string } | null)?.tag)}`);
          return { ok: true };
        },
      }),
    ]);
    const stateless = registry.require(9001);

    const owner = (shared: ReplayStore | null) =>
      new Executor({
        worker: 0,
        log: createLogger("error"),
        records,
        settings: new Map(),
        sessions: new SessionStore(100, 60_000),
        replay: guardReplay(createReplayCache({ maxEntries: 1000 }), createReplayFence({ persistedSec: 0, persist: (s) => s })),
        sharedReplay: shared === null ? null : new SharedReplay(shared),
        maxExecuting: 100,
        upstreamTimeoutMs: 1000,
      });
    const call = (user: string | null, n: string, tag: string): Call => ({
      service: stateless,
      user,
      requestId: tag,
      input: { tag },
      deadline: Date.now() + 5000,
      replay: [n, Math.floor(Date.now() / 1000)],
    });
    const outcome = async (f: () => unknown): Promise<string> => {
      try {
        await f();
        return "ran";
      } catch (e) {
        return e instanceof QdpError ? `${e.status} ${e.code}` : String(e);
      }
    };

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "qdp-replay-store-"));
      records = createSqliteStore({ dataDir: dir });
    });
    afterAll(async () => {
      await records.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test("a call accepted by one owner is refused 401 by the other, with a user and without", async () => {
      const a = owner(createRedisReplayStore({ client: await client(), prefix: "t4:" }));
      const b = owner(createRedisReplayStore({ client: await client(), prefix: "t4:" }));
      try {
        runs.length = 0;
        expect(await outcome(() => a.run(call("alice", nonce(1), "first")))).toBe("ran");
        expect(await outcome(() => b.run(call("alice", nonce(1), "replay-b")))).toBe("401 UNAUTHENTICATED");
        // The first owner's memory still answers first (no round trip needed).
        expect(await outcome(() => a.run(call("alice", nonce(1), "replay-a")))).toBe("401 UNAUTHENTICATED");
        // Calls without a user: the router asks the nonce's owner, which calls admitNonce.
        expect(await outcome(() => a.admitNonce(null, nonce(2), Math.floor(Date.now() / 1000)))).toBe("ran");
        expect(await outcome(() => b.admitNonce(null, nonce(2), Math.floor(Date.now() / 1000)))).toBe("401 UNAUTHENTICATED");
        expect(runs).toEqual(["9001:alice:first"]);
      } finally {
        a.close();
        b.close();
      }
    });

    test("without Redis a signed call is refused 503 OVERLOADED and does not run; it works again when Redis is back", async () => {
      const c = createRedisClient({ url: redis.url, timeoutMs: 300 });
      clients.push(c);
      await c.waitConnected(5000);
      const a = owner(createRedisReplayStore({ client: c, prefix: "t5:" }));
      try {
        runs.length = 0;
        await redis.stop();
        await Bun.sleep(50);
        expect(await outcome(() => a.run(call("bob", nonce(1), "down")))).toBe("503 OVERLOADED");
        expect(await outcome(() => a.admitNonce(null, nonce(2), Math.floor(Date.now() / 1000)))).toBe("503 OVERLOADED");
        expect(runs).toEqual([]);
        await redis.start();
        await c.waitConnected(5000);
        expect(await outcome(() => a.run(call("bob", nonce(3), "back")))).toBe("ran");
        expect(runs).toEqual(["9001:bob:back"]);
      } finally {
        a.close();
      }
    });
  });
});
