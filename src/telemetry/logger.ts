/**
 * Structured JSON logs, one object per line on stdout, written without blocking the event loop;
 * if the reader falls far behind, lines are dropped and counted rather than growing memory
 * without bound.
 *
 * When lines are written: warn and error lines at the end of their tick; info and debug lines
 * (the access log: one per call) within {@link LAZY_FLUSH_MS}, or as soon as
 * {@link LAZY_FLUSH_BYTES} are waiting. Lines are joined here per flush into writes of whole
 * lines up to {@link ATOMIC_WRITE_BYTES}: one write(2) per line cost ~8 µs per call at -c100 with
 * the access log on (bench/ladder.ts: 38.9 vs 30.9 µs with it off), batched writes 2–4 µs, and
 * access lines built at the flush a little less again (createAccessWriter). A worker killed
 * with -9 loses at most the last {@link LAZY_FLUSH_MS} of info lines; a graceful exit and
 * process.exit write everything, in order.
 */
import { Buffer } from "node:buffer";
import { writeSync } from "node:fs";
import type { LogLevel } from "../core/config.ts";
import type { Logger } from "../services/types.ts";

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const MAX_BUFFERED = 4 * 1024 * 1024;
/** Longest an info line waits for its write. */
export const LAZY_FLUSH_MS = 50;
/** Bytes of waiting lines that are written at once, whatever their level. */
const LAZY_FLUSH_BYTES = 64 * 1024;
/**
 * How soon a write the reader had no room for is tried again: at first after 1 ms, as a reader
 * that is merely slower than a burst has room again soon (a 64 KiB pipe retried every 10 ms let
 * through at most 6.4 MB/s, ~24,000 access lines a second, fewer than one busy worker writes);
 * twice as long after each try that writes nothing, up to RETRY_MAX_MS, for a reader that stopped.
 */
const RETRY_MIN_MS = 1;
const RETRY_MAX_MS = 50;
let retryMs = RETRY_MIN_MS;

// Creating Bun's stdout writer puts stdout in non-blocking mode (O_NONBLOCK; for a pipe that is
// the open file shared with the supervisor and the other workers, which create it too), so a
// reader that falls behind makes writeSync fail with EAGAIN instead of stopping the event loop —
// test/log-writes.test.ts checks the flag. Nothing is written through the writer: it may hold a
// write the pipe had no room for and, at exit, try it once more and drop it when the pipe is
// still full (one ~4 KiB write lost in ~1 of 10 runs with a reader 0.5 s behind), or send it
// after lines of ours written later. Writing ourselves, the lines that wait are ours to keep.
Bun.stdout.writer();

/**
 * Lines waiting for the next flush, joined here so stdout gets few writes (takeWrites). An
 * access line waits as the function that builds it: see {@link createAccessWriter}.
 */
let waiting: Array<string | (() => string)> = [];
/** What the waiting lines count in `buffered` (an access line its estimate until it is built). */
let waitingCounted = 0;
/** The drop bound's count: characters of the lines waiting, bytes of the writes not yet written. */
let buffered = 0;
/**
 * Whole-line writes not written yet, oldest first (the reader had no room for the first; after
 * a partial write to a socket or terminal, the first is what is left of it).
 */
let ready: Uint8Array[] = [];
let retry: Timer | null = null;
let drained: (() => void)[] = [];
/**
 * Largest write. Workers and the supervisor share one stdout (a pipe to journald, docker or a
 * test), and a write to a pipe is atomic only up to PIPE_BUF (4096 bytes on Linux): larger ones
 * from processes writing at once cut into each other's lines (seen: a test reading the
 * cluster's output met half lines). With O_NONBLOCK such a write is all or nothing: it goes
 * whole or fails with EAGAIN. Whole lines up to this size per write keep every line intact —
 * ~13 access lines a write, against one write per line before the batching.
 */
export const ATOMIC_WRITE_BYTES = 4096;
const NEWLINE = 0x0a;

/**
 * Moves the waiting lines to `ready` as writes of whole lines, each at most ATOMIC_WRITE_BYTES
 * (a longer line alone). The lines are encoded once, together, and cut after a newline: every
 * line ends with one and has none inside (JSON escapes it), so no line's size is measured.
 */
function takeWrites(): void {
  if (waiting.length === 0) return;
  let text = "";
  for (const line of waiting) text += typeof line === "string" ? line : line();
  const bytes = Buffer.from(text);
  waiting = [];
  // From here on counted in bytes, as writeSync reports what it wrote.
  buffered += bytes.length - waitingCounted;
  waitingCounted = 0;
  for (let at = 0; at < bytes.length; ) {
    let end = at + ATOMIC_WRITE_BYTES;
    if (end >= bytes.length) end = bytes.length;
    else {
      const last = bytes.lastIndexOf(NEWLINE, end - 1);
      if (last >= at) end = last + 1;
      else {
        const next = bytes.indexOf(NEWLINE, end);
        end = next === -1 ? bytes.length : next + 1;
      }
    }
    ready.push(bytes.subarray(at, end));
    at = end;
  }
}

let dropped = 0;
let scheduled = false;
let lazy: Timer | null = null;

function flush(): void {
  scheduled = false;
  if (lazy !== null) {
    clearTimeout(lazy);
    lazy = null;
  }
  if (dropped > 0) {
    queue(JSON.stringify({ t: new Date().toISOString(), level: "warn", msg: "log lines dropped", dropped }) + "\n", 0);
    dropped = 0;
  }
  takeWrites();
  if (retry === null) writeReady();
}

/**
 * Writes what is ready, oldest first, until the reader has no room (EAGAIN: tried again on a
 * timer, as nothing tells a process that a pipe it shares has room again).
 */
function writeReady(): void {
  retry = null;
  let wrote = false;
  while (ready.length > 0) {
    const w = ready[0]!;
    let n: number;
    try {
      n = writeSync(1, w);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EAGAIN") {
        const delay = wrote ? RETRY_MIN_MS : retryMs;
        retryMs = Math.min(delay * 2, RETRY_MAX_MS);
        retry = setTimeout(writeReady, delay);
        // A process that ends anyway writes the rest in the exit hook; one waiting in flushLogs
        // keeps the timer (awaiting it with only unref'd timers left, Bun 1.4.5 burned a core).
        if (drained.length === 0) retry.unref();
        return;
      }
      // stdout is closed (EPIPE) or gone: nobody will read these lines, and nobody can be told
      for (const left of ready) buffered -= left.length;
      ready = [];
      break;
    }
    buffered -= n;
    wrote = true;
    if (n < w.length) ready[0] = w.subarray(n);
    else ready.shift();
  }
  retryMs = RETRY_MIN_MS;
  for (const done of drained.splice(0)) done();
}

/**
 * Adds a line to those waiting, or a function that builds it with its length estimated as
 * `chars`; the estimate stands in `buffered` until takeWrites builds the line.
 */
function queue(line: string | (() => string), chars: number): void {
  const counted = typeof line === "string" ? line.length : chars;
  buffered += counted;
  waitingCounted += counted;
  waiting.push(line);
}

/** Queues a line (see {@link queue}) unless too much waits, and schedules its flush. */
function emit(line: string | (() => string), urgent: boolean, chars = 0): void {
  if (buffered > MAX_BUFFERED) {
    dropped++;
    return;
  }
  queue(line, chars);
  if (scheduled) return;
  if (urgent || buffered >= LAZY_FLUSH_BYTES) {
    scheduled = true;
    setImmediate(flush);
  } else if (lazy === null) {
    lazy = setTimeout(flush, LAZY_FLUSH_MS);
    lazy.unref();
  }
}

// A process that exits without flushLogs (process.exit on a lost supervisor) still writes the
// lines that were waiting, in order: synchronously, the only way left in an exit handler, waiting
// up to EXIT_WRITE_MS for a reader that is behind instead of giving up at the first EAGAIN.
const EXIT_WRITE_MS = 5000;
process.on("exit", () => {
  takeWrites();
  const until = Date.now() + EXIT_WRITE_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  try {
    for (const w of ready) {
      let bytes = w;
      while (bytes.length > 0) {
        try {
          bytes = bytes.subarray(writeSync(1, bytes));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EAGAIN" || Date.now() > until) throw err;
          Atomics.wait(pause, 0, 0, 5);
        }
      }
    }
  } catch {
    // stdout is gone, or nobody reads it: nothing to tell
  }
  ready = [];
});

/** Writes what is buffered (before exit); resolves once stdout has taken it all. */
export async function flushLogs(): Promise<void> {
  flush();
  if (ready.length === 0) return;
  retry?.ref();
  await new Promise<void>((done) => drained.push(done));
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

/** An access line's numbers and nulls, as counted toward the flush and drop bounds before it is built. */
const ACCESS_NUMBERS_CHARS = 24;

/**
 * The access log's writer: the same JSON line `log.info("call", entry)` would write, built as
 * one template string instead of an object spread and `JSON.stringify`. Strings that come from
 * callers go through JSON.stringify, so they cannot break the line.
 *
 * The line is built at the flush, with the others waiting (every ~250 calls under load), not
 * during its call: its time is taken now, the rest is the entry's, which the caller no longer
 * changes. Built per call, amid the call's parsing, hop and answer, its template ran cold; built
 * together they cost less: bench A (a)'s workload, 4 rounds alternated per run, worker CPU per
 * call 23.2 → 22.3 µs (the log off: 19.9); 3 of 4 such runs showed ~0.9 µs less, one none. What the log still costs is
 * neither its text nor its writes: writes of 64 KiB instead of 4 KiB, and not building the line
 * at all, each measured no different.
 */
export function createAccessWriter(level: LogLevel, base: { worker: number; pid: number }): (e: AccessEntry) => void {
  if (LEVELS.info < LEVELS[level]) return () => {};
  const head = `","level":"info","msg":"call","worker":${base.worker},"pid":${base.pid},"requestId":`;
  // The fixed text of a line: everything but its strings' text and its numbers.
  const fixed =
    `{"t":"2026-01-01T00:00:00.000Z${head}""func":,"name":"","user":"","status":,"code":,"ms":,"edge":,"owner":,"ip":"","keyId":,"traceId":,"route":"api"}\n`
      .length + ACCESS_NUMBERS_CHARS;
  const len = (v: string | null) => (v === null ? 2 : v.length);
  return (e) => {
    const t = timestamp();
    // Counted by its strings' lengths (escapes aside): the 4 MiB bound stays about the text waiting.
    const chars = fixed + e.requestId.length + len(e.name) + len(e.user) + len(e.code) + len(e.ip) + len(e.keyId) + len(e.traceId);
    emit(
      () =>
        `{"t":"${t}${head}${str(e.requestId)},"func":${e.func},"name":${str(e.name)},"user":${str(e.user)},"status":${e.status},"code":${str(e.code)},"ms":${e.ms},"edge":${e.edge},"owner":${e.owner},"ip":${str(e.ip)},"keyId":${str(e.keyId)},"traceId":${str(e.traceId)},"route":"${e.route}"${e.sample === undefined ? "" : `,"sample":${e.sample}`}}\n`,
      false,
      chars,
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
    emit(line + "\n", LEVELS[lvl] >= LEVELS.warn);
  };
  return {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    child: (fields) => createLogger(level, { ...base, ...fields }),
  };
}
