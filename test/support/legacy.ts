/**
 * The old stack's real parts for the bridge tests: test/fixtures/legacy_app.py (Flask) served by
 * uWSGI from Debian's packages, one process per backend on a free loopback port, HTTP/1.1 with
 * keep-alive (`--http11-socket`) — or, with `{ uwsgi: true }`, on a Unix socket speaking the
 * uwsgi protocol (`--socket`, what nginx's uwsgi_pass talks to). No master process, so the pid that answers is the pid we
 * started and can kill. Missing packages are installed with apt-get; where that is impossible
 * the caller skips with the reason — except in CI (process.env.CI), where it fails.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { uwsgiRequest } from "../../src/upstream/uwsgi-client.ts";
import { freePort, ROOT } from "./cluster.ts";

export const LEGACY_PACKAGES = ["uwsgi-core", "uwsgi-plugin-python3", "python3-flask"];
const FIXTURES = join(ROOT, "test", "fixtures");

function missing(): string[] {
  const out: string[] = [];
  if (!Bun.which("uwsgi")) out.push("uwsgi");
  if (!existsSync("/usr/lib/uwsgi/plugins/python3_plugin.so")) out.push("python3_plugin.so");
  // uWSGI embeds Debian's Python: Flask must be importable by /usr/bin/python3.
  if (Bun.spawnSync(["/usr/bin/python3", "-c", "import flask"], { env: { PATH: "/usr/bin:/bin" } }).exitCode !== 0) out.push("flask");
  return out;
}

/** Installs uWSGI and Flask from Debian's packages when missing; null when ready, else why not. */
export function ensureLegacyStack(): string | null {
  if (missing().length === 0) return null;
  if (!Bun.which("apt-get")) return `missing ${missing().join(", ")} and apt-get is not available`;
  const sudo = process.getuid?.() === 0 ? [] : Bun.which("sudo") ? ["sudo", "-n"] : null;
  if (sudo === null) return `missing ${missing().join(", ")} and installing needs root`;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const run = (args: string[]) => Bun.spawnSync([...sudo, ...args], { env, stdout: "ignore", stderr: "pipe" });
  const install = ["apt-get", "install", "-y", "--no-install-recommends", ...LEGACY_PACKAGES];
  let r = run(install);
  if (r.exitCode !== 0) {
    // A fresh machine has no package lists: update once, only when the first try fails.
    run(["apt-get", "update"]);
    r = run(install);
  }
  const still = missing();
  return still.length === 0 ? null : `apt-get install ${LEGACY_PACKAGES.join(" ")} left ${still.join(", ")} missing: ${r.stderr.toString().slice(-400)}`;
}

export interface LegacyBackend {
  /** `http://127.0.0.1:<port>`, or `uwsgi:///<dir>/app.sock` */
  url: string;
  /** The HTTP port (0 for a uwsgi socket). */
  port: number;
  /** The uWSGI process that serves every call (no master). */
  pid: number;
  proc: Subprocess;
  output(): string;
  /** Calls this process has seen, read from its /count. */
  count(): Promise<number>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** GET `path` of a backend, over HTTP or the uwsgi protocol; the JSON answer. */
async function getJson(url: string, path: string): Promise<{ status: number; json: unknown }> {
  if (url.startsWith("uwsgi://")) {
    const r = await uwsgiRequest({ address: { unix: url.slice("uwsgi://".length) }, method: "GET", uri: path, headers: {}, body: new Uint8Array(0) });
    return { status: r.status, json: JSON.parse(r.body.toString()) };
  }
  const r = await fetch(url + path);
  return { status: r.status, json: await r.json() };
}

/** Starts one uWSGI + Flask backend and waits until it answers. */
export async function startLegacyBackend(opts: { uwsgi?: boolean } = {}): Promise<LegacyBackend> {
  const dir = mkdtempSync(join(tmpdir(), "qdp-legacy-"));
  const port = opts.uwsgi ? 0 : freePort();
  const sock = join(dir, "app.sock");
  let out = "";
  const proc = Bun.spawn(
    [
      "uwsgi",
      "--plugins",
      "python3",
      ...(opts.uwsgi ? ["--socket", sock] : ["--http11-socket", `127.0.0.1:${port}`]),
      "--chdir",
      FIXTURES,
      "--wsgi-file",
      join(FIXTURES, "legacy_app.py"),
      "--callable",
      "application",
      "--processes",
      "1",
      // One thread per kept-alive connection: room for every connection qdp may open.
      "--threads",
      "64",
      "--die-on-term",
      "--disable-logging",
    ],
    // pyenv shims on PATH must not leak into Debian's embedded Python.
    { cwd: dir, env: { PATH: "/usr/bin:/bin:/usr/sbin:/sbin", HOME: dir }, stdout: "pipe", stderr: "pipe" },
  );
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) out += dec.decode(chunk);
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const url = opts.uwsgi ? `uwsgi://${sock}` : `http://127.0.0.1:${port}`;
  const backend: LegacyBackend = {
    url,
    port,
    pid: proc.pid,
    proc,
    output: () => out,
    async count() {
      return ((await getJson(url, "/count")).json as { calls: number }).calls;
    },
    async kill() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        await Promise.race([proc.exited, Bun.sleep(5000)]);
        if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
        await proc.exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const until = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await getJson(url, "/count")).status === 200) break;
    } catch {}
    if (proc.exitCode !== null || Date.now() > until) {
      await backend.stop();
      throw new Error(`uWSGI did not come up on ${url} (exit ${proc.exitCode}):\n${out.slice(-2000)}`);
    }
    await Bun.sleep(50);
  }
  return backend;
}
