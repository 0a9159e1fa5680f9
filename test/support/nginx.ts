/**
 * A real nginx for tests: found on the PATH or installed from Debian's packages, started as a
 * child of the test from a temp prefix with the test's own configuration, stopped by pid.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDebianTool } from "./debian.ts";

/** nginx's path, installing it when missing; null (with the reason) when impossible. */
export function ensureNginx(): { path: string | null; why: string } {
  return ensureDebianTool("nginx", "nginx");
}

export interface Nginx {
  dir: string;
  stop(): Promise<void>;
}

/**
 * Starts nginx in the foreground with `http` holding the body of its `http {}` block; resolves
 * once `probeUrl` answers.
 */
export async function startNginx(path: string, http: string, probeUrl: string): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), "qdp-nginx-"));
  // nginx's workers run as another user when the test runs as root: let them in.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, "logs"));
  const conf = `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
${http}
}
`;
  writeFileSync(join(dir, "nginx.conf"), conf);
  const proc = Bun.spawn([path, "-p", dir, "-c", join(dir, "nginx.conf")], { stdout: "ignore", stderr: "pipe" });
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      await fetch(probeUrl);
      break;
    } catch {
      if (proc.exitCode !== null || Date.now() > until) throw new Error(`nginx did not start: ${await new Response(proc.stderr).text()}`);
      await Bun.sleep(30);
    }
  }
  return {
    dir,
    async stop() {
      proc.kill("SIGQUIT");
      await Promise.race([proc.exited, Bun.sleep(3000)]);
      if (proc.exitCode === null) proc.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
