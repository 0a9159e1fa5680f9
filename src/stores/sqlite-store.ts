/**
 * The embedded record store: one SQLite file per data directory, shared by every worker process
 * of the host. bun:sqlite is synchronous, so each operation is short: reads are one indexed
 * statement, and inserts are grouped per tick into one small transaction (see `commit`).
 *
 * Several processes write the same file at once. WAL mode lets readers run beside the one
 * writer; `busy_timeout` makes a writer that finds the lock taken wait (SQLite retries inside
 * the call) instead of failing with SQLITE_BUSY; `synchronous=NORMAL` is durable against process
 * crashes in WAL mode and only risks the last commits on power loss, which is the usual trade
 * for a local store.
 */
import { Database, type Statement } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { RecordInput, RecordQuery, RecordStore, StoredRecord } from "./record-store.ts";

export interface SqliteStoreOptions {
  /** Directory of the store (`QDP_DATA_DIR`); created if missing. The file is `records.sqlite`. */
  dataDir: string;
  /** How long a write waits for another process's write lock before failing. Default 5000 ms. */
  busyTimeoutMs?: number;
}

/** Default and ceiling of `RecordQuery.limit`, so one call can never read a whole table. */
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 10_000;

/**
 * Opens (and if needed creates) the embedded store.
 *
 * @example
 * ```ts
 * const store = createSqliteStore({ dataDir: "./data" });
 * const id = await store.insert("quotes", { user: "u1", symbol: "ACME" });
 * ```
 */
export function createSqliteStore(opts: SqliteStoreOptions): RecordStore {
  mkdirSync(opts.dataDir, { recursive: true });
  const db = new Database(join(opts.dataDir, "records.sqlite"), { create: true, strict: true });

  // busy_timeout first: the schema statements below may meet another worker starting up.
  const busyMs = Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000));
  db.run(`PRAGMA busy_timeout = ${busyMs}`);
  enableWal(db, busyMs);
  db.run("PRAGMA synchronous = NORMAL");
  // IMMEDIATE takes the write lock up front, so workers starting together create the schema
  // one after another instead of failing on a read-to-write lock upgrade.
  db.transaction(() => {
    db.run(`CREATE TABLE IF NOT EXISTS records (
      collection TEXT NOT NULL,
      id TEXT NOT NULL,
      user TEXT,
      created INTEGER NOT NULL,
      doc TEXT NOT NULL,
      PRIMARY KEY (collection, id)
    )`);
    // Both indexes end in the implicit rowid, so "created DESC, rowid DESC" is read straight
    // from the index; rowid breaks ties inside one millisecond in true commit order.
    db.run("CREATE INDEX IF NOT EXISTS records_user_created ON records (collection, user, created)");
    db.run("CREATE INDEX IF NOT EXISTS records_created ON records (collection, created)");
  }).immediate();

  type Row = { id: string; doc: string };
  const insertStmt = db.prepare<void, [string, string, string | null, number, string]>(
    "INSERT INTO records (collection, id, user, created, doc) VALUES (?, ?, ?, ?, ?)",
  );
  const getStmt = db.prepare<Row, [string, string]>("SELECT id, doc FROM records WHERE collection = ? AND id = ?");
  const findStmt = db.prepare<Row, [string, number]>("SELECT id, doc FROM records WHERE collection = ? ORDER BY created DESC, rowid DESC LIMIT ?");
  const findByUserStmt = db.prepare<Row, [string, string, number]>(
    "SELECT id, doc FROM records WHERE collection = ? AND user = ? ORDER BY created DESC, rowid DESC LIMIT ?",
  );
  const statements: Statement<any, any>[] = [insertStmt, getStmt, findStmt, findByUserStmt];

  /**
   * Group commit: the inserts of one event-loop tick are written in one IMMEDIATE transaction.
   * Under load that turns thousands of write-lock acquisitions and WAL commits per second into
   * one per tick; it matters because a writer that finds the lock held by another worker waits
   * inside SQLite, blocking its event loop for that time.
   */
  type Pending = { row: [string, string, string | null, number, string]; resolve: () => void; reject: (e: unknown) => void };
  let batch: Pending[] = [];
  const writeBatch = db.transaction((rows: Pending[]) => {
    for (const p of rows) insertStmt.run(...p.row);
  });
  const commit = (): void => {
    const rows = batch;
    batch = [];
    if (rows.length === 0) return;
    try {
      writeBatch.immediate(rows);
      for (const p of rows) p.resolve();
    } catch (err) {
      for (const p of rows) p.reject(err);
    }
  };

  let closed = false;
  const open = (): void => {
    if (closed) throw new Error("record store (sqlite) is closed");
  };

  return {
    kind: "sqlite",

    insert(collection: string, record: RecordInput): Promise<string> {
      if (closed) return Promise.reject(new Error("record store (sqlite) is closed"));
      // UUIDv7: time-ordered, monotonic inside a process and 74 random bits across processes,
      // so workers never need to coordinate ids.
      const id = Bun.randomUUIDv7();
      const { id: _ignored, ...doc } = record;
      const user = typeof record.user === "string" ? record.user : null;
      const row: [string, string, string | null, number, string] = [collection, id, user, Date.now(), JSON.stringify(doc)];
      return new Promise<string>((resolve, reject) => {
        batch.push({ row, resolve: () => resolve(id), reject });
        if (batch.length === 1) setImmediate(commit);
      });
    },

    async get(collection: string, id: string): Promise<StoredRecord | null> {
      open();
      const row = getStmt.get(collection, id);
      return row ? toRecord(row) : null;
    },

    async find(collection: string, query: RecordQuery = {}): Promise<StoredRecord[]> {
      open();
      const limit = normalizeLimit(query.limit);
      if (limit === 0) return [];
      const rows = query.user === undefined ? findStmt.all(collection, limit) : findByUserStmt.all(collection, query.user, limit);
      return rows.map(toRecord);
    },

    async close(): Promise<void> {
      if (closed) return;
      commit();
      closed = true;
      for (const s of statements) s.finalize();
      db.close();
    },
  };
}

function toRecord(row: { id: string; doc: string }): StoredRecord {
  return { ...(JSON.parse(row.doc) as RecordInput), id: row.id };
}

function normalizeLimit(limit: number | undefined): number {
  if (limit === undefined || Number.isNaN(limit)) return DEFAULT_LIMIT;
  return Math.min(MAX_LIMIT, Math.max(0, Math.floor(limit)));
}

/**
 * Switches the file to WAL. Changing the journal mode needs an exclusive lock, and SQLite answers
 * SQLITE_BUSY at once instead of consulting the busy handler, so workers opening a new file
 * together failed to start now and then ("database is locked"): retry until `timeoutMs`.
 */
function enableWal(db: Database, timeoutMs: number): void {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      db.run("PRAGMA journal_mode = WAL");
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== "SQLITE_BUSY" || Date.now() >= until) throw err;
      Bun.sleepSync(2 + Math.random() * 8);
    }
  }
}
