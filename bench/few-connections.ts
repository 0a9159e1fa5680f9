/**
 * Few connections: SO_REUSEPORT spreads *connections* over the workers, not requests, so a UAP
 * that holds a handful of keep-alive connections may load one worker and leave the other idle.
 * This runs the production-like workload (1,000 rotating users, so about half the calls hop)
 * at k = 2, 8 and 32 connections against a 2-worker cluster, each k several times with fresh
 * connections, and prints throughput and the busiest worker's share of the connections'
 * requests (0.50 = even).
 *
 *   bun bench/few-connections.ts [--rounds N] [--duration S]
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort, waitForHttp } from "./lib/net.ts";
import { cleanupAll, installSignalHandlers, isAlive, makeTempDir, spawnManaged } from "./lib/procs.ts";
import { runWrk } from "./lib/wrk.ts";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { rounds: { type: "string", default: "4" }, duration: { type: "string", default: "4" } } });
const rounds = Number(values.rounds);
const durationSec = Number(values.duration);

installSignalHandlers();
const tmp = makeTempDir("qdp-few-");
mkdirSync(join(tmp, "data"), { recursive: true });
const port = await freePort();
const statsPort = await freePort();
const root = join(import.meta.dir, "..");
const m = spawnManaged({
  name: "qdp",
  cmd: [process.execPath, "src/main.ts"],
  cwd: root,
  logDir: tmp,
  env: {
    ...process.env,
    QDP_PORT: String(port),
    QDP_STATS_PORT: String(statsPort),
    QDP_WORKERS: "2",
    QDP_RUNTIME_DIR: join(tmp, "run"),
    QDP_DATA_DIR: join(tmp, "data"),
  },
});

async function perWorker(): Promise<number[]> {
  const s = (await (await fetch(`http://127.0.0.1:${statsPort}/stats`)).json()) as { workers: Array<{ requests: number }> };
  return s.workers.map((w) => w.requests);
}

try {
  await waitForHttp(`http://127.0.0.1:${port}/readyz`, { alive: () => isAlive(m) });
  console.log(`k connections, ${rounds} runs of ${durationSec} s each (2 workers, 1,000 users, about half the calls hop)`);
  console.log("k   req/s (median)   busiest worker's share per run");
  for (const k of [2, 8, 32]) {
    const rps: number[] = [];
    const shares: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const before = await perWorker();
      const { result } = await runWrk({
        url: `http://127.0.0.1:${port}/api/1000`,
        threads: Math.min(2, k),
        connections: k,
        durationSec,
        timeoutSec: 5,
        script: "users.lua",
        scriptArgs: ['{"hello":"world"}', "1000"],
      });
      const after = await perWorker();
      const delta = after.map((n, i) => n - (before[i] ?? 0));
      const total = delta.reduce((a, b) => a + b, 0);
      rps.push(result.rps);
      shares.push(total > 0 ? Math.max(...delta) / total : Number.NaN);
    }
    rps.sort((a, b) => a - b);
    const median = rps[Math.floor(rps.length / 2)]!;
    console.log(`${String(k).padEnd(3)} ${Math.round(median).toLocaleString("en-US").padStart(14)}   ${shares.map((s) => s.toFixed(2)).join("  ")}`);
  }
} finally {
  await cleanupAll();
}
