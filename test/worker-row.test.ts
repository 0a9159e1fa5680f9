/** A worker's /stats row (supervisor/worker-row.ts), assembled without a cluster. */
import { expect, test } from "bun:test";
import { workerRow, type SlotView } from "../src/supervisor/worker-row.ts";
import type { WorkerStats } from "../src/types.ts";

const slot = (over: Partial<SlotView> = {}): SlotView => ({
  index: 1,
  proc: { pid: 4242 },
  state: "ready",
  restarts: 2,
  carried: { requests: 100, hopsIn: 10, hopsOut: 5 },
  beat: { handled: 77, rssBytes: 50_000_000 },
  lastBeatAt: 1_000,
  recycles: { "max-requests": 1, "max-rss": 0 },
  stuckKills: 0,
  ...over,
});

test("a worker that answered: its counters over what earlier processes carried, and the supervisor's facts", () => {
  const w = { index: 1, pid: 4242, state: "ready", startedAt: 0, requests: 3, hopsIn: 4, hopsOut: 6, inflight: 2, rssBytes: 9 } as WorkerStats;
  const row = workerRow(slot(), w, 5000, 2_500);
  expect(row).toMatchObject({
    index: 1,
    pid: 4242,
    state: "ready",
    requests: 103,
    hopsIn: 14,
    hopsOut: 11,
    inflight: 2,
    restarts: 2,
    requestLimit: 5000,
    handled: 77,
    heartbeatAgeMs: 1_500,
    uptimeSec: 3,
  });
});

test("a ready worker that did not answer is 'unresponsive', with its heartbeat's RSS; a restarting one keeps its state", () => {
  expect(workerRow(slot(), undefined, 0, 2_000)).toMatchObject({ state: "unresponsive", pid: 4242, requests: 100, inflight: 0, rssBytes: 50_000_000 });
  expect(workerRow(slot({ state: "restarting", proc: null }), undefined, 0, 2_000)).toMatchObject({ state: "restarting", pid: null, heartbeatAgeMs: null });
});
