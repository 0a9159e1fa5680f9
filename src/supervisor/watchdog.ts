/**
 * The stuck-worker watchdog (QDP_STUCK_MS), the supervisor's side. Workers beat over IPC from a
 * timer (worker/heartbeat.ts); a ready worker whose beats stopped has a blocked event loop — it
 * cannot hand off, drain or even run its SIGTERM handler — so it is killed (SIGTERM, then SIGKILL
 * after STUCK_KILL_GRACE_MS) and the supervisor respawns it at its index like a crashed one. The
 * timing rules are in core/watchdog.ts.
 */
import { isStuck, STUCK_KILL_GRACE_MS, supervisorStalled, watchdogTickMs } from "../core/watchdog.ts";
import type { Logger } from "../services/types.ts";
import { callBoardPath, readCallBoard } from "../worker/call-board.ts";

/** What the watchdog needs of an index's slot. */
export interface WatchedSlot {
  index: number;
  gen: number;
  state: string;
  /** A reload or a recycle is replacing this index: its own timeouts apply. */
  replacing: boolean;
  /** When the current process last beat (or became ready); 0 = not watched yet. */
  lastBeatAt: number;
  proc: { pid: number } | null;
}

/**
 * Looks at every slot each watchdogTickMs(stuckMs) and calls `onStuck` for a ready one whose
 * last beat is older than `stuckMs`. Returns a stop function; `stuckMs` 0 watches nothing.
 */
export function startWatchdog(o: {
  stuckMs: number;
  log: Logger;
  slots: () => Iterable<WatchedSlot>;
  onStuck: (slot: WatchedSlot, silentMs: number) => void;
}): () => void {
  if (o.stuckMs <= 0) return () => {};
  const tickMs = watchdogTickMs(o.stuckMs);
  let lastTick = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    if (supervisorStalled(o.stuckMs, tickMs, now - lastTick)) {
      o.log.warn("the supervisor itself was paused; the watchdog restarts every worker's clock instead of judging them", { pausedMs: now - lastTick });
      for (const s of o.slots()) if (s.lastBeatAt > 0) s.lastBeatAt = now;
    }
    lastTick = now;
    for (const s of o.slots()) {
      if (s.proc && s.state === "ready" && !s.replacing && s.lastBeatAt > 0 && isStuck(o.stuckMs, s.lastBeatAt, now)) o.onStuck(s, now - s.lastBeatAt);
    }
  }, tickMs);
  return () => clearInterval(timer);
}

/** A process the watchdog can kill. */
export interface KillableProc {
  pid: number;
  exitCode: number | null;
  signalCode: string | number | null;
  kill(signal: "SIGTERM" | "SIGKILL"): void;
}

/**
 * Logs a stuck worker with what it was running (its call board), then SIGTERM and, after
 * STUCK_KILL_GRACE_MS, SIGKILL — unless its loop turned again meanwhile (`beatSince`), in which
 * case it is draining on the SIGTERM and gets QDP_GRACE_MS to finish.
 */
export function killStuckWorker(o: {
  proc: KillableProc;
  index: number;
  gen: number;
  runtimeDir: string;
  silentMs: number;
  stuckMs: number;
  graceMs: number;
  log: Logger;
  beatSince: (t: number) => boolean;
}): void {
  const { proc, log } = o;
  const board = readCallBoard(callBoardPath(o.runtimeDir, o.index, o.gen));
  const call = board && { funcNo: board.funcNo, name: board.name, requestId: board.requestId, user: board.user, enteredMsAgo: Date.now() - board.enteredAt };
  log.error("worker stuck: no heartbeat, its event loop is blocked; killing it (it is respawned at its index like a crash)", {
    index: o.index,
    pid: proc.pid,
    gen: o.gen,
    silentMs: o.silentMs,
    stuckMs: o.stuckMs,
    // Inside a handler's synchronous part: that call blocked the loop. Otherwise only the last
    // handler entered is known; the loop is blocked elsewhere (after an await, or our own code).
    running: board?.inside ? call : null,
    lastCallEntered: board && !board.inside ? call : undefined,
  });
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  proc.kill("SIGTERM");
  const killedAt = Date.now();
  setTimeout(() => {
    if (!alive()) return;
    if (o.beatSince(killedAt)) {
      log.warn("stuck worker recovered and is draining", { index: o.index, pid: proc.pid });
      setTimeout(() => alive() && proc.kill("SIGKILL"), o.graceMs + 1000);
      return;
    }
    proc.kill("SIGKILL");
  }, STUCK_KILL_GRACE_MS);
}
