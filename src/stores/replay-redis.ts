/**
 * The shared replay store on Redis (QDP_REPLAY_STORE=redis). One key per accepted
 * (user, nonce): `<QDP_REDIS_PREFIX>nonce:<nonce>:<user>` (the user is empty for a call without
 * one; a nonce is `[A-Za-z0-9_-]`, so the first `:` after the prefix ends it and no two pairs
 * share a key). A claim is one command, `SET key 1 NX EX ttl`: Redis sets the key only if it is
 * absent and says which happened, atomically — two hosts claiming the same nonce at the same
 * moment get "OK" and nil, never "OK" twice. The command goes through the client's pipelining
 * like the session writes, so claims of one event-loop tick share a socket write.
 *
 * Expiry: a call is accepted while |timestamp − now| ≤ 300 s, so its key must outlive
 * `timestamp + 300 − now` seconds (up to 600 s for a timestamp from the future). The hosts'
 * clocks may differ from this one's; {@link CLOCK_SKEW_MARGIN_SEC} more covers that (keep the
 * hosts on NTP). After that, a replay is refused as stale by the signature check itself.
 */
import { SIGNATURE_WINDOW_SEC } from "../core/signing.ts";
import type { RedisClient, RespValue } from "./redis-client.ts";
import { type ClaimVerdict, type ReplayStore, ReplayStoreUnavailable } from "./replay-store.ts";

/** Seconds a nonce key outlives its window, for clock differences between hosts. */
export const CLOCK_SKEW_MARGIN_SEC = 60;

export interface RedisReplayOptions {
  client: RedisClient;
  /** QDP_REDIS_PREFIX, e.g. `qdp:`. */
  prefix: string;
  /** The signature window in seconds; default 300. */
  windowSec?: number;
  /** Close the client with the store (false when it is shared with the session store). */
  ownsClient?: boolean;
}

/** The key of a (user, nonce) pair. */
export function nonceKey(prefix: string, user: string | null, nonce: string): string {
  return `${prefix}nonce:${nonce}:${user ?? ""}`;
}

/** Seconds the key of a call stamped `timestampSec` must live, seen at `nowSec`. */
export function nonceTtlSec(timestampSec: number, nowSec: number, windowSec: number = SIGNATURE_WINDOW_SEC): number {
  return Math.max(1, timestampSec + windowSec - nowSec + 1) + CLOCK_SKEW_MARGIN_SEC;
}

export function createRedisReplayStore(o: RedisReplayOptions): ReplayStore {
  const windowSec = o.windowSec ?? SIGNATURE_WINDOW_SEC;
  return {
    kind: "redis",
    claim(user, nonce, timestampSec, nowSec): Promise<ClaimVerdict> {
      return o.client.send(["SET", nonceKey(o.prefix, user, nonce), "1", "NX", "EX", nonceTtlSec(timestampSec, nowSec, windowSec)]).then(verdict, unavailable);
    },
    close() {
      if (o.ownsClient !== false) o.client.close();
    },
  };
}

function verdict(r: RespValue): ClaimVerdict {
  if (r === "OK") return "fresh";
  if (r === null) return "replay";
  // Anything else means the server is not doing what we asked: do not guess "fresh".
  throw new ReplayStoreUnavailable(`redis answered SET NX with ${JSON.stringify(r)}`);
}

function unavailable(err: Error): never {
  throw new ReplayStoreUnavailable(`replay store: ${err.message}`, { cause: err });
}
