/**
 * A fixed-bucket latency histogram (Prometheus style, cumulative on export). Cheap enough for
 * the hot path: one comparison loop over a dozen bounds.
 */

/** Bucket upper bounds in seconds. */
export const LATENCY_BUCKETS = [
  0.000025, 0.00005, 0.000075, 0.0001, 0.00015, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30,
] as const;

export interface HistogramData {
  buckets: number[];
  count: number;
  sum: number;
}

export class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  count = 0;
  sum = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sum += seconds;
  }

  toJSON(): HistogramData {
    return { buckets: [...this.counts], count: this.count, sum: this.sum };
  }

  /** Adds `h` into `into` (bucket by bucket), e.g. to total several workers' histograms. */
  static addInto(into: HistogramData, h: HistogramData): void {
    h.buckets.forEach((n, i) => {
      into.buckets[i] = (into.buckets[i] ?? 0) + n;
    });
    into.count += h.count;
    into.sum += h.sum;
  }

  /** Approximate quantile (upper bound of the bucket holding it), in seconds. */
  static quantile(h: HistogramData, q: number): number | null {
    if (h.count === 0) return null;
    const target = q * h.count;
    let acc = 0;
    for (let i = 0; i < h.buckets.length; i++) {
      acc += h.buckets[i]!;
      if (acc >= target) return LATENCY_BUCKETS[i] ?? Infinity;
    }
    return null;
  }
}
