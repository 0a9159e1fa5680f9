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

let stampMs = 0;
let stampText = "";
/** The ISO time of now, formatted once per millisecond (many lines share one under load). */
function timestamp(): string {
  const now = Date.now();
  if (now !== stampMs) {
    stampMs = now;
    stampText = new Date(now).toISOString();
  }
  return stampText;
}

/** One access-log entry (edge/call-handler.ts): what happened to one call. */
export interface AccessEntry {
  requestId: string;
  func: number | null;
  name: string | null;
  user: string | null;
  status: number;
  code: string | null;
  ms: number;
  edge: number;
  owner: number | null;
  ip: string | null;
  keyId: string | null;
  /** The trace id UAP sent in `traceparent`, if any. */
  traceId: string | null;
  route: "api" | "qdp";
  /** The sampling share, when below 1. */
  sample?: number;
}

// Printable ASCII but `"` and `\`: text that JSON.stringify would only wrap in quotes.
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
/**
 * A string as JSON. Most fields of an access line (request ids, user ids, names) are plain
 * ASCII: quoting those directly skips a native JSON.stringify call each (seven per line); anything
 * else still goes through JSON.stringify, so caller-chosen text cannot break the line.
 */
export const jsonString = (v: string | null) => (v === null ? "null" : PLAIN.test(v) ? `"${v}"` : JSON.stringify(v));
const str = jsonString;

/**
 * The access log's writer: the same JSON line `log.info("call", entry)` would write, built as
 * one template string instead of an object spread and `JSON.stringify` (about half the cost;
 * bench/access-log.ts measures it under load). Strings that come from callers go through
 * JSON.stringify, so they cannot break the line.
 */
export function createAccessWriter(level: LogLevel, base: { worker: number; pid: number }): (e: AccessEntry) => void {
  if (LEVELS.info < LEVELS[level]) return () => {};
  const head = `","level":"info","msg":"call","worker":${base.worker},"pid":${base.pid},"requestId":`;
  return (e) => {
    emit(
      `{"t":"${timestamp()}${head}${str(e.requestId)},"func":${e.func},"name":${str(e.name)},"user":${str(e.user)},"status":${e.status},"code":${str(e.code)},"ms":${e.ms},"edge":${e.edge},"owner":${e.owner},"ip":${str(e.ip)},"keyId":${str(e.keyId)},"traceId":${str(e.traceId)},"route":"${e.route}"${e.sample === undefined ? "" : `,"sample":${e.sample}`}}\n`,
    );
  };
}

/** Creates a logger whose lines all carry `base` (e.g. `{ worker: 0 }`). */
export function createLogger(level: LogLevel, base: Record<string, unknown> = {}): Logger {
  const min = LEVELS[level];
  const log = (lvl: LogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[lvl] < min) return;
    let line: string;
    try {
      line = JSON.stringify({ t: timestamp(), level: lvl, msg, ...base, ...(fields ? errorFields(fields) : {}) });
    } catch {
      line = JSON.stringify({ t: timestamp(), level: lvl, msg, ...base, note: "fields not serialisable" });
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
