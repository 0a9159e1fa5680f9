/**
 * The stuck-worker watchdog with real processes: a handler that blocks its worker's event loop
 * (`9901 test.block`, preloaded into the workers by test/support/blocking-service.ts through
 * QDP_WORKER_BUN_ARGS) gets the worker killed and respawned at its index within QDP_STUCK_MS
 * plus a margin, logged with the call it was running and counted; a worker that is merely slow
 * for less than QDP_STUCK_MS is left alone and its lag shows. With Redis sessions, the stuck
 * worker's users continue from the store.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ownerOf } from "../src/core/ownership.ts";
import { heartbeatIntervalMs, STUCK_KILL_GRACE_MS } from "../src/core/watchdog.ts";
import { ROOT, startCluster, type Cluster } from "./support/cluster.ts";
import { counterLoad, ledgerViolations } from "./support/counter-load.ts";
import { ensureRedis, startRedis, type TestRedis } from "./support/redis.ts";

const STUCK_MS = 2000;
const PRELOAD = `--preload=${join(ROOT, "test/support/blocking-service.ts")}`;
/** Detection can come up to one heartbeat interval and one watchdog tick after QDP_STUCK_MS. */
const DETECT_MARGIN_MS = heartbeatIntervalMs(STUCK_MS) + 250 + 1000;

function userOwnedBy(index: number, prefix: string): string {
  for (let i = 0; ; i++) if (ownerOf(`${prefix}${i}`, 2) === index) return `${prefix}${i}`;
}

/** Calls test.block; resolves with the status, or "net" if the connection died with the worker. */
async function block(c: Cluster, user: string, ms: number): Promise<number | "net"> {
  try {
    const r = await fetch(`${c.url}/api/9901`, {
      method: "POST",
      headers: { "x-qdp-user": user, "content-type": "application/json", connection: "close" },
      body: JSON.stringify({ ms }),
      signal: AbortSignal.timeout(ms + 20_000),
    });
    await r.text();
    return r.status;
  } catch {
    return "net";
  }
}

async function counterOf(c: Cluster, user: string): Promise<number> {
  const r = await fetch(`${c.url}/api/1001`, { method: "POST", headers: { "x-qdp-user": user }, body: "{}" });
  expect(r.status).toBe(200);
  return ((await r.json()) as { data: { count: number } }).data.count - 1;
}

function logged(c: Cluster, msg: string): Array<Record<string, any>> {
  return c
    .output()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l))
    .filter((j) => (j.msg as string).startsWith(msg));
}

describe("a worker whose event loop is blocked", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ workers: 2, env: { QDP_STUCK_MS: String(STUCK_MS), QDP_WORKER_BUN_ARGS: PRELOAD } });
  });
  afterAll(async () => {
    await c.stop();
  });

  test("busy for less than QDP_STUCK_MS: left alone, its lag shows in /stats and /metrics", async () => {
    const before = await c.stats();
    const user = userOwnedBy(1, "slow-");
    expect(await block(c, user, 1200)).toBe(200);
    const after = await c.stats();
    expect(after.workers[1]!.pid).toBe(before.workers[1]!.pid);
    expect(after.supervisor.stuckKills).toBe(0);
    expect(after.workers[1]!.eventLoopLagMaxMs as number).toBeGreaterThanOrEqual(1000);
    const metrics = await (await fetch(`http://127.0.0.1:${c.statsPort}/metrics`)).text();
    expect(metrics).toMatch(/^qdp_event_loop_lag_seconds_bucket\{worker="1",le="2.5"\} \d+$/m);
    expect(metrics).toMatch(/^qdp_stuck_kills_total\{worker="1"\} 0$/m);
  });

  test("blocked: shown unresponsive, then killed within QDP_STUCK_MS + margin, logged with its call, respawned at its index, counted", async () => {
    const before = await c.stats();
    const victim = before.workers[1]!;
    const user = userOwnedBy(1, "stuck-");
    // Users of the other worker keep their exact counts throughout.
    const load = counterLoad(c.url, { users: 40, concurrency: 8, prefix: "w0-", timeoutMs: 15_000 });
    const t0 = Date.now();
    const blocked = block(c, user, 60_000);

    // Before the verdict the worker does not answer its stats: not "ready" any more.
    let sawUnresponsive = false;
    while (Date.now() - t0 < STUCK_MS && !sawUnresponsive) sawUnresponsive = (await c.stats()).workers[1]!.state === "unresponsive";
    expect(sawUnresponsive).toBe(true);

    const after = await c.waitReady({ notPids: [victim.pid!], timeoutMs: STUCK_MS + DETECT_MARGIN_MS + STUCK_KILL_GRACE_MS + 10_000 });
    const status = await blocked;
    // A hopped call ends 503 OWNER_UNAVAILABLE; one accepted by the stuck worker itself loses its connection.
    expect([503, "net"]).toContain(status);
    await load.stop();

    const [line] = logged(c, "worker stuck");
    expect(line).toBeDefined();
    expect(Date.parse(line!.t) - t0).toBeLessThan(STUCK_MS + DETECT_MARGIN_MS);
    expect(line).toMatchObject({ level: "error", index: 1, pid: victim.pid, stuckMs: STUCK_MS });
    expect(line!.silentMs).toBeGreaterThan(STUCK_MS);
    expect(line!.running).toMatchObject({ funcNo: 9901, name: "test.block", user });
    const [died] = logged(c, "worker died; respawning at the same index");
    expect(died).toMatchObject({ index: 1, cause: "stuck", signal: "SIGKILL" });

    expect(after.workers[1]!.pid).not.toBe(victim.pid);
    expect(after.workers[0]!.pid).toBe(before.workers[0]!.pid);
    expect(after.workers[1]!.stuckKills).toBe(1);
    expect(after.supervisor.stuckKills).toBe(1);
    const metrics = await (await fetch(`http://127.0.0.1:${c.statsPort}/metrics`)).text();
    expect(metrics).toMatch(/^qdp_stuck_kills_total\{worker="1"\} 1$/m);

    expect(load.unexpected).toEqual([]);
    const w0 = [...load.ledger.keys()].filter((u) => ownerOf(u, 2) === 0);
    const finals = new Map<string, number>();
    for (const u of w0) finals.set(u, await counterOf(c, u));
    const violations = ledgerViolations({ ...load, ledger: new Map(w0.map((u) => [u, load.ledger.get(u)!])) }, (u) => finals.get(u)!);
    expect(violations).toEqual([]);
  }, 60_000);
});

const redisBin = ensureRedis();
describe.if(!!redisBin.path)("with QDP_SESSION_STORE=redis", () => {
  let redis: TestRedis;
  let c: Cluster;
  beforeAll(async () => {
    redis = await startRedis(redisBin.path!);
    c = await startCluster({
      workers: 2,
      env: { QDP_STUCK_MS: String(STUCK_MS), QDP_WORKER_BUN_ARGS: PRELOAD, QDP_SESSION_STORE: "redis", QDP_REDIS_URL: redis.url, QDP_REDIS_PREFIX: "wd:" },
    });
  });
  afterAll(async () => {
    await c.stop();
    await redis.dispose();
  });

  test("the stuck worker's users continue from the store", async () => {
    const users = Array.from({ length: 20 }, (_, i) => userOwnedBy(1, `durable-${i}-`));
    for (const u of users) for (let k = 0; k < 3; k++) await counterOf(c, u);
    const victim = (await c.stats()).workers[1]!;
    const blocked = block(c, userOwnedBy(1, "blocker-"), 60_000);
    await c.waitReady({ notPids: [victim.pid!], timeoutMs: STUCK_MS + DETECT_MARGIN_MS + STUCK_KILL_GRACE_MS + 10_000 });
    expect([503, "net"]).toContain(await blocked);
    // Three acknowledged increments each, then the probe: the count continues at 3.
    for (const u of users) expect({ u, n: await counterOf(c, u) }).toEqual({ u, n: 3 });
  }, 60_000);
});
