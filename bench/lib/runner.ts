/**
 * Runs one scenario: starts every server once, then for each case runs the contenders
 * round-robin (round r starts at contender r, so no one always goes first), `rounds` times,
 * sampling RSS during each run. A server that fails to start marks its contenders skipped;
 * the others still run. Everything started here is stopped in `finally`.
 */
import { errorCount, runWrk, type WrkResult } from "./wrk.ts";
import { cpuSeconds, processTree, quietBox, treeRssBytes } from "./procs.ts";
import { qdpWorkersRss, type RunningServer, type ServerContext, type ServerSpec } from "./servers.ts";
import { aggregate, type Aggregate, type RunRecord } from "./stats.ts";

export interface Case {
  id: string;
  title: string;
  connections: number;
  threads: number;
  durationSec: number;
  timeoutSec: number;
}

export interface Workload {
  method: "GET" | "POST";
  path: string;
  script: string;
  /**
   * Static script arguments, or computed right before each run (signed requests). `estRps` is
   * the fastest rate this contender reached so far in this case, warm-up included (0 = none yet).
   */
  args: (run: { c: Case; estRps: number }) => Promise<string[]> | string[];
}

/**
 * One wrk run of a workload outside a scenario (bench/ladder.ts, bench/compare.ts): two threads,
 * `connections` connections for `seconds`, the workload's arguments made right before it.
 */
export async function runWorkload(baseUrl: string, w: Workload, o: { id: string; connections: number; seconds: number }): Promise<WrkResult> {
  const c: Case = { id: o.id, title: `-c${o.connections}`, connections: o.connections, threads: 2, durationSec: o.seconds, timeoutSec: 5 };
  const { result } = await runWrk({
    url: `${baseUrl}${w.path}`,
    threads: 2,
    connections: o.connections,
    durationSec: o.seconds,
    timeoutSec: 5,
    script: w.script,
    scriptArgs: await w.args({ c, estRps: 0 }),
  });
  return result;
}

export interface Contender {
  id: string;
  label: string;
  server: string;
  workload: Workload;
  /** Ratio column "× study" divides by this contender's median in the same case. */
  studyRef?: string;
  /** qdp variants: ratio to the no-hop variant. */
  noHopRef?: string;
  accent?: boolean;
}

export interface ScenarioPlan {
  id: string;
  title: string;
  cases: Case[];
  contenders: Contender[];
  servers: ServerSpec[];
  /** Start helpers (slow upstream, FerretDB) and fill the context before the servers. */
  setup?: (ctx: ServerContext) => Promise<{ notes: string[]; stop: () => Promise<void> }>;
  /** Extra figures of one run (e.g. a helper's CPU), started before wrk and read after it. */
  measure?: (ctx: ServerContext) => { stop(): Record<string, number> };
}

export interface ScenarioResult {
  plan: { id: string; title: string; cases: Case[]; contenders: Contender[] };
  records: RunRecord[];
  aggregates: Aggregate[];
  skipped: Record<string, string>;
  notes: string[];
  startedAt: string;
  finishedAt: string;
  rounds: number;
}

export interface RunOptions {
  rounds: number;
  /** Unrecorded run per contender and case before the rounds (JIT, pools, caches), seconds; 0 = none. */
  warmupSec: number;
  cooldownSec: number;
  ctx: ServerContext;
}

export async function runScenario(plan: ScenarioPlan, opts: RunOptions): Promise<ScenarioResult> {
  const startedAt = new Date().toISOString();
  const notes: string[] = [];
  const skipped: Record<string, string> = {};
  const running = new Map<string, RunningServer>();
  const records: RunRecord[] = [];
  let stopHelpers = async () => {};
  try {
    if (plan.setup) {
      const h = await plan.setup(opts.ctx);
      notes.push(...h.notes);
      stopHelpers = h.stop;
    }
    for (const spec of plan.servers) {
      if (!plan.contenders.some((c) => c.server === spec.id)) continue;
      process.stdout.write(`  starting ${spec.label} ... `);
      try {
        const srv = await spec.start(opts.ctx);
        running.set(spec.id, srv);
        console.log(`up at ${srv.baseUrl}`);
        if (srv.note) notes.push(`${spec.label}: ${srv.note}`);
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        console.log(`FAILED\n${msg}`);
        for (const c of plan.contenders) if (c.server === spec.id) skipped[c.id] = msg.split("\n")[0]!;
      }
    }
    const active = plan.contenders.filter((c) => running.has(c.server));
    const fastest = new Map<string, number>();
    const seen = (c: Case, contender: Contender, rps: number) => {
      const key = `${c.id}/${contender.id}`;
      fastest.set(key, Math.max(fastest.get(key) ?? 0, rps));
    };
    for (const c of plan.cases) {
      if (opts.warmupSec > 0) {
        for (const contender of active) {
          const srv = running.get(contender.server)!;
          const w = { ...c, durationSec: opts.warmupSec };
          try {
            const { result } = await runWrk({
              url: `${srv.baseUrl}${contender.workload.path}`,
              threads: c.threads,
              connections: c.connections,
              durationSec: w.durationSec,
              timeoutSec: c.timeoutSec,
              script: contender.workload.script,
              scriptArgs: await contender.workload.args({ c: w, estRps: 0 }),
            });
            seen(c, contender, result.rps);
          } catch (err) {
            console.log(`  [${plan.id} ${c.id}] warm-up of ${contender.label} failed: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
        console.log(`  [${plan.id} ${c.id}] warmed up ${active.length} contender(s) for ${opts.warmupSec} s each (not recorded)`);
        await Bun.sleep(opts.cooldownSec * 1000);
      }
      for (let round = 0; round < opts.rounds; round++) {
        const order = active.map((_, i) => active[(i + round) % active.length]!);
        for (const contender of order) {
          const srv = running.get(contender.server)!;
          if (!srv.alive()) {
            skipped[contender.id] ??= `server ${contender.server} died during the run`;
            continue;
          }
          const args = await contender.workload.args({ c, estRps: fastest.get(`${c.id}/${contender.id}`) ?? 0 });
          const sampler = sampleRss(srv);
          // The server's CPU over the run (its whole process tree): per ok call it is the figure
          // that holds when the box's speed drifts from day to day.
          const tree = processTree(srv.roots);
          const cpu0 = cpuSeconds(tree);
          const probe = plan.measure?.(opts.ctx);
          try {
            const { result } = await runWrk({
              url: `${srv.baseUrl}${contender.workload.path}`,
              threads: c.threads,
              connections: c.connections,
              durationSec: c.durationSec,
              timeoutSec: c.timeoutSec,
              script: contender.workload.script,
              scriptArgs: args,
            });
            const rss = await sampler.stop();
            const extra = probe?.stop();
            const cpuSec = cpuSeconds(tree) - cpu0;
            records.push({ scenario: plan.id, caseId: c.id, contenderId: contender.id, round, result, ...rss, cpuSec, ...(extra ? { extra } : {}) });
            seen(c, contender, result.rps);
            const errs = errorCount(result.errors);
            console.log(
              `  [${plan.id} ${c.id} round ${round + 1}/${opts.rounds}] ${contender.label.padEnd(34)} ` +
                `${Math.round(result.rps).toLocaleString("en-US").padStart(9)} req/s  p50 ${result.latency.p50.toFixed(2)} ms  ` +
                `p99 ${result.latency.p99.toFixed(2)} ms${errs ? `  errors ${errs}` : ""}${result.exhausted ? `  EXHAUSTED ${result.exhausted}` : ""}`,
            );
          } catch (err) {
            await sampler.stop();
            console.log(`  [${plan.id} ${c.id}] ${contender.label}: wrk failed: ${err instanceof Error ? err.message : String(err)}`);
          }
          await Bun.sleep(opts.cooldownSec * 1000);
          const settled = await quietBox();
          if (!settled.quiet)
            console.log(`  [${plan.id} ${c.id}] the box was still busy ${Math.round(settled.waitedMs / 1000)} s after ${contender.label}; going on`);
          else if (settled.waitedMs > 2000)
            console.log(`  [${plan.id} ${c.id}] waited ${(settled.waitedMs / 1000).toFixed(1)} s for the box to go quiet after ${contender.label}`);
        }
      }
    }
  } finally {
    for (const srv of [...running.values()].reverse()) await srv.stop();
    await stopHelpers();
  }
  return reaggregate({
    plan: { id: plan.id, title: plan.title, cases: plan.cases, contenders: plan.contenders },
    records,
    aggregates: [],
    skipped,
    notes,
    startedAt,
    finishedAt: new Date().toISOString(),
    rounds: opts.rounds,
  });
}

/** (Re)compute the aggregates from the records, e.g. of a saved `<scenario>.raw.json`. */
export function reaggregate(r: ScenarioResult): ScenarioResult {
  const aggregates: Aggregate[] = [];
  for (const c of r.plan.cases) {
    for (const contender of r.plan.contenders) {
      const rs = r.records.filter((x) => x.caseId === c.id && x.contenderId === contender.id);
      if (rs.length) aggregates.push(aggregate(rs));
    }
  }
  return { ...r, aggregates };
}

/** Peak RSS of a server's process tree (and qdp's own worker figure) while a run lasts. */
function sampleRss(srv: RunningServer): { stop(): Promise<{ treeRssPeak?: number; workersRssPeak?: number }> } {
  let tree = 0;
  let workers: number | undefined;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      tree = Math.max(tree, treeRssBytes(srv.roots));
      if (srv.statsUrl) {
        const w = await qdpWorkersRss(srv.statsUrl);
        if (w !== undefined) workers = Math.max(workers ?? 0, w);
      }
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), 1000);
  return {
    async stop() {
      clearInterval(timer);
      await tick();
      return { treeRssPeak: tree || undefined, workersRssPeak: workers };
    },
  };
}
