/**
 * When to recycle a worker (QDP_MAX_REQUESTS, QDP_MAX_REQUESTS_JITTER, QDP_MAX_RSS) and how long
 * to wait between recycles. Pure: the supervisor passes the numbers and the clock in.
 *
 * Why jitter: workers started together serve at about the same rate, so one fixed limit makes
 * them all due at once — uWSGI's `max-requests` restarting every worker together (unbit/uwsgi
 * #648). Each process draws its own limit in [max, max + jitter], and the supervisor replaces at
 * most one at a time anyway.
 *
 * Why a back-off: a limit set below what a fresh worker needs (an RSS limit under the start-up
 * footprint, a request limit hit within a second under load) would otherwise replace workers in
 * a loop, each replacement costing a spawn and a hand-off. A worker recycled soon after it
 * started makes the next recycle wait longer (1 s, 2 s, 4 s … up to 60 s); one that lived
 * `QUICK_LIFE_MS` or longer resets the wait.
 */

export type RecycleReason = "max-requests" | "max-rss";

export const RECYCLE_REASONS: readonly RecycleReason[] = ["max-requests", "max-rss"];

export interface RecycleLimits {
  /** Calls after which a worker is replaced; 0 = never. */
  maxRequests: number;
  /** Each process adds a random whole number in [0, jitter] to `maxRequests`. */
  maxRequestsJitter: number;
  /** Resident memory above which a worker is replaced; 0 = never. */
  maxRssBytes: number;
}

/** What the supervisor knows of a worker from its last heartbeat. */
export interface WorkerLoad {
  /** Calls handled since the process started (answered at its edge or run for another edge). */
  handled: number;
  rssBytes: number;
}

/** A recycle of a worker that lived less than this counts as "hitting the limit at once". */
export const QUICK_LIFE_MS = 60_000;
export const RECYCLE_BACKOFF_BASE_MS = 1_000;
export const RECYCLE_BACKOFF_MAX_MS = 60_000;

/**
 * The request limit of one process: `maxRequests` plus a uniform whole number in [0, jitter];
 * 0 when recycling by requests is off.
 * @param random a source in [0, 1), Math.random by default (tests pass their own)
 */
export function requestLimit(l: RecycleLimits, random: () => number = Math.random): number {
  if (l.maxRequests <= 0) return 0;
  return l.maxRequests + Math.floor(random() * (l.maxRequestsJitter + 1));
}

/**
 * Why this worker is due for recycling, or null. Memory wins over requests when both hold: it is
 * the more urgent of the two.
 * @param limit the process's own request limit (from `requestLimit`)
 */
export function recycleReason(l: RecycleLimits, limit: number, w: WorkerLoad): RecycleReason | null {
  if (l.maxRssBytes > 0 && w.rssBytes > l.maxRssBytes) return "max-rss";
  if (limit > 0 && w.handled >= limit) return "max-requests";
  return null;
}

/** The back-off streak after recycling a worker that lived `livedMs`. */
export function nextRecycleStreak(streak: number, livedMs: number): number {
  return livedMs < QUICK_LIFE_MS ? streak + 1 : 0;
}

/**
 * How long after a recycle finished the next one may start. The first quick recycle waits
 * nothing extra (a single worker over its limit is normal); from the second in a row on the wait
 * doubles: 0, 1 s, 2 s, 4 s … `RECYCLE_BACKOFF_MAX_MS`.
 */
export function recycleDelayMs(streak: number): number {
  if (streak <= 1) return 0;
  return Math.min(RECYCLE_BACKOFF_BASE_MS * 2 ** (streak - 2), RECYCLE_BACKOFF_MAX_MS);
}
