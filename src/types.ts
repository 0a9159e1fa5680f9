/**
 * The types shared across the tree — the logger every part writes to, what a worker reports,
 * and the /stats document the supervisor serves and the CLI reads — in one module that imports
 * nothing above it (only leaf types), so no import cycle can run through them.
 */
import type { RecycleReason } from "./core/recycle.ts";
import type { DurationSeries } from "./telemetry/call-durations.ts";
import type { HistogramData } from "./telemetry/histogram.ts";

/** Structured logger; every line carries the worker index and, in a call, the request id. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** What one worker reports to the supervisor for /stats and /metrics (CONTRACT.md §5). */
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
  /** With a shared replay store (QDP_REPLAY_STORE=redis): its counters and claim latency. */
  replayStore?: ReplayStoreStats;
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
  /** The record store's operations (insert, get, find) that ran, with their latency. */
  records?: Partial<Record<RecordOp, RecordOpStats>>;
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

/** What a worker's shared replay store did (absent with QDP_REPLAY_STORE=memory). */
export interface ReplayStoreStats {
  /** Nonces claimed cluster-wide (the call went on). */
  claims: number;
  /** Nonces already claimed elsewhere: replays caught by the shared store (401). */
  replays: number;
  /** Claims without an answer in time (503 OVERLOADED). */
  errors: number;
  /** Latency of every claim. */
  latency: HistogramData;
}

/** The latest rolling reload, for `qdp reload --wait` and /stats. */
export interface ReloadReport {
  /** 1-based sequence number of reloads asked for (SIGHUP or `qdp reload`). */
  seq: number;
  state: "running" | "done" | "failed";
  startedAt: number;
  finishedAt: number | null;
  /** Why it failed: the replacement's own message when it gave one. */
  error: string | null;
}

/** The record store's operations, as timed for /stats and /metrics. */
export type RecordOp = "insert" | "get" | "find";

/** One record store operation in /stats: calls, failures, latency. */
export interface RecordOpStats {
  calls: number;
  errors: number;
  latency: HistogramData;
}

/** Per worker in /stats: what recycling and the watchdog did and see. */
export interface WorkerUpkeep {
  /** Replacements of this index by reason (QDP_MAX_REQUESTS, QDP_MAX_RSS). */
  recycles: Record<RecycleReason, number>;
  /** Processes of this index the watchdog killed (QDP_STUCK_MS). */
  stuckKills: number;
  /** Calls the current process handled, and its QDP_MAX_REQUESTS limit with jitter (0 = none). */
  handled: number;
  requestLimit: number;
  /** Milliseconds since the current process's last heartbeat (null: none yet). */
  heartbeatAgeMs: number | null;
}

export interface ClusterStats {
  supervisor: {
    pid: number;
    uptimeSec: number;
    reloads: number;
    /** Reloads that stopped because a replacement could not start. */
    reloadFailures: number;
    lastReload: ReloadReport | null;
    host: string;
    port: number;
    statsPort: number;
    workers: number;
    directPortBase: number | null;
    /** Recycles by reason and watchdog kills, whole cluster. */
    recycles: Record<RecycleReason, number>;
    stuckKills: number;
    /** Milliseconds before the next recycle may start (the back-off), 0 when none is held back. */
    recycleBackoffMs: number;
    version: string;
    bun: string;
    /** The supervisor's own CPU seconds and resident memory. */
    cpuSeconds: number;
    rssBytes: number;
  };
  workers: Array<
    {
      index: number;
      pid: number | null;
      state: string;
      requests: number;
      hopsIn: number;
      hopsOut: number;
      inflight: number;
      rssBytes: number;
      restarts: number;
      uptimeSec?: number;
    } & WorkerUpkeep &
      Partial<Omit<WorkerStats, "index" | "pid" | "state" | "requests" | "hopsIn" | "hopsOut" | "inflight" | "rssBytes">>
  >;
}

/** The /stats document as the CLI and the tests read it: the same document. */
export type StatsDoc = ClusterStats;
