/**
 * Chooses the record store adapter from configuration: MongoDB when `QDP_MONGO_URL` is set,
 * else the embedded SQLite store under `QDP_DATA_DIR`. Workers call this once at start-up.
 */
import { createMongoStore } from "./mongo-store.ts";
import type { RecordStore } from "./record-store.ts";
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
    return createMongoStore({ url: opts.mongoUrl, poolSize: opts.mongoPool, writeConcern: opts.mongoWriteConcern });
  }
  return createSqliteStore({ dataDir: opts.dataDir });
}
