/**
 * The record store port. Services write business records through it; adapters bring the I/O:
 * `mongo-store.ts` (official driver, when QDP_MONGO_URL is set) and `sqlite-store.ts`
 * (bun:sqlite in WAL mode under QDP_DATA_DIR, the default). Both pass `test/record-store.contract.ts`.
 */

/** A record as services write it: any JSON object. */
export type RecordInput = Record<string, unknown>;

/** A record as read back: the input plus its id. */
export type StoredRecord = RecordInput & { id: string };

export interface RecordQuery {
  /** Only records of this user (the `user` field). */
  user?: string;
  /** At most this many, newest first. Default 100. */
  limit?: number;
}

export interface RecordStore {
  /** Which adapter this is, for logs and stats: "mongo" or "sqlite". */
  readonly kind: "mongo" | "sqlite";
  /** Writes one record into `collection`; returns its id (a string, unique in the collection). */
  insert(collection: string, record: RecordInput): Promise<string>;
  /** Reads one record by id, or null. */
  get(collection: string, id: string): Promise<StoredRecord | null>;
  /** Lists records, newest first. */
  find(collection: string, query?: RecordQuery): Promise<StoredRecord[]>;
  /** Closes connections / file handles. Idempotent. */
  close(): Promise<void>;
}
