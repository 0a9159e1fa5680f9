/**
 * A real MongoDB-compatible server for tests: FerretDB (Apache-2.0) embedded in our small Go
 * program `test/ferretdb/main.go`, SQLite backend in a temp dir, so no external service is
 * needed. The binary is built once per source hash into `.cache/ferretdb/` (gitignored); later
 * runs start it in well under a second.
 *
 * Tests ask for `mongoTestUrl()`: it prefers `QDP_TEST_MONGO_URL` (a real MongoDB), else starts
 * FerretDB when Go is installed, else returns null so MongoDB tests skip — except under CI,
 * where a missing MongoDB is an error, so CI can never pass by silently skipping them.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { MongoClient } from "mongodb";

const ROOT = resolve(import.meta.dir, "../..");
const SOURCE_DIR = join(ROOT, "test/ferretdb");
const SOURCES = ["go.mod", "go.sum", "main.go"];
const CACHE_DIR = join(ROOT, ".cache/ferretdb");
/** The PostgreSQL backend is not used; leaving it out makes the first build faster. */
const BUILD_TAGS = "ferretdb_no_postgresql";

export interface RunningFerretDB {
  /** `mongodb://127.0.0.1:<port>/` */
  url: string;
  /** The server's process id (tests stop and continue it to play a hung database). */
  pid: number;
  /** Stops the server (which removes its data). Idempotent. */
  stop(): Promise<void>;
}

/** The `go` binary: on PATH, else the standard install location; null when Go is not installed. */
export function findGo(): string | null {
  const onPath = Bun.which("go");
  if (onPath) return onPath;
  const standard = "/usr/local/go/bin/go";
  return existsSync(standard) ? standard : null;
}

let building: Promise<string> | undefined;

/**
 * Builds the FerretDB test binary if no binary for the current sources exists; returns its path.
 * Cached by a hash of go.mod, go.sum and main.go (plus the build tags), so editing them rebuilds.
 */
export function buildFerretDB(): Promise<string> {
  building ??= (async () => {
    const go = findGo();
    if (!go) throw new Error("cannot build FerretDB for tests: Go is not installed (need `go` on PATH or /usr/local/go)");
    const hasher = new Bun.CryptoHasher("sha256");
    hasher.update(BUILD_TAGS);
    for (const name of SOURCES) hasher.update(await Bun.file(join(SOURCE_DIR, name)).bytes());
    const bin = join(CACHE_DIR, `ferretdb-${hasher.digest("hex").slice(0, 16)}`);
    if (existsSync(bin)) return bin;

    mkdirSync(CACHE_DIR, { recursive: true });
    // Build under a private name and rename: two test runs building at once never see half a binary.
    const tmp = `${bin}.${process.pid}.tmp`;
    const started = performance.now();
    const proc = Bun.spawn([go, "build", "-tags", BUILD_TAGS, "-o", tmp, "."], {
      cwd: SOURCE_DIR,
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    if (code !== 0) {
      rmSync(tmp, { force: true });
      throw new Error(`building FerretDB for tests failed (go build exit ${code}):\n${out}${err}`);
    }
    renameSync(tmp, bin);
    console.log(`[ferretdb] built ${bin} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return bin;
  })();
  // A failed build is not cached: a later call may succeed after the cause is fixed.
  building.catch(() => {
    building = undefined;
  });
  return building;
}

/**
 * Builds (if needed) and starts FerretDB on a free loopback port, and resolves once it answers
 * a MongoDB `ping`. The server listens on port 0 and reports the port the kernel chose, so there
 * is no window in which another process could take a port we picked. It exits when `stop()` is
 * called, and also by itself when this process dies (its stdin pipe closes).
 */
export async function startFerretDB(opts: { startTimeoutMs?: number } = {}): Promise<RunningFerretDB> {
  const bin = await buildFerretDB();
  // No -state-dir: the program makes its own temp dir and removes it when it stops.
  const proc = Bun.spawn([bin, "-listen", "127.0.0.1:0"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const stdout = collect(proc.stdout);
  const stderr = collect(proc.stderr);
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= stopProcess(proc);
    return stopped;
  };

  try {
    const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
    const url = await waitForReadyLine(stdout, proc, deadline);
    await waitForPing(url, deadline);
    return { url, pid: proc.pid, stop };
  } catch (err) {
    await stop();
    throw new Error(`FerretDB did not start: ${err instanceof Error ? err.message : String(err)}\n${stderr.text()}`);
  }
}

let shared: Promise<string | null> | undefined;

/**
 * The MongoDB URL for tests, or null when none can be had (the caller then skips, saying why).
 *  - `QDP_TEST_MONGO_URL` if set (a real MongoDB, e.g. a CI service container);
 *  - else a FerretDB started once for this test process and stopped when it exits;
 *  - else null — but under CI (`CI` set) this throws instead, so MongoDB tests cannot be skipped there.
 */
export function mongoTestUrl(): Promise<string | null> {
  shared ??= (async () => {
    const fromEnv = process.env.QDP_TEST_MONGO_URL;
    if (fromEnv) return fromEnv;
    if (!findGo()) {
      if (process.env.CI) {
        throw new Error("MongoDB tests cannot run: set QDP_TEST_MONGO_URL or install Go (to build FerretDB). " + "They are not skipped under CI.");
      }
      return null;
    }
    const server = await startFerretDB();
    // The Go side also exits when our stdin pipe closes; this makes the normal path explicit.
    process.once("exit", () => void server.stop());
    return server.url;
  })();
  return shared;
}

/** The message a MongoDB test file prints when it skips. */
export const MONGO_SKIP_MESSAGE = "[skip] MongoDB tests: neither QDP_TEST_MONGO_URL nor Go (to build FerretDB) is available";

/** `url` with its path replaced by `/<database>`, query kept: tests get a database of their own. */
export function mongoUrlWithDatabase(url: string, database: string): string {
  return url.replace(/^(mongodb(?:\+srv)?:\/\/[^/?]*)(\/[^?]*)?/i, `$1/${database}`);
}

async function waitForReadyLine(stdout: { text(): string }, proc: Subprocess, deadline: number): Promise<string> {
  while (Date.now() < deadline) {
    const match = /^ferretdb ready (\S+)$/m.exec(stdout.text());
    if (match?.[1]) return match[1];
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`exited (${proc.exitCode ?? proc.signalCode}) before its ready line`);
    await Bun.sleep(20);
  }
  throw new Error("no ready line within the start timeout");
}

async function waitForPing(url: string, deadline: number): Promise<void> {
  let lastError: unknown;
  while (Date.now() < deadline) {
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 1000, connectTimeoutMS: 1000 });
    try {
      await client.db("admin").command({ ping: 1 });
      return;
    } catch (err) {
      lastError = err;
      await Bun.sleep(100);
    } finally {
      await client.close().catch(() => {});
    }
  }
  throw new Error(`no answer to ping at ${url}: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
}

/** SIGTERM (and closing stdin), then SIGKILL if it has not exited within 5 s. */
async function stopProcess(proc: Subprocess<"pipe", "pipe", "pipe">): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  try {
    proc.stdin.end();
  } catch {
    // already closed
  }
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
  await proc.exited;
  clearTimeout(timer);
}

/**
 * Keeps the last 8 KiB of a stream (the ready line, error messages). Draining the pipe to its
 * end also matters: a Go program that writes to a closed stdout/stderr pipe dies of SIGPIPE.
 */
function collect(stream: ReadableStream<Uint8Array>): { text(): string } {
  let text = "";
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) text = (text + decoder.decode(chunk, { stream: true })).slice(-8192);
  })();
  return { text: () => text };
}
