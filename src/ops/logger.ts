/**
 * Structured JSON logs, one object per line on stdout. Lines are buffered and flushed once per
 * tick through Bun's async stdout sink, so logging never blocks the event loop; if the reader
 * falls far behind, lines are dropped and counted rather than growing memory without bound.
 */
import type { LogLevel } from "../core/config.ts";
import type { Logger } from "../services/types.ts";

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const MAX_BUFFERED = 4 * 1024 * 1024;

const sink = Bun.stdout.writer();
let buffered = 0;
let dropped = 0;
let scheduled = false;

function flush(): void {
  scheduled = false;
  if (dropped > 0) {
    const line = JSON.stringify({ t: new Date().toISOString(), level: "warn", msg: "log lines dropped", dropped }) + "\n";
    dropped = 0;
    sink.write(line);
  }
  buffered = 0;
  const r = sink.flush();
  if (r instanceof Promise) r.catch(() => {});
}

function emit(line: string): void {
  if (buffered > MAX_BUFFERED) {
    dropped++;
    return;
  }
  buffered += line.length;
  sink.write(line);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}

/** Flushes what is buffered (before exit). */
export async function flushLogs(): Promise<void> {
  await sink.flush();
}

function errorFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    out[k] = v instanceof Error ? { name: v.name, message: v.message, stack: v.stack, cause: v.cause instanceof Error ? v.cause.message : undefined } : v;
  }
  return out;
}

/** Creates a logger whose lines all carry `base` (e.g. `{ worker: 0 }`). */
export function createLogger(level: LogLevel, base: Record<string, unknown> = {}): Logger {
  const min = LEVELS[level];
  const log = (lvl: LogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[lvl] < min) return;
    let line: string;
    try {
      line = JSON.stringify({ t: new Date().toISOString(), level: lvl, msg, ...base, ...(fields ? errorFields(fields) : {}) });
    } catch {
      line = JSON.stringify({ t: new Date().toISOString(), level: lvl, msg, ...base, note: "fields not serialisable" });
    }
    emit(line + "\n");
  };
  return {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    child: (fields) => createLogger(level, { ...base, ...fields }),
  };
}
