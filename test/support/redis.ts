/**
 * A real `redis-server` for tests: its own free port on 127.0.0.1, its own temporary directory,
 * started and stopped by the test — never the machine's shared instance. If redis-server is
 * missing it is installed with apt-get (Debian package `redis-server`), as the nginx test does;
 * when that is impossible the caller skips, except in CI (process.env.CI), where it fails.
 *
 * AOF is on (`appendfsync everysec`, the setting docs/stores.md recommends), so a stop and
 * start (SIGTERM, which flushes the AOF) keeps every acknowledged write, as a test of an outage
 * needs.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort } from "./cluster.ts";
import { ensureTool } from "./tools.ts";

/** redis-server's path, installing it when missing; null (with the reason) when impossible. */
export function ensureRedis(): { path: string | null; why: string } {
  return ensureTool("redis-server", "redis-server");
}

export interface TestRedis {
  port: number;
  url: string;
  readonly pid: number;
  /** Starts the server again on the same port and directory (after `stop`). */
  start(): Promise<void>;
  /** Clean stop (SIGTERM: the AOF is flushed); waits for the exit. */
  stop(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that hangs without closing its sockets. */
  pause(): void;
  resume(): void;
  /** CPU seconds (user + system) the current server process has used. */
  cpuSeconds(): number;
  /** Stops the server and removes its directory. */
  dispose(): Promise<void>;
}

/** Starts a private redis-server and waits until it accepts connections. */
export async function startRedis(path: string): Promise<TestRedis> {
  const port = freePort();
  const dir = mkdtempSync(join(tmpdir(), "qdp-redis-"));
  let proc: Subprocess<"ignore", "pipe", "pipe"> | null = null;

  async function start(): Promise<void> {
    const p = Bun.spawn(
      [
        path,
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--loglevel",
        "notice",
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    proc = p;
    // Wait for the server's own "ready" line rather than polling the port.
    const dec = new TextDecoder();
    let seen = "";
    const reader = p.stdout.getReader();
    const until = Date.now() + 15_000;
    while (!/Ready to accept connections/.test(seen)) {
      const next = await Promise.race([reader.read(), Bun.sleep(Math.max(0, until - Date.now())).then(() => null)]);
      if (next === null || next.done) throw new Error(`redis-server did not start on port ${port}:\n${seen}\n${await new Response(p.stderr).text()}`);
      seen += dec.decode(next.value);
    }
    // Keep draining its output so a full pipe never blocks the server.
    void (async () => {
      try {
        while (!(await reader.read()).done) {}
      } catch {}
    })();
  }

  await start();
  const stop = async (): Promise<void> => {
    if (proc && proc.exitCode === null) {
      proc.kill("SIGCONT");
      proc.kill("SIGTERM");
      await proc.exited;
    }
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    get pid() {
      return proc!.pid;
    },
    start,
    stop,
    pause() {
      proc?.kill("SIGSTOP");
    },
    resume() {
      proc?.kill("SIGCONT");
    },
    cpuSeconds() {
      const stat = readFileSync(`/proc/${proc!.pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // Fields 14 and 15 of /proc/pid/stat (utime, stime), in clock ticks of 1/100 s.
      return (Number(f[11]) + Number(f[12])) / 100;
    },
    async dispose() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
