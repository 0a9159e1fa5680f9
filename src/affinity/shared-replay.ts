/**
 * The owner's use of the shared replay store (QDP_REPLAY_STORE=redis): after the fence and the
 * in-memory cache said "fresh", the nonce is claimed cluster-wide before the call may run. Maps
 * the store's answers to the contract's refusals and counts them for /stats and /metrics.
 *
 * - claimed → the call runs;
 * - already claimed (by another host, or by this host before a crash wiped its memory) →
 *   401 UNAUTHENTICATED, exactly like a replay caught in memory;
 * - no answer in time (Redis down, hung, partitioned, too many commands waiting) → 503
 *   OVERLOADED with `Retry-After`: fail closed. The nonce stays in this owner's memory (the
 *   claim may have reached Redis), so a retry must be signed again — as docs/signing.md already
 *   asks for any retry after a 5xx.
 *
 * Why OVERLOADED and not a new code: the contract's catalogue is closed, the replay cache
 * answers a full cache with OVERLOADED for the same reason (it cannot vouch for the nonce), and
 * SESSION_UNAVAILABLE would tell the caller of a stateless call about a session it does not have.
 */
import { QdpError } from "../core/errors.ts";
import { Histogram } from "../telemetry/histogram.ts";
import type { ReplayStore } from "../stores/replay-store.ts";

/** Counters of the shared replay store, for /stats and /metrics. */
export interface SharedReplayStats {
  /** Nonces claimed (the call went on). */
  claims: number;
  /** Nonces found already claimed: replays that reached another owner than the first time. */
  replays: number;
  /** Claims without an answer in time: calls refused with 503 OVERLOADED. */
  errors: number;
}

export class SharedReplay {
  readonly stats: SharedReplayStats = { claims: 0, replays: 0, errors: 0 };
  /** Round-trip time of each claim. */
  readonly latency = new Histogram();

  constructor(private readonly store: ReplayStore) {}

  /** Resolves when the nonce is claimed; rejects with UNAUTHENTICATED or OVERLOADED otherwise. */
  claim(user: string | null, nonce: string, timestampSec: number, nowSec: number): Promise<void> {
    const t0 = performance.now();
    return this.store.claim(user, nonce, timestampSec, nowSec).then(
      (verdict) => {
        this.latency.observe((performance.now() - t0) / 1000);
        if (verdict === "fresh") {
          this.stats.claims++;
          return;
        }
        this.stats.replays++;
        throw new QdpError("UNAUTHENTICATED", "nonce already used (replay; accepted by a host sharing this replay store)");
      },
      (err: Error) => {
        this.latency.observe((performance.now() - t0) / 1000);
        this.stats.errors++;
        throw new QdpError(
          "OVERLOADED",
          "the shared replay store did not answer, so the nonce cannot be checked; the call was not run (sign it again to retry)",
          { cause: err },
        );
      },
    );
  }

  close(): void {
    this.store.close();
  }
}
