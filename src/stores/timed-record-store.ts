/**
 * The record store with a stopwatch: latency and failures per operation (insert, get, find), for
 * `qdp_record_store_latency_seconds` and `qdp_record_store_errors_total`. A slow database is the
 * first thing to rule out when business calls slow down, and a call's duration alone cannot say
 * which of its waits grew.
 */
import { Histogram } from "../telemetry/histogram.ts";
import type { RecordOp, RecordOpStats } from "../types.ts";
import type { RecordStore } from "./record-store.ts";

export interface TimedRecordStore extends RecordStore {
  /** Per operation that ran at least once. */
  stats(): Partial<Record<RecordOp, RecordOpStats>>;
}

export function timedRecordStore(store: RecordStore): TimedRecordStore {
  const ops = new Map<RecordOp, { calls: number; errors: number; latency: Histogram }>();
  const timed = <T>(op: RecordOp, run: () => Promise<T>): Promise<T> => {
    let s = ops.get(op);
    if (!s) ops.set(op, (s = { calls: 0, errors: 0, latency: new Histogram() }));
    const stat = s;
    const t0 = performance.now();
    stat.calls++;
    return run().then(
      (v) => {
        stat.latency.observe((performance.now() - t0) / 1000);
        return v;
      },
      (err: unknown) => {
        stat.errors++;
        stat.latency.observe((performance.now() - t0) / 1000);
        throw err;
      },
    );
  };
  return {
    kind: store.kind,
    insert: (collection, record) => timed("insert", () => store.insert(collection, record)),
    get: (collection, id) => timed("get", () => store.get(collection, id)),
    find: (collection, query) => timed("find", () => store.find(collection, query)),
    close: () => store.close(),
    stats() {
      const out: Partial<Record<RecordOp, RecordOpStats>> = {};
      for (const [op, s] of ops) out[op] = { calls: s.calls, errors: s.errors, latency: s.latency.toJSON() };
      return out;
    },
  };
}
