/**
 * How the CLI finds and signals a running supervisor: it reads the loopback stats server
 * (CONTRACT.md §5) for the supervisor's pid instead of a pid file, so the pid it signals is the
 * one that answers on that port right now, never a stale file left by an earlier run.
 * `qdp reload` (SIGHUP, rolling reload) and `qdp stop` (SIGTERM, graceful stop) live here.
 */
import type { StatsDoc } from "../types.ts";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../core/config.ts";

/** Where a command writes and what it reads; tests replace these. */
export interface CommandIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: Record<string, string | undefined>;
  /** Whether stdout is a terminal (`qdp top` redraws in place then). */
  tty?: boolean;
}

export function defaultIo(): CommandIo {
  return {
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
    env: process.env,
    tty: process.stdout.isTTY === true,
  };
}

/** A bad command line: the CLI prints the message and exits 2. */
export class UsageError extends Error {}

/** Nothing (or not a qdp supervisor) answers on the stats port: exit 1. */
export class NoServerError extends Error {}

/** The /stats document (CONTRACT.md §5), as the supervisor serves it (src/types.ts). */
export type { StatsDoc } from "../types.ts";

/** Where the supervisor's stats server answers, and the token it wants (QDP_STATS_TOKEN). */
export interface StatsTarget {
  host: string;
  port: number;
  token: string | undefined;
}

/**
 * The stats server to talk to: port `--stats-port N`, else QDP_STATS_PORT, else the default;
 * host QDP_STATS_HOST (a wildcard address such as 0.0.0.0 is reached on 127.0.0.1); token
 * QDP_STATS_TOKEN. A bad QDP_* variable elsewhere must not stop `qdp status`, so only these are parsed.
 */
export function resolveStatsTarget(flag: string | undefined, env: Record<string, string | undefined>): StatsTarget {
  let config;
  try {
    config = loadConfig(
      { QDP_STATS_PORT: env.QDP_STATS_PORT, QDP_STATS_HOST: env.QDP_STATS_HOST, QDP_STATS_TOKEN: env.QDP_STATS_TOKEN },
      availableParallelism(),
    );
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.problems.join("; "));
    throw err;
  }
  let port = config.statsPort;
  if (flag !== undefined) {
    if (!/^\d+$/.test(flag) || Number(flag) < 1 || Number(flag) > 65535)
      throw new UsageError(`--stats-port ${JSON.stringify(flag)}: expected a port from 1 to 65535`);
    port = Number(flag);
  }
  const wildcard = config.statsHost === "0.0.0.0" || config.statsHost === "::";
  return { host: wildcard ? "127.0.0.1" : config.statsHost, port, token: config.statsToken };
}

function where(t: StatsTarget): string {
  return `${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port}`;
}

function noServer(t: StatsTarget, why: string): NoServerError {
  return new NoServerError(`no qdp-server supervisor answers on ${where(t)} — is it running? (set QDP_STATS_PORT or --stats-port) [${why}]`);
}

/** GET /stats of the supervisor at `t`; throws NoServerError when nothing sensible answers. */
export async function fetchStats(t: StatsTarget, timeoutMs = 3000): Promise<StatsDoc> {
  let res: Response;
  try {
    res = await fetch(`http://${where(t)}/stats`, {
      signal: AbortSignal.timeout(timeoutMs),
      headers: t.token === undefined ? {} : { authorization: `Bearer ${t.token}` },
    });
  } catch (err) {
    throw noServer(t, (err as Error).name === "TimeoutError" ? `no answer in ${timeoutMs} ms` : "connection refused");
  }
  if (res.status === 401) throw new NoServerError(`the stats server on ${where(t)} wants a token: set QDP_STATS_TOKEN to the server's`);
  let doc: unknown;
  try {
    doc = await res.json();
  } catch {
    doc = null;
  }
  const d = doc as StatsDoc | null;
  if (!res.ok || !d || typeof d.supervisor?.pid !== "number" || !Array.isArray(d.workers)) {
    throw noServer(t, `HTTP ${res.status} from something that is not a qdp-server stats server`);
  }
  return d;
}

/** Whether `pid` is a live process (a zombie counts as gone: it has exited, only unreaped). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return true;
  }
}

function signal(pid: number, sig: "SIGHUP" | "SIGTERM"): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new NoServerError(
      code === "EPERM"
        ? `not allowed to signal supervisor pid ${pid} (it runs as another user; use sudo or that user)`
        : `could not send ${sig} to pid ${pid}: ${code ?? String(err)}`,
    );
  }
}

function parseTimeout(v: string | undefined, fallbackMs: number): number {
  if (v === undefined) return fallbackMs;
  if (!/^\d+(\.\d+)?$/.test(v)) throw new UsageError(`--timeout ${JSON.stringify(v)}: expected seconds, like 60`);
  return Number(v) * 1000;
}

const COMMON = { "stats-port": { type: "string" }, wait: { type: "boolean" }, timeout: { type: "string" } } as const;

function parse(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: COMMON, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * `qdp reload [--wait] [--timeout S]`: SIGHUP to the supervisor = rolling reload. With --wait,
 * polls /stats until `reloads` increments and prints each index's old and new pid.
 * The default wait is generous: each index waits for its replacement and then drains.
 */
export async function reloadCommand(argv: string[], io: CommandIo): Promise<number> {
  const opts = parse(argv);
  const port = resolveStatsTarget(opts["stats-port"], io.env);
  const timeoutMs = parseTimeout(opts.timeout, 120_000);
  const before = await fetchStats(port);
  const pid = before.supervisor.pid;
  signal(pid, "SIGHUP");
  io.out(`sent SIGHUP to supervisor pid ${pid}: rolling reload of ${before.workers.length} workers\n`);
  if (!opts.wait) return 0;
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    await Bun.sleep(200);
    let now: StatsDoc;
    try {
      now = await fetchStats(port);
    } catch {
      continue; // a busy supervisor may miss one poll; the deadline still holds
    }
    const failed = (now.supervisor.reloadFailures ?? 0) > (before.supervisor.reloadFailures ?? 0);
    if (failed) {
      const why = now.supervisor.lastReload?.error ?? "a replacement worker could not start";
      io.err(
        `reload failed after ${((Date.now() - started) / 1000).toFixed(1)} s: ${why}\nThe workers not yet replaced keep serving with the previous configuration; fix the cause and reload again.\n`,
      );
      return 1;
    }
    if (now.supervisor.reloads > before.supervisor.reloads) {
      io.out(`reload #${now.supervisor.reloads} finished in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      for (const w of now.workers) {
        const old = before.workers.find((b) => b.index === w.index)?.pid ?? null;
        io.out(`  worker ${w.index}: pid ${old ?? "-"} -> ${w.pid ?? "-"} (${w.state})\n`);
      }
      return 0;
    }
  }
  io.err(`reload did not finish within ${timeoutMs / 1000} s (see the supervisor's log; \`qdp status\` shows each worker's state)\n`);
  return 1;
}

/**
 * `qdp stop [--wait] [--timeout S]`: SIGTERM to the supervisor = graceful stop. With --wait,
 * waits until the supervisor's pid is gone (it exits after its workers, within QDP_GRACE_MS
 * plus a few seconds).
 */
export async function stopCommand(argv: string[], io: CommandIo): Promise<number> {
  const opts = parse(argv);
  const port = resolveStatsTarget(opts["stats-port"], io.env);
  const timeoutMs = parseTimeout(opts.timeout, 60_000);
  const stats = await fetchStats(port);
  const pid = stats.supervisor.pid;
  signal(pid, "SIGTERM");
  io.out(`sent SIGTERM to supervisor pid ${pid}: graceful stop\n`);
  if (!opts.wait) return 0;
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (!pidAlive(pid)) {
      io.out(`supervisor pid ${pid} exited after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      return 0;
    }
    await Bun.sleep(100);
  }
  io.err(`supervisor pid ${pid} still running after ${timeoutMs / 1000} s\n`);
  return 1;
}
