/**
 * A real nginx in front, configured by `qdp nginx-conf`, routes every call straight to its
 * owner worker: zero hops (CONTRACT.md §2 — our ownership formula is nginx's
 * `hash $http_x_qdp_user;`). nginx runs as a child of the test from a temp prefix and is
 * stopped by pid. If nginx is missing it is installed with apt-get; without apt the test is
 * skipped with a message, except in CI (process.env.CI), where a missing nginx fails.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ownerOf } from "../src/core/ownership.ts";
import { BUN, type Cluster, freePort, ROOT, startCluster } from "./support/cluster.ts";
import { ensureNginx, startNginx, type TestNginx } from "./support/nginx.ts";

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
let front = "";
let server: TestNginx | null = null;

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
  front = `http://127.0.0.1:${listen}`;
  server = await startNginx(nginx.path, gen.stdout.toString(), `${front}/healthz`);
});

afterAll(async () => {
  await server?.stop();
  if (cluster) await cluster.stop();
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
