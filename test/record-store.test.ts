/**
 * Record stores: the shared contract against the embedded SQLite store and against MongoDB
 * (a real server from QDP_TEST_MONGO_URL, else FerretDB built with Go), plus what only one
 * adapter has: several processes writing one SQLite file, and MongoDB's start-up failure.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { MongoClient } from "mongodb";
import { createRecordStore } from "../src/stores/index.ts";
import { createMongoStore, databaseFromUrl, failedDocuments, redactMongoUrl } from "../src/stores/mongo-store.ts";
import { createSqliteStore } from "../src/stores/sqlite-store.ts";
import { recordStoreContract } from "./record-store.contract.ts";
import { MONGO_SKIP_MESSAGE, mongoTestUrl, mongoUrlWithDatabase, startFerretDB } from "./support/ferretdb.ts";

const tempDirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "qdp-records-"));
  tempDirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Embedded SQLite store

const sqliteDir = tempDir();
recordStoreContract("sqlite", async () => createSqliteStore({ dataDir: sqliteDir }));

describe("sqlite store", () => {
  test("creates <dataDir>/records.sqlite (and missing parents) in WAL mode", async () => {
    const dir = join(tempDir(), "nested", "data");
    const store = createSqliteStore({ dataDir: dir });
    await store.insert("quotes", { user: "u" });
    await store.close();
    const db = new Database(join(dir, "records.sqlite"), { readonly: true });
    expect(db.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    const indexes = db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records'").all();
    expect(indexes).toContainEqual({ name: "records_user_created" });
    db.close();
  });

  test("operations after close reject", async () => {
    const store = createSqliteStore({ dataDir: tempDir() });
    await store.close();
    await expect(store.insert("quotes", { user: "u" })).rejects.toThrow(/closed/);
  });

  test("several processes writing the same file at once lose nothing", async () => {
    const dir = tempDir();
    const processes = 4;
    const perProcess = 300;
    const storePath = resolve(import.meta.dir, "../src/stores/sqlite-store.ts");
    // Each child opens the (not yet existing) store at the same moment, then all start writing
    // at one agreed instant, so both schema creation and inserts really contend for the lock.
    const child = `
      import { createSqliteStore } from ${JSON.stringify(storePath)};
      const store = createSqliteStore({ dataDir: process.env.STORE_DIR });
      while (Date.now() < Number(process.env.START_AT)) await Bun.sleep(1);
      const ids = [];
      for (let i = 0; i < Number(process.env.COUNT); i++) ids.push(await store.insert("multi", { user: process.env.WRITER, i }));
      await store.close();
      console.log(JSON.stringify(ids));
    `;
    const startAt = Date.now() + 1000;
    const children = Array.from({ length: processes }, (_, p) =>
      Bun.spawn([process.execPath, "-e", child], {
        env: { ...process.env, STORE_DIR: dir, START_AT: String(startAt), COUNT: String(perProcess), WRITER: `w${p}` },
        stdout: "pipe",
        stderr: "pipe",
      }),
    );
    const results = await Promise.all(
      children.map(async (c) => {
        const [code, out, err] = await Promise.all([c.exited, new Response(c.stdout).text(), new Response(c.stderr).text()]);
        if (code !== 0) throw new Error(`writer exited ${code}: ${err}`);
        return JSON.parse(out) as string[];
      }),
    );

    const allIds = results.flat();
    expect(allIds).toHaveLength(processes * perProcess);
    expect(new Set(allIds).size).toBe(processes * perProcess);

    const store = createSqliteStore({ dataDir: dir });
    try {
      for (let p = 0; p < processes; p++) {
        const mine = await store.find("multi", { user: `w${p}`, limit: 10_000 });
        // Every write is there, and each writer's records read back newest first.
        expect(mine.map((r) => r.i)).toEqual(Array.from({ length: perProcess }, (_, i) => perProcess - 1 - i));
        expect(new Set(mine.map((r) => r.id))).toEqual(new Set(results[p]));
      }
      expect(await store.find("multi", { limit: 10_000 })).toHaveLength(processes * perProcess);
    } finally {
      await store.close();
    }
  }, 30_000);
});

// ---------------------------------------------------------------------------------------------
// MongoDB store

describe("a failed insert batch: which of its documents were not written", () => {
  test("documents the server refused one by one fail; the others were written", () => {
    expect(failedDocuments({ writeErrors: [{ index: 1 }], insertedCount: 2 }, 3)).toEqual(new Set([1]));
    expect(failedDocuments({ writeErrors: { index: 0 }, insertedCount: 0 }, 1)).toEqual(new Set([0]));
  });
  test("a timeout or a lost connection (no write errors, nothing acknowledged) fails the whole batch", () => {
    expect(failedDocuments({ writeErrors: [], insertedCount: 0 }, 3)).toBeNull();
    expect(failedDocuments(new Error("connection 1 to 127.0.0.1:27017 timed out"), 3)).toBeNull();
    // Write errors that do not account for the rest of the batch: the rest is unknown too.
    expect(failedDocuments({ writeErrors: [{ index: 0 }], insertedCount: 0 }, 3)).toBeNull();
    expect(failedDocuments({ writeErrors: [{ index: 0 }] }, 3)).toBeNull();
  });
});

describe("mongo store without a server", () => {
  test("start-up rejects within a few seconds, naming the URL without its password", async () => {
    // Bind a port and release it: nothing listens there any more.
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const url = `mongodb://qdp:s3cret@127.0.0.1:${port}/qdp`;

    const started = performance.now();
    const error = await createMongoStore({ url, poolSize: 2, writeConcern: "1", connectTimeoutMs: 1500 }).then(
      () => null,
      (e: unknown) => e,
    );
    const elapsed = performance.now() - started;

    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toStartWith(`cannot reach MongoDB at mongodb://qdp:***@127.0.0.1:${port}/qdp (QDP_MONGO_URL): `);
    expect(message).not.toContain("s3cret");
    expect(elapsed).toBeLessThan(5000);
  }, 15_000);

  test("the default 5 s bound applies through createRecordStore", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const started = performance.now();
    await expect(
      createRecordStore({ mongoUrl: `mongodb://127.0.0.1:${port}`, mongoPool: 1, mongoWriteConcern: "majority", dataDir: tempDir() }),
    ).rejects.toThrow(`cannot reach MongoDB at mongodb://127.0.0.1:${port} (QDP_MONGO_URL)`);
    expect(performance.now() - started).toBeLessThan(8000);
  }, 15_000);

  test("URL helpers: database from the path, password redacted", () => {
    expect(databaseFromUrl("mongodb://h:1/records?w=1")).toBe("records");
    expect(databaseFromUrl("mongodb://a:1,b:2/x")).toBe("x");
    expect(databaseFromUrl("mongodb://h:1/?replicaSet=rs0")).toBe("qdp");
    expect(databaseFromUrl("mongodb+srv://c.example.net")).toBe("qdp");
    expect(redactMongoUrl("mongodb://u:p%40ss@h/db")).toBe("mongodb://u:***@h/db");
    expect(redactMongoUrl("mongodb+srv://u@h/db")).toBe("mongodb+srv://u@h/db");
  });

  test("an unknown write concern is refused before connecting", async () => {
    await expect(createMongoStore({ url: "mongodb://127.0.0.1:1", poolSize: 1, writeConcern: "most" })).rejects.toThrow("QDP_MONGO_W");
  });
});

// Resolved at load time so the suite can be registered or skipped; under CI this throws
// (failing the file) when no MongoDB can be had, instead of skipping.
const mongoUrl = await mongoTestUrl();

if (mongoUrl === null) {
  console.warn(MONGO_SKIP_MESSAGE);
  test.skip("mongo record store (no MongoDB available)", () => {});
} else {
  const database = `qdp_test_${process.pid}_${Date.now().toString(36)}`;
  const url = mongoUrlWithDatabase(mongoUrl, database);
  const open = () => createMongoStore({ url, poolSize: 4, writeConcern: "1" });

  recordStoreContract("mongo", open);

  describe("mongo store", () => {
    const admin = new MongoClient(mongoUrl);
    afterAll(async () => {
      await admin
        .db(database)
        .dropDatabase()
        .catch(() => {});
      await admin.close();
    });

    test("uses the database named in the URL and indexes quotes at start-up", async () => {
      const store = await open();
      try {
        const id = await store.insert("quotes", { user: "u1", symbol: "ACME", at: 1 });
        expect(id).toMatch(/^[0-9a-f]{24}$/);
        const stored = await admin.db(database).collection("quotes").findOne({ user: "u1" });
        expect(stored?._id.toHexString()).toBe(id);
        const indexes = await admin.db(database).collection("quotes").listIndexes().toArray();
        expect(indexes.map((i) => i.key)).toContainEqual({ user: 1, _id: -1 });
      } finally {
        await store.close();
      }
    });

    test("indexes other collections on first use", async () => {
      const store = await open();
      try {
        await store.insert("orders", { user: "u1" });
        const indexes = await admin.db(database).collection("orders").listIndexes().toArray();
        expect(indexes.map((i) => i.key)).toContainEqual({ user: 1, _id: -1 });
      } finally {
        await store.close();
      }
    });

    test("inserts from many ticks gather while a batch is at the server: one batch in flight, every call answered with its own id", async () => {
      let inFlight = 0;
      let maxInFlight = 0;
      const sizes: number[] = [];
      const store = await createMongoStore({
        url,
        poolSize: 4,
        writeConcern: "1",
        onBatch(event, _collection, docs) {
          if (event === "sent") {
            sizes.push(docs);
            maxInFlight = Math.max(maxInFlight, ++inFlight);
          } else inFlight--;
        },
      });
      try {
        // 50 ticks of 10 inserts each, as slow calls finishing one after another: before the
        // gathering every tick sent its own batch, 50 at the server at once.
        const ids: Array<Promise<string>> = [];
        for (let tick = 0; tick < 50; tick++) {
          for (let i = 0; i < 10; i++) ids.push(store.insert("gathered", { user: `g${tick}`, i }));
          await new Promise((r) => setImmediate(r));
        }
        const all = await Promise.all(ids);
        expect(new Set(all).size).toBe(500);
        expect(maxInFlight).toBe(1);
        expect(sizes.reduce((a, b) => a + b, 0)).toBe(500);
        expect(sizes.length).toBeLessThan(50);
        expect((await store.find("gathered", { user: "g49" })).map((r) => r.i).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        expect((await store.get("gathered", all[123]!))?.user).toBe("g12");
      } finally {
        await store.close();
      }
    });

    // Needs a server of its own to stop, so only with the FerretDB the tests start.
    test.if(!process.env.QDP_TEST_MONGO_URL)(
      "a hung database: the batch at the server fails after the socket timeout, the inserts gathered behind it fail too instead of waiting for ever, none is reported written; after it resumes, inserts work",
      async () => {
        const db = await startFerretDB();
        const store = await createMongoStore({ url: mongoUrlWithDatabase(db.url, "hung"), poolSize: 2, writeConcern: "1", socketTimeoutMs: 1000 });
        try {
          await store.insert("quotes", { user: "before" });
          process.kill(db.pid, "SIGSTOP");
          const started = Date.now();
          const first = store.insert("quotes", { user: "stuck" });
          await new Promise((r) => setImmediate(r));
          // Gathers behind the batch at the (hung) server: without a socket timeout both wait for ever.
          const second = store.insert("quotes", { user: "behind" });
          const at = (p: Promise<string>) =>
            p.then(
              () => ({ ok: true, ms: Date.now() - started }),
              () => ({ ok: false, ms: Date.now() - started }),
            );
          const [a, b] = await Promise.all([at(first), at(second)]);
          // Not acknowledged, so not reported as written (the driver's timeout arrives as a bulk
          // write error without write errors, which once read as "all written").
          expect([a.ok, b.ok]).toEqual([false, false]);
          // The batch at the server fails after the 1 s socket timeout; the one behind it needs a
          // new connection, which the driver gives up on after its server selection time.
          expect(a.ms).toBeLessThan(5_000);
          expect(b.ms).toBeLessThan(30_000);
          process.kill(db.pid, "SIGCONT");
          let id: string | null = null;
          for (const until = Date.now() + 15_000; id === null && Date.now() < until; ) {
            id = await store.insert("quotes", { user: "after" }).catch(() => null);
            if (id === null) await Bun.sleep(200);
          }
          expect(id).toMatch(/^[0-9a-f]{24}$/);
        } finally {
          try {
            process.kill(db.pid, "SIGCONT");
          } catch {}
          await store.close();
          await db.stop();
        }
      },
      45_000,
    );

    test("createRecordStore picks mongo when a URL is set, sqlite otherwise", async () => {
      const mongo = await createRecordStore({ mongoUrl: url, mongoPool: 2, mongoWriteConcern: "majority", dataDir: tempDir() });
      const sqlite = await createRecordStore({ mongoPool: 2, mongoWriteConcern: "majority", dataDir: tempDir() });
      try {
        expect(mongo.kind).toBe("mongo");
        expect(sqlite.kind).toBe("sqlite");
      } finally {
        await Promise.all([mongo.close(), sqlite.close()]);
      }
    });
  });
}
