/**
 * W3C Trace Context (`traceparent`): a call continues the trace UAP started, or starts one, and
 * hands it on to the upstreams it calls, so one trace id links UAP, qdp and the upstreams in
 * logs and records. Pure TypeScript (Web Crypto's getRandomValues only).
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

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

function hex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/**
 * The call's trace: the caller's `traceparent` continued with a new span, or a new trace when
 * the header is absent or invalid (version ff, all-zero ids and bad syntax are ignored, as the
 * W3C recommendation says).
 */
export function traceFrom(header: string | null): TraceContext {
  const m = header === null ? null : TRACEPARENT.exec(header.trim());
  if (m !== null && m[1] !== "ff" && !/^0+$/.test(m[2]!) && !/^0+$/.test(m[3]!) && (m[1] !== "00" || m[0].length === 55)) {
    return { traceId: m[2]!, spanId: hex(8), flags: m[4]! };
  }
  return { traceId: hex(16), spanId: hex(8), flags: "01" };
}

/** The `traceparent` naming this call's span as the parent (what an upstream request carries). */
export function traceparentOf(t: TraceContext): string {
  return `00-${t.traceId}-${t.spanId}-${t.flags}`;
}

/** Reads a context written by {@link traceparentOf} (the hop carries it that way). */
export function parseOwnTraceparent(text: string): TraceContext | null {
  const m = TRACEPARENT.exec(text);
  return m === null ? null : { traceId: m[2]!, spanId: m[3]!, flags: m[4]! };
}
