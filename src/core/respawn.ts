/**
 * When a dead worker is started again (CONTRACT.md §1: at the same index, so ownership never
 * moves). The first death respawns at once — its users' calls are waiting for it — and a crash
 * loop backs off exponentially, so a worker that cannot start does not burn the host.
 * Pure TypeScript, tested in test/respawn.test.ts.
 */

/** A worker that lived this long before dying was stable: its crash streak starts over. */
export const STABLE_AFTER_MS = 10_000;
/** The longest wait before a respawn. */
export const MAX_BACKOFF_MS = 30_000;
/** The wait after the second death in a row; doubles with each further one. */
export const FIRST_BACKOFF_MS = 250;

/** The crash streak after a death: one more if the worker died young, else 1. */
export function nextCrashStreak(streak: number, livedMs: number): number {
  return livedMs < STABLE_AFTER_MS ? streak + 1 : 1;
}

/** How long to wait before respawning, for a crash streak: 0, 250 ms, 500 ms, 1 s … 30 s. */
export function respawnDelayMs(streak: number): number {
  return streak <= 1 ? 0 : Math.min(FIRST_BACKOFF_MS * 2 ** (streak - 2), MAX_BACKOFF_MS);
}
