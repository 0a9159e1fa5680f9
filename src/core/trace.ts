/**
 * W3C Trace Context (`traceparent`): a call continues the trace UAP started, or starts one, and
 * hands it on to the upstreams it calls, so one trace id links UAP, qdp and the upstreams in
 * logs and records. Pure TypeScript (Web Crypto's getRandomValues only).
 *
 * Cheap on purpose, since every call may need one: ids come from a pool of random bytes
 * refilled 4 KiB at a time and a byte → hex table, and callers make the context only when a
 * handler uses it (its trace id, log, upstream or records).
 */

/** The trace a call belongs to, and the span this server opened for it. */
export interface TraceContext {
  /** 32 lower-case hex digits, never all zero. */
  traceId: string;
  /** This call's span: 16 lower-case hex digits. */
  spanId: string;
  /** Trace flags, 2 hex digits (01 = sampled). */
  flags: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const pool = new Uint8Array(4096);
let used = pool.length;

function hex(bytes: number): string {
  if (used + bytes > pool.length) {
    crypto.getRandomValues(pool);
    used = 0;
  }
  let s = "";
  for (let i = 0; i < bytes; i++) s += HEX[pool[used++]!]!;
  return s;
}

/** Whether a header value is a traceparent this server continues (W3C rules: see traceFrom). */
export function isValidTraceparent(header: string): boolean {
  const m = TRACEPARENT.exec(header);
  return m !== null && m[1] !== "ff" && !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!) && (m[1] !== "00" || m[5] === undefined);
}

/**
 * The call's trace: the caller's `traceparent` continued with a new span, or a new trace when
 * the header is absent or invalid (version ff, all-zero ids, extra fields on version 00 and bad
 * syntax are ignored, as the W3C recommendation says).
 */
export function traceFrom(header: string | null | undefined): TraceContext {
  const h = header?.trim();
  if (h !== undefined && isValidTraceparent(h)) return { traceId: h.slice(3, 35), spanId: hex(8), flags: h.slice(53, 55) };
  return { traceId: hex(16), spanId: hex(8), flags: "01" };
}

/** The `traceparent` naming this call's span as the parent (what an upstream request carries). */
export function traceparentOf(t: TraceContext): string {
  return `00-${t.traceId}-${t.spanId}-${t.flags}`;
}
