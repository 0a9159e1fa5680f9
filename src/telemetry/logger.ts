/**
 * Structured JSON logs, one object per line on stdout, written without blocking the event loop;
 * if the reader falls far behind, lines are dropped and counted rather than growing memory
 * without bound.
 *
 * When lines are written: warn and error lines at the end of their tick; info and debug lines
 * (the access log: one per call) within {@link LAZY_FLUSH_MS}, or as soon as
 * {@link LAZY_FLUSH_BYTES} are waiting. Lines wait encoded in one buffer and leave per flush in
 * writes of whole lines up to {@link ATOMIC_WRITE_BYTES}: one write(2) per line cost ~8 µs per
 * call at -c100 with the access log on (bench/ladder.ts: 38.9 vs 30.9 µs with it off), batched
 * writes 2–4 µs, and access lines encoded as their call ends ~1 µs less again
 * (createAccessWriter). The 4 MiB drop bound counts exact bytes. A worker killed
 * with -9 loses at most the last {@link LAZY_FLUSH_MS} of info lines; a graceful exit and
 * process.exit write everything, in order.
 */
import { writeSync } from "node:fs";
import type { LogLevel } from "../core/config.ts";
import type { Logger } from "../services/types.ts";

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const MAX_BUFFERED = 4 * 1024 * 1024;
/** Longest an info line waits for its write. */
export const LAZY_FLUSH_MS = 50;
/** Bytes of waiting lines that are written at once, whatever their level. */
const LAZY_FLUSH_BYTES = 64 * 1024;
/** The arena's first size: one lazy flush's worth and a long line. */
const LAZY_FLUSH_BYTES_INIT = LAZY_FLUSH_BYTES + 16 * 1024;
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
 * Lines waiting for the next flush, as UTF-8 in one buffer (`arena[0, used)`), so stdout gets few
 * writes (takeWrites). An access line is encoded straight into it: see {@link createAccessWriter}.
 */
let arena = new Uint8Array(LAZY_FLUSH_BYTES_INIT);
let used = 0;
/**
 * Whole-line writes not written yet, oldest first (the reader had no room for the first; after
 * a partial write to a socket or terminal, the first is what is left of it).
 */
let ready: Uint8Array[] = [];
/** Bytes in `ready`. */
let readyBytes = 0;
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
const encoder = new TextEncoder();

/** The bytes lines waiting for a flush and writes not yet written hold (the drop bound's count). */
function buffered(): number {
  return used + readyBytes;
}

/**
 * Room for `bytes` more in the arena. The first line after takeWrites (nothing waits) starts the
 * arena over: the same one once every write is written, a fresh one while `ready` may still hold
 * views of it, or after a burst grew it past a few flushes' worth (so a burst does not keep
 * megabytes for good).
 */
function reserve(bytes: number): void {
  if (used === 0 && (ready.length > 0 || arena.length > 4 * LAZY_FLUSH_BYTES_INIT)) arena = new Uint8Array(Math.max(LAZY_FLUSH_BYTES_INIT, bytes));
  if (used + bytes <= arena.length) return;
  const next = new Uint8Array(Math.max(arena.length * 2, used + bytes));
  next.set(arena.subarray(0, used));
  arena = next;
}

/**
 * Moves the waiting lines to `ready` as writes of whole lines, each at most ATOMIC_WRITE_BYTES
 * (a longer line alone): cut after a newline, as every line ends with one and has none inside
 * (JSON escapes it), so no line's size is measured.
 */
function takeWrites(): void {
  if (used === 0) return;
  const bytes = arena.subarray(0, used);
  readyBytes += used;
  used = 0;
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
    queue(JSON.stringify({ t: new Date().toISOString(), level: "warn", msg: "log lines dropped", dropped }) + "\n");
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
      ready = [];
      readyBytes = 0;
      break;
    }
    readyBytes -= n;
    wrote = true;
    if (n < w.length) ready[0] = w.subarray(n);
    else ready.shift();
  }
  retryMs = RETRY_MIN_MS;
  for (const done of drained.splice(0)) done();
}

/** Adds a line (ending in a newline) to those waiting. */
function queue(line: string): void {
  reserve(line.length * 3);
  used += encoder.encodeInto(line, arena.subarray(used)).written;
}

/** Whether a line must be dropped (too much waits), counting it if so. */
function full(): boolean {
  if (buffered() <= MAX_BUFFERED) return false;
  dropped++;
  return true;
}

/** Schedules the flush of what was just queued: at the end of the tick, or lazily. */
function schedule(urgent: boolean): void {
  if (scheduled) return;
  if (urgent || used >= LAZY_FLUSH_BYTES) {
    scheduled = true;
    setImmediate(flush);
  } else if (lazy === null) {
    lazy = setTimeout(flush, LAZY_FLUSH_MS);
    lazy.unref();
  }
}

/** Queues a line unless too much waits, and schedules its flush. */
function emit(line: string, urgent: boolean): void {
  if (full()) return;
  queue(line);
  schedule(urgent);
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
  readyBytes = 0;
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
function timestamp(now = Date.now()): string {
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

/** Writes ASCII text (the line's fixed parts, times, numbers) at `at`; returns where it ends. */
function ascii(buf: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) buf[at++] = text.charCodeAt(i);
  return at;
}

/**
 * Writes a string as JSON (UTF-8) at `at`, byte for byte what JSON.stringify writes; returns
 * where it ends. Most fields of an access line (request ids, user ids, names) are printable ASCII
 * without `"` or `\`: those are copied between quotes. Anything else goes through JSON.stringify,
 * so caller-chosen text cannot break the line. Needs room for 6 bytes per character plus 2.
 */
export function writeJsonString(buf: Uint8Array, at: number, v: string | null): number {
  if (v === null) return ascii(buf, at, "null");
  // One pass: copied as checked; the first character that needs escaping starts over from `start`.
  const start = at;
  buf[at++] = 0x22;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return start + encoder.encodeInto(JSON.stringify(v), buf.subarray(start)).written;
    buf[at++] = c;
  }
  buf[at++] = 0x22;
  return at;
}

/** A number or null as JSON (null for NaN and the infinities, as JSON.stringify writes them). */
const jsonNumber = (buf: Uint8Array, at: number, n: number | null): number => ascii(buf, at, n !== null && Number.isFinite(n) ? String(n) : "null");

/**
 * A call's `ms` (whole microseconds over 1000, as call-handler.ts rounds it) as JSON, byte for
 * byte what JSON.stringify writes: the whole part and up to three decimals without trailing
 * zeros, which is the shortest text of such a number, written without turning it into a string
 * first (String() of a fraction cost ~0.2 µs a line). Any other number goes through jsonNumber.
 */
export function writeMillis(buf: Uint8Array, at: number, ms: number): number {
  const us = Math.round(ms * 1000);
  if (!(us >= 0 && us < 1e15 && us / 1000 === ms)) return jsonNumber(buf, at, ms);
  const whole = Math.floor(us / 1000);
  let frac = us - whole * 1000;
  at = ascii(buf, at, String(whole));
  if (frac === 0) return at;
  buf[at++] = 0x2e;
  for (let unit = 100; frac !== 0; unit /= 10) {
    const digit = Math.floor(frac / unit);
    buf[at++] = 0x30 + digit;
    frac -= digit * unit;
  }
  return at;
}

/** The bytes of an access line beside its strings': its fixed text, time and numbers. */
const ACCESS_FIXED_BYTES = 512;

/**
 * The access log's writer: the same JSON line `log.info("call", entry)` would write, byte for
 * byte, encoded straight into the waiting lines' buffer instead of made as an object spread and
 * `JSON.stringify`, or as a template string. Strings that come from callers go through
 * JSON.stringify, so they cannot break the line.
 *
 * Nothing of the call is kept: no string, function or entry waits for the flush, and the flush
 * has nothing left to build. Measured with bench/compare.ts (8 paired rounds of bench A (c)'s
 * signed calls at -c500, worker CPU per call), the writer before this one cost 3.8–3.9 µs against
 * no access log: ~1.6 µs of it was keeping the entry's strings until the flush (a function over
 * the entry, or the entry itself), ~1 µs queueing it, the rest building and writing the text;
 * encoding the line into bytes as the call ends cost ~1 µs.
 */
export function createAccessWriter(level: LogLevel, base: { worker: number; pid: number }): (e: AccessEntry) => void {
  if (LEVELS.info < LEVELS[level]) return () => {};
  const head = `","level":"info","msg":"call","worker":${base.worker},"pid":${base.pid},"requestId":`;
  const len = (v: string | null) => (v === null ? 0 : v.length);
  // The line's start up to the request id changes once a millisecond: its bytes are made then and
  // copied into each line of that millisecond (at 15 lines a millisecond, ~0.1 µs a line less).
  let prefixMs = -1;
  let prefix = new Uint8Array(0);
  return (e) => {
    if (full()) return;
    // Room for the worst case: every character of every string escaped as \uXXXX.
    reserve(ACCESS_FIXED_BYTES + head.length + 6 * (e.requestId.length + len(e.name) + len(e.user) + len(e.code) + len(e.ip) + len(e.keyId) + len(e.traceId)));
    const now = Date.now();
    if (now !== prefixMs) {
      prefixMs = now;
      prefix = encoder.encode(`{"t":"${timestamp(now)}${head}`);
    }
    const b = arena;
    let at = used;
    for (let i = 0; i < prefix.length; i++) b[at++] = prefix[i]!;
    at = writeJsonString(b, at, e.requestId);
    at = ascii(b, at, ',"func":');
    at = jsonNumber(b, at, e.func);
    at = ascii(b, at, ',"name":');
    at = writeJsonString(b, at, e.name);
    at = ascii(b, at, ',"user":');
    at = writeJsonString(b, at, e.user);
    at = ascii(b, at, ',"status":');
    at = jsonNumber(b, at, e.status);
    at = ascii(b, at, ',"code":');
    at = writeJsonString(b, at, e.code);
    at = ascii(b, at, ',"ms":');
    at = writeMillis(b, at, e.ms);
    at = ascii(b, at, ',"edge":');
    at = jsonNumber(b, at, e.edge);
    at = ascii(b, at, ',"owner":');
    at = jsonNumber(b, at, e.owner);
    at = ascii(b, at, ',"ip":');
    at = writeJsonString(b, at, e.ip);
    at = ascii(b, at, ',"keyId":');
    at = writeJsonString(b, at, e.keyId);
    at = ascii(b, at, ',"traceId":');
    at = writeJsonString(b, at, e.traceId);
    at = ascii(b, at, ',"route":');
    at = writeJsonString(b, at, e.route);
    if (e.sample !== undefined) {
      at = ascii(b, at, ',"sample":');
      at = jsonNumber(b, at, e.sample);
    }
    used = ascii(b, at, "}\n");
    schedule(false);
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
