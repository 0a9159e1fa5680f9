/**
 * Scenario F, several hosts: signed `demo.counter` (1001) for 1,000 rotating users at -c256,
 * in the same run:
 * - one host without nginx, sessions and nonces in Redis (QDP_SESSION_STORE=redis,
 *   QDP_REPLAY_STORE=redis) — the reference;
 * - three hosts (127.0.0.2-4, same settings, same Redis) behind one nginx running exactly what
 *   `qdp nginx-conf --hosts` prints: the throughput ratio and the latency the front adds;
 * - one host without nginx with the nonces only in memory (QDP_REPLAY_STORE=memory): what the
 *   cluster-wide nonce claim costs on the signed path.
 * All of it shares this box's cores (three hosts do not get three machines), so the ratios say
 * what the front and the claim cost, not what three real hosts would gain.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { caseTable, find, writeScenario } from "../lib/report.ts";
import type { Case, Contender, ScenarioPlan, ScenarioResult } from "../lib/runner.ts";
import { freePort, waitForHttp } from "../lib/net.ts";
import { isAlive, spawnManaged, stopManaged, tailLog, type Managed } from "../lib/procs.ts";
import { benchNginxConf, qdpServer, REPO_ROOT, type ServerContext, type ServerSpec } from "../lib/servers.ts";
import { startBenchRedis } from "../lib/redis.ts";
import { BENCH_KEY, signedUsers } from "../lib/workloads.ts";
import type { ScenarioOptions } from "./a.ts";

const HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

function storesEnv(ctx: ServerContext, replay: "memory" | "redis"): Record<string, string> {
  return {
    QDP_UAP_KEYS: `${BENCH_KEY.keyId}:${BENCH_KEY.secret}`,
    QDP_SESSION_STORE: "redis",
    QDP_REPLAY_STORE: replay,
    QDP_REDIS_URL: ctx.redisUrl ?? "",
    QDP_REDIS_PREFIX: `bench-f-${replay}:`,
    QDP_LOG_LEVEL: "warn",
  };
}

/** Three qdp-server hosts on 127.0.0.2-4 (2 workers each) behind nginx with the printed config. */
function threeHostsServer(): ServerSpec {
  return {
    id: "qdp-3hosts",
    label: "3 hosts behind nginx",
    async start(ctx) {
      const procs: Managed[] = [];
      const stop = async () => {
        for (const m of procs.reverse()) await stopManaged(m, "SIGTERM", 20_000);
      };
      try {
        const list: string[] = [];
        for (const [i, host] of HOSTS.entries()) {
          const port = await freePort();
          const dir = join(ctx.tmp, `f-host-${i}`);
          mkdirSync(join(dir, "data"), { recursive: true });
          const m = spawnManaged({
            name: `f-host-${i}`,
            logDir: dir,
            cwd: REPO_ROOT,
            cmd: [process.execPath, "src/main.ts"],
            env: {
              QDP_HOST: host,
              QDP_PORT: String(port),
              QDP_WORKERS: "2",
              QDP_STATS_PORT: String(await freePort()),
              QDP_RUNTIME_DIR: join(dir, "run"),
              QDP_DATA_DIR: join(dir, "data"),
              ...storesEnv(ctx, "redis"),
            },
          });
          procs.push(m);
          await waitForHttp(`http://${host}:${port}/readyz`, { alive: () => isAlive(m), timeoutMs: 60_000 }).catch((err) => {
            throw new Error(`${m.name}: ${(err as Error).message}\n${tailLog(m)}`);
          });
          list.push(`${host}:${port}`);
        }
        const port = await freePort();
        const gen = Bun.spawnSync([process.execPath, "src/cli.ts", "nginx-conf", "--hosts", list.join(","), "--listen", `127.0.0.1:${port}`], {
          cwd: REPO_ROOT,
        });
        if (gen.exitCode !== 0) throw new Error(`qdp nginx-conf --hosts failed: ${gen.stderr.toString()}`);
        const dir = join(ctx.tmp, "f-nginx");
        for (const d of ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, d), { recursive: true });
        const conf = join(dir, "nginx.conf");
        await Bun.write(
          conf,
          benchNginxConf({ generatedBy: "bench/scenarios/f.ts (qdp nginx-conf --hosts)", dir, workers: ctx.nginxWorkers, http: gen.stdout.toString() }),
        );
        const nginx = spawnManaged({ name: "f-nginx", logDir: dir, cmd: ["nginx", "-p", dir, "-c", conf, "-e", join(dir, "error.log")] });
        procs.push(nginx);
        await waitForHttp(`http://127.0.0.1:${port}/healthz`, { alive: () => isAlive(nginx), timeoutMs: 20_000 });
        return {
          id: "qdp-3hosts",
          baseUrl: `http://127.0.0.1:${port}`,
          roots: procs.map((m) => m.pid),
          alive: () => procs.every(isAlive),
          stop,
          note: `3 × 2 workers on 127.0.0.2-4, nginx worker_processes ${ctx.nginxWorkers}, config printed by qdp nginx-conf --hosts`,
        };
      } catch (err) {
        await stop();
        throw err;
      }
    },
  };
}

export function planF(o: ScenarioOptions): ScenarioPlan {
  // -c256 saturates the box: the throughput ratio. -c16 leaves headroom: the latency the front adds.
  const cases: Case[] = [
    { id: "c256", title: "-c256, 1,000 users, signed demo.counter", connections: 256, threads: 2, durationSec: o.durationSec, timeoutSec: 5 },
    {
      id: "c16",
      title: "-c16, 1,000 users, signed demo.counter (latency with headroom)",
      connections: 16,
      threads: 2,
      durationSec: o.durationSec,
      timeoutSec: 5,
    },
  ];
  const counter = () => signedUsers(o.tmp, o.log, "/api/1001", "{}");
  const contenders: Contender[] = [
    { id: "one-host", label: "1 host, no nginx (replay: redis)", server: "qdp-one", workload: counter(), noHopRef: "one-host", accent: true },
    { id: "three-hosts", label: "3 hosts behind nginx", server: "qdp-3hosts", workload: counter(), noHopRef: "one-host", accent: true },
    { id: "one-host-replay-mem", label: "1 host, no nginx (replay: memory)", server: "qdp-one-mem", workload: counter(), noHopRef: "one-host" },
  ];
  return {
    id: "F",
    title: "several hosts: three hosts behind nginx vs one host",
    cases,
    contenders,
    servers: [
      qdpServer("qdp-one", "1 host (sessions + nonces in Redis)", (ctx) => storesEnv(ctx, "redis")),
      threeHostsServer(),
      qdpServer("qdp-one-mem", "1 host (sessions in Redis, nonces in memory)", (ctx) => storesEnv(ctx, "memory")),
    ],
    async setup(ctx) {
      const r = await startBenchRedis(ctx, "F");
      return { notes: r.notes, stop: r.stop };
    },
  };
}

export function reportF(r: ScenarioResult): void {
  const tables = r.plan.cases.map((c) => {
    const one = find(r, c.id, "one-host");
    const three = find(r, c.id, "three-hosts");
    const mem = find(r, c.id, "one-host-replay-mem");
    const table = caseTable(r, c);
    const notes: string[] = [];
    if (one && three) {
      notes.push(
        `3 hosts behind nginx ÷ 1 host = ${(three.rps.median / one.rps.median).toFixed(2)}× throughput; ` +
          `the front adds p50 ${(three.p50.median - one.p50.median).toFixed(2)} ms (${(three.p50.median / one.p50.median).toFixed(2)}×), ` +
          `p99 ${(three.p99.median - one.p99.median).toFixed(2)} ms (${(three.p99.median / one.p99.median).toFixed(2)}×)`,
      );
    }
    if (one && mem) {
      notes.push(
        `nonce claim in Redis (QDP_REPLAY_STORE=redis) ÷ memory only = ${(one.rps.median / mem.rps.median).toFixed(2)}× throughput; ` +
          `p50 ${(one.p50.median - mem.p50.median).toFixed(2)} ms, p99 ${(one.p99.median - mem.p99.median).toFixed(2)} ms added`,
      );
    }
    table.notes = notes;
    return table;
  });
  writeScenario(r, tables, [
    "`wrk -t2` with pre-signed `POST /api/1001` (`demo.counter`) as 1,000 rotating users: every call is",
    "verified, its nonce checked (and with `QDP_REPLAY_STORE=redis` claimed by `SET NX EX`), and its session change",
    'stored in Redis before the reply. "3 hosts" are three qdp-server instances on 127.0.0.2-4 behind one nginx with the',
    "config `qdp nginx-conf --hosts` prints; all processes share this box's cores, so read the ratios, not the absolute rates.",
    '-c256 saturates the box (throughput); -c16 leaves headroom (the latency the front adds). The "× qdp no-hop" column',
    "is each row ÷ the one-host row (replay: redis). See docs/multi-host.md.",
  ]);
}
