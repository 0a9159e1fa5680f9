/**
 * Remembers accepted (user, nonce) pairs so a captured signed call cannot be sent twice
 * (CONTRACT.md §4: "a nonce already accepted for the same user within that window").
 *
 * Why a nonce is only remembered for the window: `verifyRequest` (signing.ts) refuses any call whose
 * timestamp is more than ±300 s from server time, and the timestamp is signed, so it cannot be
 * refreshed without the secret. Once a nonce's timestamp has left the window, every replay of it
 * is already rejected as stale; remembering it longer would only cost memory.
 *
 * Memory stays bounded under a flood of distinct nonces in two ways:
 * - entries are filed in time buckets keyed by their *timestamp* (10 s each by default); when a
 *   bucket's newest possible timestamp leaves the window, the whole bucket is dropped at once —
 *   no per-entry timers, no scans of live entries. Only timestamps inside the window are ever
 *   stored, so at most 2·window/bucket + 2 buckets exist (62 by default);
 * - a hard cap `maxEntries`: past it a new nonce gets "full", and the caller answers
 *   503 OVERLOADED. Accepting without remembering would open a replay hole; evicting early would
 *   too — refusing is the only answer that keeps the guarantee.
 *
 * Lookups go to one hash table (key → timestamp, key-time-table.ts: typed arrays, which the
 * garbage collector never traces), not to every bucket: asking 62 buckets cost ~1.5 µs per call
 * against ~0.2 µs for one table. A dropped bucket's keys are then deleted from that
 * table a few per call (incrementally, so a bucket of 100k keys never causes a pause), and a key
 * whose timestamp has left the window counts as absent even before its deletion comes round.
 *
 * Pure TypeScript; one instance per process (the owner of a user holds that user's nonces).
 */

import { KeyTimeTable } from "./key-time-table.ts";

/** The cache's answer for one call. */
export type ReplayVerdict = "fresh" | "replay" | "full";

/** One remembered pair, as handed from a worker to its replacement during a rolling reload. */
export interface ReplayEntry {
  /** The pair's 53-bit key ({@link replayKey}); the user and nonce themselves are not kept. */
  key: number;
  /** The call's signed timestamp (unix seconds), which decides when the entry may be forgotten. */
  timestampSec: number;
}

export interface ReplayCacheOptions {
  /** The signature window in seconds (± around now); default 300, as in signing.ts. */
  windowSec?: number;
  /** Hard cap on remembered pairs; past it new nonces are answered "full". */
  maxEntries: number;
  /** Width of a time bucket in seconds; default 10. Smaller frees memory sooner, costs more buckets. */
  bucketSec?: number;
}

export interface ReplayCache {
  /**
   * Answers whether the pair is new, and remembers it if so. Call it only after the signature
   * verified, so forged calls cannot fill the cache.
   *
   * @param user the call's user id, or `null` for a call without a user (those are replay
   *   protected too, under the empty user).
   * @param timestampSec the call's signed timestamp. A timestamp outside ±window of `nowSec`
   *   cannot be vouched for and is answered "replay" (signing.ts rejects those before this).
   * @param nowSec the server's current time in unix seconds.
   * @returns "fresh" (remembered now), "replay" (already accepted within the window) or "full"
   *   (new, but the cache is at `maxEntries`; refuse with 503 OVERLOADED).
   */
  checkAndRemember(user: string | null, nonce: string, timestampSec: number, nowSec: number): ReplayVerdict;
  /** The pairs still inside the window at `nowSec` (all remembered pairs when omitted). */
  export(nowSec?: number): ReplayEntry[];
  /**
   * Adds pairs exported by another cache (the worker being replaced). Pairs outside the window,
   * already present, or past `maxEntries` are skipped.
   * @returns how many pairs were added.
   */
  import(entries: Iterable<ReplayEntry>, nowSec: number): number;
  /**
   * How many pairs are held in memory now — the number `maxEntries` caps. Includes expired pairs
   * of dropped buckets still awaiting their incremental deletion.
   */
  readonly size: number;
}

/** Keys deleted from the lookup table per call while dropped buckets are pending: > 1 so deletion outpaces insertion. */
const PURGE_STEP = 32;

/** Builds a replay cache. See the module comment for the memory bound. */
export function createReplayCache(options: ReplayCacheOptions): ReplayCache {
  const windowSec = options.windowSec ?? 300;
  const bucketSec = options.bucketSec ?? 10;
  const maxEntries = options.maxEntries;
  if (!(Number.isInteger(maxEntries) && maxEntries > 0)) throw new RangeError("maxEntries must be a positive integer");
  if (!(Number.isInteger(bucketSec) && bucketSec > 0)) throw new RangeError("bucketSec must be a positive integer");
  if (!(Number.isFinite(windowSec) && windowSec >= 0)) throw new RangeError("windowSec must be a non-negative number");

  /** key → the timestamp it was accepted with (0 = absent); the one place lookups go. */
  const seen = new KeyTimeTable();
  /** bucket index (floor(timestamp / bucketSec)) → the keys filed under it, for expiry. */
  const buckets = new Map<number, number[]>();
  /** Dropped buckets whose keys still have to leave `seen`; drained a few keys per call. */
  const pending: number[][] = [];
  let pendingAt = 0;
  let lastSweepSec = Number.NaN;

  // Signed timestamps are whole seconds (signing.ts); anything else cannot be vouched for.
  const inWindow = (timestampSec: number, nowSec: number): boolean =>
    Number.isInteger(timestampSec) && timestampSec > 0 && Math.abs(timestampSec - nowSec) <= windowSec;

  /** Drops every bucket whose newest possible timestamp is already older than the window. */
  const sweep = (nowSec: number): void => {
    // Once per distinct second is enough: a bucket can only expire when `now` advances.
    if (nowSec === lastSweepSec) return;
    lastSweepSec = nowSec;
    const oldestLive = nowSec - windowSec;
    for (const [index, keys] of buckets) {
      if ((index + 1) * bucketSec - 1 < oldestLive) {
        buckets.delete(index);
        pending.push(keys);
      }
    }
  };

  /** Deletes up to `budget` keys of dropped buckets from `seen` (all of them for Infinity). */
  const purge = (budget: number, nowSec: number): void => {
    while (budget > 0 && pending.length > 0) {
      const keys = pending[0] ?? [];
      while (budget > 0 && pendingAt < keys.length) {
        const key = keys[pendingAt++] ?? 0;
        const ts = seen.get(key);
        // The key may have been accepted again since (after its old timestamp expired): keep that.
        if (ts !== 0 && ts < nowSec - windowSec) seen.delete(key);
        budget--;
      }
      if (pendingAt >= keys.length) {
        pending.shift();
        pendingAt = 0;
      }
    }
  };

  const isRemembered = (key: number, nowSec: number): boolean => {
    const ts = seen.get(key);
    return ts !== 0 && inWindow(ts, nowSec);
  };

  /** Room for one more key? Drains dropped buckets completely before saying no. */
  const hasRoom = (nowSec: number): boolean => {
    if (seen.size < maxEntries) return true;
    purge(Infinity, nowSec);
    return seen.size < maxEntries;
  };

  const remember = (key: number, timestampSec: number): void => {
    seen.set(key, timestampSec);
    const index = Math.floor(timestampSec / bucketSec);
    const keys = buckets.get(index);
    if (keys === undefined) buckets.set(index, [key]);
    else keys.push(key);
  };

  return {
    checkAndRemember(user, nonce, timestampSec, nowSec) {
      sweep(nowSec);
      purge(PURGE_STEP, nowSec);
      if (!inWindow(timestampSec, nowSec)) return "replay";
      const key = replayKey(user, nonce);
      // One lookup decides both: a fresh nonce is a cache miss in a table of millions.
      const seenAt = seen.get(key);
      if (seenAt !== 0 && inWindow(seenAt, nowSec)) return "replay";
      if (seenAt === 0 && !hasRoom(nowSec)) return "full";
      remember(key, timestampSec);
      return "fresh";
    },

    export(nowSec) {
      const out: ReplayEntry[] = [];
      seen.forEach((key, timestampSec) => {
        if (nowSec === undefined || inWindow(timestampSec, nowSec)) out.push({ key, timestampSec });
      });
      return out;
    },

    import(entries, nowSec) {
      sweep(nowSec);
      let added = 0;
      for (const e of entries) {
        if (!inWindow(e.timestampSec, nowSec)) continue;
        const key = e.key;
        if (!Number.isSafeInteger(key) || key < 0 || key >= 2 ** 53) continue;
        if (isRemembered(key, nowSec)) continue;
        if (!seen.has(key) && !hasRoom(nowSec)) break;
        remember(key, e.timestampSec);
        added++;
      }
      return added;
    },

    get size() {
      return seen.size;
    },
  };
}

/**
 * The key of a (user, nonce) pair: a 53-bit hash of user + NUL + nonce (NUL occurs in neither,
 * and "no user" is the empty string, which is not a valid user id), from two independently
 * seeded 32-bit MurmurHash3 mixes. A number instead of the string keeps an entry at 12–48 bytes
 * of typed arrays (key-time-table.ts) instead of ~280 and gives the garbage collector nothing to trace — what lets a worker
 * remember millions of nonces. The price is a chance of about n / 2^53 (n = nonces remembered)
 * that a fresh call is taken for a replay and refused with 401 — under 1 in 4 billion at 2
 * million remembered; a replay itself is always caught, as equal pairs have equal keys.
 */
export function replayKey(user: string | null, nonce: string): number {
  // Both mixes in one pass over user, NUL, nonce — the same numbers as hashing the joined text
  // twice, without building it (keys must not change: a rolling reload hands them to the next
  // version, which must recognise them).
  const u = user ?? "";
  let h1 = SEED_HI;
  let h2 = SEED_LO;
  for (let i = 0; i < u.length; i++) {
    const k = mixChar(u.charCodeAt(i));
    h1 = mixInto(h1, k);
    h2 = mixInto(h2, k);
  }
  const k0 = mixChar(0);
  h1 = mixInto(h1, k0);
  h2 = mixInto(h2, k0);
  for (let i = 0; i < nonce.length; i++) {
    const k = mixChar(nonce.charCodeAt(i));
    h1 = mixInto(h1, k);
    h2 = mixInto(h2, k);
  }
  const length = u.length + 1 + nonce.length;
  return (finish(h1, length) & 0x1fffff) * 0x100000000 + finish(h2, length);
}

const SEED_HI = 0x9747b28c | 0;
const SEED_LO = 0x5bd1e995 | 0;

/** MurmurHash3 (x86, 32-bit) over UTF-16 code units, in its three steps. */
function mixChar(code: number): number {
  let k = Math.imul(code, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, 0x1b873593);
}

function mixInto(h: number, k: number): number {
  const x = h ^ k;
  return (Math.imul((x << 13) | (x >>> 19), 5) + 0xe6546b64) | 0;
}

function finish(h: number, length: number): number {
  let x = h ^ length;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}
