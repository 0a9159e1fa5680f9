/**
 * The replay fence: what makes "a signed call runs at most once" survive a crash or a restart
 * (CONTRACT.md §4), although the accepted nonces themselves live only in memory
 * (`replay-cache.ts`).
 *
 * The idea: a worker's memory of nonces is complete from some moment on; anything signed at or
 * before the moment it may have forgotten is refused.
 *
 * - **The mark.** Each worker keeps the largest signed timestamp it has accepted and writes it
 *   to a small file of its index (the adapter, `stores/replay-mark.ts`) *before* it accepts a
 *   call whose timestamp is above the value already written. Timestamps are whole seconds, so
 *   that is about one tiny write per second per worker, whatever the load. It is the largest
 *   timestamp *accepted*, not the server's clock, so calls stamped in the future (a UAP clock
 *   ahead, up to the +300 s the window allows) are covered too.
 * - **The fence.** A worker that starts without its predecessor's memory (first start, respawn
 *   after a crash, full restart, another `QDP_WORKERS`, a reload replacement whose predecessor
 *   died before handing over) sets its fence to the largest mark of *all* indices
 *   ({@link fenceFromMarks}) and refuses every signed call stamped at or before it: such a call
 *   may have been accepted by a process whose memory is gone. A fresh signature carries the
 *   current time, which is past the fence about a second after the crash.
 * - **Hand-off.** A rolling reload hands the nonces *and the fence* to the replacement: a
 *   worker that was itself fenced (it restarted less than 300 s ago) does not hold the nonces
 *   below its fence, so its replacement must keep refusing them.
 *
 * Pure TypeScript: the file I/O comes in as the `persist` function.
 */
import { QdpError } from "./errors.ts";
import type { ReplayCache, ReplayEntry, ReplayVerdict } from "./replay-cache.ts";
import { SIGNATURE_WINDOW_SEC } from "./signing.ts";

export interface ReplayFenceOptions {
  /** Calls signed at or before this second are refused; 0 = no fence. Can only be raised later. */
  fenceSec?: number;
  /** The mark already written for this index (0 if none), so a start never lowers it. */
  persistedSec: number;
  /**
   * Writes a mark of at least `sec` where a restart finds it, synchronously, and returns the
   * value now written (which may be higher: another process of the index wrote more). Throws
   * when it cannot write; the call is then refused.
   */
  persist(sec: number): number;
}

export interface ReplayFence {
  /** Calls signed at or before this second are refused (0 = none). */
  readonly fenceSec: number;
  /** The largest mark known to be written for this index. */
  readonly persistedSec: number;
  /**
   * Decides a signed call's timestamp: "fenced" (at or before the fence: refuse), else makes
   * sure a mark ≥ the timestamp is written before answering "ok". Throws if that write fails.
   */
  admit(timestampSec: number): "fenced" | "ok";
  /** Raises the fence (the predecessor's fence arriving with a hand-off); never lowers it. */
  raise(sec: number): void;
}

/** Builds a fence. See the module comment. */
export function createReplayFence(options: ReplayFenceOptions): ReplayFence {
  let fenceSec = validSec(options.fenceSec ?? 0, "fenceSec");
  let persistedSec = validSec(options.persistedSec, "persistedSec");
  const persist = options.persist;
  return {
    get fenceSec() {
      return fenceSec;
    },
    get persistedSec() {
      return persistedSec;
    },
    admit(timestampSec) {
      if (!(timestampSec > fenceSec)) return "fenced";
      // The common case is one comparison: the mark already covers this second.
      if (timestampSec > persistedSec) persistedSec = Math.max(timestampSec, persist(timestampSec));
      return "ok";
    },
    raise(sec) {
      if (Number.isFinite(sec) && sec > fenceSec) fenceSec = sec;
    },
  };
}

function validSec(value: number, name: string): number {
  if (!(Number.isSafeInteger(value) && value >= 0)) throw new RangeError(`${name} must be a non-negative integer`);
  return value;
}

/** One index's mark as read from where it is kept. */
export type MarkReading =
  /** A well-formed mark. */
  | { name: string; sec: number }
  /** A mark that exists but cannot be read or parsed (garbage, empty after a power loss, EIO). */
  | { name: string; error: string };

/**
 * The fence of a worker starting without a hand-off: the largest mark of every index (a
 * restart with another worker count moves users between indices, so every index's mark counts).
 * No marks at all (first start ever) = no fence.
 *
 * An unreadable mark is taken conservatively as `nowSec + windowSec` — the largest timestamp
 * any worker could have accepted — so no replay can slip through. The price: the worker refuses
 * every signed call for up to 2 × the window (10 minutes) after starting. With marks written by
 * temporary file and rename this happens only when the file was damaged (a disk fault, a host
 * that lost power before the file reached the disk, someone editing it).
 *
 * @returns the fence, and the names of unreadable marks (for the log).
 */
export function fenceFromMarks(
  marks: Iterable<MarkReading>,
  nowSec: number,
  windowSec: number = SIGNATURE_WINDOW_SEC,
): { fenceSec: number; unreadable: string[] } {
  let fenceSec = 0;
  const unreadable: string[] = [];
  for (const m of marks) {
    if ("sec" in m) fenceSec = Math.max(fenceSec, m.sec);
    else {
      unreadable.push(m.name);
      fenceSec = Math.max(fenceSec, nowSec + windowSec);
    }
  }
  return { fenceSec, unreadable };
}

/** The text of a mark: decimal unix seconds and a newline. */
export function formatMark(sec: number): string {
  return `${sec}\n`;
}

/** Parses a mark's text; `null` when it is not exactly decimal seconds (an optional final newline). */
export function parseMark(text: string): number | null {
  if (!/^[0-9]{1,15}\n?$/.test(text)) return null;
  return Number(text.trim());
}

/** What the owner answers about a signed call's nonce: the cache's verdict, or "fenced". */
export type ReplayCheck = ReplayVerdict | "fenced";

/**
 * The owner's replay check: the fence, then the cache. The one object the executor, the router
 * and the hop handler ask, so no path can check the cache without the fence.
 */
export interface ReplayGuard {
  readonly fence: ReplayFence;
  /**
   * The fence first (a fenced call takes no room in the cache), with the mark written before
   * the cache may answer "fresh" — so the call is durable before it is accepted.
   * @throws QdpError INTERNAL when the mark cannot be written (the call must not run).
   */
  checkAndRemember(user: string | null, nonce: string, timestampSec: number, nowSec: number): ReplayCheck;
  /** See {@link ReplayCache.export}. */
  export(nowSec?: number): ReplayEntry[];
  /** See {@link ReplayCache.import}. */
  import(entries: Iterable<ReplayEntry>, nowSec: number): number;
  readonly size: number;
}

/** Puts a fence in front of a replay cache. */
export function guardReplay(cache: ReplayCache, fence: ReplayFence): ReplayGuard {
  return {
    fence,
    checkAndRemember(user, nonce, timestampSec, nowSec) {
      let admitted: "fenced" | "ok";
      try {
        admitted = fence.admit(timestampSec);
      } catch (err) {
        throw new QdpError("INTERNAL", "cannot record the replay mark; the call was not run", { cause: err });
      }
      if (admitted === "fenced") return "fenced";
      return cache.checkAndRemember(user, nonce, timestampSec, nowSec);
    },
    export: (nowSec) => cache.export(nowSec),
    import: (entries, nowSec) => cache.import(entries, nowSec),
    get size() {
      return cache.size;
    },
  };
}

/**
 * The refusal for a replay check's answer, or `null` for "fresh". `fenceSec` names the fence in
 * the message, so UAP's log says what to do.
 */
export function replayRefusal(check: ReplayCheck | string, fenceSec: number): QdpError | null {
  switch (check) {
    case "fresh":
      return null;
    case "replay":
      return new QdpError("UNAUTHENTICATED", "nonce already used (replay)");
    case "full":
      return new QdpError("OVERLOADED", "replay cache is full");
    case "fenced":
      return new QdpError(
        "UNAUTHENTICATED",
        `signed at or before ${fenceSec}, the replay fence of a worker that restarted without its predecessor's memory of nonces: it cannot vouch that this nonce was never used; sign the call again (new nonce, current timestamp)`,
      );
    default:
      return new QdpError("INTERNAL", `unexpected replay verdict ${JSON.stringify(check)}`);
  }
}
