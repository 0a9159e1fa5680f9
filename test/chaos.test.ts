/**
 * The chaos run's five phases, shortened (bench/lib/chaos.ts; the full run is `bun run chaos`):
 * signed counter load while workers are killed, reloaded and recycled, the supervisor is killed
 * and started again, and Redis is stopped. Sessions are in Redis, so in every phase every
 * user's counter is exact (acknowledged ≤ final ≤ acknowledged + unknown), every failure is one
 * a caller can understand (503 with Retry-After, a refused or lost connection, a 401 from a
 * restarted worker's replay fence), and reloads and recycling fail nothing at all.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { PHASES, runChaos, stopAll, type PhaseReport } from "../bench/lib/chaos.ts";
import { ensureRedis } from "./support/redis.ts";

const redis = ensureRedis();
test.if(!redis.path && !!process.env.CI)("redis-server is available in CI", () => {
  throw new Error(`redis-server is required in CI: ${redis.why}`);
});

describe.if(!!redis.path)("chaos phases, shortened", () => {
  const reports = new Map<string, PhaseReport>();
  beforeAll(async () => {
    const out = await runChaos({
      phaseSec: 4,
      eventEverySec: 1.5,
      redisOutageSec: 1.5,
      users: 200,
      concurrency: 12,
      workers: 2,
      store: "redis",
      recycleMaxRequests: 1000,
      redisPath: redis.path,
      phases: PHASES.map((p) => p.id),
      log: () => {},
    });
    for (const r of out) reports.set(r.id, r);
  }, 150_000);
  afterAll(stopAll);

  const CONNECTION = "connection lost (held by a killed or stopping process)";
  // Calls signed in the last second a killed worker accepted meet its successor's replay fence.
  const FENCE = "401 signed before a restarted worker's replay fence (did not run; sign again)";
  const allowed: Record<string, string[]> = {
    "kill-worker": [CONNECTION, "503 with Retry-After (OWNER_UNAVAILABLE)", FENCE],
    sighup: [],
    "kill-supervisor": [CONNECTION, "connection refused (no process listening)", "503 with Retry-After (OWNER_UNAVAILABLE)", FENCE],
    recycle: [],
    "redis-outage": ["503 with Retry-After (SESSION_UNAVAILABLE)"],
  };

  for (const p of PHASES) {
    test(`${p.n} ${p.id}: counters exact, only understandable failures, recovered`, () => {
      const r = reports.get(p.id)!;
      expect(r).toBeDefined();
      expect(r.calls).toBeGreaterThan(500);
      expect(r.examples).toEqual([]);
      expect(r.exact).toBe(true);
      for (const cause of Object.keys(r.byCause)) expect(allowed[p.id]).toContain(cause);
      if (p.id === "sighup" || p.id === "recycle") expect(r.calls - r.ok).toBe(0);
      if (p.id === "sighup") expect(r.reloads).toBeGreaterThanOrEqual(1);
      if (p.id === "recycle") expect(r.recycles).toBeGreaterThanOrEqual(1);
      if (p.id !== "recycle") expect(r.events).toBeGreaterThanOrEqual(1);
      if (p.id === "redis-outage") expect(r.byCause["503 with Retry-After (SESSION_UNAVAILABLE)"]).toBeGreaterThan(0);
      // Calls succeed again within seconds of each event (the Redis outage itself lasts 1.5 s).
      for (const ms of r.recoverMs) expect(ms).toBeLessThan(p.id === "redis-outage" ? 5_000 : 4_000);
    });
  }
});
