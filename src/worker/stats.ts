/** What one worker reports to the supervisor for /stats and /metrics (CONTRACT.md §5). */
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
  sessions: number;
  sessionsEvicted: number;
  sessionsExpired: number;
  nonces: number;
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
}
