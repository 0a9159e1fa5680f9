/** The respawn back-off (core/respawn.ts), as a pure function instead of through a log. */
import { expect, test } from "bun:test";
import { MAX_BACKOFF_MS, nextCrashStreak, respawnDelayMs, STABLE_AFTER_MS } from "../src/core/respawn.ts";

test("the first death respawns at once; a crash loop waits 250 ms, 500 ms, 1 s … up to 30 s", () => {
  expect([1, 2, 3, 4, 5, 6].map(respawnDelayMs)).toEqual([0, 250, 500, 1000, 2000, 4000]);
  expect(respawnDelayMs(20)).toBe(MAX_BACKOFF_MS);
  expect(respawnDelayMs(1000)).toBe(MAX_BACKOFF_MS);
});

test("a worker that lived past STABLE_AFTER_MS starts its streak over", () => {
  let streak = 0;
  for (let i = 0; i < 4; i++) streak = nextCrashStreak(streak, 100);
  expect(streak).toBe(4);
  expect(nextCrashStreak(streak, STABLE_AFTER_MS)).toBe(1);
  expect(respawnDelayMs(nextCrashStreak(streak, STABLE_AFTER_MS + 1))).toBe(0);
});
