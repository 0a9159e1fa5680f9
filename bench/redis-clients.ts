/**
 * `bun bench/redis-clients.ts [--duration S] [--node-redis PATH]` — the Redis client choice of
 * docs/stores.md, measured: our RESP client (src/stores/redis-client.ts), Bun's built-in
 * `RedisClient`, and node-redis (the `redis` package; not a dependency of the project: pass the
 * path of an installed copy, e.g. after `npm install redis` in a scratch directory).
 *
 * For each client, against a private redis-server on a free loopback port:
 *  1. throughput and latency of the session write (the compare-and-swap script of
 *     src/stores/session-redis.ts) from 500 concurrent callers over 1,000 users;
 *  2. a restart of Redis under load (200 callers, replies of two shapes): replies matched to
 *     the wrong command, whether calls succeed again without a new client, and how long a
 *     call waited while Redis was down.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { RedisClient as BunRedis } from "bun";
import { createRedisClient } from "../src/stores/redis-client.ts";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { duration: { type: "string", default: "4" }, "node-redis": { type: "string" } } });
const DURATION = Number(values.duration) * 1000;

const SAVE = `
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return -v end
v = v + 1
redis.call('HSET', KEYS[1], 'v', v, 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return v
`;

/** The one operation every client must offer here: a command as strings, its reply back. */
interface Candidate {
  name: string;
  send(args: string[]): Promise<unknown>;
  close(): Promise<void> | void;
}

async function redisServer() {
  const dir = mkdtempSync(join(tmpdir(), "qdp-redis-bench-"));
  const port = await new Promise<number>((resolve) => {
    const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    resolve(s.port);
    s.stop(true);
  });
  let proc: ReturnType<typeof Bun.spawn> | null = null;
  const start = async () => {
    proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"], {
      stdout: "ignore",
      stderr: "ignore",
    });
    for (let i = 0; i < 100; i++) {
      if (
        Bun.spawnSync(["redis-cli", "-p", String(port), "ping"])
          .stdout.toString()
          .trim() === "PONG"
      )
        return;
      await Bun.sleep(50);
    }
    throw new Error("redis-server did not start");
  };
  const stop = async () => {
    proc?.kill("SIGTERM");
    await proc?.exited;
  };
  await start();
  return { url: `redis://127.0.0.1:${port}/0`, start, stop, dispose: async () => (await stop(), rmSync(dir, { recursive: true, force: true })) };
}

async function candidates(url: string): Promise<Candidate[]> {
  const out: Candidate[] = [];
  const ours = createRedisClient({ url, timeoutMs: 1000 });
  await ours.waitConnected(5000);
  out.push({ name: "ours (RESP over Bun.connect)", send: (a) => ours.send(a), close: () => ours.close() });
  const bun = new BunRedis(url, { autoReconnect: true, enableAutoPipelining: true, enableOfflineQueue: false, connectionTimeout: 1000 });
  await bun.connect();
  out.push({ name: `Bun RedisClient (Bun ${Bun.version})`, send: (a) => bun.send(a[0]!, a.slice(1)), close: () => bun.close() });
  if (values["node-redis"]) {
    const mod = (await import(values["node-redis"])) as { createClient(o: unknown): any; default?: unknown };
    const nr = mod.createClient({ url, socket: { connectTimeout: 1000 }, disableOfflineQueue: true });
    nr.on("error", () => {});
    await nr.connect();
    const version = (await Bun.file(join(values["node-redis"], "package.json")).json()).version;
    out.push({ name: `node-redis ${version}`, send: (a) => nr.sendCommand(a), close: () => nr.quit().catch(() => {}) });
  } else {
    console.log("node-redis: skipped (pass --node-redis <path to an installed `redis` package>)");
  }
  return out;
}

async function throughput(c: Candidate): Promise<{ opsPerSec: number; p50: number; p99: number; errors: number }> {
  const sha = String(await c.send(["SCRIPT", "LOAD", SAVE]));
  const lat: number[] = [];
  let errors = 0;
  const until = Date.now() + DURATION;
  const prefix = `bench:${c.name.split(" ")[0]}:`;
  // 500 callers, each owning 2 of 1,000 users, so the versions they name are always right.
  const loop = async (i: number) => {
    const versions = [0, 0];
    for (let n = 0; Date.now() < until; n++) {
      const k = n % 2;
      const t0 = performance.now();
      try {
        const r = Number(await c.send(["EVALSHA", sha, "1", `${prefix}${i * 2 + k}`, String(versions[k]), `{"count":${versions[k]! + 1}}`, "1800000"]));
        if (r > 0) versions[k] = r;
        else errors++;
      } catch {
        errors++;
      }
      lat.push(performance.now() - t0);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 500 }, (_, i) => loop(i)));
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { opsPerSec: lat.length / secs, p50: lat[Math.floor(lat.length * 0.5)]!, p99: lat[Math.floor(lat.length * 0.99)]!, errors };
}

async function restart(c: Candidate, server: Awaited<ReturnType<typeof redisServer>>) {
  let stop = false;
  let ok = 0;
  let failed = 0;
  let wrong = 0;
  let slowest = 0;
  const examples: string[] = [];
  const loop = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const id = `w${w}-${i}`;
      const t0 = performance.now();
      try {
        const v = i % 2 === 0 ? await c.send(["ECHO", id]) : await c.send(["INCR", `restart:${id}`]);
        if (v !== (i % 2 === 0 ? id : 1)) {
          wrong++;
          if (examples.length < 3) examples.push(`${i % 2 === 0 ? `ECHO ${id}` : `INCR (fresh key)`} -> ${JSON.stringify(v)}`);
        } else ok++;
      } catch {
        failed++;
        await Bun.sleep(5);
      }
      slowest = Math.max(slowest, performance.now() - t0);
    }
  };
  const loops = Array.from({ length: 200 }, (_, w) => loop(w));
  await Bun.sleep(500);
  await server.stop();
  await Bun.sleep(1000);
  await server.start();
  const before = ok;
  const t0 = Date.now();
  while (ok < before + 1000 && Date.now() - t0 < 8000) await Bun.sleep(20);
  const recovered = ok >= before + 1000 ? `${Date.now() - t0} ms` : "no (8 s)";
  stop = true;
  await Promise.race([Promise.all(loops), Bun.sleep(10_000)]);
  return { ok, failed, wrong, recovered, slowest, examples };
}

const server = await redisServer();
try {
  const list = await candidates(server.url);
  console.log(`\nsession write (CAS script), 500 callers, 1,000 users, ${DURATION / 1000} s each`);
  for (const c of list) {
    const r = await throughput(c);
    console.log(
      `  ${c.name.padEnd(34)} ${Math.round(r.opsPerSec).toLocaleString("en-US").padStart(8)} ops/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  errors ${r.errors}`,
    );
  }
  console.log("\nRedis stopped for 1 s under load (200 callers) and started again");
  for (const c of list) {
    const r = await restart(c, server);
    console.log(
      `  ${c.name.padEnd(34)} wrong replies ${r.wrong}  ok ${r.ok}  failed ${r.failed}  recovered ${r.recovered}  slowest call ${r.slowest.toFixed(0)} ms`,
    );
    for (const e of r.examples) console.log(`      e.g. ${e}`);
  }
  for (const c of list) await c.close();
} finally {
  await server.dispose();
}
process.exit(0);
