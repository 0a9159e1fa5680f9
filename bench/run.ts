/**
 * `bun run bench` — the side-by-side benchmark. See docs/benchmarks.md.
 *
 *   bun bench/run.ts [A] [B] [C] [D] [E] [F] [--rounds N] [--duration S] [--b-duration S] [--quick]
 *                    [--only id,id] [--no-mongo] [--nginx-workers auto|N] [--cooldown S] [--warmup S]
 *
 * Installs what it needs from Debian's packages, starts every contender on free loopback
 * ports, alternates the contenders round-robin, and stops everything it started (also on
 * Ctrl-C). Results: bench/results/{A,B,C,summary,machine}.md and {A,B,C}.svg
 * (bench/results/quick/ for --quick).
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureDeps } from "./lib/deps.ts";
import { writeMachine } from "./lib/machine.ts";
import { cleanupAll, installSignalHandlers, makeTempDir, NOFILE } from "./lib/procs.ts";
import { RESULTS_DIR, setResultsDir } from "./lib/report.ts";
import { reaggregate, runScenario, type ScenarioPlan, type ScenarioResult } from "./lib/runner.ts";
import { qdpAvailable, type ServerContext } from "./lib/servers.ts";
import { writeSummary } from "./lib/summary.ts";
import { planA, reportA } from "./scenarios/a.ts";
import { planB, reportB } from "./scenarios/b.ts";
import { planC, reportC } from "./scenarios/c.ts";
import { planD, reportD } from "./scenarios/d.ts";
import { planE, reportE } from "./scenarios/e.ts";
import { planF, reportF } from "./scenarios/f.ts";

const { values, positionals } = parseArgs({
  args: Bun.argv.slice(2),
  allowPositionals: true,
  options: {
    rounds: { type: "string" },
    duration: { type: "string" },
    "b-duration": { type: "string" },
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    "no-mongo": { type: "boolean", default: false },
    "nginx-workers": { type: "string", default: "auto" },
    cooldown: { type: "string" },
    warmup: { type: "string" },
    render: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (values.help) {
  console.log(`usage: bun bench/run.ts [A] [B] [C] [D] [E] [F] [--rounds N] [--duration S] [--b-duration S] [--quick]
                    [--only id,id] [--no-mongo] [--nginx-workers auto|N] [--cooldown S] [--warmup S]
  A  the study's echo/hello at -c500 and -c5000        (default: all six scenarios)
  B  slow business call, C = 2,000 and 10,000 callers
  C  per-hop latency at -c10
  D  durable sessions: demo.counter at -c500, 1,000 users, memory vs Redis
  E  the migration bridge vs nginx hash in front of the same uWSGI + Flask processes
  F  several hosts: signed demo.counter, 3 hosts behind nginx vs 1 host (and the nonce claim's cost)
  --quick       1 round, 3 s runs (B: 9 s, C = 500 and 2,000); results in bench/results/quick/
  --only        contender ids, e.g. study,node,bun,qdp-users (see docs/benchmarks.md)
  --render      no runs: rebuild tables, charts and summary from the saved <scenario>.raw.json`);
  process.exit(0);
}

const quick = values.quick;
const num = (v: string | undefined, dflt: number, name: string): number => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} wants a positive number, got ${v}`);
  return n;
};
const rounds = Math.round(num(values.rounds, quick ? 1 : 3, "rounds"));
const duration = num(values.duration, quick ? 3 : 10, "duration");
// 20 s of load plus 1 s so that each caller's 5th 4-second call still lands in the window.
const bDuration = num(values["b-duration"], quick ? 9 : 21, "b-duration");
const cooldown = num(values.cooldown, quick ? 1 : 2, "cooldown");
const warmup = values.warmup === "0" ? 0 : num(values.warmup, quick ? 1 : 3, "warmup");
const scenarios = (positionals.length ? positionals : ["A", "B", "C", "D", "E", "F"]).map((s) => s.toUpperCase());
for (const s of scenarios) if (!["A", "B", "C", "D", "E", "F"].includes(s)) throw new Error(`unknown scenario ${s} (A, B, C, D, E or F)`);
const only = values.only?.split(",").map((s) => s.trim());

const reports: Record<string, (r: ScenarioResult) => void> = { A: reportA, B: reportB, C: reportC, D: reportD, E: reportE, F: reportF };

if (values.render) {
  if (quick) setResultsDir(join(RESULTS_DIR, "quick"));
  for (const s of scenarios) {
    const path = join(RESULTS_DIR, `${s}.raw.json`);
    if (!existsSync(path)) continue;
    const saved = JSON.parse(readFileSync(path, "utf8")) as ScenarioResult;
    reports[s]!(reaggregate(saved));
  }
  writeSummary();
  process.exit(0);
}

installSignalHandlers();
try {
  ensureDeps();
  if (quick) setResultsDir(join(RESULTS_DIR, "quick"));
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeMachine(RESULTS_DIR, values["nginx-workers"]);
  const tmp = makeTempDir("qdp-bench");
  const ctx: ServerContext = { tmp, nginxWorkers: values["nginx-workers"] };
  const log = (line: string) => console.log(`  ${line}`);
  if (!qdpAvailable()) console.log("note: src/main.ts is missing — the qdp-server rows will be reported as skipped");
  console.log(
    `rounds ${rounds}, duration ${duration} s (B: ${bDuration} s), warm-up ${warmup} s (not in B), cooldown ${cooldown} s, ` +
      `fd limit ${NOFILE}, scenarios ${scenarios.join(" ")}`,
  );

  const plans: Array<[ScenarioPlan, (r: ScenarioResult) => void]> = [];
  for (const s of scenarios) {
    if (s === "A") plans.push([planA({ durationSec: duration, quick, tmp, log }), reportA]);
    if (s === "B") plans.push([planB({ durationSec: bDuration, quick, tmp, log, mongo: !values["no-mongo"] }), reportB]);
    if (s === "C") plans.push([planC({ durationSec: duration, quick, tmp, log }), reportC]);
    if (s === "D") plans.push([planD({ durationSec: duration, quick, tmp, log }), reportD]);
    if (s === "E") plans.push([planE({ durationSec: duration, quick, tmp, log }), reportE]);
    if (s === "F") plans.push([planF({ durationSec: duration, quick, tmp, log }), reportF]);
  }
  for (const [plan, report] of plans) {
    if (only) plan.contenders = plan.contenders.filter((c) => only.includes(c.id));
    if (!plan.contenders.length) continue;
    console.log(`\n=== Scenario ${plan.id}: ${plan.title} ===`);
    report(await runScenario(plan, { rounds, warmupSec: plan.id === "B" ? 0 : warmup, cooldownSec: cooldown, ctx }));
  }
  writeSummary();
  console.log(`\nresults in ${RESULTS_DIR}`);
} finally {
  await cleanupAll();
}
