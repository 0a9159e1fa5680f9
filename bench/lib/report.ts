/** Turn a scenario's aggregates into tables, Markdown, SVG and the raw JSON file. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fmt, markdownTable, svgChart, textTable, type Panel, type Table } from "./render.ts";
import type { Case, Contender, ScenarioResult } from "./runner.ts";
import type { Aggregate } from "./stats.ts";

/** Where results go: bench/results, or bench/results/quick for --quick smoke runs. */
export let RESULTS_DIR = join(import.meta.dir, "..", "results");

export function setResultsDir(dir: string): void {
  RESULTS_DIR = dir;
}

/** Path of a results file, relative to the repo, for log lines. */
export function shown(name: string): string {
  return join(RESULTS_DIR, name).replace(`${join(import.meta.dir, "..", "..")}/`, "");
}

export function find(r: ScenarioResult, caseId: string, contenderId: string | undefined): Aggregate | undefined {
  return contenderId ? r.aggregates.find((a) => a.caseId === caseId && a.contenderId === contenderId) : undefined;
}

export function ratio(a: Aggregate | undefined, b: Aggregate | undefined): number | undefined {
  if (!a || !b || !(b.rps.median > 0)) return undefined;
  return a.rps.median / b.rps.median;
}

/** Error summary "c/r/w/t/non2xx" with a total, or "0". */
export function errorCell(a: Aggregate): string {
  const e = a.errors;
  if (!e.total) return "0";
  return `${fmt.int(e.total)} (c${e.connect}/r${e.read}/w${e.write}/t${e.timeout}/n${e.status})`;
}

export type ExtraColumn = { header: string; numeric?: boolean; value: (a: Aggregate, c: Case, contender: Contender) => string };

/** The standard per-case table: throughput with spread, ratios, latency, errors, RSS. */
export function caseTable(r: ScenarioResult, c: Case, extra: ExtraColumn[] = [], opts: { rss?: boolean } = {}): Table {
  const headers = [
    "contender",
    "ok req/s (median)",
    "min–max",
    "× study",
    "× qdp no-hop",
    "p50 ms",
    "p99 ms",
    "errors (all rounds)",
    "server CPU µs / ok call",
  ];
  const numeric = [false, true, true, true, true, true, true, false, true];
  if (opts.rss) {
    headers.push("peak RSS");
    numeric.push(true);
  }
  for (const x of extra) {
    headers.push(x.header);
    numeric.push(x.numeric ?? true);
  }
  const rows: string[][] = [];
  for (const contender of r.plan.contenders) {
    const a = find(r, c.id, contender.id);
    if (!a) {
      const why = r.skipped[contender.id] ?? "not run";
      rows.push([contender.label, "–", "–", "–", "–", "–", "–", `skipped: ${why}`, "–", ...(opts.rss ? ["–"] : []), ...extra.map(() => "–")]);
      continue;
    }
    const row = [
      contender.label,
      fmt.int(a.rps.median),
      `${fmt.int(a.rps.min)}–${fmt.int(a.rps.max)}`,
      fmt.ratio(ratio(a, find(r, c.id, contender.studyRef))),
      fmt.ratio(ratio(a, find(r, c.id, contender.noHopRef))),
      fmt.ms(a.p50.median),
      fmt.ms(a.p99.median),
      errorCell(a) +
        (a.errors.status ? ` — wrk counted ${fmt.int(a.wrkRps.median)} req/s with them` : "") +
        (a.exhausted ? ` ⚠ signed file exhausted ×${a.exhausted}` : ""),
      a.cpuUsPerOk === undefined ? "–" : a.cpuUsPerOk.median.toFixed(1),
    ];
    if (opts.rss) row.push(fmt.mib(a.workersRss?.median ?? a.treeRss?.median));
    for (const x of extra) row.push(x.value(a, c, contender));
    rows.push(row);
  }
  return {
    title: `${r.plan.id} · ${c.title} (wrk -t${c.threads} -c${c.connections} -d${c.durationSec}s --timeout ${c.timeoutSec}s, ${r.rounds} round(s))`,
    headers,
    numeric,
    rows,
  };
}

export function chartPanels(r: ScenarioResult, reference?: (c: Case) => Panel["reference"]): Panel[] {
  return r.plan.cases.map((c) => ({
    title: c.title,
    reference: reference?.(c),
    bars: r.plan.contenders.map((contender) => {
      const a = find(r, c.id, contender.id);
      return {
        label: contender.label,
        median: a?.rps.median ?? Number.NaN,
        min: a?.rps.min ?? Number.NaN,
        max: a?.rps.max ?? Number.NaN,
        accent: contender.accent,
      };
    }),
  }));
}

/** Print the tables and write `<id>.md`, `<id>.svg`, `<id>.raw.json` under bench/results. */
export function writeScenario(r: ScenarioResult, tables: Table[], intro: string[], reference?: (c: Case) => Panel["reference"]): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  for (const t of tables) console.log(`\n${textTable(t)}`);
  for (const n of r.notes) console.log(`  note: ${n}`);
  const md = [
    `# Scenario ${r.plan.id}: ${r.plan.title}`,
    "",
    ...intro,
    "",
    `Run ${r.startedAt} → ${r.finishedAt}; ${r.rounds} round(s), contenders alternated round-robin. Machine: see [machine.md](machine.md).`,
    "",
    `![chart](${r.plan.id}.svg)`,
    "",
    ...tables.flatMap((t) => [markdownTable(t), ""]),
    ...(r.notes.length ? ["Notes:", "", ...r.notes.map((n) => `- ${n}`), ""] : []),
  ].join("\n");
  writeFileSync(join(RESULTS_DIR, `${r.plan.id}.md`), md);
  writeFileSync(
    join(RESULTS_DIR, `${r.plan.id}.svg`),
    svgChart(`Scenario ${r.plan.id}: ${r.plan.title} (successful req/s)`, "req/s", chartPanels(r, reference)),
  );
  writeFileSync(join(RESULTS_DIR, `${r.plan.id}.raw.json`), JSON.stringify(r, null, 1));
  console.log(`\n  wrote ${shown(`${r.plan.id}.md`)}, ${r.plan.id}.svg, ${r.plan.id}.raw.json`);
}
