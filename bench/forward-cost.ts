/**
 * Client CPU per forwarded call (the bridge's forwarder, src/services/forward/forwarder.ts) at
 * 100 calls in flight: kept-alive HTTP, a connection per call (`keepAlive: false`), and the
 * uwsgi protocol over a Unix socket. The backend runs in its own process, so process.cpuUsage
 * counts only the forwarding side (Bun's HTTP thread included). Rounds alternate the variants and
 * the median is printed, so load from other jobs on the box hits every variant alike.
 *
 *   bun bench/forward-cost.ts [calls] [--before /path/to/other/checkout]
 *
 * `--before` loads that checkout's forwarder too (e.g. a worktree of the commit before a
 * change) and runs it in the same rounds: a before/after on the same backend and load.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseForwardFile } from "../src/core/forward-file.ts";
import { createForwarder } from "../src/services/forward/forwarder.ts";
import type { ServiceContext } from "../src/services/types.ts";

const { values, positionals } = parseArgs({
  args: Bun.argv.slice(2),
  allowPositionals: true,
  options: { before: { type: "string" }, rounds: { type: "string" } },
});
const total = Number(positionals[0] ?? 20_000);
const rounds = Number(values.rounds ?? 5);
type Make = typeof createForwarder;
const variants: Array<{ tag: string; make: Make }> = [{ tag: "", make: createForwarder }];
if (values.before) {
  const before = (await import(join(values.before, "src/services/forward/forwarder.ts"))) as { createForwarder: Make };
  variants.unshift({ tag: "before: ", make: before.createForwarder });
}
const dir = mkdtempSync(join(tmpdir(), "qdp-forward-cost-"));
const sock = join(dir, "uwsgi.sock");
const ANSWER = JSON.stringify({ ok: true, price: 42.5, symbol: "ACME" });

// One child: an HTTP backend (Bun.serve) and a uwsgi-protocol stand-in on a Unix socket that
// answers every packet with a raw HTTP/1.1 response and closes, as uWSGI does.
const child = Bun.spawn(
  [
    process.execPath,
    "-e",
    `const answer = ${JSON.stringify(ANSWER)};
     const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: async (r) => { await r.text(); return new Response(answer, { headers: { "content-type": "application/json" } }); } });
     Bun.listen({ unix: ${JSON.stringify(sock)}, socket: { data(so, chunk) {
       so.data = so.data ? Buffer.concat([so.data, chunk]) : chunk;
       const b = so.data; if (b.length < 4) return;
       const vars = b.readUInt16LE(1);
       const i = b.indexOf("CONTENT_LENGTH", 4); const vl = b.readUInt16LE(i + 14);
       const cl = Number(b.toString("latin1", i + 16, i + 16 + vl));
       if (b.length < 4 + vars + cl) return;
       so.write("HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n\\r\\n" + answer); so.end();
     } } });
     console.log(s.port);`,
  ],
  { stdout: "pipe" },
);
const first = await child.stdout.getReader().read();
const port = Number(new TextDecoder().decode(first.value).trim());

function ctxFor(i: number): ServiceContext {
  return {
    input: { symbol: "ACME", qty: i },
    user: `user-${i % 1000}`,
    requestId: `req-${i}`,
    traceId: "0af7651916cd43dd8448eb211c80319c",
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    worker: 0,
    log: { info() {}, warn() {}, error() {}, debug() {} },
    signal: new AbortController().signal,
  } as unknown as ServiceContext;
}

const results = new Map<string, number[]>();

async function run(name: string, make: Make, backend: string, keepAlive: boolean, concurrency: number): Promise<void> {
  const [entry] = parseForwardFile(JSON.stringify([{ funcNos: "2000", name: "bench.fwd", backends: [backend], keepAlive, maxInflight: 10_000 }]));
  const fwd = make(entry!);
  const call = (i: number) => fwd.forward(2000, ctxFor(i));
  for (let i = 0; i < 1000; i++) await call(i); // warm-up
  let left = total;
  let failed = 0;
  const c0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await call(left).catch(() => failed++);
    }),
  );
  const c = process.cpuUsage(c0);
  if (failed > 0) console.log(`${name}: ${failed} calls failed`);
  let r = results.get(name);
  if (!r) results.set(name, (r = []));
  r.push((c.user + c.system) / total);
  (fwd as { close?: () => void }).close?.();
}

/** The same POST on a bare pool, without the forwarder: what the transport alone costs. */
async function bare(concurrency: number, keepAlive: boolean): Promise<void> {
  const { createHttpClient } = await import("../src/upstream/http1-client.ts");
  const pool = createHttpClient();
  const url = new URL(`http://127.0.0.1:${port}/qdp`);
  const body = JSON.stringify({ funcNo: 2000, userId: "u", data: { symbol: "ACME" } });
  const one = () => pool.request({ method: "POST", url, body, keepAlive, headers: { "content-type": "application/json" } });
  for (let i = 0; i < 2000; i++) await one();
  let left = total;
  const c0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await one();
    }),
  );
  const c = process.cpuUsage(c0);
  const name = `bare pool, keepAlive ${keepAlive}`;
  let r = results.get(name);
  if (!r) results.set(name, (r = []));
  r.push((c.user + c.system) / total);
  pool.close();
}

try {
  for (let round = 0; round < rounds; round++) {
    if (process.env.BARE) {
      await bare(100, true);
      await bare(100, false);
    }
    for (const v of variants) {
      await run(`${v.tag}http, kept alive`, v.make, `http://127.0.0.1:${port}`, true, 100);
      await run(`${v.tag}http, a connection per call`, v.make, `http://127.0.0.1:${port}`, false, 100);
    }
    await run("uwsgi, Unix socket", createForwarder, `uwsgi://${sock}`, true, 100);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`${total} calls per round, ${rounds} rounds, 100 in flight; µs of CPU per call, median (min–max):`);
  for (const [name, xs] of results)
    console.log(`  ${name.padEnd(40)} ${median(xs).toFixed(1).padStart(6)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`);
} finally {
  child.kill();
  rmSync(dir, { recursive: true, force: true });
}
