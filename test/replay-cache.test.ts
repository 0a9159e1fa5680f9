import { describe, expect, test } from "bun:test";
import { createReplayCache, replayKey } from "../src/core/replay-cache.ts";

const T = 1_700_000_000;
const nonce = (i: number) => `nonce-${i.toString().padStart(10, "0")}`;

describe("replay detection", () => {
  test("a nonce accepted for a user is refused for that user, not for others", () => {
    const c = createReplayCache({ maxEntries: 100 });
    expect(c.checkAndRemember("u1", nonce(1), T, T)).toBe("fresh");
    expect(c.checkAndRemember("u1", nonce(1), T, T + 5)).toBe("replay");
    expect(c.checkAndRemember("u2", nonce(1), T, T + 5)).toBe("fresh");
    expect(c.size).toBe(2);
  });

  test("calls without a user are replay-protected too, separately from users", () => {
    const c = createReplayCache({ maxEntries: 100 });
    expect(c.checkAndRemember(null, nonce(1), T, T)).toBe("fresh");
    expect(c.checkAndRemember(null, nonce(1), T, T)).toBe("replay");
    expect(c.checkAndRemember("u1", nonce(1), T, T)).toBe("fresh");
  });

  test("the same nonce under another timestamp is still a replay within the window", () => {
    const c = createReplayCache({ maxEntries: 100 });
    expect(c.checkAndRemember("u1", nonce(1), T, T)).toBe("fresh");
    expect(c.checkAndRemember("u1", nonce(1), T + 200, T + 100)).toBe("replay");
    expect(c.checkAndRemember("u1", nonce(1), T - 250, T + 40)).toBe("replay");
  });

  test("user and nonce cannot be confused across the separator", () => {
    const c = createReplayCache({ maxEntries: 100 });
    expect(c.checkAndRemember("a", "bcdefghijklmnopqr", T, T)).toBe("fresh");
    expect(c.checkAndRemember("ab", "cdefghijklmnopqr", T, T)).toBe("fresh");
  });
});

describe("window expiry", () => {
  test("a nonce is remembered while its timestamp is within 300 s, then forgotten", () => {
    const c = createReplayCache({ maxEntries: 100 });
    expect(c.checkAndRemember("u1", nonce(1), T, T)).toBe("fresh");
    // Still refused at the edge of the window (verifyRequest accepts ts up to now - 300).
    expect(c.checkAndRemember("u1", nonce(1), T, T + 300)).toBe("replay");
    expect(c.size).toBe(1);
    // Well past: the whole bucket has been dropped; a call with that timestamp is stale anyway.
    c.checkAndRemember("u9", nonce(9), T + 320, T + 320);
    expect(c.size).toBe(1);
    expect(c.checkAndRemember("u1", nonce(1), T + 320, T + 320)).toBe("fresh");
  });

  test("future timestamps (caller's clock ahead) are kept until they leave the window", () => {
    const c = createReplayCache({ maxEntries: 100 });
    expect(c.checkAndRemember("u1", nonce(1), T + 300, T)).toBe("fresh");
    expect(c.checkAndRemember("u1", nonce(1), T + 300, T + 600)).toBe("replay");
    expect(c.checkAndRemember("u2", nonce(2), T + 1000, T + 1000)).toBe("fresh");
    expect(c.size).toBe(1);
  });

  test("timestamps outside the window cannot be vouched for", () => {
    const c = createReplayCache({ maxEntries: 100 });
    expect(c.checkAndRemember("u1", nonce(1), T - 301, T)).toBe("replay");
    expect(c.checkAndRemember("u1", nonce(2), T + 301, T)).toBe("replay");
    expect(c.size).toBe(0);
  });

  test("a custom window", () => {
    const c = createReplayCache({ windowSec: 30, maxEntries: 100 });
    expect(c.checkAndRemember("u1", nonce(1), T, T)).toBe("fresh");
    expect(c.checkAndRemember("u1", nonce(1), T, T + 30)).toBe("replay");
    c.checkAndRemember("u2", nonce(2), T + 60, T + 60);
    expect(c.size).toBe(1);
  });
});

describe("bounded memory", () => {
  test("1e6 distinct nonces against a small cap: size never exceeds it, new ones are 'full'", () => {
    const cap = 10_000;
    const c = createReplayCache({ maxEntries: cap });
    const counts = { fresh: 0, replay: 0, full: 0 };
    for (let i = 0; i < 1_000_000; i++) counts[c.checkAndRemember("flood", nonce(i), T, T)]++;
    expect(counts).toEqual({ fresh: cap, replay: 0, full: 1_000_000 - cap });
    expect(c.size).toBe(cap);
    // Replays are still recognised while full (a replay is not "full").
    expect(c.checkAndRemember("flood", nonce(0), T, T)).toBe("replay");
    // Once the window passes, the flood's bucket is dropped and capacity returns.
    expect(c.checkAndRemember("u1", nonce(1), T + 320, T + 320)).toBe("fresh");
    // Its keys leave memory a few per call, so there is no pause; soon only the live ones remain.
    expect(c.size).toBeLessThanOrEqual(cap);
    for (let i = 0; i < 400; i++) expect(c.checkAndRemember("u2", nonce(i), T + 320, T + 320)).toBe("fresh");
    expect(c.size).toBe(401);
  });

  test("at the cap, expired entries awaiting deletion are reclaimed before answering 'full'", () => {
    const c = createReplayCache({ maxEntries: 1000 });
    for (let i = 0; i < 1000; i++) c.checkAndRemember("u", nonce(i), T, T);
    expect(c.checkAndRemember("u", "one-more-nonce-000", T, T)).toBe("full");
    // Every one of the 1000 has expired at T+320; the very first new call finds room.
    for (let i = 0; i < 1000; i++) expect(c.checkAndRemember("v", nonce(i), T + 320, T + 320)).toBe("fresh");
    expect(c.size).toBe(1000);
    expect(c.checkAndRemember("v", "one-more-nonce-000", T + 320, T + 320)).toBe("full");
  });

  test("a nonce reused after its first timestamp expired is remembered again, and not lost to the purge", () => {
    const c = createReplayCache({ maxEntries: 100 });
    expect(c.checkAndRemember("u", nonce(1), T, T)).toBe("fresh");
    expect(c.checkAndRemember("u", nonce(1), T + 400, T + 400)).toBe("fresh");
    for (let i = 0; i < 10; i++) c.checkAndRemember("w", nonce(100 + i), T + 401, T + 401);
    expect(c.checkAndRemember("u", nonce(1), T + 400, T + 402)).toBe("replay");
  });

  test("a flood spread over time is bounded by the window even without the cap", () => {
    const c = createReplayCache({ maxEntries: 1_000_000 });
    let maxSize = 0;
    // 1000 nonces per second for 1000 s: only ~310 s worth may be held at any time.
    for (let s = 0; s < 1000; s++) {
      for (let i = 0; i < 1000; i++) c.checkAndRemember(null, nonce(s * 1000 + i), T + s, T + s);
      maxSize = Math.max(maxSize, c.size);
    }
    // Live entries: ≤ 301 s plus one 10 s bucket of slack; dropped buckets drain 32 keys per call.
    expect(maxSize).toBeLessThanOrEqual(312_000);
    expect(c.size).toBeLessThanOrEqual(312_000);
  });
});

describe("hand-over on reload", () => {
  test("export/import carries the remembered pairs to a fresh cache", () => {
    const old = createReplayCache({ maxEntries: 100 });
    old.checkAndRemember("u1", nonce(1), T, T);
    old.checkAndRemember(null, nonce(2), T + 5, T + 5);
    old.checkAndRemember("用户", nonce(3), T + 10, T + 10);
    const entries = old.export(T + 10);
    expect(entries).toHaveLength(3);
    expect(entries).toContainEqual({ key: replayKey(null, nonce(2)), timestampSec: T + 5 });
    expect(entries).toContainEqual({ key: replayKey("用户", nonce(3)), timestampSec: T + 10 });
    // Survives a JSON hop (IPC).
    const wire = JSON.parse(JSON.stringify(entries));

    const next = createReplayCache({ maxEntries: 100 });
    expect(next.import(wire, T + 20)).toBe(3);
    expect(next.size).toBe(3);
    expect(next.checkAndRemember("u1", nonce(1), T, T + 20)).toBe("replay");
    expect(next.checkAndRemember(null, nonce(2), T + 5, T + 20)).toBe("replay");
    expect(next.checkAndRemember("用户", nonce(3), T + 10, T + 20)).toBe("replay");
    expect(next.checkAndRemember("u1", nonce(4), T, T + 20)).toBe("fresh");
    // Importing twice adds nothing.
    expect(next.import(wire, T + 20)).toBe(0);
  });

  test("import skips expired pairs and respects the cap", () => {
    const old = createReplayCache({ maxEntries: 100 });
    for (let i = 0; i < 10; i++) old.checkAndRemember("u", nonce(i), T + i * 100, T + i * 100);
    const entries = old.export();
    const next = createReplayCache({ maxEntries: 3 });
    // At T+900 only timestamps >= T+600 are live: 4 pairs, of which the cap admits 3.
    expect(next.import(entries, T + 900)).toBe(3);
    expect(next.size).toBe(3);
    expect(
      old
        .export(T + 900)
        .map((e) => e.timestampSec)
        .sort(),
    ).toEqual([T + 600, T + 700, T + 800, T + 900]);
  });

  test("options are validated", () => {
    expect(() => createReplayCache({ maxEntries: 0 })).toThrow(RangeError);
    expect(() => createReplayCache({ maxEntries: 10, bucketSec: 0 })).toThrow(RangeError);
  });
});

describe("replay keys", () => {
  // Keys travel to the next version in a rolling reload, so they must never change: this is
  // how they were first computed (two MurmurHash3 passes over user + NUL + nonce).
  test("are the same numbers as the first version's, for ASCII, non-ASCII, astral and empty users", () => {
    const murmur32 = (text: string, seed: number): number => {
      let h = seed >>> 0;
      for (let i = 0; i < text.length; i++) {
        let k = Math.imul(text.charCodeAt(i), 0xcc9e2d51);
        k = (k << 15) | (k >>> 17);
        k = Math.imul(k, 0x1b873593);
        h ^= k;
        h = (h << 13) | (h >>> 19);
        h = (Math.imul(h, 5) + 0xe6546b64) | 0;
      }
      h ^= text.length;
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
      return h >>> 0;
    };
    const firstVersion = (user: string | null, nonce: string): number => {
      const text = `${user ?? ""}\u0000${nonce}`;
      return (murmur32(text, 0x9747b28c) & 0x1fffff) * 0x100000000 + murmur32(text, 0x5bd1e995);
    };
    const users = [null, "u1", "用户", "😀x", "a".repeat(200), "x\u00ff\u0100"];
    for (const user of users) {
      for (let i = 0; i < 2_000; i++) {
        const n = `nonce-${i.toString(36).padStart(16, "0")}`.slice(0, 16 + (i % 48));
        expect(replayKey(user, n)).toBe(firstVersion(user, n));
      }
    }
    // And one literal value, in case both sides above were changed together.
    expect(replayKey("u1", "abcdefghijklmnop")).toBe(6484466210328978);
  });

  test("equal pairs have equal keys; 53-bit safe integers; no collisions among 2 million distinct pairs", () => {
    expect(replayKey("u1", "abcdefghijklmnop")).toBe(replayKey("u1", "abcdefghijklmnop"));
    expect(replayKey(null, "abcdefghijklmnop")).not.toBe(replayKey("u1", "abcdefghijklmnop"));
    // The NUL separator keeps ("ab", "c…") and ("a", "bc…") apart.
    expect(replayKey("ab", "cdefghijklmnopqrst")).not.toBe(replayKey("a", "bcdefghijklmnopqrst"));
    const seen = new Set<number>();
    let unsafe = 0;
    for (let i = 0; i < 2_000_000; i++) {
      const k = replayKey(`u${i % 1000}`, `nonce-${i.toString(36).padStart(16, "0")}`);
      if (!(Number.isSafeInteger(k) && k >= 0)) unsafe++;
      seen.add(k);
    }
    expect(unsafe).toBe(0);
    expect(seen.size).toBe(2_000_000);
  });

  test("import ignores entries whose key is not a 53-bit integer", () => {
    const c = createReplayCache({ maxEntries: 10 });
    const now = 1_700_000_000;
    expect(
      c.import(
        [
          { key: -1, timestampSec: now },
          { key: 1.5, timestampSec: now },
          { key: 2 ** 60, timestampSec: now },
          { key: 7, timestampSec: now },
        ],
        now,
      ),
    ).toBe(1);
  });
});
