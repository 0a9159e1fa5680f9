/**
 * The pure rules of recycling and of the stuck-worker watchdog (core/recycle.ts,
 * core/watchdog.ts), the call board a stuck worker leaves for the supervisor, and their settings.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../src/core/config.ts";
import { nextRecycleStreak, QUICK_LIFE_MS, RECYCLE_BACKOFF_MAX_MS, recycleDelayMs, recycleReason, requestLimit } from "../src/core/recycle.ts";
import { DEFAULT_STUCK_MS, heartbeatIntervalMs, isStuck, supervisorStalled, watchdogTickMs } from "../src/core/watchdog.ts";
import { callBoardPath, createCallBoard, openCallBoard, readCallBoard } from "../src/worker/call-board.ts";

const OFF = { maxRequests: 0, maxRequestsJitter: 0, maxRssBytes: 0 };

describe("recycle decision", () => {
  test("a process's request limit is max plus 0..jitter, and 0 when recycling by requests is off", () => {
    const l = { maxRequests: 1000, maxRequestsJitter: 50, maxRssBytes: 0 };
    expect(requestLimit(OFF, () => 0.5)).toBe(0);
    expect(requestLimit(l, () => 0)).toBe(1000);
    expect(requestLimit(l, () => 0.999999)).toBe(1050);
    expect(requestLimit({ ...l, maxRequestsJitter: 0 }, () => 0.999999)).toBe(1000);
    const seen = new Set(Array.from({ length: 2000 }, () => requestLimit(l)));
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(1000);
    expect(Math.max(...seen)).toBeLessThanOrEqual(1050);
    // Jitter spreads the limits, so workers started together are not due together.
    expect(seen.size).toBeGreaterThan(40);
  });

  test("due at the request limit or over the RSS limit; memory wins when both hold", () => {
    const l = { maxRequests: 100, maxRequestsJitter: 0, maxRssBytes: 512 * 1024 ** 2 };
    expect(recycleReason(l, 100, { handled: 99, rssBytes: 100 })).toBeNull();
    expect(recycleReason(l, 100, { handled: 100, rssBytes: 100 })).toBe("max-requests");
    expect(recycleReason(l, 100, { handled: 5, rssBytes: 512 * 1024 ** 2 + 1 })).toBe("max-rss");
    expect(recycleReason(l, 100, { handled: 500, rssBytes: 600 * 1024 ** 2 })).toBe("max-rss");
    expect(recycleReason(l, 100, { handled: 5, rssBytes: 512 * 1024 ** 2 })).toBeNull();
    expect(recycleReason(OFF, 0, { handled: 1e9, rssBytes: 1e12 })).toBeNull();
  });

  test("back-off: the first quick recycle waits nothing, then 1 s, 2 s, 4 s … up to the cap; a long life resets it", () => {
    let streak = 0;
    const waits: number[] = [];
    for (let i = 0; i < 9; i++) {
      streak = nextRecycleStreak(streak, 2_000);
      waits.push(recycleDelayMs(streak));
    }
    expect(waits).toEqual([0, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
    expect(recycleDelayMs(50)).toBe(RECYCLE_BACKOFF_MAX_MS);
    streak = nextRecycleStreak(streak, QUICK_LIFE_MS);
    expect(streak).toBe(0);
    expect(recycleDelayMs(nextRecycleStreak(streak, 10))).toBe(0);
  });
});

describe("watchdog timing", () => {
  test("heartbeats come five times per QDP_STUCK_MS, between every 100 ms and every second", () => {
    expect(heartbeatIntervalMs(DEFAULT_STUCK_MS)).toBe(1000);
    expect(heartbeatIntervalMs(2000)).toBe(400);
    expect(heartbeatIntervalMs(500)).toBe(100);
    expect(heartbeatIntervalMs(0)).toBe(1000);
    expect(watchdogTickMs(DEFAULT_STUCK_MS)).toBe(250);
    expect(watchdogTickMs(500)).toBe(62);
  });

  test("stuck only past QDP_STUCK_MS of silence, never with the watchdog off", () => {
    expect(isStuck(10_000, 1_000, 11_000)).toBe(false);
    expect(isStuck(10_000, 1_000, 11_001)).toBe(true);
    expect(isStuck(0, 0, 1e12)).toBe(false);
  });

  test("a tick far later than due means the supervisor itself stalled", () => {
    expect(supervisorStalled(10_000, 250, 260)).toBe(false);
    expect(supervisorStalled(10_000, 250, 4_000)).toBe(false);
    expect(supervisorStalled(10_000, 250, 6_000)).toBe(true);
    expect(supervisorStalled(2_000, 250, 1_200)).toBe(false);
    expect(supervisorStalled(2_000, 250, 1_300)).toBe(true);
  });
});

describe("call board", () => {
  const dir = mkdtempSync(join(tmpdir(), "qdp-board-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("the supervisor reads what the worker wrote into the mapped page: inside a handler, then after it", () => {
    const path = callBoardPath(dir, 3, 17);
    expect(path).toBe(join(dir, "w3-g17.board"));
    createCallBoard(path);
    expect(readCallBoard(path)).toBeNull();
    const board = openCallBoard(path)!;
    expect(board).not.toBeNull();
    const t0 = Date.now();
    board.enter(1001, "demo.counter", "req-1", "用户-é");
    const inside = readCallBoard(path)!;
    expect(inside).toMatchObject({ inside: true, funcNo: 1001, name: "demo.counter", requestId: "req-1", user: "用户-é" });
    expect(inside.enteredAt).toBeGreaterThanOrEqual(t0);
    board.leave();
    expect(readCallBoard(path)).toMatchObject({ inside: false, funcNo: 1001, requestId: "req-1" });
    board.enter(1000, "demo.echo", "req-2", null);
    expect(readCallBoard(path)).toMatchObject({ inside: true, funcNo: 1000, name: "demo.echo", requestId: "req-2", user: null });
  });

  test("a long user id is cut to the page, never past it; no file means no board", () => {
    const path = callBoardPath(dir, 0, 1);
    createCallBoard(path);
    const board = openCallBoard(path)!;
    board.enter(1001, "demo.counter", "r", "x".repeat(2000));
    const r = readCallBoard(path)!;
    expect(r.user!.length).toBeLessThan(512);
    expect(openCallBoard(join(dir, "missing.board"))).toBeNull();
    expect(readCallBoard(join(dir, "missing.board"))).toBeNull();
  });
});

describe("settings", () => {
  test("defaults: recycling off, watchdog on at 10 s", () => {
    const c = loadConfig({}, 2);
    expect([c.maxRequests, c.maxRequestsJitter, c.maxRssBytes, c.stuckMs]).toEqual([0, 0, 0, 10_000]);
  });

  test("QDP_MAX_RSS takes sizes up to terabytes and 0; QDP_STUCK_MS 0 or at least 500", () => {
    const c = loadConfig({ QDP_MAX_REQUESTS: "10000", QDP_MAX_REQUESTS_JITTER: "500", QDP_MAX_RSS: "512m", QDP_STUCK_MS: "0" }, 2);
    expect([c.maxRequests, c.maxRequestsJitter, c.maxRssBytes, c.stuckMs]).toEqual([10_000, 500, 512 * 1024 ** 2, 0]);
    expect(loadConfig({ QDP_MAX_RSS: "2g" }, 2).maxRssBytes).toBe(2 * 1024 ** 3);
    expect(loadConfig({ QDP_MAX_RSS: "0" }, 2).maxRssBytes).toBe(0);
  });

  test("bad values are all reported at once", () => {
    let problems: string[] = [];
    try {
      loadConfig({ QDP_MAX_RSS: "lots", QDP_STUCK_MS: "100", QDP_MAX_REQUESTS_JITTER: "5", QDP_MAX_REQUESTS: "-1" }, 2);
    } catch (err) {
      problems = (err as { problems: string[] }).problems;
    }
    expect(problems.some((p) => p.startsWith('QDP_MAX_RSS="lots"'))).toBe(true);
    expect(problems.some((p) => p.startsWith("QDP_STUCK_MS=100"))).toBe(true);
    expect(problems.some((p) => p.startsWith('QDP_MAX_REQUESTS="-1"'))).toBe(true);
    expect(problems.some((p) => p.startsWith("QDP_MAX_REQUESTS_JITTER"))).toBe(true);
  });
});
