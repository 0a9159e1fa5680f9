/** What one worker reports to the supervisor for /stats and /metrics (CONTRACT.md §5). */
import type { DurationSeries } from "../ops/call-durations.ts";
import type { HistogramData } from "../ops/histogram.ts";

export interface WorkerStats {
  index: number;
  pid: number;
  gen: number;
  state: "starting" | "waiting-handoff" | "ready" | "handing-off" | "draining";
  startedAt: number;
  /** Calls answered by this worker's edge. */
  requests: number;
  /** Calls this worker ran for other edges. */
  hopsIn: number;
  /** Calls this worker's edge sent to owners. */
  hopsOut: number;
  /** Calls in progress at this edge. */
  inflight: number;
  /** Calls running in this worker (local + hopped in). */
  executing: number;
  rssBytes: number;
  heapBytes: number;
  /** Event-loop lag samples (every 100 ms) since start, seconds. */
  eventLoopLag: HistogramData;
  /** Largest event-loop lag in the last heartbeat interval, and since start, ms. */
  eventLoopLagMs: number;
  eventLoopLagMaxMs: number;
  sessions: number;
  sessionsEvicted: number;
  sessionsExpired: number;
  /** With a durable session store (QDP_SESSION_STORE=redis): its counters and latency. */
  sessionStore?: SessionStoreStats;
  nonces: number;
  /** Signed calls stamped at or before this unix second are refused (0 = none; see core/replay-fence.ts). */
  replayFence: number;
  /** Calls that had to wait for their owner, and those that gave up (503). */
  ownerWaits: number;
  ownerUnavailable: number;
  /** Calls waiting for an owner now. */
  waitingForOwner: number;
  peersUp: number;
  hopLatency: HistogramData;
  /** Hop frames sent and socket writes used for them (frames per write = batching). */
  hopFrames: number;
  hopWrites: number;
  errors: Record<string, number>;
  /** Clients that closed their connection mid-request or before their answer; not errors. */
  clientAborts: number;
  /** Open connections on the public (and direct) port. */
  connections: number;
  upstream: Record<string, { calls: number; errors: number; timeouts: number; latency: HistogramData }>;
  /** User + system CPU seconds of the process. */
  cpuSeconds: number;
  /** Open file descriptors, sockets included (null without /proc). */
  openFds: number | null;
  /** Call durations by function and outcome (qdp_request_duration_seconds). */
  durations: DurationSeries[];
}

/** What a worker's durable session store did (absent with QDP_SESSION_STORE=memory). */
export interface SessionStoreStats {
  /** Sessions read from the store (misses: first call after a start, a crash, a move). */
  loads: number;
  /** Freshness re-checks of a copy older than QDP_SESSION_FRESH_MS. */
  checks: number;
  /** Changes written. */
  stores: number;
  /** Writes refused because another owner stored a newer version (503 SESSION_CONFLICT). */
  conflicts: number;
  /** Loads, checks and writes that failed or timed out (503 SESSION_UNAVAILABLE). */
  errors: number;
  /** Latency of every store operation. */
  latency: HistogramData;
}
