/**
 * A real nginx for tests: found on the PATH or installed from Debian's packages (callers skip
 * when impossible, except in CI, where it fails), run as a child of the test from a temporary
 * prefix with the configuration the test gives (normally what `qdp nginx-conf` printed),
 * reloaded with SIGHUP, and stopped by pid.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ensureTool } from "./tools.ts";

/** nginx's path, installing it when missing; null (with the reason) when impossible. */
export function ensureNginx(): { path: string | null; why: string } {
  return ensureTool("nginx", "nginx");
}

/** The handle of a running nginx (also called `Nginx`). */
export interface TestNginx {
  /** The prefix directory (config, logs). */
  dir: string;
  /** Replaces the http-context text and reloads (SIGHUP); resolves once nginx logged the reload. */
  reload(httpText: string): Promise<void>;
  errorLog(): string;
  stop(): Promise<void>;
}

export type Nginx = TestNginx;

/**
 * Starts nginx with `httpText` (upstream + server blocks) inside an http {} context of its own,
 * and waits until `probeUrl` answers (any status: the upstream may be a test double).
 * @param extraHttp directives for the http context added by the test (not part of the printed config).
 */
export async function startNginx(path: string, httpText: string, probeUrl: string, extraHttp = ""): Promise<TestNginx> {
  const dir = mkdtempSync(join(tmpdir(), "qdp-nginx-"));
  // nginx's workers drop to "nobody" when the master is root: they must reach the temp paths.
  chmodSync(dir, 0o755);
  for (const d of ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, d));
  const write = (text: string) =>
    writeFileSync(
      join(dir, "nginx.conf"),
      `worker_processes 1;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
${extraHttp}
${text}
}
`,
    );
  write(httpText);
  const errorLog = () => {
    try {
      return readFileSync(join(dir, "error.log"), "utf8");
    } catch {
      return "";
    }
  };
  const proc: Subprocess = Bun.spawn(
    [
      path,
      "-p",
      dir,
      "-c",
      join(dir, "nginx.conf"),
      "-e",
      join(dir, "error.log"),
      "-g",
      `daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log notice;`,
    ],
    {
      stdout: "ignore",
      stderr: "pipe",
    },
  );
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      await (await fetch(probeUrl)).arrayBuffer();
      break;
    } catch {}
    if (proc.exitCode !== null || Date.now() > until) {
      const stderr = await new Response(proc.stderr as ReadableStream).text().catch(() => "");
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`nginx did not come up (exit ${proc.exitCode}): ${stderr}\n${errorLog()}`);
    }
    await Bun.sleep(50);
  }
  return {
    dir,
    errorLog,
    async reload(text) {
      const before = (errorLog().match(/reconfiguring/g) ?? []).length;
      write(text);
      proc.kill("SIGHUP");
      const end = Date.now() + 10_000;
      while ((errorLog().match(/reconfiguring/g) ?? []).length === before) {
        if (Date.now() > end) throw new Error(`nginx did not reload:\n${errorLog().slice(-2000)}`);
        await Bun.sleep(20);
      }
      // The new worker process takes new connections from here on; old ones finish theirs.
      await Bun.sleep(200);
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await proc.exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
