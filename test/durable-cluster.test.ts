/**
 * Durable sessions with real processes and a real redis-server (its own port and directory,
 * started and stopped here): the same cluster cases against both session stores, then what only
 * `redis` promises — counts that survive kill -9 under load, an outage of Redis under load, a
 * restart with another worker count, and two clusters sharing one Redis (CONTRACT.md §7).
 * Every count is checked exactly against a ledger of acknowledged and unknown outcomes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRedisClient, type RedisClient } from "../src/stores/redis-client.ts";
import { call, startCluster, type Cluster, type Stats } from "./support/cluster.ts";
import { counterLoad, ledgerViolations, type CounterLoad } from "./support/counter-load.ts";
import { ensureRedis, startRedis, type TestRedis } from "./support/redis.ts";

const redisBin = ensureRedis();
if (!redisBin.path) console.warn(`durable-cluster: redis cases skipped — ${redisBin.why}`);
test.if(!redisBin.path && !!process.env.CI)("redis-server is available in CI", () => {
  throw new Error(`redis-server is required in CI: ${redisBin.why}`);
});

let redis: TestRedis | null = null;
let client: RedisClient | null = null;
let prefixes = 0;

beforeAll(async () => {
  if (!redisBin.path) return;
  redis = await startRedis(redisBin.path);
  client = createRedisClient({ url: redis.url, timeoutMs: 2000 });
  await client.waitConnected(5000);
});
afterAll(async () => {
  client?.close();
  await redis?.dispose();
});

/** Environment of a cluster on the shared test Redis, in a key space of its own unless given one. */
function redisEnv(prefix = `t${prefixes++}:`, extra: Record<string, string> = {}): Record<string, string> {
  return { QDP_SESSION_STORE: "redis", QDP_REDIS_URL: redis!.url, QDP_REDIS_PREFIX: prefix, QDP_REDIS_TIMEOUT_MS: "500", ...extra };
}

/** Stored counts of users, read straight from Redis (0 when nothing is stored). */
async function storedCounts(prefix: string, users: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const texts = await Promise.all(users.map((u) => client!.send(["HGET", `${prefix}session:${u}`, "d"])));
  users.forEach((u, i) => {
    out.set(u, texts[i] === null ? 0 : (JSON.parse(String(texts[i])) as { count: number }).count);
  });
  return out;
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

const acked = (l: CounterLoad) => l.statuses["200"] ?? 0;
const sum = (s: Stats, k: "loads" | "stores" | "conflicts" | "errors" | "checks") =>
  s.workers.reduce((a, w) => a + ((w.sessionStore as Record<string, number> | undefined)?.[k] ?? 0), 0);

async function counter(c: Cluster, user: string): Promise<{ status: number; count?: number; code?: string }> {
  const r = await call(c.url, "/api/1001", {}, { "x-qdp-user": user });
  return { status: r.status, count: r.body?.data?.count, code: r.body?.error?.code };
}

// ---------------------------------------------------------------------------------------------
// One suite, both stores: what `memory` always did, `redis` must keep doing.

for (const store of ["memory", "redis"] as const) {
  describe.if(store === "memory" || !!redisBin.path)(`sessions through the cluster: ${store}`, () => {
    let c: Cluster;
    beforeAll(async () => {
      c = await startCluster({ workers: 2, env: store === "redis" ? redisEnv() : {} });
    });
    afterAll(async () => {
      await c?.stop();
    });

    test("each user's counter counts 1, 2, 3... whichever worker accepts the call", async () => {
      for (let i = 1; i <= 5; i++) {
        const r = await Promise.all(Array.from({ length: 20 }, (_, u) => counter(c, `seq-${store}-${u}`)));
        expect(r.map((x) => x.count)).toEqual(Array(20).fill(i));
      }
      const s = await c.stats();
      if (store === "redis") {
        expect(sum(s, "loads")).toBe(20);
        expect(sum(s, "stores")).toBe(100);
      } else {
        expect(s.workers.every((w) => w.sessionStore === undefined)).toBe(true);
      }
    });

    test("a rolling reload under load fails no call and loses no increment; the hand-off moves the copies", async () => {
      const before = await c.stats();
      const load = counterLoad(c.url, { users: 200, concurrency: 32, prefix: `reload-${store}-` });
      await until(() => acked(load) > 1000, "load before the reload");
      process.kill(before.supervisor.pid, "SIGHUP");
      await until(async () => (await c.stats()).supervisor.reloads >= 1, "the reload");
      const reloadedAt = acked(load);
      await until(() => acked(load) > reloadedAt + 500, "load after the reload");
      await load.stop();
      expect(load.unexpected).toEqual([]);
      expect(load.total).toBe(acked(load));
      // Exact: the next call of every user answers acknowledged + 1.
      const next = await Promise.all([...load.ledger].map(async ([u, l]) => [u, l.acked + 1, (await counter(c, u)).count] as const));
      expect(next.filter(([, want, got]) => want !== got)).toEqual([]);
      if (store === "redis") {
        // The replacements got the copies from their predecessors, not from Redis.
        expect(sum(await c.stats(), "loads")).toBeLessThanOrEqual(5);
      }
    }, 60_000);
  });
}

// ---------------------------------------------------------------------------------------------
// What only `redis` promises.

describe.if(!!redisBin.path)("durable sessions with redis", () => {
  test("kill -9 of workers under load: no acknowledged increment lost, none applied twice", async () => {
    const prefix = "crash:";
    const c = await startCluster({ workers: 2, env: redisEnv(prefix) });
    try {
      const load = counterLoad(c.url, { users: 1000, concurrency: 200, prefix: "k" });
      await until(() => acked(load) > 2000, "load before the first kill");
      for (let k = 0; k < 3; k++) {
        const s = await c.stats();
        const victim = s.workers[k % s.workers.length]!;
        process.kill(victim.pid!, "SIGKILL");
        await c.waitReady({ notPids: [victim.pid!], timeoutMs: 20_000 });
        const at = acked(load);
        await until(() => acked(load) > at + 1000, `load after kill ${k + 1}`);
      }
      await load.stop();
      expect(load.unexpected).toEqual([]);
      const stats = await c.stats();
      expect(stats.workers.reduce((a, w) => a + w.restarts, 0)).toBe(3);
      const counts = await storedCounts(prefix, [...load.ledger.keys()]);
      expect(ledgerViolations(load, (u) => counts.get(u)!)).toEqual([]);
      const unknown = [...load.ledger.values()].reduce((a, l) => a + l.unknown, 0);
      console.log(`kill -9 x3: ${acked(load)} acknowledged, ${unknown} unknown, statuses ${JSON.stringify(load.statuses)}`);
    } finally {
      await c.stop();
    }
  }, 90_000);

  test("Redis stopped under load and started again: 503 within a bounded time, stateless calls unaffected, recovery without restart", async () => {
    const prefix = "outage:";
    const c = await startCluster({ workers: 2, env: redisEnv(prefix) });
    try {
      const load = counterLoad(c.url, { users: 1000, concurrency: 200, prefix: "o" });
      await until(() => acked(load) > 2000, "load before the outage");
      const pidsBefore = (await c.stats()).workers.map((w) => w.pid);
      await redis!.stop();
      const downAt = load.statuses["503"] ?? 0;
      await until(() => (load.statuses["503"] ?? 0) > downAt + 500, "503s during the outage");
      // Stateless calls do not touch the store.
      const echo = await Promise.all(Array.from({ length: 20 }, (_, i) => call(c.url, "/api/1000", { i }, { "x-qdp-user": `o${i}` })));
      expect(echo.map((r) => r.status)).toEqual(Array(20).fill(200));
      const stateful = await counter(c, "o1");
      expect([stateful.status, stateful.code]).toEqual([503, "SESSION_UNAVAILABLE"]);
      await Bun.sleep(1500); // a few seconds of outage in all
      await redis!.start();
      const upAt = acked(load);
      await until(() => acked(load) > upAt + 2000, "successes after Redis is back");
      await load.stop();
      expect(load.unexpected).toEqual([]);
      // Bounded: QDP_REDIS_TIMEOUT_MS is 500; nothing waited anywhere near the 10 s client timeout.
      expect(load.slowestMs).toBeLessThan(3000);
      const stats = await c.stats();
      expect(stats.workers.map((w) => w.pid)).toEqual(pidsBefore);
      expect(sum(stats, "errors")).toBeGreaterThan(0);
      const counts = await storedCounts(prefix, [...load.ledger.keys()]);
      expect(ledgerViolations(load, (u) => counts.get(u)!)).toEqual([]);
      console.log(`outage: ${acked(load)} acknowledged, statuses ${JSON.stringify(load.statuses)}, slowest ${load.slowestMs.toFixed(0)} ms`);
    } finally {
      await c.stop();
    }
  }, 90_000);

  test("a restart with 3 workers and then with 1 continues every counter", async () => {
    const env = redisEnv("resize:");
    const users = Array.from({ length: 200 }, (_, i) => `z${i}`);
    const round = async (c: Cluster, want: number) => {
      const r = await Promise.all(users.map((u) => counter(c, u)));
      expect(r.filter((x) => x.count !== want)).toEqual([]);
    };
    let c = await startCluster({ workers: 2, env });
    await round(c, 1);
    await round(c, 2);
    await c.stop();
    c = await startCluster({ workers: 3, env });
    await round(c, 3);
    await c.stop();
    c = await startCluster({ workers: 1, env });
    try {
      await round(c, 4);
      expect(sum(await c.stats(), "loads")).toBe(200);
    } finally {
      await c.stop();
    }
  }, 60_000);

  test("two clusters sharing one Redis serve a user alternately: the stale side answers SESSION_CONFLICT once, then succeeds; no update lost", async () => {
    // A long freshness bound so the stale copies are used and the write's version check is what
    // catches them (with the default bound a copy this old is re-checked and reloaded first).
    const env = redisEnv("shared:", { QDP_SESSION_FRESH_MS: "600000" });
    const [a, b] = await Promise.all([startCluster({ workers: 1, env }), startCluster({ workers: 1, env })]);
    try {
      const u = "alternating";
      expect((await counter(a, u)).count).toBe(1);
      expect((await counter(a, u)).count).toBe(2);
      expect((await counter(b, u)).count).toBe(3); // b loads the stored 2
      expect((await counter(a, u)).code).toBe("SESSION_CONFLICT"); // a's copy says 2 at version 2
      expect((await counter(a, u)).count).toBe(4); // reloaded
      expect((await counter(b, u)).code).toBe("SESSION_CONFLICT");
      expect((await counter(b, u)).count).toBe(5);
      expect((await counter(b, u)).count).toBe(6);
      expect((await storedCounts("shared:", [u])).get(u)).toBe(6);
      expect(sum(await a.stats(), "conflicts") + sum(await b.stats(), "conflicts")).toBe(2);
      // With the default bound, a copy unconfirmed for over a second is re-checked: no conflict.
      const [c1, c2] = await Promise.all([
        startCluster({ workers: 1, env: redisEnv("fresh:", { QDP_SESSION_FRESH_MS: "50" }) }),
        startCluster({ workers: 1, env: redisEnv("fresh:", { QDP_SESSION_FRESH_MS: "50" }) }),
      ]);
      try {
        expect((await counter(c1, u)).count).toBe(1);
        expect((await counter(c2, u)).count).toBe(2);
        await Bun.sleep(60);
        expect((await counter(c1, u)).count).toBe(3);
        expect(sum(await c1.stats(), "checks")).toBe(1);
      } finally {
        await Promise.all([c1.stop(), c2.stop()]);
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  }, 60_000);
});
