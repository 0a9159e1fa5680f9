/** Median/min/max over rounds, and the aggregate row of one contender in one case. */
import { errorCount, type WrkResult } from "./wrk.ts";

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]! };
}

/** One wrk run of one contender in one case. */
export interface RunRecord {
  scenario: string;
  caseId: string;
  contenderId: string;
  round: number;
  result: WrkResult;
  /** Peak RSS of the contender's whole process tree during the run. */
  treeRssPeak?: number;
  /** qdp only: peak of sum(workers[].rssBytes) from the stats endpoint. */
  workersRssPeak?: number;
  /** CPU seconds (user + system) of the contender's process tree during the run. */
  cpuSec?: number;
  /** Scenario-specific figures (scenario D: Redis CPU). */
  extra?: Record<string, number>;
}

/**
 * Successful responses per second: wrk's own req/s counts every response, and a stack that
 * answers 502 at once when its backlog is full would look faster for failing. Responses >= 400
 * are reported as errors instead.
 */
export function okRps(r: WrkResult): number {
  return r.durationSec > 0 ? Math.max(0, r.requests - r.errors.status) / r.durationSec : 0;
}

export interface Aggregate {
  caseId: string;
  contenderId: string;
  rounds: number;
  /** Successful (status < 400) responses per second. */
  rps: Spread;
  /** wrk's req/s, errors included. */
  wrkRps: Spread;
  p50: Spread;
  p99: Spread;
  /** Error counters summed over all rounds. */
  errors: { connect: number; read: number; write: number; timeout: number; status: number; total: number };
  exhausted: number;
  treeRss?: Spread;
  workersRss?: Spread;
  /** The server's CPU per successful call, µs (its whole process tree). */
  cpuUsPerOk?: Spread;
}

export function aggregate(records: RunRecord[]): Aggregate {
  const first = records[0]!;
  const sum = (f: (r: RunRecord) => number) => records.reduce((a, r) => a + f(r), 0);
  const opt = (f: (r: RunRecord) => number | undefined): Spread | undefined => {
    const v = records.map(f).filter((x): x is number => x !== undefined);
    return v.length ? spread(v) : undefined;
  };
  return {
    caseId: first.caseId,
    contenderId: first.contenderId,
    rounds: records.length,
    rps: spread(records.map((r) => okRps(r.result))),
    wrkRps: spread(records.map((r) => r.result.rps)),
    p50: spread(records.map((r) => r.result.latency.p50)),
    p99: spread(records.map((r) => r.result.latency.p99)),
    errors: {
      connect: sum((r) => r.result.errors.connect),
      read: sum((r) => r.result.errors.read),
      write: sum((r) => r.result.errors.write),
      timeout: sum((r) => r.result.errors.timeout),
      status: sum((r) => r.result.errors.status),
      total: sum((r) => errorCount(r.result.errors)),
    },
    exhausted: sum((r) => r.result.exhausted),
    treeRss: opt((r) => r.treeRssPeak),
    workersRss: opt((r) => r.workersRssPeak),
    cpuUsPerOk: opt((r) => {
      const ok = okRps(r.result) * r.result.durationSec;
      return r.cpuSec === undefined || ok <= 0 ? undefined : (r.cpuSec / ok) * 1e6;
    }),
  };
}

/** How a variant compared with a reference over rounds run side by side (bench/compare.ts). */
export interface Paired {
  /** Median of the per-round differences (variant − reference). */
  median: number;
  /** Rounds where the variant's figure was lower / higher than the reference's. */
  lower: number;
  higher: number;
  rounds: number;
}

/**
 * Per-round differences, paired by round. On this shared VM a whole run can drift by 40% within
 * minutes (bench/compare.ts), so medians of each variant alone can differ by more than the change
 * being measured; differences taken within each round cancel the drift both variants share, and
 * the counts of lower and higher rounds say whether a difference is consistent or a coin toss.
 */
export function paired(variant: number[], reference: number[]): Paired {
  const n = Math.min(variant.length, reference.length);
  const diffs: number[] = [];
  let lower = 0;
  let higher = 0;
  for (let i = 0; i < n; i++) {
    const d = variant[i]! - reference[i]!;
    if (!Number.isFinite(d)) continue;
    diffs.push(d);
    if (d < 0) lower++;
    else if (d > 0) higher++;
  }
  return { median: spread(diffs).median, lower, higher, rounds: diffs.length };
}
