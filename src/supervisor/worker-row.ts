/**
 * One worker's row of the /stats document (CONTRACT.md §5): what its process answered, over the
 * counters its earlier processes carried, with what the supervisor itself knows of it (restarts,
 * recycling, the watchdog's heartbeat). Pure: the supervisor gathers, this assembles.
 */
import type { RecycleReason } from "../core/recycle.ts";
import type { ClusterStats, WorkerStats, WorkerUpkeep } from "../types.ts";

/** What the supervisor keeps per index that a row needs. */
export interface SlotView {
  index: number;
  proc: { pid: number } | null;
  state: string;
  restarts: number;
  /** Counters of earlier processes of this index, so totals survive restarts. */
  carried: { requests: number; hopsIn: number; hopsOut: number };
  beat: { handled: number; rssBytes: number } | null;
  lastBeatAt: number;
  recycles: Record<RecycleReason, number>;
  stuckKills: number;
}

/**
 * @param w what the worker's process answered, or undefined when it did not answer in time
 * @param requestLimit the process's QDP_MAX_REQUESTS limit with jitter (0 = none)
 */
export function workerRow(s: SlotView, w: WorkerStats | undefined, requestLimit: number, now: number): ClusterStats["workers"][number] {
  const base = { requests: s.carried.requests, hopsIn: s.carried.hopsIn, hopsOut: s.carried.hopsOut };
  const upkeep: WorkerUpkeep = {
    recycles: { ...s.recycles },
    stuckKills: s.stuckKills,
    handled: s.beat?.handled ?? 0,
    requestLimit,
    heartbeatAgeMs: s.lastBeatAt > 0 && s.proc ? now - s.lastBeatAt : null,
  };
  if (!w) {
    // A ready worker that does not answer its stats is not serving either: say so before
    // the watchdog's verdict (QDP_STUCK_MS) instead of showing it ready.
    const state = s.state === "ready" && s.proc ? "unresponsive" : s.state;
    const rssBytes = s.beat?.rssBytes ?? 0;
    return {
      index: s.index,
      pid: s.proc?.pid ?? null,
      state,
      requests: base.requests,
      hopsIn: base.hopsIn,
      hopsOut: base.hopsOut,
      inflight: 0,
      rssBytes,
      restarts: s.restarts,
      ...upkeep,
    };
  }
  return {
    ...w,
    ...upkeep,
    state: s.state === "ready" ? w.state : s.state,
    requests: base.requests + w.requests,
    hopsIn: base.hopsIn + w.hopsIn,
    hopsOut: base.hopsOut + w.hopsOut,
    restarts: s.restarts,
    uptimeSec: Math.round((now - w.startedAt) / 1000),
  };
}
