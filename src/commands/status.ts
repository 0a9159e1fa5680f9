/**
 * `qdp status`: the workers as a table, like `pm2 ls` or uwsgitop. /stats holds counters, not
 * rates, so req/s comes from two samples `--interval` seconds apart (default 1). Counters of a
 * restarted index carry over in /stats, so the difference stays meaningful across a restart.
 */
import { parseArgs } from "node:util";
import type { ReplayStoreStats, SessionStoreStats } from "../types.ts";
import { type CommandIo, fetchStats, resolveStatsTarget, type StatsDoc, UsageError } from "./control.ts";
import { Histogram, type HistogramData } from "../telemetry/histogram.ts";

/** 1536 → "1.5 KiB". */
export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** Event-loop lag: 0.4 → "0.4 ms", 1234 → "1.2 s". */
export function humanMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

/** 3725 → "1h 2m". */
export function humanDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "-";
  const s = Math.floor(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function table(head: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}

/**
 * Renders the status text from two samples. `later` is what the table shows; `earlier` (taken
 * `seconds` before) gives the rates. Without `earlier` the rate column shows "-".
 */
export function renderStatus(later: StatsDoc, earlier: StatsDoc | null, seconds: number, statsPort: number): string {
  const sup = later.supervisor;
  const rate = (index: number, requests: number): number | null => {
    const e = earlier?.workers.find((w) => w.index === index);
    return e && seconds > 0 ? Math.max(0, requests - e.requests) / seconds : null;
  };
  let totalRate = 0;
  const totals = { requests: 0, inflight: 0, hopsIn: 0, hopsOut: 0, rss: 0, restarts: 0, recycled: 0, stuck: 0, lag: 0 };
  const recycledOf = (w: StatsDoc["workers"][number]) => Object.values(w.recycles ?? {}).reduce((a, b) => a + b, 0);
  const lagOf = (w: StatsDoc["workers"][number]) => (typeof w.eventLoopLagMs === "number" ? w.eventLoopLagMs : null);
  const rows = later.workers.map((w) => {
    const r = rate(w.index, w.requests);
    totalRate += r ?? 0;
    totals.requests += w.requests;
    totals.inflight += w.inflight;
    totals.hopsIn += w.hopsIn;
    totals.hopsOut += w.hopsOut;
    totals.rss += w.rssBytes;
    totals.restarts += w.restarts;
    totals.recycled += recycledOf(w);
    totals.stuck += w.stuckKills ?? 0;
    const lag = lagOf(w);
    totals.lag = Math.max(totals.lag, lag ?? 0);
    return [
      String(w.index),
      w.pid === null ? "-" : String(w.pid),
      w.state,
      w.uptimeSec === undefined ? "-" : humanDuration(w.uptimeSec),
      String(w.requests),
      r === null ? "-" : r.toFixed(1),
      String(w.inflight),
      `${w.hopsIn}/${w.hopsOut}`,
      w.rssBytes > 0 ? humanBytes(w.rssBytes) : "-",
      String(w.restarts),
      String(recycledOf(w)),
      String(w.stuckKills ?? 0),
      lag === null ? "-" : humanMs(lag),
    ];
  });
  rows.push([
    "all",
    "",
    `${later.workers.filter((w) => w.state === "ready").length}/${later.workers.length} ready`,
    "",
    String(totals.requests),
    earlier ? totalRate.toFixed(1) : "-",
    String(totals.inflight),
    `${totals.hopsIn}/${totals.hopsOut}`,
    humanBytes(totals.rss),
    String(totals.restarts),
    String(totals.recycled),
    String(totals.stuck),
    humanMs(totals.lag),
  ]);
  const head = ["IDX", "PID", "STATE", "UPTIME", "REQUESTS", "REQ/S", "INFLIGHT", "HOPS IN/OUT", "RSS", "RESTARTS", "RECYCLED", "STUCK", "LAG"];
  const recycles = sup.recycles;
  const supLine =
    `supervisor pid ${sup.pid}  up ${humanDuration(sup.uptimeSec)}  reloads ${sup.reloads}` +
    (recycles
      ? `  recycled ${Object.entries(recycles)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")}`
      : "") +
    (typeof sup.recycleBackoffMs === "number" && sup.recycleBackoffMs > 0 ? ` (next in ${(sup.recycleBackoffMs / 1000).toFixed(1)} s)` : "") +
    (typeof sup.stuckKills === "number" ? `  stuck killed ${sup.stuckKills}` : "") +
    (sup.port !== undefined ? `  port ${sup.port}` : "") +
    `  stats 127.0.0.1:${statsPort}  workers ${later.workers.length}` +
    (earlier ? `  (rates over ${seconds.toFixed(1)} s)` : "");
  return `${supLine}\n${table(head, rows, new Set([0, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12]))}\n${sessionStoreLine(later)}${replayStoreLine(later)}`;
}

/** One line of durable session store totals, when the cluster has one (QDP_SESSION_STORE=redis). */
function sessionStoreLine(doc: StatsDoc): string {
  const all = doc.workers.map((w) => w.sessionStore as SessionStoreStats | undefined).filter((x) => x !== undefined);
  if (all.length === 0) return "";
  const sum = (k: "loads" | "checks" | "stores" | "conflicts" | "errors") => all.reduce((a, x) => a + x[k], 0);
  const latency: HistogramData = { buckets: [], count: 0, sum: 0 };
  for (const x of all) Histogram.addInto(latency, x.latency);
  const p99 = Histogram.quantile(latency, 0.99);
  return (
    `session store: loads ${sum("loads")}  checks ${sum("checks")}  stores ${sum("stores")}  conflicts ${sum("conflicts")}  errors ${sum("errors")}` +
    `  p99 ${p99 === null ? "-" : `<= ${(p99 * 1000).toFixed(p99 < 0.001 ? 2 : 1)} ms`}\n`
  );
}

/** One line of shared replay store totals, when the cluster has one (QDP_REPLAY_STORE=redis). */
function replayStoreLine(doc: StatsDoc): string {
  const all = doc.workers.map((w) => w.replayStore as ReplayStoreStats | undefined).filter((x) => x !== undefined);
  if (all.length === 0) return "";
  const sum = (k: "claims" | "replays" | "errors") => all.reduce((a, x) => a + x[k], 0);
  const latency: HistogramData = { buckets: [], count: 0, sum: 0 };
  for (const x of all) Histogram.addInto(latency, x.latency);
  const p99 = Histogram.quantile(latency, 0.99);
  return `replay store: claims ${sum("claims")}  replays ${sum("replays")}  errors ${sum("errors")}  p99 ${p99 === null ? "-" : `<= ${(p99 * 1000).toFixed(p99 < 0.001 ? 2 : 1)} ms`}\n`;
}

/**
 * `qdp status [--json] [--interval S] [--stats-port N]`. `--json` prints one /stats sample
 * unchanged (no waiting), for scripts; `--interval 0` skips the rate sample.
 */
export async function statusCommand(argv: string[], io: CommandIo): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: { json: { type: "boolean" }, interval: { type: "string" }, "stats-port": { type: "string" } },
      strict: true,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const port = resolveStatsTarget(values["stats-port"], io.env);
  const interval = values.interval === undefined ? 1 : Number(values.interval);
  if (!(interval >= 0) || interval > 3600) throw new UsageError(`--interval ${JSON.stringify(values.interval)}: expected seconds from 0 to 3600`);
  const first = await fetchStats(port);
  if (values.json) {
    io.out(`${JSON.stringify(first, null, 2)}\n`);
    return 0;
  }
  if (interval === 0) {
    io.out(renderStatus(first, null, 0, port.port));
    return 0;
  }
  const t0 = performance.now();
  await Bun.sleep(interval * 1000);
  const second = await fetchStats(port);
  io.out(renderStatus(second, first, (performance.now() - t0) / 1000, port.port));
  return 0;
}
