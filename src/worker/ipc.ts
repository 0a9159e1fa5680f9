/**
 * Messages between the supervisor and its workers (Bun's IPC channel). The supervisor never
 * does request work and a worker never needs it to serve a call: these carry only life-cycle,
 * peer addresses and stats.
 */
import type { PeerAddress } from "../affinity/hop-client.ts";
import type { Beat } from "./heartbeat.ts";
import type { WorkerStats } from "../types.ts";

/** Supervisor → worker. */
export type ToWorker =
  | { type: "peers"; peers: PeerAddress[] }
  | { type: "stats"; id: number }
  /** Rolling reload: hand this index's sessions to the replacement, then drain and exit. */
  | { type: "handoff" }
  /** Graceful stop: drain and exit. */
  | { type: "drain" }
  /** Re-read QDP_UAP_KEYS_FILE. */
  | { type: "reload-keys" };

/** Worker → supervisor. */
export type FromWorker =
  | { type: "ready"; index: number; gen: number; hopPath: string }
  | { type: "stats"; id: number; stats: WorkerStats }
  | { type: "handed-off"; sessions: number }
  | { type: "draining" }
  /** Every heartbeatIntervalMs(QDP_STUCK_MS) from a timer: the watchdog's proof of a turning loop. */
  | ({ type: "heartbeat" } & Beat)
  | { type: "fatal"; message: string };
