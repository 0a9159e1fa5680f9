/**
 * QDP_RUNTIME_DIR on the real cluster: a directory someone else could write stops start-up
 * before anything binds, a fresh one is made 0700 with 0600 sockets, and nothing of a cluster
 * is left in it after a stop — nor, after a kill -9, once the next start has run.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { alive, call, freePort, startCluster, type Cluster } from "./support/cluster.ts";

const temps: string[] = [];
const clusters: Cluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.stop();
  for (const t of temps.splice(0)) rmSync(t, { recursive: true, force: true });
});

function tempDir(): string {
  const t = mkdtempSync(join(tmpdir(), "qdp-rundir-"));
  temps.push(t);
  return t;
}

async function start(opts: Parameters<typeof startCluster>[0]): Promise<Cluster> {
  const c = await startCluster(opts);
  clusters.push(c);
  return c;
}

/** Starts with `runtimeDir` and waits (at most 10 s) for the process to give up. */
async function refusedStart(runtimeDir: string): Promise<{ code: number | null | "still running"; out: string }> {
  const c = await start({ noWait: true, env: { QDP_RUNTIME_DIR: runtimeDir } });
  const code = await Promise.race([c.proc.exited, Bun.sleep(10_000).then(() => "still running" as const)]);
  await Bun.sleep(20); // let the last output arrive
  return { code, out: c.output() };
}

const sockets = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".sock"))
    .sort();

describe("a runtime directory someone else could write stops start-up", () => {
  test("mode 0777 → exit 2 with one sentence, nothing started, the directory untouched", async () => {
    const dir = join(tempDir(), "run");
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    const { code, out } = await refusedStart(dir);
    expect(code).toBe(2);
    expect(out).toContain(
      `QDP_RUNTIME_DIR=${dir}: owned by uid ${process.getuid!()} with mode 0777; required: owned by uid ${process.getuid!()} (the server's user) with mode 0700`,
    );
    expect(out).not.toMatch(/\n\s+at /);
    // Refused before the supervisor, the stats server or any worker started.
    expect(out).not.toContain("supervisor started");
    expect(sockets(dir)).toEqual([]);
    expect(statSync(dir).mode & 0o777).toBe(0o777);
  });

  test.skipIf(process.getuid?.() !== 0)("owned by another user (uid 65534), even with mode 0700 → exit 2 naming the owner", async () => {
    const dir = join(tempDir(), "run");
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    const { code, out } = await refusedStart(dir);
    expect(code).toBe(2);
    expect(out).toContain(`QDP_RUNTIME_DIR=${dir}: owned by uid 65534 with mode 0700; required: owned by uid 0`);
    expect(out).not.toContain("supervisor started");
    expect(sockets(dir)).toEqual([]);
  });

  test("a symbolic link → exit 2", async () => {
    const base = tempDir();
    mkdirSync(join(base, "real"), { mode: 0o700 });
    Bun.spawnSync(["ln", "-s", join(base, "real"), join(base, "run")]);
    const { code, out } = await refusedStart(join(base, "run"));
    expect(code).toBe(2);
    expect(out).toContain("is a symbolic link");
  });
});

test("a fresh path is made 0700, sockets are 0600, and a stop leaves nothing behind", async () => {
  const dir = join(tempDir(), "a", "b", "run");
  const c = await start({ workers: 2, env: { QDP_RUNTIME_DIR: dir } });
  expect(statSync(dir).mode & 0o777).toBe(0o700);
  const socks = sockets(dir);
  expect(socks).toEqual(["w0-g1.sock", "w1-g2.sock"]);
  for (const s of socks) expect(statSync(join(dir, s)).mode & 0o777).toBe(0o600);
  expect((await call(c.url, "/api/1000", {})).status).toBe(200);
  expect(await c.stop()).toBe(0);
  expect(existsSync(dir)).toBe(false);
});

test("kill -9 of a worker: its socket goes; kill -9 of everything: the next start removes the leftovers and starts", async () => {
  const dir = join(tempDir(), "run");
  const port = freePort();
  const a = await start({ workers: 2, port, env: { QDP_RUNTIME_DIR: dir } });
  const first = await a.stats();
  process.kill(first.workers[1]!.pid!, "SIGKILL");
  const s = await a.waitReady({ notPids: [first.workers[1]!.pid!] });
  // The supervisor removed the killed worker's socket (generation 2); the replacement is generation 3.
  expect(sockets(dir)).toEqual(["w0-g1.sock", "w1-g3.sock"]);
  const pids = [s.supervisor.pid, ...s.workers.map((w) => w.pid!)];
  // Stopped first, so none of them can react to another's death (a worker that sees the
  // supervisor go exits cleanly and removes its own socket; the supervisor removes a dead
  // worker's): then all die at once, as in a host-wide kill -9.
  for (const pid of pids) process.kill(pid, "SIGSTOP");
  for (const pid of pids) process.kill(pid, "SIGKILL");
  while (pids.some(alive)) await Bun.sleep(20);
  expect(sockets(dir)).toEqual(["w0-g1.sock", "w1-g3.sock"]);

  const b = await start({ workers: 2, port, env: { QDP_RUNTIME_DIR: dir } });
  expect(sockets(dir)).toEqual(["w0-g1.sock", "w1-g2.sock"]);
  expect(b.output()).toContain("removed hop sockets left by a cluster that is gone");
  const u = Array.from({ length: 20 }, (_, i) => `after-crash-${i}`);
  for (const user of u) expect((await call(b.url, "/api/1001", {}, { "x-qdp-user": user })).body.data.count).toBe(1);
  expect(await b.stop()).toBe(0);
  expect(existsSync(dir)).toBe(false);
});
