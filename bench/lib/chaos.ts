/**
 * The chaos run (`bun run chaos`, bench/chaos.ts; shortened in test/chaos.test.ts): signed
 * `demo.counter` load from `users` rotating users while something goes wrong on purpose, one
 * phase per kind of trouble, each on a fresh cluster:
 *
 *   1 kill-worker      kill -9 a random worker every `eventEverySec`
 *   2 sighup           SIGHUP (rolling reload) every `eventEverySec`
 *   3 kill-supervisor  kill -9 the supervisor once, then start it again on the same port
 *   4 recycle          recycling at a low QDP_MAX_REQUESTS
 *   5 redis-outage     stop Redis for 5 s (sessions in Redis)
 *
 * Each phase reports calls, failures by status/code and by cause, whether every user's counter
 * is exact (acknowledged ≤ final ≤ acknowledged + unknown), latency percentiles and the time to
 * recover after each event (from the event to the last failed call it caused).
 */
import { redisArgs } from "./redis.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { signRequest } from "../../src/client/sign.ts";

export type PhaseId = "kill-worker" | "sighup" | "kill-supervisor" | "recycle" | "redis-outage";

export const PHASES: ReadonlyArray<{ id: PhaseId; n: number; title: string }> = [
  { id: "kill-worker", n: 1, title: "kill -9 a random worker every interval" },
  { id: "sighup", n: 2, title: "SIGHUP (rolling reload) every interval" },
  { id: "kill-supervisor", n: 3, title: "kill -9 the supervisor once, start it again" },
  { id: "recycle", n: 4, title: "recycling at a low QDP_MAX_REQUESTS" },
  { id: "redis-outage", n: 5, title: "Redis stopped for 5 s" },
];

const ROOT = new URL("../..", import.meta.url).pathname;
const KEY_ID = "chaos";

export interface ChaosOptions {
  /** Seconds of load per phase (default run: 60). */
  phaseSec: number;
  /** Seconds between events in phases 1 and 2 (default 5). */
  eventEverySec: number;
  /** Seconds Redis stays stopped in phase 5 (default 5). */
  redisOutageSec: number;
  users: number;
  /** Concurrent callers (each a keep-alive connection, one call at a time). */
  concurrency: number;
  workers: number;
  /** Session store for phases 1–4 (phase 5 always uses Redis). */
  store: "memory" | "redis";
  /** QDP_MAX_REQUESTS of phase 4 (jitter: a quarter of it). */
  recycleMaxRequests: number;
  /** A redis-server binary, needed by phase 5 and by `store: "redis"`. */
  redisPath: string | null;
  phases: PhaseId[];
  log: (line: string) => void;
}

export interface PhaseReport {
  id: PhaseId;
  n: number;
  title: string;
  store: "memory" | "redis";
  seconds: number;
  events: number;
  calls: number;
  ok: number;
  /** Failed calls by answer: "503 OWNER_UNAVAILABLE", "net ECONNRESET", … */
  byCode: Record<string, number>;
  /** Failed calls by cause (see `causeOf`). */
  byCause: Record<string, number>;
  /** Every user's final count within [acknowledged, acknowledged + unknown]. */
  exact: boolean;
  /** Users outside that range, with a few examples. */
  violations: number;
  examples: string[];
  /** Users whose count went below what was acknowledged (sessions lost). */
  lostUsers: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Per event: ms from the event to the last failure before the next event (0: none failed). */
  recoverMs: number[];
  /** Reloads completed and workers recycled during the phase (from /stats). */
  reloads: number;
  recycles: number;
  notes: string[];
}

// ---------------------------------------------------------------------------------------------
// processes

interface Qdp {
  port: number;
  statsPort: number;
  proc: Subprocess;
  output(): string;
}

const started = new Set<Subprocess>();

async function startQdp(env: Record<string, string>, port: number, statsPort: number, dir: string): Promise<Qdp> {
  let out = "";
  const proc = Bun.spawn([process.execPath, "src/main.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      QDP_HOST: "127.0.0.1",
      QDP_PORT: String(port),
      QDP_STATS_PORT: String(statsPort),
      QDP_RUNTIME_DIR: join(dir, "run"),
      QDP_DATA_DIR: join(dir, "data"),
      QDP_LOG_LEVEL: "warn",
      ...env,
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  started.add(proc);
  void proc.exited.then(() => started.delete(proc));
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) out = (out + dec.decode(chunk)).slice(-200_000);
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const q: Qdp = { port, statsPort, proc, output: () => out };
  await waitReady(q, 30_000);
  return q;
}

async function stats(q: Qdp): Promise<{
  supervisor: { pid: number; reloads: number; recycles?: Record<string, number> };
  workers: Array<{ index: number; pid: number | null; state: string }>;
}> {
  const r = await fetch(`http://127.0.0.1:${q.statsPort}/stats`, { signal: AbortSignal.timeout(3000) });
  return (await r.json()) as Awaited<ReturnType<typeof stats>>;
}

async function waitReady(q: Qdp, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (q.proc.exitCode !== null) throw new Error(`qdp-server exited (${q.proc.exitCode}):\n${q.output().slice(-3000)}`);
    try {
      const s = await stats(q);
      if (s.workers.every((w) => w.state === "ready")) return;
    } catch {}
    await Bun.sleep(50);
  }
  throw new Error(`qdp-server not ready in ${timeoutMs} ms:\n${q.output().slice(-3000)}`);
}

async function stopQdp(q: Qdp): Promise<void> {
  if (q.proc.exitCode === null && q.proc.signalCode === null) q.proc.kill("SIGTERM");
  const done = await Promise.race([q.proc.exited.then(() => true), Bun.sleep(20_000).then(() => false)]);
  if (!done) {
    q.proc.kill("SIGKILL");
    await q.proc.exited;
  }
}

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

/** A private redis-server (AOF on, like test/support/redis.ts) that can be stopped and started again. */
async function startRedis(path: string, dir: string): Promise<{ url: string; stop(): Promise<void>; start(): Promise<void> }> {
  const port = freePort();
  let proc: Subprocess | null = null;
  const start = async () => {
    const p = Bun.spawn([path, ...redisArgs(port, dir)], {
      stdout: "ignore",
      stderr: "ignore",
    });
    started.add(p);
    void p.exited.then(() => started.delete(p));
    proc = p;
    const until = Date.now() + 10_000;
    for (;;) {
      try {
        const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
        s.end();
        return;
      } catch {
        if (Date.now() > until) throw new Error("redis-server did not start");
        await Bun.sleep(20);
      }
    }
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}/0`,
    start,
    async stop() {
      if (proc && proc.exitCode === null) {
        proc.kill("SIGTERM");
        await proc.exited;
      }
    },
  };
}

/** Stops every process the chaos run started (an interrupted run included). */
export async function stopAll(): Promise<void> {
  for (const p of started) if (p.exitCode === null) p.kill("SIGKILL");
  await Promise.all([...started].map((p) => p.exited));
}

// ---------------------------------------------------------------------------------------------
// load

interface Ledger {
  acked: number;
  unknown: number;
}

/** Why a call failed, for the report: what UAP sees and what it may do about it. */
export function causeOf(outcome: string, retryAfter: boolean): string {
  if (outcome === "net ECONNRESET") return "connection lost (held by a killed or stopping process)";
  if (outcome === "net ECONNREFUSED") return "connection refused (no process listening)";
  if (outcome === "net timeout") return "no answer within the client's 10 s";
  if (outcome.startsWith("net ")) return `network: ${outcome.slice(4)}`;
  if (outcome.startsWith("503 ")) return retryAfter ? `503 with Retry-After (${outcome.slice(4)})` : `503 without Retry-After (${outcome.slice(4)})`;
  if (outcome.startsWith("504 ")) return "504 TIMEOUT";
  if (outcome === "401 UNAUTHENTICATED (replay fence)") return "401 signed before a restarted worker's replay fence (did not run; sign again)";
  return `unexpected: ${outcome}`;
}

class Load {
  readonly ledger = new Map<string, Ledger>();
  /** Per call: end time (ms since start), latency ms, outcome ("200", "503 CODE", "net X"), Retry-After seen. */
  readonly ends: number[] = [];
  readonly latencies: number[] = [];
  readonly outcomes: string[] = [];
  readonly retryAfter: boolean[] = [];
  private running = true;
  private loops: Promise<void>[];
  readonly t0 = performance.now();

  constructor(
    private readonly url: () => string,
    private readonly secret: string,
    users: number,
    concurrency: number,
    prefix: string,
  ) {
    const names = Array.from({ length: users }, (_, i) => `${prefix}${i}`);
    for (const u of names) this.ledger.set(u, { acked: 0, unknown: 0 });
    let next = 0;
    this.loops = Array.from({ length: concurrency }, async () => {
      while (this.running) {
        const user = names[next++ % names.length]!;
        await this.one(user);
      }
    });
  }

  private async one(user: string): Promise<void> {
    const entry = this.ledger.get(user)!;
    const body = "{}";
    const headers = {
      ...signRequest({ keyId: KEY_ID, secret: this.secret, method: "POST", target: "/api/1001", user, body }),
      "content-type": "application/json",
    };
    const t = performance.now();
    let outcome = "";
    let retry = false;
    try {
      const r = await fetch(`${this.url()}/api/1001`, { method: "POST", headers, body, signal: AbortSignal.timeout(10_000) });
      const text = await r.text();
      retry = r.headers.has("retry-after");
      if (r.status === 200) outcome = "200";
      else {
        let code = "?";
        try {
          const e = (JSON.parse(text) as { error: { code: string; message: string } }).error;
          code = e.code;
          // A restarted owner's replay fence (README, Signing): the call did not run; sign again.
          if (code === "UNAUTHENTICATED" && e.message.includes("replay fence")) code = "UNAUTHENTICATED (replay fence)";
        } catch {}
        outcome = `${r.status} ${code}`;
      }
    } catch (err) {
      const e = err as { name?: string; code?: string };
      outcome = e.name === "TimeoutError" ? "net timeout" : `net ${e.code ?? e.name ?? "error"}`;
    }
    const end = performance.now();
    this.ends.push(end - this.t0);
    this.latencies.push(end - t);
    this.outcomes.push(outcome);
    this.retryAfter.push(retry);
    if (outcome === "200") entry.acked++;
    else {
      entry.unknown++;
      // A refused call comes back at once; a real client would honour Retry-After (1 s). Each
      // caller pauses 100 ms instead, so an outage is measured closely without a busy loop.
      await Bun.sleep(100);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** Each user's count now, read with one more signed call (minus that call). */
  async finals(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const users = [...this.ledger.keys()];
    for (let i = 0; i < users.length; i += 50) {
      await Promise.all(
        users.slice(i, i + 50).map(async (user) => {
          for (let attempt = 0; ; attempt++) {
            const body = "{}";
            const headers = signRequest({ keyId: KEY_ID, secret: this.secret, method: "POST", target: "/api/1001", user, body });
            const r = await fetch(`${this.url()}/api/1001`, { method: "POST", headers, body }).catch(() => null);
            if (r?.status === 200) {
              out.set(user, ((await r.json()) as { data: { count: number } }).data.count - 1);
              return;
            }
            if (attempt >= 50) throw new Error(`cannot read the final count of ${user}: ${r?.status}`);
            await Bun.sleep(100);
          }
        }),
      );
    }
    return out;
  }
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

// ---------------------------------------------------------------------------------------------
// phases

/** Runs the phases in order and returns one report per phase run (phase 5 is skipped without Redis). */
export async function runChaos(o: ChaosOptions): Promise<PhaseReport[]> {
  const reports: PhaseReport[] = [];
  try {
    for (const phase of PHASES.filter((p) => o.phases.includes(p.id))) {
      const needsRedis = phase.id === "redis-outage" || o.store === "redis";
      if (needsRedis && !o.redisPath) {
        o.log(`phase ${phase.n} (${phase.id}) skipped: no redis-server`);
        continue;
      }
      o.log(`phase ${phase.n}: ${phase.title} — ${o.phaseSec} s`);
      const r = await runPhase(phase, o);
      o.log(
        `  ${r.calls} calls, ${r.calls - r.ok} failed ${JSON.stringify(r.byCode)}, exact ${r.exact ? "yes" : `NO (${r.violations} users)`}, p99 ${r.p99Ms.toFixed(0)} ms, recover max ${Math.max(0, ...r.recoverMs)} ms`,
      );
      reports.push(r);
    }
  } finally {
    await stopAll();
  }
  return reports;
}

async function runPhase(phase: (typeof PHASES)[number], o: ChaosOptions): Promise<PhaseReport> {
  const dir = mkdtempSync(join(tmpdir(), `qdp-chaos-${phase.n}-`));
  const secret = crypto.randomUUID().replaceAll("-", "");
  const store = phase.id === "redis-outage" ? "redis" : o.store;
  const redis = store === "redis" ? await startRedis(o.redisPath!, dir) : null;
  const env: Record<string, string> = {
    QDP_WORKERS: String(o.workers),
    QDP_UAP_KEYS: `${KEY_ID}:${secret}`,
    ...(redis ? { QDP_SESSION_STORE: "redis", QDP_REDIS_URL: redis.url, QDP_REDIS_PREFIX: `chaos${phase.n}:` } : {}),
    ...(phase.id === "recycle"
      ? { QDP_MAX_REQUESTS: String(o.recycleMaxRequests), QDP_MAX_REQUESTS_JITTER: String(Math.floor(o.recycleMaxRequests / 4)) }
      : {}),
  };
  const port = freePort();
  const statsPort = freePort();
  let q = await startQdp(env, port, statsPort, dir);
  const notes: string[] = [];
  const load = new Load(() => `http://127.0.0.1:${port}`, secret, o.users, o.concurrency, `p${phase.n}-`);
  const events: number[] = [];
  const at = () => performance.now() - load.t0;
  const phaseMs = o.phaseSec * 1000;
  const every = o.eventEverySec * 1000;
  const sleepUntil = async (t: number) => {
    const d = t - at();
    if (d > 0) await Bun.sleep(d);
  };

  try {
    switch (phase.id) {
      case "kill-worker":
        for (let t = every; t < phaseMs; t += every) {
          await sleepUntil(t);
          const s = await stats(q);
          const live = s.workers.filter((w) => w.pid !== null && w.state === "ready");
          const victim = live[Math.floor(Math.random() * live.length)];
          if (!victim) continue;
          events.push(at());
          process.kill(victim.pid!, "SIGKILL");
        }
        break;
      case "sighup":
        for (let t = every; t < phaseMs; t += every) {
          await sleepUntil(t);
          events.push(at());
          q.proc.kill("SIGHUP");
        }
        break;
      case "kill-supervisor": {
        await sleepUntil(phaseMs / 3);
        events.push(at());
        q.proc.kill("SIGKILL");
        await q.proc.exited;
        // A start at once: it waits (up to 3 s) for the orphaned workers to leave the port.
        const t = performance.now();
        q = await startQdp(env, port, statsPort, dir);
        notes.push(`restarted in ${Math.round(performance.now() - t)} ms (workers of the killed supervisor leave within 2 s)`);
        break;
      }
      case "recycle":
        break;
      case "redis-outage":
        await sleepUntil(phaseMs / 3);
        events.push(at());
        await redis!.stop();
        await Bun.sleep(o.redisOutageSec * 1000);
        await redis!.start();
        notes.push(`Redis down ${o.redisOutageSec} s`);
        break;
    }
    await sleepUntil(phaseMs);
    await load.stop();
    // Let a last event settle before the counts are read.
    await waitReady(q, 30_000);
    const s = await stats(q);
    const recycles = Object.values(s.supervisor.recycles ?? {}).reduce((a, b) => a + b, 0);
    if (phase.id === "recycle") notes.push(`${recycles} recycles at QDP_MAX_REQUESTS=${o.recycleMaxRequests} (+0..${Math.floor(o.recycleMaxRequests / 4)})`);
    if (phase.id === "sighup")
      notes.push(
        `${s.supervisor.reloads} reloads completed by the end for ${events.length} SIGHUPs (a reload takes seconds; one arriving during a reload queues one more)`,
      );
    const finals = await load.finals();
    return { ...report(phase, store, o, load, finals, events, notes), reloads: s.supervisor.reloads, recycles };
  } finally {
    await load.stop();
    await stopQdp(q);
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(
  phase: (typeof PHASES)[number],
  store: "memory" | "redis",
  o: ChaosOptions,
  load: Load,
  finals: Map<string, number>,
  events: number[],
  notes: string[],
): Omit<PhaseReport, "reloads" | "recycles"> {
  const byCode: Record<string, number> = {};
  const byCause: Record<string, number> = {};
  let ok = 0;
  for (let i = 0; i < load.outcomes.length; i++) {
    const outcome = load.outcomes[i]!;
    if (outcome === "200") {
      ok++;
      continue;
    }
    byCode[outcome] = (byCode[outcome] ?? 0) + 1;
    const cause = causeOf(outcome, load.retryAfter[i]!);
    byCause[cause] = (byCause[cause] ?? 0) + 1;
  }
  let violations = 0;
  let lostUsers = 0;
  const examples: string[] = [];
  for (const [user, l] of load.ledger) {
    const n = finals.get(user)!;
    if (n < l.acked || n > l.acked + l.unknown) {
      violations++;
      if (n < l.acked) lostUsers++;
      if (examples.length < 3) examples.push(`${user}: count ${n}, acknowledged ${l.acked}, unknown ${l.unknown}`);
    }
  }
  const sorted = [...load.latencies].sort((a, b) => a - b);
  const recoverMs = events.map((e, k) => {
    const next = events[k + 1] ?? Infinity;
    let last = e;
    for (let i = 0; i < load.ends.length; i++) {
      const t = load.ends[i]!;
      if (t >= e && t < next && load.outcomes[i] !== "200") last = Math.max(last, t);
    }
    return Math.round(last - e);
  });
  return {
    id: phase.id,
    n: phase.n,
    title: phase.title,
    store,
    seconds: o.phaseSec,
    events: events.length,
    calls: load.outcomes.length,
    ok,
    byCode,
    byCause,
    exact: violations === 0,
    violations,
    examples,
    lostUsers,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.at(-1) ?? 0,
    recoverMs,
    notes,
  };
}

// ---------------------------------------------------------------------------------------------
// rendering

/** The per-phase table (Markdown) and a line per phase on failure causes. */
export function renderChaos(reports: PhaseReport[], o: Pick<ChaosOptions, "phaseSec" | "eventEverySec" | "users" | "concurrency" | "workers">): string {
  const fmt = (n: number) => n.toLocaleString("en-US");
  const lines = [
    `${o.users} users, ${o.concurrency} concurrent signed callers (keep-alive), ${o.workers} workers, ${o.phaseSec} s per phase, events every ${o.eventEverySec} s`,
    "",
    "| phase | sessions | calls | failed | failures by code | counters exact | p50 | p99 | max | recover (max) |",
    "| --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |",
  ];
  for (const r of reports) {
    const failed = r.calls - r.ok;
    const codes = Object.entries(r.byCode)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ×${fmt(v)}`)
      .join(", ");
    const exact = r.exact ? "yes" : `**no**: ${r.violations} users (${r.lostUsers} below acknowledged)`;
    const recover = r.recoverMs.length === 0 ? "–" : `${fmt(Math.max(...r.recoverMs))} ms`;
    lines.push(
      `| ${r.n} ${r.title} | ${r.store} | ${fmt(r.calls)} | ${fmt(failed)} (${((100 * failed) / Math.max(1, r.calls)).toFixed(2)}%) | ${codes || "–"} | ${exact} | ${r.p50Ms.toFixed(1)} ms | ${r.p99Ms.toFixed(0)} ms | ${fmt(Math.round(r.maxMs))} ms | ${recover} |`,
    );
  }
  lines.push("", "Failures by cause:", "");
  for (const r of reports) {
    const causes = Object.entries(r.byCause)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ×${fmt(v)}`)
      .join("; ");
    lines.push(`- phase ${r.n} (${r.id}, ${r.events} events): ${causes || "none"}${r.notes.length ? ` — ${r.notes.join("; ")}` : ""}`);
  }
  return lines.join("\n") + "\n";
}
