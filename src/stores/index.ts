/**
 * Chooses the store adapters from configuration. Records: MongoDB when `QDP_MONGO_URL` is set,
 * else the embedded SQLite store under `QDP_DATA_DIR`. Sessions: Redis with
 * `QDP_SESSION_STORE=redis`, else none beyond the owner's memory. Replays: a shared Redis claim with
 * `QDP_REPLAY_STORE=redis`, else only the owner's memory. Workers call these once at start-up.
 */
import { createMongoStore } from "./mongo-store.ts";
import type { RecordStore } from "./record-store.ts";
import { createRedisClient, type RedisClient } from "./redis-client.ts";
import { createRedisReplayStore } from "./replay-redis.ts";
import type { ReplayStore } from "./replay-store.ts";
import { createRedisSessionBackend } from "./session-redis.ts";
import type { SessionBackend } from "./session-store.ts";
import { createSqliteStore } from "./sqlite-store.ts";

export type { RecordInput, RecordQuery, RecordStore, StoredRecord } from "./record-store.ts";

export interface RecordStoreOptions {
  /** `QDP_MONGO_URL`; when set (non-empty) the MongoDB adapter is used. */
  mongoUrl?: string;
  /** `QDP_MONGO_POOL`: connection pool size per worker process. */
  mongoPool: number;
  /** `QDP_MONGO_W`: write concern (`majority`, `1`, `0`, ...). */
  mongoWriteConcern: string;
  /** `QDP_DATA_DIR`: where the embedded store keeps `records.sqlite`. */
  dataDir: string;
  /**
   * How long a MongoDB connection may stay silent in a send or a receive before it is closed
   * (the driver's socketTimeoutMS, unless QDP_MONGO_URL sets one). The worker passes
   * QDP_TIMEOUT_MS + 5 s: no caller waits longer than its deadline anyway.
   */
  mongoSocketTimeoutMs?: number;
}

/**
 * Opens the configured record store. Rejects (MongoDB unreachable, data dir not writable)
 * rather than returning a store that fails later, so a bad setting stops the worker at start-up.
 *
 * @example
 * ```ts
 * const store = await createRecordStore({ mongoUrl: config.mongoUrl, mongoPool: config.mongoPool,
 *   mongoWriteConcern: config.mongoWriteConcern, dataDir: config.dataDir });
 * ```
 */
export async function createRecordStore(opts: RecordStoreOptions): Promise<RecordStore> {
  if (opts.mongoUrl) {
    return createMongoStore({ url: opts.mongoUrl, poolSize: opts.mongoPool, writeConcern: opts.mongoWriteConcern, socketTimeoutMs: opts.mongoSocketTimeoutMs });
  }
  return createSqliteStore({ dataDir: opts.dataDir });
}

export type { SaveOutcome, SessionBackend, StoredSession } from "./session-store.ts";
export { ReplayStoreUnavailable, type ClaimVerdict, type ReplayStore } from "./replay-store.ts";

export interface SessionBackendOptions {
  /** `QDP_SESSION_STORE`. */
  store: "memory" | "redis";
  /** `QDP_REDIS_URL`, `QDP_REDIS_PREFIX`, `QDP_REDIS_TIMEOUT_MS`. */
  redisUrl: string | undefined;
  redisPrefix: string;
  redisTimeoutMs: number;
  /** `QDP_SESSION_TTL_S` in ms: a stored session's life after its last change. */
  ttlMs: number;
  /** Told when the Redis connection goes down or comes back. */
  onEvent?: (event: "up" | "down", detail: string) => void;
}

/**
 * The durable session store, or null with `memory` (the owner's cache is then the only copy and
 * the executor keeps its synchronous path). Unlike the record store this never fails at
 * start-up: a worker must start and serve stateless calls while Redis is away, so an
 * unreachable Redis shows as 503 SESSION_UNAVAILABLE on stateful calls until it is back.
 */
export function createSessionBackend(opts: SessionBackendOptions): SessionBackend | null {
  return createRedisStores({ ...opts, replayStore: "memory" }).sessions;
}

export interface RedisStoresOptions extends SessionBackendOptions {
  /** `QDP_REPLAY_STORE`. */
  replayStore: "memory" | "redis";
}

/**
 * The Redis-backed stores a worker was configured for, sharing one client (one connection per
 * process: session writes and nonce claims of one tick go out in one socket write). Neither
 * fails at start-up: while Redis is away, stateful calls answer 503 SESSION_UNAVAILABLE and
 * signed calls 503 OVERLOADED (the replay store fails closed) until it is back.
 */
export function createRedisStores(opts: RedisStoresOptions): { sessions: SessionBackend | null; replay: ReplayStore | null; client: RedisClient | null } {
  if (opts.store === "memory" && opts.replayStore === "memory") return { sessions: null, replay: null, client: null };
  const client = createRedisClient({ url: opts.redisUrl!, timeoutMs: opts.redisTimeoutMs, onEvent: opts.onEvent });
  // The stores do not close the shared client; the worker closes it once, after both.
  return {
    sessions: opts.store === "redis" ? createRedisSessionBackend({ client, prefix: opts.redisPrefix, ttlMs: opts.ttlMs, ownsClient: false }) : null,
    replay: opts.replayStore === "redis" ? createRedisReplayStore({ client, prefix: opts.redisPrefix, ownsClient: false }) : null,
    client,
  };
}
