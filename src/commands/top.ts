/**
 * `qdp top`: a live view of the workers, refreshed every `--interval` seconds (like uwsgitop or
 * `pm2 monit`): per worker the request rate, calls in flight, CPU, memory, open files, event-loop
 * lag, error rate and connections; per function the rate, errors and latency over the last
 * interval. Rates are differences of two /stats samples. Ctrl-C quits; `--count N` stops after N
 * frames (for scripts and tests), and without a terminal frames are printed one after another.
 */
import { parseArgs } from "node:util";
import { type CommandIo, fetchStats, resolveStatsTarget, type StatsDoc, UsageError } from "./control.ts";
import type { DurationSeries } from "../telemetry/call-durations.ts";
import { Histogram, type HistogramData } from "../telemetry/histogram.ts";
import { humanBytes, humanDuration } from "./status.ts";

type W = StatsDoc["workers"][number];

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}

const errorsOf = (w: W | undefined) => Object.values(w?.errors ?? {}).reduce((a, b) => a + b, 0);
const num = (v: unknown) => (typeof v === "number" ? v : 0);

/** The difference of two histograms (what happened between two samples). */
function minus(a: HistogramData, b: HistogramData | undefined): HistogramData {
  if (b === undefined || b.count > a.count) return a; // a restart reset it: take the new one whole
  return { buckets: a.buckets.map((n, i) => n - (b.buckets[i] ?? 0)), count: a.count - b.count, sum: a.sum - b.sum };
}

function ms(seconds: number | null): string {
  if (seconds === null) return "-";
  if (!Number.isFinite(seconds)) return ">30s";
  return seconds < 0.001 ? `${(seconds * 1000).toFixed(2)}ms` : seconds < 1 ? `${(seconds * 1000).toFixed(1)}ms` : `${seconds.toFixed(1)}s`;
}

/** One frame of `qdp top` from two samples `seconds` apart. */
export function renderTop(now: StatsDoc, before: StatsDoc, seconds: number, target: string, at: Date = new Date()): string {
  const sup = now.supervisor;
  const prev = new Map(before.workers.map((w) => [w.index, w]));
  const rate = (a: number, b: number) => (seconds > 0 ? Math.max(0, a - b) / seconds : 0);
  let totalRate = 0;
  let totalErr = 0;
  const rows = now.workers.map((w) => {
    const p = prev.get(w.index);
    const samePid = p !== undefined && p.pid === w.pid;
    const r = rate(w.requests, p?.requests ?? w.requests);
    const e = samePid ? rate(errorsOf(w), errorsOf(p)) : 0;
    const cpu = samePid ? rate(num(w.cpuSeconds), num(p!.cpuSeconds)) * 100 : null;
    totalRate += r;
    totalErr += e;
    return [
      String(w.index),
      w.pid === null ? "-" : String(w.pid),
      w.state,
      r.toFixed(1),
      e.toFixed(1),
      String(w.inflight),
      String(num(w.executing)),
      cpu === null ? "-" : `${cpu.toFixed(0)}%`,
      w.rssBytes > 0 ? humanBytes(w.rssBytes) : "-",
      w.openFds === undefined || w.openFds === null ? "-" : String(w.openFds),
      ms(w.eventLoopLagMs === undefined ? null : num(w.eventLoopLagMs) / 1000),
      String(num(w.connections)),
      String(num(w.sessions)),
      String(w.restarts),
    ];
  });
  const head = ["IDX", "PID", "STATE", "REQ/S", "ERR/S", "INFLIGHT", "EXEC", "CPU", "RSS", "FDS", "LAG", "CONNS", "SESSIONS", "RESTARTS"];
  const ready = now.workers.filter((w) => w.state === "ready").length;
  const reload = sup.lastReload ? `  last reload #${sup.lastReload.seq} ${sup.lastReload.state}` : "";
  const lines = [
    `qdp top — ${target}  ${at.toISOString().slice(11, 19)}  every ${seconds.toFixed(1)} s  (Ctrl-C quits)`,
    `supervisor pid ${sup.pid}  up ${humanDuration(sup.uptimeSec)}  ${ready}/${now.workers.length} ready  reloads ${sup.reloads}${reload}  ${totalRate.toFixed(1)} req/s  ${totalErr.toFixed(1)} err/s`,
    "",
    table(head, rows),
  ];
  const funcs = functionRows(now.workers, before.workers, seconds);
  if (funcs.length > 0) lines.push("", table(["FUNC", "REQ/S", "ERR/S", "P50", "P99", "TOP ERROR"], funcs));
  return `${lines.join("\n")}\n`;
}

/** Per function over the interval: calls/s, errors/s, p50/p99 and the most frequent error code. */
function functionRows(now: W[], before: W[], seconds: number): string[][] {
  const series = (ws: W[]) => {
    const m = new Map<string, HistogramData>();
    for (const w of ws) for (const d of (w.durations ?? []) as DurationSeries[]) m.set(`${w.index}|${w.pid}|${d.func}|${d.code}`, d.latency);
    return m;
  };
  const a = series(now);
  const b = series(before);
  const byFunc = new Map<string, { all: HistogramData; errors: Map<string, number> }>();
  for (const [key, h] of a) {
    const [, , func, code] = key.split("|") as [string, string, string, string];
    const d = minus(h, b.get(key));
    if (d.count === 0) continue;
    let f = byFunc.get(func);
    if (f === undefined) byFunc.set(func, (f = { all: { buckets: [], count: 0, sum: 0 }, errors: new Map() }));
    Histogram.addInto(f.all, d);
    if (code !== "OK") f.errors.set(code, (f.errors.get(code) ?? 0) + d.count);
  }
  return [...byFunc]
    .sort((x, y) => y[1].all.count - x[1].all.count)
    .slice(0, 10)
    .map(([func, f]) => {
      const errors = [...f.errors.values()].reduce((s, n) => s + n, 0);
      const top = [...f.errors].sort((x, y) => y[1] - x[1])[0];
      return [
        func,
        (f.all.count / seconds).toFixed(1),
        (errors / seconds).toFixed(1),
        ms(Histogram.quantile(f.all, 0.5)),
        ms(Histogram.quantile(f.all, 0.99)),
        top ? `${top[0]} ×${top[1]}` : "-",
      ];
    });
}

/** `qdp top [--interval S] [--count N] [--stats-port N]`. */
export async function topCommand(argv: string[], io: CommandIo): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: { interval: { type: "string" }, count: { type: "string" }, "stats-port": { type: "string" } },
      strict: true,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const target = resolveStatsTarget(values["stats-port"], io.env);
  const interval = values.interval === undefined ? 2 : Number(values.interval);
  if (!(interval >= 0.1) || interval > 3600) throw new UsageError(`--interval ${JSON.stringify(values.interval)}: expected seconds from 0.1 to 3600`);
  const count = values.count === undefined ? Infinity : Number(values.count);
  if (!(count >= 1) || !Number.isInteger(count === Infinity ? 1 : count))
    throw new UsageError(`--count ${JSON.stringify(values.count)}: expected a whole number of frames`);
  const live = io.tty === true && values.count === undefined;
  let before = await fetchStats(target);
  let t0 = performance.now();
  for (let frame = 0; frame < count; frame++) {
    await Bun.sleep(interval * 1000);
    const now = await fetchStats(target);
    const t1 = performance.now();
    const text = renderTop(now, before, (t1 - t0) / 1000, `${target.host}:${target.port}`);
    // Home + clear screen on a terminal; plain frames one after another otherwise.
    io.out(live ? `\x1b[H\x1b[2J${text}` : `${frame > 0 ? "\n" : ""}${text}`);
    before = now;
    t0 = t1;
  }
  return 0;
}
