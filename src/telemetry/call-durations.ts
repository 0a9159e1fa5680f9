/**
 * Per-function call durations by outcome (`qdp_request_duration_seconds{func, code}`): one
 * histogram per (function, code) pair seen. Both label sets are bounded — functions are the
 * registered ones (anything else counts as `unknown`), codes are the catalogue's plus `OK`.
 */
import { Histogram, type HistogramData } from "./histogram.ts";

export interface DurationSeries {
  /** Function number, or `unknown` (no such function, or the call failed before it was known). */
  func: string;
  /** `OK` or the error code. */
  code: string;
  latency: HistogramData;
}

export class CallDurations {
  private readonly byFunc = new Map<string, Map<string, Histogram>>();

  observe(func: string, code: string, seconds: number): void {
    let codes = this.byFunc.get(func);
    if (codes === undefined) this.byFunc.set(func, (codes = new Map()));
    let h = codes.get(code);
    if (h === undefined) codes.set(code, (h = new Histogram()));
    h.observe(seconds);
  }

  toJSON(): DurationSeries[] {
    const out: DurationSeries[] = [];
    for (const [func, codes] of this.byFunc) for (const [code, h] of codes) out.push({ func, code, latency: h.toJSON() });
    return out;
  }
}
