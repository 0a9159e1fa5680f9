/**
 * Memory per call in flight: `bun bench/inflight-memory.ts [calls=4000] [--smol]`. One worker,
 * demo.quote against a local upstream that holds every /a request until told to answer. The
 * worker's RSS (from /proc) after a warm-up round and then with every call of a second round
 * waiting gives the bytes each waiting call costs: its client connection, its upstream connection
 * and the call itself. Prints only; no assertions. Bench B at C = 10,000 holds ~5,000 calls per worker.
 */
import { readFileSync } from "node:fs";
import { startCluster } from "../test/support/cluster.ts";
import { connect, type RawConnection, request } from "../test/support/raw-http.ts";

const calls = Number(Bun.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 4000);
const smol = Bun.argv.includes("--smol");

// The upstream: /a waits until release(), /b answers at once.
let waiting: Array<() => void> = [];
const upstream = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  idleTimeout: 0,
  async fetch(req) {
    if (new URL(req.url).pathname === "/a") await new Promise<void>((r) => waiting.push(r));
    return Response.json({ price: 42.5 });
  },
});
const release = () => {
  for (const r of waiting.splice(0)) r();
};
const base = `http://127.0.0.1:${upstream.port}`;
const c = await startCluster({
  workers: 1,
  env: { QDP_UPSTREAM_A: `${base}/a`, QDP_UPSTREAM_B: `${base}/b`, QDP_ACCESS_LOG: "0", ...(smol ? { QDP_WORKER_BUN_ARGS: "--smol" } : {}) },
});
const pid = (await c.stats()).workers[0]!.pid;
const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

/** One round of `calls` concurrent quotes; `whileHeld` runs when every call waits on /a. */
async function round(whileHeld: () => Promise<void>): Promise<void> {
  const conns: RawConnection[] = [];
  for (let i = 0; i < calls; i += 500) conns.push(...(await Promise.all(Array.from({ length: Math.min(500, calls - i) }, () => connect(c.port)))));
  const done = conns.map(async (conn, i) => {
    conn.write(request("POST", "/api/1002", { "x-qdp-user": `m${i}`, "content-type": "application/json" }, '{"symbol":"X"}'));
    const [r] = await conn.responses(1);
    conn.close();
    return r!.status;
  });
  while (waiting.length < calls) await Bun.sleep(20);
  await whileHeld();
  release();
  const statuses = await Promise.all(done);
  const bad = statuses.filter((s) => s !== 200).length;
  if (bad > 0) throw new Error(`${bad} calls did not answer 200`);
}

try {
  const idle = rss();
  await round(async () => {});
  await Bun.sleep(2000); // connections closed, idle upstream connections timed out of the pool
  const before = rss();
  let held = 0;
  await round(async () => {
    await Bun.sleep(500);
    held = rss();
  });
  console.log(
    `${calls} calls in flight, one worker${smol ? " (--smol)" : ""}: RSS idle ${mib(idle)}, after a warm-up round ${mib(before)}, all calls waiting ${mib(held)}`,
  );
  console.log(`→ ${((held - before) / calls / 1024).toFixed(1)} KiB per call in flight (client connection + upstream connection + the call)`);
} finally {
  await c.stop();
  upstream.stop(true);
}
