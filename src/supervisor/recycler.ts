/**
 * Recycling (QDP_MAX_REQUESTS, QDP_MAX_REQUESTS_JITTER, QDP_MAX_RSS), the supervisor's side.
 * Judged on each heartbeat; a worker over its limit is replaced through the same hand-off as a
 * rolling reload (the supervisor's `replace`), so no call and no session is lost. At most one at a
 * time, never while a reload runs or waits (`blocked`), and with a back-off when workers reach
 * their limit soon after they start (the rules are in core/recycle.ts).
 */
import { nextRecycleStreak, recycleDelayMs, recycleReason, requestLimit, type RecycleLimits, type RecycleReason } from "../core/recycle.ts";
import type { Logger } from "../services/types.ts";
import type { Beat } from "../worker/heartbeat.ts";

/** What the recycler needs of an index's slot. */
export interface RecycleSlot {
  index: number;
  state: string;
  replacing: boolean;
  /** When the current process became the index's. */
  startedAt: number;
  recycles: Record<RecycleReason, number>;
  proc: { pid: number } | null;
}

export interface Recycler<P extends { pid: number }> {
  /** Draws a new process's own request limit (with jitter). */
  assign(proc: P): void;
  /** The process's request limit; 0 = none. */
  limitOf(proc: P): number;
  /** A heartbeat from the index's current process: recycle it if it is due and nothing holds it back. */
  consider(slot: RecycleSlot, proc: P, beat: Beat): void;
  /** Milliseconds before the next recycle may start. */
  backoffMs(): number;
}

export function createRecycler<P extends { pid: number }>(o: {
  limits: RecycleLimits;
  log: Logger;
  /** True while stopping or while a reload runs or waits. */
  blocked: () => boolean;
  /** Replaces the index's worker through the hand-off; false if the replacement did not come up. */
  replace: (slot: RecycleSlot) => Promise<boolean>;
}): Recycler<P> {
  const { limits, log } = o;
  const requestLimits = new WeakMap<P, number>();
  /** Processes already logged as due while the back-off holds. */
  const dueLogged = new WeakSet<P>();
  let busy = false;
  let streak = 0;
  let notBefore = 0;

  return {
    assign(proc) {
      requestLimits.set(proc, requestLimit(limits));
    },
    limitOf(proc) {
      return requestLimits.get(proc) ?? 0;
    },
    backoffMs() {
      return Math.max(0, notBefore - Date.now());
    },
    consider(slot, proc, beat) {
      if (busy || o.blocked() || slot.state !== "ready" || slot.replacing || slot.proc !== proc) return;
      const limit = requestLimits.get(proc) ?? 0;
      const reason = recycleReason(limits, limit, beat);
      if (!reason) return;
      const now = Date.now();
      const facts = {
        index: slot.index,
        pid: proc.pid,
        reason,
        handled: beat.handled,
        requestLimit: limit,
        rssBytes: beat.rssBytes,
        maxRssBytes: limits.maxRssBytes,
      };
      if (now < notBefore) {
        if (!dueLogged.has(proc)) log.info("worker due for recycling; waiting for the back-off", { ...facts, waitMs: notBefore - now });
        dueLogged.add(proc);
        return;
      }
      busy = true;
      const lived = now - slot.startedAt;
      streak = nextRecycleStreak(streak, lived);
      log.info("recycling worker", { ...facts, livedMs: lived });
      o.replace(slot)
        .then((ok) => {
          if (ok) {
            slot.recycles[reason]++;
            log.info("worker recycled", { index: slot.index, oldPid: proc.pid, newPid: slot.proc?.pid, reason });
          } else {
            // The replacement did not start: the old worker keeps serving; try again after a wait.
            streak = Math.max(streak, 2);
            log.error("recycling: the replacement did not become ready; keeping the old worker", { index: slot.index, reason });
          }
          const delay = recycleDelayMs(streak);
          notBefore = Date.now() + delay;
          if (delay > 0) {
            log.warn(
              "workers reach their recycling limit soon after they start; the next recycle waits (raise QDP_MAX_REQUESTS or QDP_MAX_RSS if this repeats)",
              {
                reason,
                livedMs: lived,
                waitMs: delay,
                streak,
              },
            );
          }
        })
        .catch((err) => log.error("recycling failed", { err }))
        .finally(() => {
          busy = false;
        });
    },
  };
}
