/**
 * demo.quote's shape in bare Bun, the reference for scenario B's CPU per call: `Bun.serve` with
 * `reusePort`, `fetch` of upstream A then B, one SQLite insert (WAL, synchronous=NORMAL, as the
 * embedded store), a JSON answer. No users, hop, signing, deadlines, validation or logs.
 * Bun's `fetch` allows 256 requests per host at once unless BUN_CONFIG_MAX_HTTP_REQUESTS says
 * more (the runner sets it, or 2,000 callers would queue behind 256 upstream calls).
 * Usage: bun bun-bare-quote.ts <port> <upstream base URL> <database file>
 */
import { Database } from "bun:sqlite";

const [port, upstream, dbPath] = process.argv.slice(2);
const db = new Database(dbPath!);
db.run("PRAGMA busy_timeout = 5000");
db.run("PRAGMA journal_mode = WAL");
db.run("PRAGMA synchronous = NORMAL");
db.run("CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, user TEXT, created INTEGER NOT NULL, doc TEXT NOT NULL)");
const insert = db.prepare("INSERT INTO records (id, user, created, doc) VALUES (?, ?, ?, ?)");

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(port),
  reusePort: true,
  idleTimeout: 0,
  async fetch(req) {
    if (req.method === "GET") return new Response("ready");
    const { symbol } = (await req.json()) as { symbol: string };
    const user = req.headers.get("x-qdp-user");
    const query = `?symbol=${encodeURIComponent(symbol)}`;
    const a = await (await fetch(`${upstream}/a${query}`)).json();
    const b = await (await fetch(`${upstream}/b${query}`)).json();
    const id = Bun.randomUUIDv7();
    insert.run(id, user, Date.now(), JSON.stringify({ user, symbol, a, b, at: new Date().toISOString() }));
    return Response.json({ ok: true, funcNo: 1002, data: { symbol, a, b, recordId: id } });
  },
});

process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
