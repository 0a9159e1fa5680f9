/**
 * Where a worker's CPU goes under one of bench A's workloads: `bun bench/profile.ts [nohop|users|signed|signed-off|quote|quote-nohop]
 * [--seconds 8] [--connections 100] [--top 40] [--keep dir]
 * [--no-profile] [--perf] [--strace] [--upstream-ms N] [--env NAME=value …]`. Starts a 2-worker cluster with Bun's sampling profiler in
 * every worker (QDP_WORKER_BUN_ARGS=--cpu-prof-md), drives it with wrk, stops it gracefully (the
 * profile is written at exit), and prints the profile's top functions by self time plus the
 * workers' CPU per request (from /proc, so the profiler's own overhead is in it: compare runs of
 * this script with each other, not with bench A). Prints only; no assertions.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cleanupAll, cpuSeconds, installSignalHandlers, makeTempDir, processTree, treeRssBytes } from "./lib/procs.ts";
import type { Case } from "./lib/runner.ts";
import { qdpServer } from "./lib/servers.ts";
import { runWrk } from "./lib/wrk.ts";
import { BENCH_KEY, echo, ECHO_BODY, QUOTE_BODY, rotatingUsers, signedUsers } from "./lib/workloads.ts";

const { values, positionals } = parseArgs({
  args: Bun.argv.slice(2),
  allowPositionals: true,
  options: {
    "upstream-ms": { type: "string", default: "0" },
    strace: { type: "boolean", default: false },
    "no-profile": { type: "boolean", default: false },
    perf: { type: "boolean", default: false },
    keep: { type: "string" },
    seconds: { type: "string", default: "8" },
    connections: { type: "string", default: "100" },
    top: { type: "string", default: "40" },
    env: { type: "string", multiple: true, default: [] },
  },
});
const kind = positionals[0] ?? "signed";
const seconds = Number(values.seconds);
const connections = Number(values.connections);

const mib = (b: number) => `${Math.round(b / 1048576)} MiB`;
installSignalHandlers();
const tmp = makeTempDir("qdp-profile-");
const profDir = join(tmp, "prof");
const log = (line: string) => console.log(line);
// demo.quote's two upstream calls go to an upstream that answers at once (in this process, so
// its CPU is not the workers'); records go to the default embedded store.
// --upstream-ms holds each upstream answer that long (bench B: 1,000 and 3,000 ms).
const upstreamMs = Number(values["upstream-ms"]);
const upstream = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  idleTimeout: 0,
  fetch: async () => {
    if (upstreamMs > 0) await Bun.sleep(upstreamMs);
    return Response.json({ price: 42.5 });
  },
});
const up = `http://127.0.0.1:${upstream.port}`;
const workloads = {
  nohop: { workload: echo, env: {} },
  quote: { workload: rotatingUsers("/api/1002", QUOTE_BODY), env: { QDP_UPSTREAM_A: `${up}/a`, QDP_UPSTREAM_B: `${up}/b` } },
  // The same calls without a user: each runs where it arrives (no hop).
  "quote-nohop": {
    workload: { method: "POST", path: "/api/1002", script: "post-json.lua", args: () => [QUOTE_BODY] },
    env: { QDP_UPSTREAM_A: `${up}/a`, QDP_UPSTREAM_B: `${up}/b` },
  },
  users: { workload: rotatingUsers("/api/1000", ECHO_BODY), env: {} },
  signed: { workload: signedUsers(tmp, log), env: { QDP_UAP_KEYS: `${BENCH_KEY.keyId}:${BENCH_KEY.secret}` } },
  "signed-off": { workload: signedUsers(tmp, log), env: {} },
} as const;
const chosen = workloads[kind as keyof typeof workloads];
if (!chosen) throw new Error(`unknown workload ${kind}: one of ${Object.keys(workloads).join(", ")}`);

const profile = !values["no-profile"];
// --env NAME=value (repeatable) adds to the server's environment, e.g. --env QDP_ACCESS_LOG=0.
const extraEnv = Object.fromEntries(values.env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
const env: Record<string, string> = profile
  ? { ...chosen.env, ...extraEnv, QDP_WORKER_BUN_ARGS: `--cpu-prof-md --cpu-prof-dir=${profDir}` }
  : { ...chosen.env, ...extraEnv };
const server = await qdpServer("qdp-profile", "qdp (profiled)", () => env).start({ tmp, nginxWorkers: "auto" });
try {
  const threads = 2;
  const c: Case = { id: kind, title: kind, connections, threads, durationSec: seconds, timeoutSec: 5 };
  const args = await chosen.workload.args({ c, estRps: 0 });
  const workers = processTree(server.roots).filter((p) => p !== server.roots[0]);
  const before = cpuSeconds(workers);
  // perf sees what the JS profiler cannot: the kernel's share (socket writes), GC, the event loop.
  const perf = values.perf
    ? Bun.spawn(["perf", "record", "-F", "997", "-o", join(tmp, "perf.data"), "-p", workers.join(","), "--", "sleep", String(seconds - 1)], {
        stdout: "ignore",
        stderr: "ignore",
      })
    : null;
  // strace counts system calls per request: on a VM every one costs (see docs/tuning.md).
  const strace = values.strace
    ? Bun.spawn(["timeout", "-s", "INT", String(seconds - 1), "strace", "-c", "-f", ...workers.flatMap((p) => ["-p", String(p)])], {
        stdout: "ignore",
        stderr: "pipe",
      })
    : null;
  const { result } = await runWrk({
    url: server.baseUrl + chosen.workload.path,
    threads,
    connections,
    durationSec: seconds,
    timeoutSec: 5,
    script: chosen.workload.script,
    scriptArgs: args,
  });
  const cpu = cpuSeconds(workers) - before;
  if (server.statsUrl) {
    const st = (await (await fetch(`${server.statsUrl}/stats`)).json()) as {
      workers: Array<{ index: number; hopFrames: number; hopWrites: number; hopsIn: number; heapBytes: number; rssBytes: number; nonces: number }>;
    };
    for (const w of st.workers)
      console.log(
        `worker ${w.index}: ${w.hopFrames} hop frames in ${w.hopWrites} writes (${(w.hopFrames / Math.max(1, w.hopWrites)).toFixed(1)} per write), ${w.hopsIn} calls run for other edges; heap ${mib(w.heapBytes)}, RSS ${mib(w.rssBytes)}, ${w.nonces} nonces remembered`,
      );
  }
  const rssLoaded = treeRssBytes(workers);
  await Bun.sleep(3000);
  const rssIdle = treeRssBytes(workers);
  console.log(
    `${kind}: ${Math.round(result.rps)} req/s, worker CPU ${((cpu / result.requests) * 1e6).toFixed(1)} µs per request${profile ? " (profiler on)" : ""}, workers' RSS ${mib(rssLoaded)} at the end of the load, ${mib(rssIdle)} 3 s later`,
  );
  if (strace !== null) {
    const text = await new Response(strace.stderr).text();
    console.log(
      `system calls of the workers over ${seconds - 1} s (${Math.round(result.rps * (seconds - 1))} requests at the average rate; strace slows the workers):`,
    );
    console.log(
      text
        .split("\n")
        .filter((l) => /^\s*[\d.]+\s/.test(l))
        .slice(0, 30)
        .join("\n"),
    );
  }
  if (perf !== null) {
    await perf.exited;
    const report = Bun.spawnSync(["perf", "report", "-i", join(tmp, "perf.data"), "--no-children", "--sort", "dso", "--stdio"]).stdout.toString();
    console.log(
      report
        .split("\n")
        .filter((l) => l.trim() !== "" && !l.startsWith("#"))
        .slice(0, 12)
        .join("\n"),
    );
    const syms = Bun.spawnSync(["perf", "report", "-i", join(tmp, "perf.data"), "--no-children", "--sort", "sym", "--stdio"]).stdout.toString();
    console.log(
      syms
        .split("\n")
        .filter((l) => l.trim() !== "" && !l.startsWith("#"))
        .slice(0, Number(values.top))
        .join("\n"),
    );
  }
} finally {
  await server.stop();
  upstream.stop(true);
}
for (const f of (profile ? readdirSync(profDir) : []).filter((n) => n.endsWith(".md"))) {
  const text = readFileSync(join(profDir, f), "utf8");
  console.log(`\n== ${f}`);
  // The markdown profile's first table is the hottest functions by self time.
  const lines = text.split("\n");
  const at = lines.findIndex((l) => /self/i.test(l) && l.startsWith("|"));
  console.log(lines.slice(Math.max(0, at - 2), at + 2 + Number(values.top)).join("\n"));
  if (values.keep) {
    mkdirSync(values.keep, { recursive: true });
    copyFileSync(join(profDir, f), join(values.keep, f));
  }
}
if (values.keep) console.log(`\nwhole profiles (call trees included) copied to ${values.keep}`);
await cleanupAll();
