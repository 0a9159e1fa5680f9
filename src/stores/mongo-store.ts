/**
 * The MongoDB record store (official driver), used when `QDP_MONGO_URL` is set. Each worker
 * process holds one MongoClient whose pool (`QDP_MONGO_POOL`) is shared by all its requests.
 *
 * Records are stored as given, plus MongoDB's `_id`; they are read back with `id` = the
 * ObjectId's hex string. ObjectIds are made by the driver in this process (seconds, then a
 * per-process random part, then an increasing counter), so sorting by `_id` descending is
 * "newest first": exact inside a worker, to the second between workers.
 */
import { redactUrl } from "../core/config.ts";
import { MongoClient, ObjectId, type Collection, type Db, type Document, type W } from "mongodb";
import type { RecordInput, RecordQuery, RecordStore, StoredRecord } from "./record-store.ts";

export interface MongoStoreOptions {
  /** `QDP_MONGO_URL`, e.g. `mongodb://user:pass@db1,db2/qdp?replicaSet=rs0`. The path names the database (default `qdp`). */
  url: string;
  /** `QDP_MONGO_POOL`: the driver's `maxPoolSize` for this process. */
  poolSize: number;
  /** `QDP_MONGO_W`: write concern, `majority` or a number of members (`1`, `0`, ...). */
  writeConcern: string;
  /** How long start-up may wait for a reachable server before failing. Default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * The driver's `socketTimeoutMS` unless the URL sets it: a connection on which a send or a
   * receive waits longer is closed and its operation fails. The driver's default is to wait
   * forever, and a half-open connection would then hold a collection's insert batch — and every
   * insert gathered behind it — for good. Default: none (the driver's).
   */
  socketTimeoutMs?: number;
  /** Sees each insert batch as it leaves and when it returns (tests; nothing in production uses it). */
  onBatch?: (event: "sent" | "done", collection: string, docs: number) => void;
  /** Collections whose indexes are made at start-up; others get them on first use. Default `["quotes"]`. */
  collections?: readonly string[];
}

/** Default and ceiling of `RecordQuery.limit`; the ceiling also guards against `limit(0)` meaning "all" in MongoDB. */
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 10_000;
const DEFAULT_DATABASE = "qdp";
/**
 * Insert batches of one collection at the server at once, per worker (see the group commit
 * below). Measured at 10,000 slow callers writing 2,000 records/s through two workers (FerretDB,
 * bench/b-stages.ts), mean insert latency: a batch per tick 233 ms; at most 8 in flight 186 ms,
 * 2 → 120 ms, 1 → 114 ms. Writes to one collection serialise at the server anyway; more batches
 * in flight only make each wait behind the others.
 */
const MAX_BATCHES_IN_FLIGHT = 1;
/** Documents per insertMany; the driver would split larger ones itself, this keeps one batch's wait short. */
const MAX_BATCH_DOCS = 1000;
/** {user, _id} serves find({user}) sorted newest first; find() without a user uses the _id index. */
const USER_INDEX = [{ user: 1, _id: -1 }, { name: "user_1__id_-1" }] as const;

/**
 * Connects and returns the store. Rejects within about `connectTimeoutMs` when no server
 * answers, with `cannot reach MongoDB at <url without password> (QDP_MONGO_URL): <reason>`,
 * so a worker with a wrong URL fails loudly at start-up instead of hanging on its first write.
 *
 * @example
 * ```ts
 * const store = await createMongoStore({ url: "mongodb://127.0.0.1/qdp", poolSize: 20, writeConcern: "majority" });
 * ```
 */
export async function createMongoStore(opts: MongoStoreOptions): Promise<RecordStore> {
  const timeoutMs = opts.connectTimeoutMs ?? 5000;
  const unreachable = (err: unknown): Error =>
    new Error(`cannot reach MongoDB at ${redactMongoUrl(opts.url)} (QDP_MONGO_URL): ${reasonOf(err)}`, { cause: err });

  const w = parseWriteConcern(opts.writeConcern);
  const socketTimeout = opts.socketTimeoutMs !== undefined && !/[?&]sockettimeoutms=/i.test(opts.url) ? { socketTimeoutMS: opts.socketTimeoutMs } : {};
  const clientOptions = {
    maxPoolSize: opts.poolSize,
    writeConcern: { w },
    // Both bounds matter: server selection covers "nothing listens" and "no primary",
    // connect covers a TCP handshake that never completes (a filtered port).
    serverSelectionTimeoutMS: timeoutMs,
    connectTimeoutMS: timeoutMs,
  };
  let client: MongoClient;
  try {
    client = new MongoClient(opts.url, { ...clientOptions, ...socketTimeout });
  } catch (err) {
    throw unreachable(err); // a malformed URL; same message so the operator sees which variable
  }

  const db = client.db(databaseFromUrl(opts.url));
  try {
    await client.connect();
    await db.command({ ping: 1 });
  } catch (err) {
    await client.close().catch(() => {});
    throw unreachable(err);
  }

  let closed = false;
  let closing: Promise<void> | undefined;

  // One index build per collection per process; a failed build is forgotten so the next call retries.
  const indexed = new Map<string, Promise<void>>();
  const buildIndexes = (on: Db, name: string): Promise<void> =>
    on
      .collection(name)
      .createIndex(...USER_INDEX)
      .then(() => undefined);
  const ensureIndexes = (name: string): Promise<void> => {
    let p = indexed.get(name);
    if (!p) {
      p = buildIndexes(db, name);
      p.catch(() => indexed.delete(name));
      indexed.set(name, p);
    }
    return p;
  };
  const collection = async (name: string): Promise<Collection<Document>> => {
    if (closed) throw new Error("record store (mongo) is closed");
    await ensureIndexes(name);
    return db.collection(name);
  };

  // The start-up builds go through a client of their own without the socket timeout: building
  // an index on a large existing collection sends nothing back until it is done, which may take
  // far longer than any call may wait, and the worker would then refuse to start.
  const indexClient = "socketTimeoutMS" in socketTimeout ? new MongoClient(opts.url, { ...clientOptions, maxPoolSize: 1 }) : client;
  try {
    const indexDb = indexClient.db(databaseFromUrl(opts.url));
    await Promise.all(
      (opts.collections ?? ["quotes"]).map((name) => {
        const p = buildIndexes(indexDb, name);
        indexed.set(name, p);
        return p;
      }),
    );
  } catch (err) {
    await client.close().catch(() => {});
    throw new Error(`MongoDB at ${redactMongoUrl(opts.url)} (QDP_MONGO_URL): cannot create indexes: ${reasonOf(err)}`, {
      cause: err,
    });
  } finally {
    if (indexClient !== client) await indexClient.close().catch(() => {});
  }

  /**
   * Group commit: inserts into one collection go to the server as unordered insertMany batches —
   * one round trip and one write-concern wait for many calls. A batch leaves at the end of the
   * tick its first insert arrived in, unless MAX_BATCHES_IN_FLIGHT of the collection's batches
   * are still at the server: then inserts gather until one returns and leave together. Idle, an
   * insert waits for nothing; under load batches grow by themselves instead of queueing at the
   * database as many small concurrent ones. A failed document fails only its call.
   */
  type Pending = { doc: Document; resolve: () => void; reject: (e: unknown) => void };
  type Queue = { pending: Pending[]; inFlight: number; scheduled: boolean };
  const queues = new Map<string, Queue>();
  const queueOf = (name: string): Queue => {
    let q = queues.get(name);
    if (!q) queues.set(name, (q = { pending: [], inFlight: 0, scheduled: false }));
    return q;
  };
  const send = (name: string, q: Queue): void => {
    q.scheduled = false;
    if (q.inFlight >= MAX_BATCHES_IN_FLIGHT || q.pending.length === 0) return;
    const batch = q.pending.splice(0, MAX_BATCH_DOCS);
    q.inFlight++;
    void write(name, batch).finally(() => {
      q.inFlight--;
      if (q.pending.length > 0 && !q.scheduled) send(name, q);
    });
    // Past MAX_BATCH_DOCS the rest goes in the next batch, if a slot is free.
    if (q.pending.length > 0) send(name, q);
  };
  const write = async (name: string, pending: Pending[]): Promise<void> => {
    opts.onBatch?.("sent", name, pending.length);
    try {
      const c = await collection(name);
      await c.insertMany(
        pending.map((p) => p.doc),
        { ordered: false },
      );
      for (const p of pending) p.resolve();
    } catch (err) {
      const failed = failedDocuments(err, pending.length);
      pending.forEach((p, i) => {
        if (failed === null || failed.has(i)) p.reject(err);
        else p.resolve();
      });
    } finally {
      opts.onBatch?.("done", name, pending.length);
    }
  };

  return {
    kind: "mongo",

    insert(name: string, record: RecordInput): Promise<string> {
      const { id: _ignored, ...doc } = record;
      const _id = new ObjectId();
      return new Promise<string>((resolve, reject) => {
        const q = queueOf(name);
        q.pending.push({ doc: { ...doc, _id }, resolve: () => resolve(_id.toHexString()), reject });
        if (!q.scheduled && q.inFlight < MAX_BATCHES_IN_FLIGHT) {
          q.scheduled = true;
          setImmediate(() => send(name, q));
        }
      });
    },

    async get(name: string, id: string): Promise<StoredRecord | null> {
      // Ids not shaped like an ObjectId cannot exist here; answer without a round trip.
      if (!/^[0-9a-f]{24}$/i.test(id)) return null;
      const c = await collection(name);
      const doc = await c.findOne({ _id: new ObjectId(id) });
      return doc ? toRecord(doc) : null;
    },

    async find(name: string, query: RecordQuery = {}): Promise<StoredRecord[]> {
      const limit = normalizeLimit(query.limit);
      if (limit === 0) return [];
      const c = await collection(name);
      const filter = query.user === undefined ? {} : { user: query.user };
      const docs = await c.find(filter).sort({ _id: -1 }).limit(limit).toArray();
      return docs.map(toRecord);
    },

    close(): Promise<void> {
      closed = true;
      closing ??= client.close();
      return closing;
    },
  };
}

/**
 * Which documents of a failed unordered insertMany were not written: the indexes the server
 * rejected one by one, or null when the outcome of the whole batch is unknown. The driver wraps
 * a network failure or a socket timeout in the same MongoBulkWriteError, with an empty
 * `writeErrors` and nothing inserted: taking "no write errors" for "all written" reported
 * records as stored that the server never acknowledged. So the listed errors count only when
 * they and the acknowledged inserts add up to the whole batch.
 */
export function failedDocuments(err: unknown, batchSize: number): Set<number> | null {
  const e = err as { writeErrors?: { index: number } | Array<{ index: number }>; insertedCount?: number };
  const list = Array.isArray(e.writeErrors) ? e.writeErrors : e.writeErrors ? [e.writeErrors] : [];
  const failed = new Set(list.map((w) => w.index));
  if (failed.size === 0 || typeof e.insertedCount !== "number" || e.insertedCount + failed.size !== batchSize) return null;
  return failed;
}

/** `mongodb://user:secret@host/db` → `mongodb://user:***@host/db`, for logs and error messages. */
export function redactMongoUrl(url: string): string {
  return redactUrl(url);
}

/** The database named by the URL path (`mongodb://h/name?x=1` → `name`), else `qdp`. */
export function databaseFromUrl(url: string): string {
  const path = /^mongodb(?:\+srv)?:\/\/[^/?]*\/([^?]*)/i.exec(url)?.[1];
  return path ? decodeURIComponent(path) : DEFAULT_DATABASE;
}

function parseWriteConcern(w: string): W {
  if (/^\d+$/.test(w)) return Number(w);
  if (w === "majority") return w;
  throw new Error(`QDP_MONGO_W=${JSON.stringify(w)}: expected majority or a whole number`);
}

function toRecord(doc: Document): StoredRecord {
  const { _id, ...rest } = doc;
  return { ...rest, id: _id instanceof ObjectId ? _id.toHexString() : String(_id) };
}

function normalizeLimit(limit: number | undefined): number {
  if (limit === undefined || Number.isNaN(limit)) return DEFAULT_LIMIT;
  return Math.min(MAX_LIMIT, Math.max(0, Math.floor(limit)));
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
