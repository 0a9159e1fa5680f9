/**
 * What scenario B's CPU per call is made of on this box: `bun bench/b-floor.ts [--connections
 * 2000] [--seconds 21] [--rounds 2]`. Prints only; no assertions.
 *
 * 1. The CPU one sleep → wake of a process costs here, with nothing else to do: a Bun timer
 *    every 20 ms, a `setTimeout(…, 1)` chain, and Python's `time.sleep(0.02)` as a runtime-free
 *    reference. A slow call is mostly such wakes: each network event of a call (the request, the
 *    hop there and back, each upstream answer, a record store's reply) arrives alone when calls
 *    are seconds apart from each other's events, so it pays a whole wake.
 * 2. B's workload (slow upstream /a 1 s + /b 3 s, the embedded SQLite record store, C callers)
 *    against three servers in alternated rounds, with the server processes' CPU per answered
 *    call: bare Bun doing demo.quote's shape (bench/contenders/bun-bare-quote.ts: `fetch`,
 *    SQLite, no hop or checks), qdp with 1,000 users (half the calls hop to their owner), and
 *    qdp with the same calls without a user (each runs where it arrives).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cleanupAll, cpuSeconds, installSignalHandlers, isAlive, makeTempDir, processTree, stopManaged } from "./lib/procs.ts";
import { freePort } from "./lib/net.ts";
import { CONTENDERS_DIR, qdpServer, single, startSlowUpstream, type RunningServer, type ServerContext } from "./lib/servers.ts";
import { runWrk } from "./lib/wrk.ts";
import { QUOTE_BODY, USERS } from "./lib/workloads.ts";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    connections: { type: "string", default: "2000" },
    seconds: { type: "string", default: "21" },
    rounds: { type: "string", default: "2" },
  },
});
const connections = Number(values.connections);
const seconds = Number(values.seconds);
installSignalHandlers();

/** CPU µs per wake of a child process that only sleeps: `code` prints its own number. */
function childNumber(cmd: string[]): number {
  const out = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return Number(out.stdout.toString().trim());
}
const WAKES = 250;
const bunInterval = `let n=0;const t0=process.cpuUsage();await new Promise(r=>{const i=setInterval(()=>{if(++n>=${WAKES}){clearInterval(i);r()}},20)});const t=process.cpuUsage(t0);console.log((t.user+t.system)/${WAKES})`;
const bunChain = `let n=0;const t0=process.cpuUsage();await new Promise(r=>{const f=()=>{if(++n>=${WAKES * 8})r();else setTimeout(f,1)};setTimeout(f,1)});const t=process.cpuUsage(t0);console.log((t.user+t.system)/${WAKES * 8})`;
const python = `import time\nt0=time.process_time()\nfor _ in range(${WAKES}): time.sleep(0.02)\nprint((time.process_time()-t0)/${WAKES}*1e6)`;
const wakes: Array<[string, number]> = [
  ["Bun, setInterval 20 ms (empty callback)", childNumber([process.execPath, "-e", bunInterval])],
  ["Bun, setTimeout(…, 1) chain", childNumber([process.execPath, "-e", bunChain])],
  ["Python 3, time.sleep(0.02) loop", childNumber(["python3", "-c", python])],
];
console.log("CPU per sleep → wake of an otherwise idle process:");
for (const [name, us] of wakes) console.log(`  ${name.padEnd(42)} ${Number.isFinite(us) ? us.toFixed(1) : "n/a"} µs`);

const tmp = makeTempDir("qdp-bfloor-");
const ctx: ServerContext = { tmp, nginxWorkers: "auto" };
const upstream = await startSlowUpstream(ctx);
const up = upstream.baseUrl;

/** Two bare-quote processes sharing one port. */
async function startBare(): Promise<RunningServer> {
  const port = await freePort();
  const dir = join(tmp, "bare-quote");
  mkdirSync(dir, { recursive: true });
  const cmd = [process.execPath, join(CONTENDERS_DIR, "bun-bare-quote.ts"), String(port), up, join(dir, "records.sqlite")];
  const env = { BUN_CONFIG_MAX_HTTP_REQUESTS: String(Math.max(256, 2 * connections)) };
  const first = await single("bare-quote-0", cmd, ctx, port, "/", env);
  const second = await single("bare-quote-1", cmd, ctx, port, "/", env);
  return {
    id: "bare",
    baseUrl: first.baseUrl,
    roots: [first.m.pid, second.m.pid],
    alive: () => isAlive(first.m) && isAlive(second.m),
    stop: async () => {
      for (const m of [first.m, second.m]) await stopManaged(m, "SIGTERM", 5000);
    },
  };
}
const qdpEnv = () => ({ QDP_UPSTREAM_A: `${up}/a`, QDP_UPSTREAM_B: `${up}/b`, QDP_MAX_INFLIGHT: "20000" });
const contenders = [
  { id: "bare", label: "bare Bun, demo.quote's shape", start: startBare, script: "users.lua", args: [QUOTE_BODY, String(USERS), "u"] },
  {
    id: "qdp",
    label: "qdp, 1,000 users (half hop)",
    start: () => qdpServer("qdp-users", "qdp", qdpEnv).start(ctx),
    script: "users.lua",
    args: [QUOTE_BODY, String(USERS), "u"],
  },
  {
    id: "qdp-nohop",
    label: "qdp, no user (no hop)",
    start: () => qdpServer("qdp-nohop", "qdp", qdpEnv).start(ctx),
    script: "post-json.lua",
    args: [QUOTE_BODY],
  },
];

const rows = new Map<string, { rps: number[]; us: number[] }>();
try {
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const c of contenders) {
      const server = await c.start();
      try {
        const procs = processTree(server.roots);
        const before = cpuSeconds(procs);
        const { result } = await runWrk({
          url: `${server.baseUrl}/api/1002`,
          threads: 2,
          connections,
          durationSec: seconds,
          timeoutSec: seconds + 10,
          script: c.script,
          scriptArgs: c.args,
        });
        const ok = result.requests - result.errors.status;
        const us = ((cpuSeconds(processTree(server.roots)) - before) / Math.max(1, ok)) * 1e6;
        const row = rows.get(c.id) ?? { rps: [], us: [] };
        row.rps.push(ok / result.durationSec);
        row.us.push(us);
        rows.set(c.id, row);
        console.log(`round ${round}: ${c.label.padEnd(30)} ${Math.round(ok / result.durationSec)} ok calls/s, ${us.toFixed(0)} µs server CPU per call`);
      } finally {
        await server.stop();
      }
    }
  }
} finally {
  await upstream.stop();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
console.log(`\nB's workload at C=${connections}, ${seconds} s, median of ${values.rounds} round(s), embedded record store:\n`);
console.log("| server | ok calls/s | server CPU µs per call |\n| --- | ---: | ---: |");
for (const c of contenders) {
  const r = rows.get(c.id);
  if (r) console.log(`| ${c.label} | ${Math.round(median(r.rps))} | ${median(r.us).toFixed(0)} |`);
}
await cleanupAll();
