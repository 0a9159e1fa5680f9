/**
 * Rate limiting for repeated warn lines (401s, upstream errors, timeouts): a flood of bad calls
 * must not become a flood of log lines. Per key, the first `perWindow` lines of each window are
 * written; the rest are counted, and the count is reported — on the next line of that key that
 * passes, or by `drain()` (called on a timer) as one summary line. Pure: the caller passes time.
 */
export interface LogLimiter {
  /** Whether a line of `key` may be written now, and how many of its lines were held back before it. */
  take(key: string, now: number): { ok: boolean; suppressed: number };
  /** Keys whose window ended with lines held back, and how many; their counts are reset. */
  drain(now: number): Array<{ key: string; suppressed: number }>;
}

export function createLogLimiter(perWindow = 10, windowMs = 10_000, maxKeys = 1000): LogLimiter {
  const keys = new Map<string, { start: number; written: number; held: number }>();
  return {
    take(key, now) {
      let k = keys.get(key);
      if (k === undefined) {
        // Bounded: keys come from codes and reasons, but never let them grow without end.
        if (keys.size >= maxKeys) keys.clear();
        k = { start: now, written: 0, held: 0 };
        keys.set(key, k);
      }
      let suppressed = 0;
      if (now - k.start >= windowMs) {
        suppressed = k.held;
        k.start = now;
        k.written = 0;
        k.held = 0;
      }
      if (k.written < perWindow) {
        k.written++;
        return { ok: true, suppressed };
      }
      k.held++;
      return { ok: false, suppressed: 0 };
    },
    drain(now) {
      const out: Array<{ key: string; suppressed: number }> = [];
      for (const [key, k] of keys) {
        if (now - k.start < windowMs) continue;
        if (k.held > 0) out.push({ key, suppressed: k.held });
        keys.delete(key);
      }
      return out;
    },
  };
}
