/**
 * The cluster runtime with real processes and sockets: reusePort workers, respawn at the same
 * index with back-off, no orphans, graceful stop, rolling reload under load, config refusal.
 */
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { alive, BUN, call, ROOT, startCluster, type Cluster } from "./support/cluster.ts";
import { startUpstream } from "./support/upstream.ts";
import { resolveGcRamMb } from "../src/supervisor/gc-ram.ts";

/** Runs `concurrency` loops of calls until `stop()`; counts outcomes. */
function load(url: string, concurrency: number, body: (i: number) => { path: string; body: unknown; headers?: Record<string, string> }) {
  let running = true;
  const result = { ok: 0, failed: 0, failures: [] as string[] };
  const loops = Array.from({ length: concurrency }, async (_, k) => {
    let i = k;
    while (running) {
      const c = body(i);
      i += concurrency;
      try {
        const r = await fetch(url + c.path, { method: "POST", body: JSON.stringify(c.body), headers: { "content-type": "application/json", ...c.headers } });
        const text = await r.text();
        if (r.status === 200) result.ok++;
        else {
          result.failed++;
          if (result.failures.length < 10) result.failures.push(`${r.status} ${text}`);
        }
      } catch (err) {
        result.failed++;
        if (result.failures.length < 10) result.failures.push(String(err));
      }
    }
  });
  return {
    result,
    async stop() {
      running = false;
      await Promise.all(loops);
      return result;
    },
  };
}

describe("a running cluster", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ workers: 2 });
  });
  afterAll(async () => {
    await c.stop();
  });

  test("both workers accept connections on the one port", async () => {
    const edges = new Set<string>();
    for (let i = 0; i < 60 && edges.size < 2; i++) {
      const r = await call(c.url, "/api/1000", { i });
      expect(r.status).toBe(200);
      edges.add(r.headers.get("x-qdp-edge")!);
    }
    expect([...edges].sort()).toEqual(["0", "1"]);
  });

  test("workers keep freed memory for reuse (MIMALLOC_PURGE_DELAY=-1 from QDP_MALLOC_PURGE_MS's default)", async () => {
    for (const w of (await c.stats()).workers) {
      const environ = readFileSync(`/proc/${w.pid}/environ`, "utf8").split("\0");
      expect(environ).toContain("MIMALLOC_PURGE_DELAY=-1");
    }
  });

  test("workers' garbage collectors pace themselves against their share of the host's RAM (QDP_GC_RAM_MB=auto)", async () => {
    const mb = resolveGcRamMb("auto", 2, totalmem());
    for (const w of (await c.stats()).workers) {
      const environ = readFileSync(`/proc/${w.pid}/environ`, "utf8").split("\0");
      expect(environ).toContain(`BUN_JSC_forceRAMSize=${mb! * 1024 * 1024}`);
    }
    // And the supervisor says what it chose.
    const started = c
      .output()
      .split("\n")
      .find((l) => l.includes('"supervisor started"'));
    expect(JSON.parse(started!).gcRamMb).toBe(mb);
  });

  test("health, readiness and the contract headers on every response", async () => {
    const h = await fetch(`${c.url}/healthz`, { headers: { "x-request-id": "abc-123" } });
    expect(h.status).toBe(200);
    expect(h.headers.get("x-request-id")).toBe("abc-123");
    expect(h.headers.get("x-qdp-edge")).toMatch(/^[01]$/);
    expect(h.headers.get("x-qdp-worker")).toMatch(/^[01]$/);
    expect((await fetch(`${c.url}/readyz`)).status).toBe(200);
    const nf = await fetch(`${c.url}/nope`);
    expect(nf.status).toBe(404);
    expect(((await nf.json()) as any).error.code).toBe("UNKNOWN_FUNCTION");
    expect(nf.headers.get("x-request-id")).toBeTruthy();
  });

  test("kill -9 of a worker: a new pid at the same index, ready within 2 s, restart counted", async () => {
    const before = await c.stats();
    const victim = before.workers[1]!;
    process.kill(victim.pid!, "SIGKILL");
    const t0 = Date.now();
    const after = await c.waitReady({ notPids: [victim.pid!], timeoutMs: 2000 });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(after.workers[1]!.pid).not.toBe(victim.pid);
    expect(after.workers[1]!.restarts).toBe(victim.restarts + 1);
    expect(after.workers[0]!.pid).toBe(before.workers[0]!.pid);
  });

  test("a worker that keeps crashing is respawned with growing back-off", async () => {
    const start = (await c.stats()).workers[0]!.restarts;
    for (let k = 0; k < 4; k++) {
      const s = await c.waitReady({ timeoutMs: 10_000 });
      const pid = s.workers[0]!.pid!;
      process.kill(pid, "SIGKILL");
      await c.waitReady({ notPids: [pid], timeoutMs: 10_000 });
    }
    // The supervisor logs the delay it chose for each respawn of index 0.
    const delays = c
      .output()
      .split("\n")
      .filter((l) => l.includes("respawning at the same index") && l.includes('"index":0'))
      .map((l) => JSON.parse(l).delayMs as number)
      .slice(-4);
    expect(delays).toEqual([0, 250, 500, 1000].map((d, k) => (start === 0 ? d : delays[k]!)));
    expect(delays[3]!).toBeGreaterThan(delays[1]!);
    expect((await c.stats()).workers[0]!.restarts).toBe(start + 4);
    expect(c.proc.exitCode).toBeNull();
  });
});

test("kill -9 of the supervisor: no worker is left within 2 s", async () => {
  const c = await startCluster({ workers: 2 });
  const s = await c.stats();
  process.kill(s.supervisor.pid, "SIGKILL");
  const t0 = Date.now();
  const pids = s.workers.map((w) => w.pid!);
  while (pids.some(alive) && Date.now() - t0 < 5000) await Bun.sleep(50);
  expect(pids.filter(alive)).toEqual([]);
  expect(Date.now() - t0).toBeLessThan(2000);
  await c.stop();
});

test("SIGTERM with calls in flight: they complete, the supervisor exits 0", async () => {
  const up = startUpstream({ delays: { "/a": 700, "/b": 300 } });
  const c = await startCluster({ workers: 2, env: { QDP_UPSTREAM_A: `${up.url}/a`, QDP_UPSTREAM_B: `${up.url}/b` } });
  try {
    const calls = Array.from({ length: 20 }, (_, i) => call(c.url, "/api/1002", { symbol: `S${i}` }, { "x-qdp-user": `u${i}` }));
    await Bun.sleep(300);
    c.proc.kill("SIGTERM");
    const results = await Promise.all(calls);
    expect(results.map((r) => r.status)).toEqual(results.map(() => 200));
    expect(results[0]!.body.data.b.path).toBe("/b");
    expect(await c.proc.exited).toBe(0);
    // No new connection is accepted after the stop.
    await expect(fetch(`${c.url}/healthz`)).rejects.toThrow();
  } finally {
    up.stop();
    await c.stop();
  }
});

test("SIGHUP under load: every pid replaced, zero failed calls", async () => {
  const c = await startCluster({ workers: 2 });
  try {
    const before = await c.stats();
    const l = load(c.url, 32, (i) => (i % 2 ? { path: "/api/1000", body: { i } } : { path: "/api/1001", body: {}, headers: { "x-qdp-user": `r${i % 200}` } }));
    await Bun.sleep(500);
    process.kill(before.supervisor.pid, "SIGHUP");
    const t0 = Date.now();
    let after = await c.stats();
    while (after.supervisor.reloads < 1 && Date.now() - t0 < 30_000) {
      await Bun.sleep(100);
      after = await c.stats();
    }
    await Bun.sleep(500);
    const r = await l.stop();
    expect(after.supervisor.reloads).toBe(1);
    for (const w of after.workers) expect(before.workers.map((b) => b.pid)).not.toContain(w.pid);
    expect(r.failures).toEqual([]);
    expect(r.failed).toBe(0);
    expect(r.ok).toBeGreaterThan(500);
  } finally {
    await c.stop();
  }
});

test("signals sent to `bun run start` reach the supervisor", async () => {
  const c = await startCluster({ workers: 2, cmd: [BUN, "run", "start"] });
  const s = await c.stats();
  c.proc.kill("SIGHUP");
  const t0 = Date.now();
  let reloads = 0;
  while (reloads < 1 && Date.now() - t0 < 20_000) {
    await Bun.sleep(100);
    reloads = (await c.stats()).supervisor.reloads;
  }
  expect(reloads).toBe(1);
  c.proc.kill("SIGTERM");
  expect(await c.proc.exited).toBe(0);
  expect([s.supervisor.pid, ...s.workers.map((w) => w.pid!)].filter(alive)).toEqual([]);
  await c.stop();
});

test("logs are JSON lines carrying the worker index and the request id", async () => {
  const c = await startCluster({ workers: 2, env: { QDP_LOG_LEVEL: "debug" } });
  try {
    const r = await call(c.url, "/api/1000", { x: 1 }, { "x-request-id": "trace-42", "x-qdp-user": "logger" });
    expect(r.status).toBe(200);
    let line: any;
    for (let i = 0; i < 50 && !line; i++) {
      await Bun.sleep(20);
      line = c
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l))
        .find((j) => j.requestId === "trace-42");
    }
    // The access line (at info since QDP_ACCESS_LOG; it was a debug line before).
    expect(line).toMatchObject({ level: "info", msg: "call", requestId: "trace-42", route: "api", func: 1000, status: 200 });
    expect(line.worker).toBe(Number(r.headers.get("x-qdp-edge")));
    expect(line.owner).toBe(Number(r.headers.get("x-qdp-worker")));
    expect(typeof line.t).toBe("string");
    // Every line of every process parses as JSON.
    for (const l of c
      .output()
      .split("\n")
      .filter((x) => x.trim() !== ""))
      expect(() => JSON.parse(l)).not.toThrow();
  } finally {
    await c.stop();
  }
});

test("the public socket's listen backlog is QDP_BACKLOG, not Bun's fixed 512", async () => {
  const c = await startCluster({ workers: 2, env: { QDP_BACKLOG: "1000" } });
  try {
    const ss = Bun.spawnSync(["ss", "-Hltn", `sport = :${c.port}`])
      .stdout.toString()
      .trim()
      .split("\n");
    expect(ss.length).toBe(2);
    // For a listening socket, ss shows the backlog in the Send-Q column.
    for (const line of ss) expect(line.split(/\s+/)[2]).toBe("1000");
  } finally {
    await c.stop();
  }
});

describe("bad configuration stops start-up with a clear message", () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ QDP_WORKERS: "abc" }, /QDP_WORKERS="abc": expected a whole number from 1 to 256/],
    [{ QDP_PORT: "70000" }, /QDP_PORT="70000": expected a whole number from 0 to 65535/],
    [{ QDP_MAX_BODY: "lots" }, /QDP_MAX_BODY="lots": expected a size in bytes/],
    [{ QDP_UAP_KEYS: "nocolon" }, /QDP_UAP_KEYS entry 1 has no ':'/],
    [{ QDP_HOST: "0.0.0.0" }, /refusing to bind 0\.0\.0\.0 without UAP keys/],
    [{ QDP_ALLOW_CIDRS: "10.0.0.0/99" }, /QDP_ALLOW_CIDRS/],
  ];
  for (const [env, message] of cases) {
    test(JSON.stringify(env), async () => {
      const p = Bun.spawn([BUN, "src/main.ts"], { cwd: ROOT, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
      const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
      expect(code).toBe(2);
      expect(err).toMatch(message);
      expect(err).not.toMatch(/\n\s+at /);
    });
  }
});
