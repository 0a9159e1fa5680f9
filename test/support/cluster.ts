/**
 * Starts the real cluster (`bun src/main.ts`, the same entry as `bun run start`) on free ports,
 * waits until every worker is ready, and stops it. Every test that starts one stops it.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { StatsDoc } from "../../src/commands/control.ts";

export const ROOT = new URL("../..", import.meta.url).pathname;
export const BUN = process.execPath;

/** A free TCP port on loopback (bound then released). */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

/** The /stats document, as the CLI reads it. */
export type Stats = StatsDoc;
export type StatsWorker = StatsDoc["workers"][number];

export interface Cluster {
  port: number;
  statsPort: number;
  url: string;
  proc: Subprocess;
  dir: string;
  /** Lines printed so far (stdout + stderr). */
  output(): string;
  stats(): Promise<Stats>;
  /** Waits until every worker is ready (optionally: with pids other than `notPids`). */
  waitReady(opts?: { notPids?: number[]; timeoutMs?: number }): Promise<Stats>;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  workers?: number;
  env?: Record<string, string>;
  /** Command; default: bun src/main.ts. */
  cmd?: string[];
  /** Do not wait for readiness (for start-up failure tests). */
  noWait?: boolean;
  /** Public port; default: a free one. */
  port?: number;
  /** Working directory (Bun reads `.env` from it); default the repository. */
  cwd?: string;
  /** QDP_HOST (a loopback address such as 127.0.0.2 for a second "host"); default 127.0.0.1. */
  host?: string;
  /**
   * Directory for the runtime and data dirs; default a new temporary one. Pass the `dir` of a
   * killed cluster to start it again with its data (replay marks, records). Removed by `stop`.
   */
  dir?: string;
}

export async function startCluster(opts: StartOptions = {}): Promise<Cluster> {
  const port = opts.port ?? freePort();
  const statsPort = freePort();
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "qdp-test-"));
  const host = opts.host ?? "127.0.0.1";
  let out = "";
  const proc = Bun.spawn(opts.cmd ?? [BUN, join(ROOT, "src/main.ts")], {
    cwd: opts.cwd ?? ROOT,
    env: {
      ...process.env,
      QDP_HOST: host,
      QDP_PORT: String(port),
      QDP_STATS_PORT: String(statsPort),
      QDP_WORKERS: String(opts.workers ?? 2),
      QDP_RUNTIME_DIR: join(dir, "run"),
      QDP_DATA_DIR: join(dir, "data"),
      QDP_LOG_LEVEL: "info",
      ...opts.env,
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) out += dec.decode(chunk);
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const cluster: Cluster = {
    port,
    statsPort,
    url: `http://${host}:${port}`,
    proc,
    dir,
    output: () => out,
    async stats() {
      const r = await fetch(`http://127.0.0.1:${statsPort}/stats`);
      return (await r.json()) as Stats;
    },
    async waitReady({ notPids = [], timeoutMs = 15_000 } = {}) {
      const until = Date.now() + timeoutMs;
      let last: Stats | null = null;
      while (Date.now() < until) {
        try {
          last = await cluster.stats();
          if (last.workers.every((w) => w.state === "ready" && w.pid !== null && !notPids.includes(w.pid))) {
            const r = await fetch(`${cluster.url}/readyz`);
            if (r.status === 200) return last;
          }
        } catch {}
        if (proc.exitCode !== null) throw new Error(`cluster exited (${proc.exitCode}):\n${out}`);
        await Bun.sleep(50);
      }
      throw new Error(`cluster not ready in ${timeoutMs} ms: ${JSON.stringify(last?.workers)}\n${out.slice(-3000)}`);
    },
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      const code = await Promise.race([proc.exited, Bun.sleep(20_000).then(() => "timeout" as const)]);
      if (code === "timeout") {
        proc.kill("SIGKILL");
        await proc.exited;
      }
      rmSync(dir, { recursive: true, force: true });
      return proc.exitCode;
    },
  };
  if (!opts.noWait) {
    try {
      await cluster.waitReady();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }
  return cluster;
}

/**
 * Whether a pid is a live process. A zombie (exited, not yet reaped — e.g. a worker whose
 * supervisor was killed, waiting for init to reap it) holds no sockets and counts as gone.
 */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** POSTs JSON on a fresh connection (so the kernel spreads them over workers). */
export async function call(
  url: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(url + path, {
    method: "POST",
    headers: { "content-type": "application/json", connection: "close", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: r.status, body: parsed, headers: r.headers };
}
