/**
 * The shared replay store port (QDP_REPLAY_STORE=redis; CONTRACT.md §4 and §7): where every
 * host sharing one Redis claims the nonces it accepts, so a captured signed call replayed to
 * *any* host is refused within the ±300 s window.
 *
 * It is the second filter. The owner's in-memory cache (core/replay-cache.ts, behind the replay
 * fence) answers first and catches every replay that comes back to the same owner for free; only
 * a nonce that is new to this owner is claimed here, with one atomic command. Whoever claims a
 * key first wins; everybody else is told "replay". When the store cannot answer, the call is
 * refused (fail closed): accepting it unchecked would let a replay through on another host.
 *
 * Adapter: `replay-redis.ts`. The `memory` setting has no shared store at all.
 */

/** The store's answer: this call claimed the nonce ("fresh"), or someone had already ("replay"). */
export type ClaimVerdict = "fresh" | "replay";

export interface ReplayStore {
  readonly kind: "redis";
  /**
   * Claims (user, nonce) for as long as the call's timestamp can still be inside the signature
   * window on any host. Rejects with {@link ReplayStoreUnavailable} when the store did not
   * answer in time — whether the claim was recorded is then unknown, and the call must not run.
   * @param user the call's user, or null for a call without a user.
   */
  claim(user: string | null, nonce: string, timestampSec: number, nowSec: number): Promise<ClaimVerdict>;
  /** Releases connections the store owns. Idempotent. */
  close(): void;
}

/** The replay store could not answer in time (unreachable, timed out, overloaded, refused). */
export class ReplayStoreUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ReplayStoreUnavailable";
  }
}
