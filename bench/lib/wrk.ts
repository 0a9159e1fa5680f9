/**
 * wrk runner and output parser. Every run uses one of bench/wrk/*.lua; they all print a
 * `BENCH_JSON {...}` summary line (exact microsecond percentiles and error counters). The
 * text parser reads wrk's own report too, so plain `wrk` output (no script) still works.
 */
import { join } from "node:path";
import { NOFILE, trackTransient } from "./procs.ts";

export const WRK_DIR = join(import.meta.dir, "..", "wrk");

export interface WrkErrors {
  connect: number;
  read: number;
  write: number;
  timeout: number;
  /** Responses with status >= 400 (wrk's "Non-2xx or 3xx responses"). */
  status: number;
}

export interface WrkResult {
  requests: number;
  durationSec: number;
  rps: number;
  /** Latencies in milliseconds. */
  latency: { mean: number; max: number; p50: number; p75: number; p90: number; p99: number; p999?: number };
  errors: WrkErrors;
  /** signed.lua only: wrap-arounds of a pre-signed header file (each one means replays). */
  exhausted: number;
  /** Scripts with a response() hook only (users-status.lua): responses by status code. */
  statuses?: Record<string, number>;
}

export interface WrkRun {
  url: string;
  threads: number;
  connections: number;
  durationSec: number;
  /** wrk's per-request timeout (default 2 s in wrk: too short for scenario B). */
  timeoutSec: number;
  script: string;
  scriptArgs?: string[];
}

const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const COUNT_UNITS: Record<string, number> = { "": 1, k: 1e3, M: 1e6, G: 1e9 };

function parseTimeMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) return Number.NaN;
  return Number(m[1]) * TIME_UNITS[m[2]!]!;
}

function parseCount(text: string): number {
  const m = /^([\d.]+)([kMG]?)$/.exec(text.trim());
  if (!m) return Number.NaN;
  return Number(m[1]) * COUNT_UNITS[m[2]!]!;
}

/** Parse wrk's stdout (text report, and the BENCH_JSON line when present). */
export function parseWrkOutput(out: string): WrkResult {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m ? Number(m[1]) : 0;
  };
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(out);
    return m ? parseTimeMs(m[1]!) : Number.NaN;
  };
  const lat = /^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(out);
  const done = /^\s*([\d.]+[kMG]?) requests in ([\d.]+)(us|ms|s|m)/m.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const result: WrkResult = {
    requests: done ? parseCount(done[1]!) : 0,
    durationSec: done ? parseTimeMs(`${done[2]}${done[3]}`) / 1000 : 0,
    rps: num(/^Requests\/sec:\s+([\d.]+)/m),
    latency: {
      mean: lat ? parseTimeMs(lat[1]!) : Number.NaN,
      max: lat ? parseTimeMs(lat[3]!) : Number.NaN,
      p50: pct("50"),
      p75: pct("75"),
      p90: pct("90"),
      p99: pct("99"),
    },
    errors: {
      connect: sock ? Number(sock[1]) : 0,
      read: sock ? Number(sock[2]) : 0,
      write: sock ? Number(sock[3]) : 0,
      timeout: sock ? Number(sock[4]) : 0,
      status: num(/Non-2xx or 3xx responses: (\d+)/),
    },
    exhausted: 0,
  };
  const json = /^BENCH_JSON (\{.*\})$/m.exec(out);
  if (json) {
    const j = JSON.parse(json[1]!) as Record<string, number>;
    const ms = (us: number | undefined) => (us ?? Number.NaN) / 1000;
    result.requests = j.requests!;
    result.durationSec = j.duration_us! / 1e6;
    result.rps = result.durationSec > 0 ? j.requests! / result.durationSec : 0;
    result.latency = {
      mean: ms(j.mean_us),
      max: ms(j.max_us),
      p50: ms(j.p50_us),
      p75: ms(j.p75_us),
      p90: ms(j.p90_us),
      p99: ms(j.p99_us),
      p999: ms(j.p999_us),
    };
    result.errors = { connect: j.connect!, read: j.read!, write: j.write!, timeout: j.timeout!, status: j.status! };
    result.exhausted = j.exhausted ?? 0;
  }
  const st = /^BENCH_STATUS (\{.*\})$/m.exec(out);
  if (st) {
    const statuses = JSON.parse(st[1]!) as Record<string, number>;
    if (Object.keys(statuses).length) result.statuses = statuses;
  }
  return result;
}

/** Total of all error counters. */
export function errorCount(e: WrkErrors): number {
  return e.connect + e.read + e.write + e.timeout + e.status;
}

/**
 * Run wrk once (bounded: killed if it outlives its duration by 60 s). wrk gets the same raised
 * fd limit as the servers; `-c5000`/`-c10000` need more than the default 1024.
 */
export async function runWrk(run: WrkRun): Promise<{ result: WrkResult; stdout: string }> {
  const cmd = [
    "prlimit",
    `--nofile=${NOFILE}:${NOFILE}`,
    "--",
    "wrk",
    `-t${run.threads}`,
    `-c${run.connections}`,
    `-d${Math.max(1, Math.round(run.durationSec))}s`,
    `--timeout`,
    `${Math.max(1, Math.round(run.timeoutSec))}s`,
    "--latency",
    "-s",
    join(WRK_DIR, run.script),
    run.url,
  ];
  if (run.scriptArgs?.length) cmd.push("--", ...run.scriptArgs);
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const untrack = trackTransient(proc);
  const killer = setTimeout(() => proc.kill("SIGKILL"), (run.durationSec + 60) * 1000);
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(killer);
  untrack();
  if (proc.exitCode !== 0) throw new Error(`wrk failed (exit ${proc.exitCode}): ${stderr || stdout}`);
  return { result: parseWrkOutput(stdout), stdout };
}
