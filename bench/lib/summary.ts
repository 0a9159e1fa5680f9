/**
 * bench/results/summary.md: the headline table (scenario A at -c500) and the targets check,
 * built from the latest A.raw.json / B.raw.json in the results folder, whichever exist.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fmt, markdownTable, textTable, type Table } from "./render.ts";
import { find, ratio, RESULTS_DIR } from "./report.ts";
import type { ScenarioResult } from "./runner.ts";
import { windowIdeal, CALL_SEC } from "../scenarios/b.ts";

function load(id: string): ScenarioResult | undefined {
  const p = join(RESULTS_DIR, `${id}.raw.json`);
  return existsSync(p) ? (JSON.parse(readFileSync(p, "utf8")) as ScenarioResult) : undefined;
}

type Verdict = "PASS" | "FAIL" | "not measured";

export function writeSummary(): void {
  const a = load("A");
  const b = load("B");
  const tables: Table[] = [];
  if (a) {
    const rows = a.plan.contenders
      .filter((c) => c.workload.path === "/api/1000")
      .map((c) => {
        const agg = find(a, "c500", c.id);
        return [c.label, agg ? fmt.int(agg.rps.median) : "–", agg ? fmt.ratio(ratio(agg, find(a, "c500", "study"))) : "–"];
      });
    tables.push({ title: "A · JSON echo at -c500", headers: ["contender", "ok req/s (median)", "× study"], numeric: [false, true, true], rows });
  }
  const checks: Array<[string, string, Verdict]> = [];
  const verdict = (ok: boolean | undefined): Verdict => (ok === undefined ? "not measured" : ok ? "PASS" : "FAIL");
  const users = a && find(a, "c500", "qdp-users");
  const vsStudy = a && ratio(users, find(a, "c500", "study"));
  checks.push(["qdp with affinity (1,000 users) ≥ 10× study at -c500", fmt.ratio(vsStudy), verdict(vsStudy === undefined ? undefined : vsStudy >= 10)]);
  const vsNoHop = a && ratio(users, find(a, "c500", "qdp-nohop"));
  checks.push([
    "qdp with affinity ≥ 0.80× qdp no-hop at -c500",
    vsNoHop === undefined ? "–" : `${vsNoHop.toFixed(3)}×`,
    verdict(vsNoHop === undefined ? undefined : vsNoHop >= 0.8),
  ]);
  const signedRatio = a && ratio(find(a, "c500", "qdp-signed"), find(a, "c500", "qdp-signed-off"));
  checks.push([
    "signed ≥ 0.95× unsigned (same requests) at -c500",
    signedRatio === undefined ? "–" : `${signedRatio.toFixed(3)}×`,
    verdict(signedRatio === undefined ? undefined : signedRatio >= 0.95),
  ]);
  const c5000 = a ? ["qdp-nohop", "qdp-users", "qdp-signed"].map((id) => find(a, "c5000", id)).filter((x) => x !== undefined) : [];
  const errs = c5000.reduce((s, x) => s + x.errors.total, 0);
  checks.push([
    "qdp: 0 errors at -c5000 (all variants, all rounds)",
    c5000.length ? c5000.map((x) => `${x.contenderId} ${x.errors.total}`).join(", ") : "–",
    verdict(c5000.length ? errs === 0 : undefined),
  ]);
  const bCase = b?.plan.cases.find((c) => c.connections === 10000);
  const q = b && bCase ? find(b, bCase.id, "qdp") : undefined;
  if (b && bCase && q) {
    const cap = windowIdeal(bCase.connections, bCase.durationSec);
    const ideal = bCase.connections / CALL_SEC;
    const rss = q.workersRss?.max ?? q.treeRss?.max;
    checks.push([
      "B: qdp ≥ 95% of ideal at C=10,000",
      `${fmt.int(q.rps.median)} req/s = ${fmt.pct(q.rps.median / cap)} of the window cap ${fmt.int(cap)} (${fmt.pct(q.rps.median / ideal)} of C/4)`,
      verdict(q.rps.median / cap >= 0.95),
    ]);
    checks.push(["B: workers' RSS < 1 GiB at C=10,000", `peak ${fmt.mib(rss)}`, verdict(rss === undefined ? undefined : rss < 2 ** 30)]);
  } else {
    checks.push(["B: qdp ≥ 95% of ideal at C=10,000", "–", "not measured"]);
    checks.push(["B: workers' RSS < 1 GiB at C=10,000", "–", "not measured"]);
  }
  const e = load("E");
  const eCase = e?.plan.cases[0];
  // The last line compares like with like: both fronts on the backends' uwsgi Unix sockets.
  for (const [id, label, ref, what] of [
    ["qdp-bridge-signed", "the signed bridge", "nginx-uwsgi", "nginx hash → uwsgi"],
    ["qdp-bridge-signed", "the signed bridge", "nginx-http", "nginx hash → HTTP"],
    ["qdp-bridge-uwsgi-signed", "the signed bridge → uwsgi", "nginx-uwsgi", "nginx hash → uwsgi"],
  ] as const) {
    const bridge = e && eCase ? ratio(find(e, eCase.id, id), find(e, eCase.id, ref)) : undefined;
    checks.push([
      `E: ${label} ≥ 0.9× ${what}`,
      bridge === undefined ? "–" : `${bridge.toFixed(3)}×`,
      verdict(bridge === undefined ? undefined : bridge >= 0.9),
    ]);
  }
  tables.push({ title: "Targets", headers: ["target", "measured", "verdict"], rows: checks.map((c) => [...c]) });
  const sources = [
    a && `A: ${a.startedAt}, ${a.rounds} round(s)`,
    b && `B: ${b.startedAt}, ${b.rounds} round(s)`,
    e && `E: ${e.startedAt}, ${e.rounds} round(s)`,
  ].filter(Boolean);
  const md = [
    "# Benchmark summary",
    "",
    `From ${sources.join("; ") || "no scenario results yet"}. Details: [A.md](A.md), [B.md](B.md), [C.md](C.md), [D.md](D.md), [E.md](E.md), [machine.md](machine.md).`,
    "The load generator shares the 2-core machine with the servers; read ratios, not absolutes.",
    "",
    ...tables.flatMap((t) => [markdownTable(t), ""]),
  ].join("\n");
  writeFileSync(join(RESULTS_DIR, "summary.md"), md);
  for (const t of tables) console.log(`\n${textTable(t)}`);
}
