/**
 * The replay fence (core/replay-fence.ts) and its mark files (stores/replay-mark.ts): when a
 * mark is written, what a restarted worker refuses, how unreadable marks are taken, and that the
 * owner's replay check waits for a hand-off. The cluster-level proof is replay-durability.test.ts.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Executor } from "../src/affinity/executor.ts";
import { HopClient } from "../src/affinity/hop-client.ts";
import { Router } from "../src/affinity/router.ts";
import { SessionStore } from "../src/affinity/sessions.ts";
import { QdpError } from "../src/core/errors.ts";
import { createReplayCache, replayKey } from "../src/core/replay-cache.ts";
import { createReplayFence, fenceFromMarks, formatMark, guardReplay, parseMark, replayRefusal, type ReplayFence } from "../src/core/replay-fence.ts";
import { createLogger } from "../src/telemetry/logger.ts";
import { createReplayMarks } from "../src/stores/replay-mark.ts";
import { createSqliteStore } from "../src/stores/sqlite-store.ts";

const T = 1_700_000_000;
const nonce = (i: number) => `nonce-${i.toString().padStart(10, "0")}`;

/** A fence whose writes are recorded instead of going to a file. */
function recordingFence(o: { fenceSec?: number; persistedSec?: number } = {}): { fence: ReplayFence; writes: number[] } {
  const writes: number[] = [];
  const fence = createReplayFence({
    fenceSec: o.fenceSec ?? 0,
    persistedSec: o.persistedSec ?? 0,
    persist: (sec) => {
      writes.push(sec);
      return sec;
    },
  });
  return { fence, writes };
}

describe("the fence", () => {
  test("refuses timestamps at or before it, admits later ones", () => {
    const { fence } = recordingFence({ fenceSec: T });
    expect(fence.admit(T - 200)).toBe("fenced");
    expect(fence.admit(T)).toBe("fenced");
    expect(fence.admit(T + 1)).toBe("ok");
    expect(recordingFence().fence.admit(T)).toBe("ok");
  });

  test("writes the mark before admitting a timestamp above it: once per new second, not per call", () => {
    const { fence, writes } = recordingFence({ persistedSec: T });
    for (let i = 0; i < 1000; i++) expect(fence.admit(T - (i % 300))).toBe("ok");
    expect(writes).toEqual([]);
    for (let i = 0; i < 1000; i++) fence.admit(T + 1 + Math.floor(i / 250));
    expect(writes).toEqual([T + 1, T + 2, T + 3, T + 4]);
    expect(fence.persistedSec).toBe(T + 4);
    // A future timestamp (UAP clock ahead) is what is written: the mark is the max accepted.
    fence.admit(T + 300);
    expect(writes.at(-1)).toBe(T + 300);
  });

  test("takes a higher value already on file (another process of the index wrote it)", () => {
    let calls = 0;
    const fence = createReplayFence({ persistedSec: T, persist: () => (calls++, T + 50) });
    fence.admit(T + 1);
    fence.admit(T + 20);
    expect(calls).toBe(1);
    expect(fence.persistedSec).toBe(T + 50);
  });

  test("a failed write admits nothing; the guard refuses the call with INTERNAL and does not remember the nonce", () => {
    let fail = true;
    const fence = createReplayFence({
      persistedSec: T,
      persist: (sec) => {
        if (fail) throw new Error("EROFS: read-only file system");
        return sec;
      },
    });
    const guard = guardReplay(createReplayCache({ maxEntries: 10 }), fence);
    expect(guard.checkAndRemember("u1", nonce(1), T, T)).toBe("fresh");
    let err: unknown;
    try {
      guard.checkAndRemember("u1", nonce(2), T + 1, T + 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(QdpError);
    expect((err as QdpError).code).toBe("INTERNAL");
    expect(fence.persistedSec).toBe(T);
    fail = false;
    expect(guard.checkAndRemember("u1", nonce(2), T + 1, T + 1)).toBe("fresh");
  });

  test("raise() only raises; bad options are refused", () => {
    const { fence } = recordingFence({ fenceSec: T });
    fence.raise(T - 10);
    fence.raise(Number.NaN);
    expect(fence.fenceSec).toBe(T);
    fence.raise(T + 10);
    expect(fence.fenceSec).toBe(T + 10);
    expect(() => createReplayFence({ persistedSec: -1, persist: (s) => s })).toThrow(RangeError);
    expect(() => createReplayFence({ fenceSec: 1.5, persistedSec: 0, persist: (s) => s })).toThrow(RangeError);
  });
});

describe("the guard: fence, then cache", () => {
  test("a fenced call is refused before the cache and takes no room in it", () => {
    const { fence } = recordingFence({ fenceSec: T });
    const guard = guardReplay(createReplayCache({ maxEntries: 10 }), fence);
    expect(guard.checkAndRemember("u1", nonce(1), T, T + 1)).toBe("fenced");
    expect(guard.checkAndRemember(null, nonce(2), T - 5, T + 1)).toBe("fenced");
    expect(guard.size).toBe(0);
    expect(guard.checkAndRemember("u1", nonce(1), T + 1, T + 1)).toBe("fresh");
    expect(guard.checkAndRemember("u1", nonce(1), T + 1, T + 2)).toBe("replay");
  });

  test("refusals: replay and fenced are 401 (fenced tells UAP to sign again), full is 503", () => {
    expect(replayRefusal("fresh", 0)).toBeNull();
    expect(replayRefusal("replay", 0)?.code).toBe("UNAUTHENTICATED");
    expect(replayRefusal("full", 0)?.code).toBe("OVERLOADED");
    const fenced = replayRefusal("fenced", T);
    expect(fenced?.code).toBe("UNAUTHENTICATED");
    expect(fenced?.message).toContain(String(T));
    expect(fenced?.message).toMatch(/sign the call again \(new nonce, current timestamp\)/);
    expect(replayRefusal("bogus", 0)?.code).toBe("INTERNAL");
  });
});

describe("the fence of a start without a hand-off", () => {
  test("is the largest mark of all indices; none = no fence", () => {
    expect(fenceFromMarks([], T)).toEqual({ fenceSec: 0, unreadable: [] });
    expect(
      fenceFromMarks(
        [
          { name: "w0", sec: T - 3 },
          { name: "w1", sec: T + 120 },
          { name: "w2", sec: T - 900 },
        ],
        T,
      ),
    ).toEqual({ fenceSec: T + 120, unreadable: [] });
  });

  test("an unreadable mark counts as now + window: the largest timestamp anyone could have accepted", () => {
    expect(
      fenceFromMarks(
        [
          { name: "w0", sec: T },
          { name: "w1", error: "EIO" },
        ],
        T + 10,
      ),
    ).toEqual({ fenceSec: T + 310, unreadable: ["w1"] });
    expect(fenceFromMarks([{ name: "w0", error: "empty" }], T, 60)).toEqual({ fenceSec: T + 60, unreadable: ["w0"] });
  });

  test("mark text: decimal seconds, anything else is not a mark", () => {
    expect(parseMark(formatMark(T))).toBe(T);
    expect(parseMark(String(T))).toBe(T);
    for (const bad of ["", "\n", "17e8\n", "-1\n", `${T}\n\n`, `${T}x`, " 1\n", "1".repeat(16)]) expect(parseMark(bad)).toBeNull();
  });
});

describe("mark files under QDP_DATA_DIR/replay", () => {
  const dirs: string[] = [];
  const dataDir = () => {
    const d = mkdtempSync(join(tmpdir(), "qdp-marks-"));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  test("one file per index; every index (of any earlier worker count) is read back", () => {
    const d = dataDir();
    const w0 = createReplayMarks({ dataDir: d, index: 0 });
    const w4 = createReplayMarks({ dataDir: d, index: 4 });
    expect(w0.readOwn()).toBeNull();
    expect(w0.readAll()).toEqual([]);
    expect(w0.write(T)).toBe(T);
    expect(w4.write(T + 7)).toBe(T + 7);
    expect(readFileSync(join(d, "replay", "w0"), "utf8")).toBe(`${T}\n`);
    expect(w0.readOwn()).toEqual({ name: "w0", sec: T });
    expect(w0.readAll().sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: "w0", sec: T },
      { name: "w4", sec: T + 7 },
    ]);
  });

  test("never lowers a mark another process of the index wrote, and leaves no temporary file", () => {
    const d = dataDir();
    const old = createReplayMarks({ dataDir: d, index: 1 });
    const replacement = createReplayMarks({ dataDir: d, index: 1 });
    old.write(T + 30);
    expect(replacement.write(T + 10)).toBe(T + 30);
    expect(replacement.readOwn()).toEqual({ name: "w1", sec: T + 30 });
    expect(readdirSync(join(d, "replay"))).toEqual(["w1"]);
  });

  test("a garbage or empty mark is reported unreadable (the fence takes now + window) and overwritten by the next write", () => {
    const d = dataDir();
    const marks = createReplayMarks({ dataDir: d, index: 0 });
    writeFileSync(join(d, "replay", "w0"), "\u0000\u0000garbage");
    writeFileSync(join(d, "replay", "w1"), "");
    const all = marks.readAll();
    expect(all.every((m) => "error" in m)).toBe(true);
    expect(fenceFromMarks(all, T).fenceSec).toBe(T + 300);
    expect(marks.write(T + 300)).toBe(T + 300);
    expect(marks.readOwn()).toEqual({ name: "w0", sec: T + 300 });
  });

  test("a leftover temporary file (killed between write and rename) is no mark, and is removed at start", () => {
    const d = dataDir();
    const marks = createReplayMarks({ dataDir: d, index: 2 });
    marks.write(T);
    writeFileSync(join(d, "replay", "w2.99999.tmp"), "17");
    writeFileSync(join(d, "replay", "w3.99999.tmp"), "17");
    expect(marks.readAll()).toEqual([{ name: "w2", sec: T }]);
    marks.removeStaleTemp();
    expect(readdirSync(join(d, "replay")).sort()).toEqual(["w2", "w3.99999.tmp"]);
  });

  test("a data directory that cannot hold the marks throws at creation (the worker refuses to start)", () => {
    const d = dataDir();
    writeFileSync(join(d, "file"), "");
    expect(() => createReplayMarks({ dataDir: join(d, "file"), index: 0 })).toThrow();
    mkdirSync(join(d, "ro"), { mode: 0o500 });
    if (process.getuid?.() !== 0) expect(() => createReplayMarks({ dataDir: join(d, "ro", "sub"), index: 0 })).toThrow();
    expect(existsSync(join(d, "ro", "sub"))).toBe(false);
  });
});

describe("the owner's replay check during a hand-off", () => {
  test("a call without a user checked at this worker waits at the gate for the old worker's nonces", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qdp-gate-"));
    const log = createLogger("error");
    const records = createSqliteStore({ dataDir: dir });
    const guard = guardReplay(createReplayCache({ maxEntries: 100 }), recordingFence().fence);
    const executor = new Executor({
      worker: 0,
      log,
      records,
      settings: new Map(),
      sessions: new SessionStore(10, 60_000),
      replay: guard,
      maxExecuting: 10,
      upstreamTimeoutMs: 1000,
    });
    const hop = new HopClient({ self: 0, selfGen: 1, workers: 1, secret: "s", ownerWaitMs: 100, maxPending: 10, log });
    const router = new Router(0, 1, executor, hop);
    try {
      const now = Math.floor(Date.now() / 1000);
      executor.closeGate();
      const check = router.checkNonce(nonce(7), now, Date.now() + 5000).then(
        () => "accepted",
        (e: QdpError) => e.message,
      );
      await Bun.sleep(20);
      // The hand-off brings the nonce the old worker accepted, then opens the gate.
      guard.import([{ key: replayKey(null, nonce(7)), timestampSec: now }], now);
      executor.openGate();
      expect(await check).toMatch(/replay/);
    } finally {
      hop.stop();
      executor.close();
      await records.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
