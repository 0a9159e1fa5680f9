/**
 * `bun run chaos` — the chaos run of docs/reliability.md: signed load on demo.counter from 1,000
 * users while workers are killed, reloaded and recycled, the supervisor is killed and started
 * again, and Redis is stopped; one fresh cluster per phase, one report line per phase.
 *
 *   bun bench/chaos.ts [--phase-sec S] [--every S] [--users N] [--concurrency N] [--workers N]
 *                      [--store redis|memory] [--phases 1,2,3,4,5] [--max-requests N] [--out FILE]
 *
 * The default is 60 s per phase (5 minutes in all); `--phase-sec` or QDP_CHAOS_PHASE_SEC
 * shortens it. Sessions are in Redis in every phase when redis-server is there (the setting for
 * staying up through crashes); `--store memory` shows what the default store loses. Results:
 * bench/results/chaos.md and chaos.json (another file with --out).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PHASES, renderChaos, runChaos, stopAll, type ChaosOptions } from "./lib/chaos.ts";
import { machineFacts } from "./lib/machine.ts";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    "phase-sec": { type: "string" },
    every: { type: "string", default: "5" },
    users: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "64" },
    workers: { type: "string", default: "2" },
    store: { type: "string" },
    phases: { type: "string", default: "1,2,3,4,5" },
    "max-requests": { type: "string", default: "2000" },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(
    "usage: bun bench/chaos.ts [--phase-sec S] [--every S] [--users N] [--concurrency N] [--workers N] [--store redis|memory] [--phases 1,2,3,4,5] [--max-requests N] [--out FILE]",
  );
  process.exit(0);
}

const num = (v: string | undefined, name: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} wants a positive number, got ${v}`);
  return n;
};
const redisPath = Bun.which("redis-server") ?? Bun.which("redis-server", { PATH: "/usr/bin:/usr/sbin:/usr/local/bin" });
const store = (values.store ?? (redisPath ? "redis" : "memory")) as ChaosOptions["store"];
if (store !== "redis" && store !== "memory") throw new Error(`--store wants redis or memory, got ${store}`);
const wanted = values.phases!.split(",").map((s) => Number(s.trim()));
const opts: ChaosOptions = {
  phaseSec: num(values["phase-sec"] ?? process.env.QDP_CHAOS_PHASE_SEC ?? "60", "phase-sec"),
  eventEverySec: num(values.every, "every"),
  redisOutageSec: 5,
  users: Math.round(num(values.users, "users")),
  concurrency: Math.round(num(values.concurrency, "concurrency")),
  workers: Math.round(num(values.workers, "workers")),
  store,
  recycleMaxRequests: Math.round(num(values["max-requests"], "max-requests")),
  redisPath,
  phases: PHASES.filter((p) => wanted.includes(p.n)).map((p) => p.id),
  log: (line) => console.log(line),
};
if (!redisPath) console.log("note: redis-server not found — sessions in memory, phase 5 skipped (apt-get install redis-server)");

for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void stopAll().then(() => process.exit(130)));

const startedAt = new Date();
const reports = await runChaos(opts);
const facts = machineFacts("-").filter(([k]) => ["date", "CPU", "memory", "OS / kernel", "bun"].includes(k));
const shortened = opts.phaseSec < 60 ? ` — **shortened: ${opts.phaseSec} s per phase instead of 60 s**` : "";
const md = [
  `# Chaos run, ${startedAt.toISOString().slice(0, 10)}${shortened}`,
  "",
  facts.map(([k, v]) => `${k}: ${v}`).join("; "),
  "The load generator, the workers and Redis share these cores.",
  "",
  renderChaos(reports, opts),
].join("\n");
console.log(`\n${md}`);
const out = values.out ?? join(import.meta.dir, "results", "chaos.md");
writeFileSync(out, md);
writeFileSync(out.replace(/\.md$/, "") + ".json", JSON.stringify({ startedAt, options: { ...opts, log: undefined }, reports }, null, 2));
console.log(`results in ${out}`);
process.exit(reports.every((r) => r.exact || r.store === "memory") ? 0 : 1);
