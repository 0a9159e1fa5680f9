/**
 * What the cluster-wide nonce claim (QDP_REPLAY_STORE=redis) costs on the signed path:
 * `bun bench/replay-claim-cost.ts`. Starts a private redis-server on a free loopback port and
 * measures, through the project's own client and store (src/stores/replay-redis.ts):
 * - one claim at a time: the round trip every signed call now waits for (median, p99);
 * - 256 claims in flight (a loaded worker: claims of one tick share a socket write): claims per
 *   second, and CPU per claim in this process and in redis-server;
 * - the in-memory replay check it comes after, for scale.
 * Prints only; no assertions. The box may be shared: read the figures as orders of magnitude.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createReplayCache } from "../src/core/replay-cache.ts";
import { createRedisClient } from "../src/stores/redis-client.ts";
import { createRedisReplayStore } from "../src/stores/replay-redis.ts";
import { cpuSeconds } from "./lib/procs.ts";

const port = (() => {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
})();
const dir = mkdtempSync(join(tmpdir(), "qdp-claim-bench-"));
const redis = Bun.spawn(
  ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
  { stdout: "ignore", stderr: "ignore" },
);
const client = createRedisClient({ url: `redis://127.0.0.1:${port}/0`, timeoutMs: 5000 });
try {
  await client.waitConnected(10_000);
  const store = createRedisReplayStore({ client, prefix: "bench-claim:" });
  const now = Math.floor(Date.now() / 1000);
  let n = 0;
  const nonce = () => `bench-${process.pid}-${(n++).toString(36).padStart(10, "0")}`;

  // Sequential: the latency one call waits for.
  for (let i = 0; i < 2000; i++) await store.claim("u1", nonce(), now, now);
  const lat: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const t0 = Bun.nanoseconds();
    await store.claim(`u${i % 1000}`, nonce(), now, now);
    lat.push((Bun.nanoseconds() - t0) / 1000);
  }
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!;

  // 256 in flight: throughput and CPU per claim.
  const total = 200_000;
  let issued = 0;
  const cpu0 = process.cpuUsage();
  const r0 = cpuSeconds([redis.pid]);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (issued < total) {
        issued++;
        await store.claim(`u${issued % 1000}`, nonce(), now, now);
      }
    }),
  );
  const sec = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const redisCpu = cpuSeconds([redis.pid]) - r0;

  // The in-memory check that runs first, for scale.
  const cache = createReplayCache({ maxEntries: 2_000_000 });
  for (let i = 0; i < 20_000; i++) cache.checkAndRemember("u1", nonce(), now, now);
  const m0 = Bun.nanoseconds();
  for (let i = 0; i < 200_000; i++) cache.checkAndRemember(`u${i % 1000}`, nonce(), now, now);
  const memNs = (Bun.nanoseconds() - m0) / 200_000;

  const keys = Number(await client.send(["DBSIZE"]));
  const last = nonce();
  await store.claim("u1", last, now, now);
  const mem = String(await client.send(["MEMORY", "USAGE", `bench-claim:nonce:${last}:u1`]).catch(() => "?"));
  const info = String(await client.send(["INFO", "memory"]));
  const used = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
  console.log(`Bun ${Bun.version}, ${(Bun.spawnSync(["redis-server", "--version"]).stdout.toString().split(" ")[2] ?? "").trim()}, loopback`);
  console.log(`claim, one at a time:        median ${q(0.5).toFixed(0)} µs, p99 ${q(0.99).toFixed(0)} µs (one loopback round trip)`);
  console.log(`claim, 256 in flight:        ${Math.round(total / sec).toLocaleString("en-US")} claims/s on one connection`);
  console.log(
    `  CPU per claim, this process: ${(((cpu.user + cpu.system) / total) * 1000).toFixed(0)} ns;  redis-server: ${((redisCpu / total) * 1e9).toFixed(0)} ns`,
  );
  console.log(`in-memory replay check first: ${memNs.toFixed(0)} ns per fresh nonce`);
  console.log(
    `keys held: ${keys.toLocaleString("en-US")}; MEMORY USAGE of one key ${mem} bytes; used_memory / keys ≈ ${Math.round(used / keys)} bytes per claimed nonce`,
  );
} finally {
  client.close();
  redis.kill("SIGTERM");
  await redis.exited;
  rmSync(dir, { recursive: true, force: true });
}
