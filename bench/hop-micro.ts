/**
 * Micro-benchmark of the hop alone: one process is both edge and owner over a real Unix
 * socket, so the number is the CPU of both sides of a hopped call (client request, frame
 * codec, the owner side's checks and execution of demo.echo, reply). Prints µs per call; no
 * assertions.
 *   bun bench/hop-micro.ts [calls=300000] [concurrency=500]
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { startHopServer } from "../src/affinity/hop-server.ts";
import { SessionStore } from "../src/affinity/sessions.ts";
import { ownerOf } from "../src/core/ownership.ts";
import { createReplayCache } from "../src/core/replay-cache.ts";
import { createReplayFence, guardReplay } from "../src/core/replay-fence.ts";
import { createLogger } from "../src/telemetry/logger.ts";
import { buildRegistry } from "../src/services/index.ts";
import { createSqliteStore } from "../src/stores/sqlite-store.ts";
import { createWorker, type WorkerCore } from "../src/worker/create-worker.ts";

const total = Number(process.argv[2] ?? 300_000);
const concurrency = Number(process.argv[3] ?? 500);
const dir = mkdtempSync(`${tmpdir()}/qdp-hop-micro-`);
const log = createLogger("warn");
const registry = buildRegistry({ demo: true });
const records = createSqliteStore({ dataDir: dir });
const secret = "bench-secret";
const limits = {
  workers: 2,
  maxInflight: 1e9,
  upstreamTimeoutMs: 1000,
  upstreamMaxConnections: 1024,
  ownerWaitMs: 3000,
  hopMaxPending: 1e6,
  timeoutMs: 30_000,
};
// Both workers built as a worker process builds itself (src/worker/create-worker.ts).
const [edge, owner] = [0, 1].map((index) =>
  createWorker(
    limits,
    { index, gen: index + 1, secret },
    {
      log,
      records,
      registry,
      settings: new Map(),
      sessions: new SessionStore(1000, 60_000),
      // No restart to survive here: the mark is kept in memory.
      replay: guardReplay(createReplayCache({ maxEntries: 1000 }), createReplayFence({ persistedSec: 0, persist: (sec) => sec })),
    },
  ),
) as [WorkerCore, WorkerCore];
const path = `${dir}/w1.sock`;
startHopServer({ path, secret, index: 1, gen: 2, log, handle: owner.ownerSide.handle });
edge.hop.setPeers([{ index: 1, gen: 2, path }]);
const router = edge.router;
// Users owned by worker 1, so every call hops.
const users = Array.from({ length: 5000 }, (_, i) => `u${i}`).filter((u) => ownerOf(u, 2) === 1);
const service = registry.require(1000);
const body = new TextEncoder().encode('{"a":1}');

async function worker(n: number) {
  for (let i = 0; i < n; i++) {
    await router.call({ service, user: users[i % users.length]!, requestId: `r${i}`, input: { a: 1 }, deadline: Date.now() + 30_000 }, body);
  }
}
await worker(2000); // warm-up and connection set-up
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await Promise.all(Array.from({ length: concurrency }, () => worker(Math.floor(total / concurrency))));
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const calls = Math.floor(total / concurrency) * concurrency;
console.log(
  `hop-micro: ${calls} calls, concurrency ${concurrency}: ${((cpu.user + cpu.system) / calls).toFixed(2)} µs CPU per hopped call (both sides), ${(calls / (wall / 1000)).toFixed(0)} calls/s`,
);
process.exit(0);
