/**
 * Where a slow call's time goes beyond its 4 s: `bun bench/b-stages.ts [--connections 2000]
 * [--seconds 21] [--no-mongo]`. Runs scenario B's qdp setup once (slow upstream, FerretDB unless
 * --no-mongo, QDP_MAX_INFLIGHT=20000) under wrk, then prints from /metrics the call duration and
 * each stage's latency (upstream A, upstream B, the record write) as quantiles, with the CPU of
 * every process on the box that takes part (qdp, the upstream, FerretDB, wrk). `--rounds N` loads
 * the same server N times, 5 s apart, and prints memory after each round. Prints only.
 */
import { parseArgs } from "node:util";
import { ensureDeps } from "./lib/deps.ts";
import { boxJiffies, cleanupAll, cpuSeconds, installSignalHandlers, makeTempDir, processTree, treeRssBytes } from "./lib/procs.ts";
import type { Case } from "./lib/runner.ts";
import { qdpServer, REPO_ROOT, startSlowUpstream, type ServerContext } from "./lib/servers.ts";
import { runWrk } from "./lib/wrk.ts";
import { QUOTE_BODY, rotatingUsers } from "./lib/workloads.ts";
import { join } from "node:path";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    connections: { type: "string", default: "2000" },
    seconds: { type: "string", default: "21" },
    "no-mongo": { type: "boolean", default: false },
    env: { type: "string", multiple: true, default: [] },
    rounds: { type: "string", default: "1" },
  },
});
installSignalHandlers();
ensureDeps();
const connections = Number(values.connections);
const seconds = Number(values.seconds);
const tmp = makeTempDir("qdp-bstages-");
const ctx: ServerContext = { tmp, nginxWorkers: "auto" };
const upstream = await startSlowUpstream(ctx);
let mongo: { url: string; stop: () => unknown; pid?: number } | undefined;
if (!values["no-mongo"]) {
  const mod = (await import(join(REPO_ROOT, "test", "support", "ferretdb.ts"))) as { startFerretDB: () => Promise<{ url: string; stop: () => unknown }> };
  mongo = await mod.startFerretDB();
}
const extra = Object.fromEntries(values.env.map((kv) => kv.split("=", 2) as [string, string]));
const server = await qdpServer("qdp", "qdp", () => ({
  QDP_UPSTREAM_A: `${upstream.baseUrl}/a`,
  QDP_UPSTREAM_B: `${upstream.baseUrl}/b`,
  QDP_MAX_INFLIGHT: "20000",
  ...(mongo ? { QDP_MONGO_URL: mongo.url } : {}),
  ...extra,
})).start(ctx);
try {
  const workload = rotatingUsers("/api/1002", QUOTE_BODY, true);
  const c: Case = { id: "b", title: "b", connections, threads: 2, durationSec: seconds, timeoutSec: seconds + 10 };
  const qdpPids = processTree(server.roots);
  const upPids = processTree(upstream.roots);
  // Several rounds against one server show whether memory returns to where it was (a leak or
  // fragmentation grows it round after round; bench B keeps one server for all its rounds).
  for (let round = 1; round <= Number(values.rounds); round++) {
    if (round > 1) await Bun.sleep(5000);
    const cpu0 = { qdp: cpuSeconds(qdpPids), up: cpuSeconds(upPids), all: boxJiffies()[0] / 100 };
    // Workers' RSS (what the issue's target counts) sampled once a second while the load runs.
    let peakRss = 0;
    let peakHeap = 0;
    /** The largest event-loop lag of either worker in its last heartbeat interval, once a second. */
    const lagTimeline: number[] = [];
    const sampler = setInterval(async () => {
      try {
        const st = (await (await fetch(`${server.statsUrl}/stats`, { signal: AbortSignal.timeout(900) })).json()) as {
          workers: Array<{ rssBytes: number; heapBytes: number; eventLoopLagMs: number }>;
        };
        lagTimeline.push(Math.max(...st.workers.map((w) => w.eventLoopLagMs)));
        peakRss = Math.max(
          peakRss,
          st.workers.reduce((a, w) => a + w.rssBytes, 0),
        );
        peakHeap = Math.max(
          peakHeap,
          st.workers.reduce((a, w) => a + w.heapBytes, 0),
        );
      } catch {}
    }, 1000);
    const { result } = await runWrk({
      url: server.baseUrl + workload.path,
      threads: 2,
      connections,
      durationSec: seconds,
      timeoutSec: seconds + 10,
      script: workload.script,
      scriptArgs: await workload.args({ c, estRps: 0 }),
    });
    clearInterval(sampler);
    console.log(`largest event-loop lag, once a second (ms): ${lagTimeline.map((l) => Math.round(l)).join(" ")}`);
    console.log(`workers' peak RSS during the load ${Math.round(peakRss / 1048576)} MiB (JS heaps ${Math.round(peakHeap / 1048576)} MiB)`);
    const cpu = { qdp: cpuSeconds(qdpPids) - cpu0.qdp, up: cpuSeconds(upPids) - cpu0.up, all: boxJiffies()[0] / 100 - cpu0.all };
    const cap = (connections * Math.floor(seconds / 4)) / seconds;
    console.log(
      `C=${connections}: ${Math.round(result.rps)} ok req/s = ${((100 * result.rps) / cap).toFixed(1)}% of the window cap, p50 ${Math.round(result.latency.p50)} ms; ` +
        `CPU s over the run: qdp ${cpu.qdp.toFixed(1)}, upstream ${cpu.up.toFixed(1)}, whole box ${cpu.all.toFixed(1)} of ${(2 * seconds).toFixed(0)}; qdp RSS ${Math.round(treeRssBytes(qdpPids) / 1048576)} MiB`,
    );
    const after = (await (await fetch(`${server.statsUrl}/stats`)).json()) as {
      workers: Array<{ rssBytes: number; heapBytes: number; openFds: number | null }>;
    };
    console.log(
      `round ${round}: after the load workers' RSS ${Math.round(after.workers.reduce((x, w) => x + w.rssBytes, 0) / 1048576)} MiB, JS heaps ${Math.round(after.workers.reduce((x, w) => x + w.heapBytes, 0) / 1048576)} MiB, open fds ${after.workers.map((w) => w.openFds).join("/")}`,
    );
  }
  const stats = (await (await fetch(`${server.statsUrl}/stats`)).json()) as {
    workers: Array<{ index: number; rssBytes: number; heapBytes: number; connections: number }>;
  };
  for (const w of stats.workers)
    console.log(
      `worker ${w.index}: RSS ${Math.round(w.rssBytes / 1048576)} MiB, JS heap ${Math.round(w.heapBytes / 1048576)} MiB, ${w.connections} connections open`,
    );
  const metrics = await (await fetch(`${server.statsUrl}/metrics`)).text();
  for (const [name, label] of [
    ["qdp_request_duration_seconds", 'func="1002"'],
    ["qdp_upstream_latency_seconds", "upstream_a"],
    ["qdp_upstream_latency_seconds", "upstream_b"],
    ["qdp_record_store_latency_seconds", 'op="insert"'],
    ["qdp_event_loop_lag_seconds", "worker="],
    ["qdp_hop_latency_seconds", "worker="],
  ] as const) {
    console.log(`${name} ${label}: ${quantiles(metrics, name, label)}`);
  }
} finally {
  await server.stop();
  await upstream.stop();
  await mongo?.stop();
  await cleanupAll();
}

/** p50/p90/p99 from a Prometheus histogram's buckets summed over workers, for series whose labels contain `label`. */
function quantiles(text: string, name: string, label: string): string {
  let sum = 0;
  let count = 0;
  for (const m of text.matchAll(new RegExp(`^${name}_(sum|count)\\{([^}]*)\\} ([\\d.e+-]+)$`, "gm"))) {
    if (!m[2]!.includes(label)) continue;
    if (m[1] === "sum") sum += Number(m[3]);
    else count += Number(m[3]);
  }
  const buckets = new Map<number, number>();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{([^}]*)\\} (\\d+)$`, "gm"))) {
    if (!m[1]!.includes(label)) continue;
    const le = /le="([^"]+)"/.exec(m[1]!)![1]!;
    const bound = le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(m[2]));
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return "no samples";
  const q = (p: number) => sorted.find(([, n]) => n >= p * total)?.[0] ?? Number.NaN;
  return `n=${total} mean ${((1000 * sum) / count).toFixed(1)} ms, p50≤${q(0.5)} s p90≤${q(0.9)} s p99≤${q(0.99)} s`;
}
