/**
 * One port is one cluster (CONTRACT.md §1), and one runtime directory is one cluster: a second
 * start refuses with a message naming the running one, which is untouched; a cluster killed
 * with kill -9 does not block the next start; QDP_PORT=0 clusters do not share a directory.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ownerOf } from "../src/core/ownership.ts";
import { alive, call, startCluster, type Cluster, type Stats } from "./support/cluster.ts";

const extra: Cluster[] = [];
const temps: string[] = [];
afterEach(async () => {
  for (const c of extra.splice(0)) await c.stop();
  for (const t of temps.splice(0)) rmSync(t, { recursive: true, force: true });
});

/** Starts a second cluster and waits (at most 10 s) for it to give up. */
async function secondStart(opts: Parameters<typeof startCluster>[0]): Promise<{ code: number | null | "still running"; out: string }> {
  const c = await startCluster({ ...opts, noWait: true });
  extra.push(c);
  const code = await Promise.race([c.proc.exited, Bun.sleep(10_000).then(() => "still running" as const)]);
  await Bun.sleep(20);
  return { code, out: c.output() };
}

describe("while a cluster runs", () => {
  let a: Cluster;
  let before: Stats;
  beforeAll(async () => {
    a = await startCluster({ workers: 2 });
    before = await a.stats();
  });
  afterAll(async () => {
    await a.stop();
  });

  /** The running cluster is untouched: same processes, and it alone answers on its port. */
  async function untouched() {
    const now = await a.stats();
    expect(now.workers.map((w) => [w.pid, w.state])).toEqual(before.workers.map((w) => [w.pid, "ready"]));
    const requestsBefore = now.workers.reduce((n, w) => n + w.requests, 0);
    const users = Array.from({ length: 40 }, (_, i) => `one-port-${i}-${Date.now()}`);
    for (const u of users) {
      const r = await call(a.url, "/api/1001", {}, { "x-qdp-user": u });
      expect(r.status).toBe(200);
      expect(r.body.data.count).toBe(1);
      expect(r.headers.get("x-qdp-worker")).toBe(String(ownerOf(u, 2)));
    }
    const after = await a.stats();
    expect(after.workers.map((w) => w.pid)).toEqual(before.workers.map((w) => w.pid));
    expect(after.workers.reduce((n, w) => n + w.requests, 0) - requestsBefore).toBe(users.length);
  }

  test("a second start on the same port refuses, naming the running one", async () => {
    const { code, out } = await secondStart({ workers: 2, port: a.port });
    expect(code).toBe(2);
    expect(out).toContain(
      `port ${a.port} is already served by the qdp-server with supervisor pid ${before.supervisor.pid}, port 127.0.0.1:${a.port}, stats port ${a.statsPort}, runtime dir ${join(a.dir, "run")}`,
    );
    expect(out).not.toContain("supervisor started");
    expect(out).not.toMatch(/\n\s+at /);
    await untouched();
  });

  test("a second start on another port but the same runtime directory refuses and leaves its sockets alone", async () => {
    const dir = join(a.dir, "run");
    const socks = readdirSync(dir).sort();
    const { code, out } = await secondStart({ workers: 2, env: { QDP_RUNTIME_DIR: dir } });
    expect(code).toBe(2);
    expect(out).toContain(`QDP_RUNTIME_DIR=${dir} is already used by the qdp-server with supervisor pid ${before.supervisor.pid}`);
    expect(readdirSync(dir).sort()).toEqual(socks);
    await untouched();
  });
});

test("kill -9 of the supervisor alone: the next start on the port waits for its workers to leave, then starts", async () => {
  const a = await startCluster({ workers: 2 });
  extra.push(a);
  const s = await a.stats();
  process.kill(s.supervisor.pid, "SIGKILL");
  const b = await startCluster({ workers: 2, port: a.port });
  extra.push(b);
  for (const w of s.workers) expect(alive(w.pid!)).toBe(false);
  const now = await b.stats();
  expect(now.supervisor.pid).not.toBe(s.supervisor.pid);
  for (let i = 0; i < 10; i++) expect((await call(b.url, "/api/1000", { i })).status).toBe(200);
});

test("QDP_PORT=0: the lock is on the picked port and each cluster gets that port's directory", async () => {
  const tmp = mkdtempSync(join(tmpdir(), "qdp-port0-"));
  temps.push(tmp);
  const started: Stats[] = [];
  for (let k = 0; k < 2; k++) {
    // No QDP_RUNTIME_DIR: the default under TMPDIR.
    const c = await startCluster({ workers: 1, noWait: true, env: { QDP_PORT: "0", QDP_RUNTIME_DIR: "", TMPDIR: tmp } });
    extra.push(c);
    let s: Stats | null = null;
    for (let i = 0; i < 200 && !(s && s.workers.every((w) => w.state === "ready")); i++) {
      await Bun.sleep(50);
      s = await c.stats().catch(() => null);
      if (c.proc.exitCode !== null) throw new Error(`exited: ${c.output()}`);
    }
    started.push(s!);
    const port = s!.supervisor.port!;
    expect(port).not.toBe(0);
    expect(statSync(join(tmp, `qdp-${port}`)).mode & 0o777).toBe(0o700);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  }
  expect(started[0]!.supervisor.port).not.toBe(started[1]!.supervisor.port);
  expect(existsSync(join(tmp, "qdp-0"))).toBe(false);
  for (const c of extra.splice(0)) expect(await c.stop()).toBe(0);
  expect(readdirSync(tmp)).toEqual([]);
});
