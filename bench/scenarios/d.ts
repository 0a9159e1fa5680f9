/**
 * Scenario D, durable sessions: `demo.counter` (1001, stateful) at -c500 for 1,000 rotating
 * users, sessions in the owner's memory (QDP_SESSION_STORE=memory) vs stored in Redis before
 * each reply (QDP_SESSION_STORE=redis), in the same run. Every call changes its session, so
 * with Redis every call costs one pipelined compare-and-swap script. Redis runs as a private
 * redis-server with AOF `everysec`; its CPU during each run is reported in cores.
 */
import { caseTable, find, ratio, writeScenario } from "../lib/report.ts";
import type { Case, Contender, ScenarioPlan, ScenarioResult } from "../lib/runner.ts";
import { cpuSeconds } from "../lib/procs.ts";
import { startBenchRedis } from "../lib/redis.ts";
import { qdpServer, type ServerContext } from "../lib/servers.ts";
import { rotatingUsers } from "../lib/workloads.ts";
import type { ScenarioOptions } from "./a.ts";

/** The target of the durable-sessions issue: redis ≥ 0.70× memory throughput. */
export const D_TARGET = 0.7;

export function planD(o: ScenarioOptions): ScenarioPlan {
  const cases: Case[] = [
    { id: "c500", title: "-c500, 1,000 users, every call changes its session", connections: 500, threads: 2, durationSec: o.durationSec, timeoutSec: 5 },
  ];
  const counter = rotatingUsers("/api/1001", "{}", true);
  const contenders: Contender[] = [
    { id: "sessions-memory", label: "qdp counter, sessions in memory", server: "qdp", workload: counter, noHopRef: "sessions-memory", accent: true },
    { id: "sessions-redis", label: "qdp counter, sessions in Redis", server: "qdp-redis", workload: counter, noHopRef: "sessions-memory", accent: true },
  ];
  return {
    id: "D",
    title: "durable sessions: memory vs Redis",
    cases,
    contenders,
    servers: [
      qdpServer("qdp", "qdp-server (sessions in memory)", () => ({})),
      qdpServer("qdp-redis", "qdp-server (sessions in Redis)", (ctx) => ({
        QDP_SESSION_STORE: "redis",
        QDP_REDIS_URL: ctx.redisUrl ?? "",
        QDP_REDIS_PREFIX: "bench:",
      })),
    ],
    setup: (ctx: ServerContext) => startBenchRedis(ctx, "D"),
    measure(ctx) {
      const pid = ctx.redisPid;
      if (pid === undefined) return { stop: () => ({}) };
      const cpu0 = cpuSeconds([pid]);
      const t0 = performance.now();
      return { stop: () => ({ redisCores: (cpuSeconds([pid]) - cpu0) / ((performance.now() - t0) / 1000) }) };
    },
  };
}

export function reportD(r: ScenarioResult): void {
  const c = r.plan.cases[0]!;
  const redisCores = (id: string): number => {
    const v = r.records.filter((x) => x.caseId === c.id && x.contenderId === id).map((x) => x.extra?.redisCores ?? Number.NaN);
    v.sort((a, b) => a - b);
    return v.length ? v[Math.floor(v.length / 2)]! : Number.NaN;
  };
  const table = caseTable(r, c, [
    { header: "Redis CPU (cores)", numeric: true, value: (a) => (a.contenderId === "sessions-redis" ? redisCores(a.contenderId).toFixed(2) : "–") },
  ]);
  const k = ratio(find(r, c.id, "sessions-redis"), find(r, c.id, "sessions-memory"));
  table.notes = [
    `redis ÷ memory = ${k === undefined ? "–" : `${k.toFixed(3)}×`} (target ≥ ${D_TARGET.toFixed(2)}×: ${k === undefined ? "not measured" : k >= D_TARGET ? "PASS" : "FAIL"})`,
  ];
  writeScenario(
    r,
    [table],
    [
      "`wrk -t2 -c500` against `POST /api/1001` (`demo.counter`) with `X-QDP-User` drawn from 1,000 users: every call",
      "increments its user's counter, so with `QDP_SESSION_STORE=redis` every reply waits for a compare-and-swap",
      "script in Redis (pipelined per event-loop tick, one connection per worker). The memory row is the same server",
      'without a durable store; its "× qdp no-hop" column is the redis ÷ memory ratio. Redis CPU is the private redis-server\'s user+system time over the run, in cores.',
      "See docs/stores.md for what the Redis rows buy.",
    ],
  );
}
