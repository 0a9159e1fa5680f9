/**
 * Where a worker's CPU goes under one of bench A's workloads: `bun bench/profile.ts [nohop|users|signed|signed-off|quote|quote-nohop]
 * [--seconds 8] [--connections 100] [--top 40] [--keep dir]
 * [--no-profile] [--perf] [--jit] [--graph] [--strace] [--upstream-ms N] [--env NAME=value …]`. Starts a 2-worker cluster with Bun's sampling profiler in
 * every worker (QDP_WORKER_BUN_ARGS=--cpu-prof-md), drives it with wrk, stops it gracefully (the
 * profile is written at exit), and prints the profile's top functions by self time plus the
 * workers' CPU per request (from /proc, so the profiler's own overhead is in it: compare runs of
 * this script with each other, not with bench A). Prints only; no assertions.
 *
 * `--perf` samples the workers with perf (kernel, Bun's native code, GC and JIT threads by thread
 * name); `--jit` adds JavaScriptCore's JITDump so perf names the JavaScript functions; `--graph`
 * records call chains and prints each JavaScript function's inclusive share (itself plus the
 * native code it calls: what Bun's own profiler cannot see). E.g. `bun bench/profile.ts signed
 * --no-profile --jit --graph --seconds 16 --connections 500`.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
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
    jit: { type: "boolean", default: false },
    graph: { type: "boolean", default: false },
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
// --jit (implies --perf): JavaScriptCore writes a JITDump per worker, and `perf inject --jit`
// names the compiled JavaScript functions that perf otherwise shows as "[JIT] tid N" addresses.
// perf must then sample with the monotonic clock (-k 1), the clock the dump's timestamps use.
// Under --keep the dumps (and the code perf inject writes beside them) stay for later reports.
const jitDir = join(values.keep ?? tmp, "jit");
const jit: Record<string, string> = values.jit ? { BUN_JSC_useJITDump: "1", BUN_JSC_jitDumpDirectory: jitDir } : {};
if (values.jit) mkdirSync(jitDir, { recursive: true });
const usePerf = values.perf || values.jit;
// --env NAME=value (repeatable) adds to the server's environment, e.g. --env QDP_ACCESS_LOG=0.
const extraEnv = Object.fromEntries(values.env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
const env: Record<string, string> = profile
  ? { ...chosen.env, ...extraEnv, ...jit, QDP_WORKER_BUN_ARGS: `--cpu-prof-md --cpu-prof-dir=${profDir}` }
  : { ...chosen.env, ...extraEnv, ...jit };
const server = await qdpServer("qdp-profile", "qdp (profiled)", () => env).start({ tmp, nginxWorkers: "auto" });
try {
  const threads = 2;
  const c: Case = { id: kind, title: kind, connections, threads, durationSec: seconds, timeoutSec: 5 };
  const args = await chosen.workload.args({ c, estRps: 0 });
  const workers = processTree(server.roots).filter((p) => p !== server.roots[0]);
  const before = cpuSeconds(workers);
  // perf sees what the JS profiler cannot: the kernel's share (socket writes), GC, the event loop.
  const perf = usePerf
    ? Bun.spawn(
        [
          "perf",
          "record",
          ...(values.jit ? ["-k", "1"] : []),
          ...(values.graph ? ["-g"] : []),
          "-F",
          "997",
          "-o",
          join(tmp, "perf.data"),
          "-p",
          workers.join(","),
          "--",
          "sleep",
          String(seconds - 1),
        ],
        {
          stdout: "ignore",
          stderr: "ignore",
        },
      )
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
    let data = join(tmp, "perf.data");
    if (values.jit) {
      nameJitDumps(data, jitDir);
      const injected = join(tmp, "perf.jit.data");
      const r = Bun.spawnSync(["perf", "inject", "--jit", "-i", data, "-o", injected], { cwd: tmp, stderr: "pipe" });
      if (r.exitCode === 0) data = injected;
      else console.log(`perf inject --jit failed (${r.stderr.toString().trim()}); JavaScript stays unnamed`);
    }
    if (values.keep) {
      mkdirSync(values.keep, { recursive: true });
      copyFileSync(data, join(values.keep, "perf.data"));
    }
    const report = Bun.spawnSync(["perf", "report", "-i", data, "--no-children", "-g", "none", "--sort", "comm,dso", "--stdio"]).stdout.toString();
    console.log(
      report
        .split("\n")
        .filter((l) => l.trim() !== "" && !l.startsWith("#"))
        .slice(0, 20)
        .join("\n"),
    );
    const syms = Bun.spawnSync([
      "perf",
      "report",
      "-i",
      data,
      values.graph ? "--children" : "--no-children",
      "-g",
      "none",
      "--sort",
      "sym",
      "--stdio",
    ]).stdout.toString();
    if (values.jit && values.graph) console.log(jsInclusive(syms, Number(values.top)));
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

/**
 * JavaScriptCore names its dump `jit-<tid>-<pid>.dump`, and `perf inject --jit` only takes
 * `jit-<pid>.dump` (perf's jit_detect): copies each dump under that name and rewrites the names in
 * the recording's mmap events in place (NUL-padded to the same length), so perf finds them.
 */
function nameJitDumps(data: string, dir: string): void {
  for (const f of readdirSync(dir)) {
    const m = /^jit-\d+-(\d+)\.dump$/.exec(f);
    if (m) copyFileSync(join(dir, f), join(dir, `jit-${m[1]}.dump`));
  }
  const bytes = readFileSync(data);
  const text = bytes.toString("latin1");
  for (const m of text.matchAll(/\/jit-\d+-(\d+)\.dump/g)) {
    const name = `/jit-${m[1]}.dump`;
    bytes.write(name.padEnd(m[0].length, "\0"), m.index, "latin1");
  }
  writeFileSync(data, bytes);
}

/**
 * The JavaScript functions by inclusive time (what they and everything they call took), from a
 * `perf report --children --sort sym` of a --jit --graph run: one line per function name, its
 * tiers (Baseline, DFG, FTL) and both workers' copies added up. perf counts each compiled copy
 * once per sample, so a function whose two tiers are on one stack (rare: recursion across a
 * tier-up) counts twice there; the shares are for ranking, not for adding up.
 */
function jsInclusive(report: string, top: number): string {
  const by = new Map<string, { children: number; self: number }>();
  for (const line of report.split("\n")) {
    const m = /^\s*([\d.]+)%\s+([\d.]+)%\s+\[\.\]\s+JSC-\w+:\s+(.*?)#\w+\s*$/.exec(line);
    if (!m) continue;
    const name = m[3] || "(anonymous)";
    const e = by.get(name) ?? { children: 0, self: 0 };
    e.children += Number(m[1]);
    e.self += Number(m[2]);
    by.set(name, e);
  }
  const rows = [...by].sort((a, b) => b[1].children - a[1].children).slice(0, top);
  return [
    "JavaScript functions by inclusive share of the workers' samples (self share after it):",
    ...rows.map(([n, e]) => `  ${e.children.toFixed(2).padStart(6)}%  ${e.self.toFixed(2).padStart(5)}%  ${n}`),
  ].join("\n");
}
