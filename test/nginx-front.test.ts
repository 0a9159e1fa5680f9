/**
 * A real nginx in front, configured by `qdp nginx-conf`, routes every call straight to its
 * owner worker: zero hops (CONTRACT.md §2 — our ownership formula is nginx's
 * `hash $http_x_qdp_user;`). nginx runs as a child of the test from a temp prefix and is
 * stopped by pid. If nginx is missing it is installed with apt-get; without apt the test is
 * skipped with a message, except in CI (process.env.CI), where a missing nginx fails.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ownerOf } from "../src/core/ownership.ts";
import { BUN, type Cluster, freePort, ROOT, startCluster } from "./support/cluster.ts";
import { ensureNginx } from "./support/nginx.ts";

const USERS = 1000;

/** Whether nothing listens on 127.0.0.1:port right now. */
function portFree(port: number): boolean {
  try {
    Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}

/** A base with base and base+1 both free. */
function freeBase(): number {
  for (let i = 0; i < 50; i++) {
    const base = freePort();
    if (base < 65535 && portFree(base + 1)) return base;
  }
  throw new Error("no two consecutive free ports found");
}

const nginx = ensureNginx();
if (!nginx.path) console.warn(`nginx-front: skipped — ${nginx.why}`);

test.if(!nginx.path && !!process.env.CI)("nginx is available in CI", () => {
  throw new Error(`nginx is required in CI: ${nginx.why}`);
});

let cluster: Cluster | null = null;
let proc: Subprocess | null = null;
let dir = "";
let front = "";

beforeAll(async () => {
  if (!nginx.path) return;
  const base = freeBase();
  cluster = await startCluster({ workers: 2, env: { QDP_DIRECT_PORT_BASE: String(base) } });
  const listen = freePort();
  const gen = Bun.spawnSync([BUN, "src/cli.ts", "nginx-conf", "--listen", `127.0.0.1:${listen}`, "--host", "127.0.0.1"], {
    cwd: ROOT,
    env: { ...process.env, QDP_WORKERS: "2", QDP_DIRECT_PORT_BASE: String(base) },
  });
  if (gen.exitCode !== 0) throw new Error(`qdp nginx-conf failed: ${gen.stderr.toString()}`);
  dir = mkdtempSync(join(tmpdir(), "qdp-nginx-"));
  // nginx's workers drop to "nobody" when the master is root: they must reach the temp paths.
  chmodSync(dir, 0o755);
  for (const d of ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, d));
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
${gen.stdout.toString()}
}
`,
  );
  proc = Bun.spawn([nginx.path, "-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log"), "-g", `daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;`], {
    stdout: "ignore",
    stderr: "pipe",
  });
  front = `http://127.0.0.1:${listen}`;
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await fetch(`${front}/healthz`)).status === 200) break;
    } catch {}
    if (proc.exitCode !== null || Date.now() > until) {
      const log = (() => {
        try {
          return readFileSync(join(dir, "error.log"), "utf8");
        } catch {
          return "";
        }
      })();
      throw new Error(`nginx did not come up (exit ${proc.exitCode}): ${await new Response(proc.stderr as ReadableStream).text().catch(() => "")}\n${log}`);
    }
    await Bun.sleep(50);
  }
});

afterAll(async () => {
  if (proc && proc.exitCode === null) {
    proc.kill("SIGTERM");
    await proc.exited;
  }
  if (cluster) await cluster.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test.if(!!nginx.path)(`${USERS} users through nginx reach their owners with zero hops`, async () => {
  const before = await cluster!.stats();
  const hopsBefore = before.workers.reduce((n, w) => n + w.hopsOut, 0);
  const failures: string[] = [];
  const perWorker = [0, 0];
  const callOnce = async (user: string, expected: number) => {
    const r = await fetch(`${front}/api/1001`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-qdp-user": user },
      body: "{}",
    });
    const body = (await r.json()) as { ok: boolean; data?: { count: number } };
    const edge = r.headers.get("x-qdp-edge");
    const worker = r.headers.get("x-qdp-worker");
    if (r.status !== 200) failures.push(`${user}: status ${r.status} ${JSON.stringify(body)}`);
    else if (edge === null || edge !== worker) failures.push(`${user}: edge ${edge} != worker ${worker} (a hop)`);
    else if (Number(worker) !== ownerOf(user, 2)) failures.push(`${user}: ran on ${worker}, owner is ${ownerOf(user, 2)}`);
    else if (body.data?.count !== expected) failures.push(`${user}: count ${body.data?.count}, expected ${expected}`);
    else perWorker[Number(worker)]!++;
  };
  const users = Array.from({ length: USERS }, (_, i) => `u${i}`);
  for (const expected of [1, 2]) {
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < users.length) await callOnce(users[next++]!, expected);
      }),
    );
  }
  expect(failures.slice(0, 10)).toEqual([]);
  // Both workers own some of the users, so both were reached straight from nginx.
  expect(perWorker[0]! > 0 && perWorker[1]! > 0).toBe(true);
  expect(perWorker[0]! + perWorker[1]!).toBe(2 * USERS);
  const after = await cluster!.stats();
  expect(after.workers.reduce((n, w) => n + w.hopsOut, 0) - hopsBefore).toBe(0);
  expect(after.workers.reduce((n, w) => n + w.hopsOut, 0)).toBe(0);
});
