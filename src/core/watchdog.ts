/**
 * The timing rules of the stuck-worker watchdog (QDP_STUCK_MS). Pure: the supervisor keeps the
 * clocks and asks these.
 *
 * A worker whose event loop is blocked (a CPU loop in a handler, a synchronous call that never
 * returns) still answers `/healthz` from the kernel's point of view — its sockets are open — but
 * runs nothing: not its calls, not its hop, not its IPC. So the judge must be another process:
 * each worker sends the supervisor a heartbeat over IPC from a timer, and a timer only fires when
 * the loop turns. A busy worker's loop still turns between callbacks (under saturating load the
 * measured lag stays far below a second: README, "Staying up"), so only a loop that has not
 * turned for QDP_STUCK_MS is judged stuck.
 */

/** Default QDP_STUCK_MS (README says why this value). */
export const DEFAULT_STUCK_MS = 10_000;

/** After SIGTERM, how long a stuck worker has before SIGKILL (it cannot drain with its loop blocked). */
export const STUCK_KILL_GRACE_MS = 1_000;

/** How often a worker samples its event-loop lag. */
export const LAG_SAMPLE_MS = 100;

/**
 * How often a worker sends its heartbeat: a fifth of QDP_STUCK_MS, at most once a second and at
 * least every 100 ms, so a late beat or two never looks like a stuck loop.
 */
export function heartbeatIntervalMs(stuckMs: number): number {
  if (stuckMs <= 0) return 1_000;
  return Math.max(100, Math.min(1_000, Math.floor(stuckMs / 5)));
}

/** How often the supervisor looks at the heartbeats. */
export function watchdogTickMs(stuckMs: number): number {
  return Math.max(50, Math.min(250, Math.floor(stuckMs / 8)));
}

/** Whether a worker last heard from at `lastBeatAt` is stuck at `now` (QDP_STUCK_MS=0: never). */
export function isStuck(stuckMs: number, lastBeatAt: number, now: number): boolean {
  return stuckMs > 0 && now - lastBeatAt > stuckMs;
}

/**
 * The supervisor's own loop can stall too (the host suspended, the process stopped, swap): then
 * every worker looks silent though none is stuck. A watchdog tick that comes this much later
 * than due means "my clock is not to be trusted": the supervisor restarts every worker's clock
 * instead of killing them all.
 */
export function supervisorStalled(stuckMs: number, tickMs: number, sinceLastTickMs: number): boolean {
  return sinceLastTickMs - tickMs > Math.max(1_000, stuckMs / 2);
}
