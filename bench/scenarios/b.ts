/**
 * Scenario B, the slow business call (demo.quote, 1002): GET upstream A (1 s), GET upstream B
 * (3 s), write a record, answer. C callers in a closed loop, each as one of 1,000 users. A
 * perfect server completes C/4 calls per second; the study's stack is capped by its 2 × 1,000
 * gevent cores. Same upstream and record store for both stacks.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fmt } from "../lib/render.ts";
import { caseTable, writeScenario } from "../lib/report.ts";
import type { Case, Contender, ScenarioPlan, ScenarioResult } from "../lib/runner.ts";
import { qdpServer, REPO_ROOT, startSlowUpstream, studyServer, type ServerContext } from "../lib/servers.ts";
import { onCleanup } from "../lib/procs.ts";
import { QUOTE_BODY, rotatingUsers } from "../lib/workloads.ts";
import type { ScenarioOptions } from "./a.ts";

/** One call = upstream A (1 s) + upstream B (3 s). */
export const CALL_SEC = 4;

/** Best closed-loop throughput wrk can count in a window of `d` s: ⌊d/4⌋ calls per caller. */
export function windowIdeal(connections: number, d: number): number {
  return (connections * Math.floor(d / CALL_SEC)) / d;
}

export interface BOptions extends ScenarioOptions {
  mongo: boolean;
}

/** FerretDB from test/support/ferretdb.ts when another engineer has landed it. */
async function startMongo(): Promise<{ url: string; stop: () => Promise<void> } | undefined> {
  const path = join(REPO_ROOT, "test", "support", "ferretdb.ts");
  if (!existsSync(path)) return undefined;
  const mod = (await import(path)) as { startFerretDB?: () => Promise<{ url: string; stop: () => unknown }> };
  if (typeof mod.startFerretDB !== "function") return undefined;
  const db = await mod.startFerretDB();
  let stopped = false;
  const stop = async () => {
    if (!stopped) await db.stop();
    stopped = true;
  };
  onCleanup(stop);
  return { url: db.url, stop };
}

export function planB(o: BOptions): ScenarioPlan {
  const levels = o.quick ? [500, 2000] : [2000, 10000];
  const cases: Case[] = levels.map((n) => ({
    id: `C${n}`,
    title: `C = ${n.toLocaleString("en-US")} callers`,
    connections: n,
    threads: 2,
    durationSec: o.durationSec,
    timeoutSec: o.durationSec + 10,
  }));
  // Few, slow calls: affordable to count responses by status code.
  const quote = rotatingUsers("/api/1002", QUOTE_BODY, true);
  const contenders: Contender[] = [
    { id: "study", label: "study: Flask+requests+pymongo/gevent", server: "study", workload: quote, studyRef: "study" },
    { id: "qdp", label: "qdp demo.quote (1,000 users)", server: "qdp", workload: quote, studyRef: "study", accent: true },
  ];
  return {
    id: "B",
    title: "slow business call (upstream 1 s + 3 s, then a record write)",
    cases,
    contenders,
    servers: [
      studyServer("study", "study stack (quote)", false),
      // 10,000 callers over 2 workers: lift the per-worker in-flight cap above the load.
      qdpServer("qdp", "qdp-server (quote)", (ctx: ServerContext) => ({
        QDP_UPSTREAM_A: ctx.upstreamA!,
        QDP_UPSTREAM_B: ctx.upstreamB!,
        QDP_MAX_INFLIGHT: "20000",
        ...(ctx.mongoUrl ? { QDP_MONGO_URL: ctx.mongoUrl } : {}),
      })),
    ],
    async setup(ctx) {
      const notes: string[] = [];
      const upstream = await startSlowUpstream(ctx);
      ctx.upstreamA = `${upstream.baseUrl}/a`;
      ctx.upstreamB = `${upstream.baseUrl}/b`;
      console.log(`  slow upstream at ${upstream.baseUrl} (/a 1 s, /b 3 s)`);
      let mongo: Awaited<ReturnType<typeof startMongo>>;
      if (o.mongo) {
        try {
          mongo = await startMongo();
        } catch (err) {
          notes.push(`FerretDB failed to start (${err instanceof Error ? err.message.split("\n")[0] : String(err)}); embedded store used`);
        }
      }
      if (mongo) {
        ctx.mongoUrl = mongo.url;
        notes.push(`record store: FerretDB (MongoDB wire protocol) from test/support/ferretdb.ts for both stacks`);
      } else {
        ctx.mongoUrl = undefined;
        notes.push(
          "record store: NO MongoDB — qdp used its embedded store and the Flask app an in-process list " +
            (o.mongo ? "(test/support/ferretdb.ts not available)" : "(--no-mongo)"),
        );
      }
      notes.push(`QDP_MAX_INFLIGHT=20000 for the qdp server in this scenario`);
      return {
        notes,
        stop: async () => {
          await mongo?.stop();
          await upstream.stop();
          ctx.upstreamA = ctx.upstreamB = ctx.mongoUrl = undefined;
        },
      };
    },
  };
}

/** "200×1234 504×56" summed over the rounds of one contender. */
function statusCell(r: ScenarioResult, caseId: string, contenderId: string): string {
  const sum: Record<string, number> = {};
  for (const rec of r.records) {
    if (rec.caseId !== caseId || rec.contenderId !== contenderId) continue;
    for (const [code, n] of Object.entries(rec.result.statuses ?? {})) sum[code] = (sum[code] ?? 0) + n;
  }
  const parts = Object.entries(sum).map(([code, n]) => `${code}×${n}`);
  return parts.length ? parts.join(" ") : "–";
}

export function reportB(r: ScenarioResult): void {
  const tables = r.plan.cases.map((c) => {
    const ideal = c.connections / CALL_SEC;
    const cap = windowIdeal(c.connections, c.durationSec);
    return caseTable(
      r,
      c,
      [
        { header: "ideal C/4", value: () => fmt.int(ideal) },
        { header: "% of C/4", value: (a) => fmt.pct(a.rps.median / ideal) },
        { header: `% of window cap (${fmt.int(cap)})`, value: (a) => fmt.pct(a.rps.median / cap) },
        { header: "statuses (all rounds)", numeric: false, value: (a, _c, contender) => statusCell(r, c.id, contender.id) },
      ],
      { rss: true },
    );
  });
  const d = r.plan.cases[0]?.durationSec ?? 0;
  writeScenario(
    r,
    tables,
    [
      `C callers (wrk connections), each a closed loop of \`POST /api/1002 ${QUOTE_BODY}\` as one of 1,000 users`,
      "(`X-QDP-User: u<0..999>`). A call needs ≥ 4 s (upstream /a 1 s, then /b 3 s), so the ideal is C/4 req/s.",
      `wrk counts only calls that finish inside its ${d} s window, i.e. at most ⌊${d}/4⌋ = ${Math.floor(d / CALL_SEC)} per caller: the`,
      '"window cap" C·⌊d/4⌋/d is the best any server can score here and the fairer yardstick; "% of C/4" is the',
      "strict one. Peak RSS: qdp = sum of `workers[].rssBytes` from `/stats` (whole tree if unavailable); study = nginx",
      "+ both uWSGI. wrk --timeout is the duration + 10 s, so slow answers count as late, not as errors.",
      "The status column counts responses by code (from a wrk `response()` hook).",
    ],
    (c) => ({ value: windowIdeal(c.connections, c.durationSec), label: `window cap ${fmt.int(windowIdeal(c.connections, c.durationSec))}` }),
  );
}
