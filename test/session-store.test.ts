/**
 * Session stores: the shared contract against the in-process adapter and against a real
 * redis-server (started by the test on its own port), plus what only Redis has: the key layout
 * under QDP_REDIS_PREFIX, and an outage seen as SessionStoreUnavailable, not a hang.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRedisClient, type RedisClient } from "../src/stores/redis-client.ts";
import { createMemorySessionBackend } from "../src/stores/session-memory.ts";
import { createRedisSessionBackend } from "../src/stores/session-redis.ts";
import { SessionStoreUnavailable } from "../src/stores/session-store.ts";
import { sessionStoreContract } from "./session-store.contract.ts";
import { ensureRedis, startRedis, type TestRedis } from "./support/redis.ts";

const TTL_MS = 300;

sessionStoreContract("memory", async () => createMemorySessionBackend({ ttlMs: TTL_MS }), TTL_MS);

const redisBin = ensureRedis();
if (!redisBin.path) console.warn(`session-store: redis tests skipped — ${redisBin.why}`);
test.if(!redisBin.path && !!process.env.CI)("redis-server is available in CI", () => {
  throw new Error(`redis-server is required in CI: ${redisBin.why}`);
});

let redis: TestRedis | null = null;
const clients: RedisClient[] = [];
const client = async (): Promise<RedisClient> => {
  const c = createRedisClient({ url: redis!.url, timeoutMs: 500 });
  clients.push(c);
  await c.waitConnected(5000);
  return c;
};
beforeAll(async () => {
  if (redisBin.path) redis = await startRedis(redisBin.path);
});
afterAll(async () => {
  for (const c of clients) c.close();
  await redis?.dispose();
});

if (redisBin.path) {
  sessionStoreContract("redis", async () => createRedisSessionBackend({ client: await client(), prefix: "contract:", ttlMs: TTL_MS }), TTL_MS);
}

describe.if(!!redisBin.path)("redis session store", () => {
  test("one hash per user under the prefix, {v, d}, with the ttl set by each write", async () => {
    const c = await client();
    const store = createRedisSessionBackend({ client: c, prefix: "app1:", ttlMs: 60_000, ownsClient: false });
    await store.save("alice", '{"count":3}', 0);
    expect(await c.send(["HGETALL", "app1:session:alice"])).toEqual(["v", "1", "d", '{"count":3}']);
    const ttl = Number(await c.send(["PTTL", "app1:session:alice"]));
    expect(ttl).toBeGreaterThan(59_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    // Another prefix is another namespace: two deployments can share one Redis.
    const other = createRedisSessionBackend({ client: c, prefix: "app2:", ttlMs: 60_000, ownsClient: false });
    expect(await other.load("alice")).toBeNull();
  });

  test("with the server hung, operations fail as unavailable within the client's timeout", async () => {
    const c = await client();
    const store = createRedisSessionBackend({ client: c, prefix: "hang:", ttlMs: 60_000, ownsClient: false });
    redis!.pause();
    try {
      const t0 = Date.now();
      const r = await Promise.allSettled([store.load("u"), store.version("u"), store.save("u", "{}", 0)]);
      expect(r.every((x) => x.status === "rejected" && x.reason instanceof SessionStoreUnavailable)).toBe(true);
      expect(Date.now() - t0).toBeLessThan(1000);
    } finally {
      redis!.resume();
    }
    await c.waitConnected(5000);
  });
});
