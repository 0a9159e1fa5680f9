/**
 * User affinity on the real cluster: every call of a user runs in its owner process, sessions
 * survive a rolling reload, an owner's crash makes its users wait (not run elsewhere), and
 * nothing from outside can pose as the hop.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ownerOf } from "../src/core/ownership.ts";
import { FrameReader, FrameType, FrameWriter } from "../src/core/frames.ts";
import { encodeHeaderUtf8 } from "../src/core/signing.ts";
import { alive, call, startCluster, type Cluster } from "./support/cluster.ts";

const N = 2;

async function counter(c: Cluster, user: string, via: "header" | "envelope" = "header") {
  return via === "header"
    ? call(c.url, "/api/1001", {}, { "x-qdp-user": encodeHeaderUtf8(user) })
    : call(c.url, "/qdp", { funcNo: 1001, userId: user, data: {} });
}

/** Runs `fn` over items with at most `limit` at once. */
async function pool<T>(items: T[], limit: number, fn: (x: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

describe("affinity on a 2-worker cluster", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ workers: N });
  });
  afterAll(async () => {
    await c.stop();
  });

  test("1,000 users × 3 calls on fresh connections: every call at the owner, counters exact", async () => {
    const users = Array.from({ length: 1000 }, (_, i) => `flow-${i}`);
    const wrong: string[] = [];
    const edges = new Set<string>();
    await pool(users, 50, async (u) => {
      for (let k = 1; k <= 3; k++) {
        const r = await counter(c, u, k === 2 ? "envelope" : "header");
        if (r.status !== 200 || r.body.data.count !== k || r.headers.get("x-qdp-worker") !== String(ownerOf(u, N))) {
          wrong.push(`${u}#${k}: ${r.status} ${JSON.stringify(r.body)} worker=${r.headers.get("x-qdp-worker")}`);
        }
        edges.add(r.headers.get("x-qdp-edge")!);
      }
    });
    expect(wrong).toEqual([]);
    expect([...edges].sort()).toEqual(["0", "1"]);
    const s = await c.stats();
    const hops = s.workers.reduce((a, w) => a + w.hopsOut, 0);
    expect(hops).toBeGreaterThan(500);
    expect(s.workers.reduce((a, w) => a + (w.sessions ?? 0), 0)).toBe(1000);
  });

  test("unicode and 128-byte user ids meet in one process by header and by envelope", async () => {
    for (const u of ["用户-測試-é", "ü".repeat(64), "x".repeat(128)]) {
      const a = await counter(c, u, "header");
      const b = await counter(c, u, "envelope");
      expect([a.status, b.status]).toEqual([200, 200]);
      expect([a.body.data.count, b.body.data.count]).toEqual([1, 2]);
      expect(a.headers.get("x-qdp-worker")).toBe(String(ownerOf(u, N)));
      expect(b.headers.get("x-qdp-worker")).toBe(String(ownerOf(u, N)));
    }
    expect((await counter(c, "x".repeat(129), "envelope")).body.error.code).toBe("BAD_USER");
  });

  test("headers from outside cannot choose the worker or pose as a hop", async () => {
    const u = "forge-1";
    const owner = String(ownerOf(u, N));
    for (let i = 0; i < 10; i++) {
      const r = await call(
        c.url,
        "/api/1001",
        {},
        { "x-qdp-user": u, "x-qdp-worker": owner === "0" ? "1" : "0", "x-qdp-edge": "7", "x-qdp-hop": "1", "x-qdp-owner": "1" },
      );
      expect(r.headers.get("x-qdp-worker")).toBe(owner);
      expect(r.body.data.count).toBe(i + 1);
    }
    for (const p of ["/hop", "/internal/call", "/_hop"]) expect((await call(c.url, p, {})).status).toBe(404);
  });

  test("a forged hop on the worker's Unix socket is refused and never runs", async () => {
    const dir = join(c.dir, "run");
    const sock = readdirSync(dir).find((f) => f.startsWith("w1-") && f.endsWith(".sock"))!;
    const u = "forged-user";
    const runs = async () => (await c.stats()).workers.reduce((a, w) => a + w.hopsIn, 0);
    const before = await runs();
    for (const variant of ["no hello", "bad mac"] as const) {
      let closed = false;
      const frames: number[] = [];
      const reader = new FrameReader((type) => frames.push(type));
      const s = await Bun.connect({
        unix: join(dir, sock),
        socket: {
          data(_s, d) {
            reader.feed(d);
          },
          close() {
            closed = true;
          },
        },
      });
      const w = new FrameWriter();
      if (variant === "bad mac") w.push(FrameType.HELLO, 0, JSON.stringify({ index: 0, gen: 1, mac: "0".repeat(64) }));
      w.push(FrameType.CALL, 1, `1001\t1000\tforged\t\t\t${u}\n`, new TextEncoder().encode("{}"));
      s.write(w.bytes());
      for (let i = 0; i < 40 && !closed; i++) await Bun.sleep(25);
      expect(closed).toBe(true);
      expect(frames.filter((f) => f === FrameType.RESULT || f === FrameType.ERROR)).toEqual([]);
    }
    expect(await runs()).toBe(before);
    // The user's session was never created: its first real call counts 1.
    expect((await counter(c, u)).body.data.count).toBe(1);
  });

  test("a 50 MiB frame before authentication is cut at its length: no buffering, the cluster serves on", async () => {
    const dir = join(c.dir, "run");
    const sock = readdirSync(dir).find((f) => f.startsWith("w1-") && f.endsWith(".sock"))!;
    const pid = (await c.stats()).workers[1]!.pid!;
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
    const before = rss();
    let closed = false;
    let drained: (() => void) | null = null;
    const s = await Bun.connect({
      unix: join(dir, sock),
      socket: {
        data() {},
        drain() {
          drained?.();
        },
        close() {
          closed = true;
        },
        error() {},
      },
    });
    // A length prefix of 50 MiB, then the data, streamed as fast as the socket takes it.
    const chunk = new Uint8Array(256 * 1024).fill(0x61);
    new DataView(chunk.buffer).setUint32(0, 50 * 1024 * 1024);
    let written = 0;
    const t0 = Date.now();
    while (!closed && written < 50 * 1024 * 1024 && Date.now() - t0 < 5000) {
      const n = s.write(written === 0 ? chunk : chunk.subarray(4));
      if (n < 0) break;
      written += n;
      if (n === 0) await Promise.race([new Promise<void>((r) => (drained = r)), Bun.sleep(50)]);
    }
    for (let i = 0; i < 100 && !closed; i++) await Bun.sleep(10);
    expect(closed).toBe(true);
    expect(Date.now() - t0).toBeLessThan(2000);
    // What the kernel's socket buffers took before the close, not the frame.
    expect(written).toBeLessThan(4 * 1024 * 1024);
    expect(rss() - before).toBeLessThan(8 * 1024 * 1024);
    expect((await c.stats()).workers[1]!.pid).toBe(pid);
    const u = Array.from({ length: 50 }, (_, i) => `after-flood-${i}`).find((x) => ownerOf(x, N) === 1)!;
    for (let k = 1; k <= 3; k++) expect((await counter(c, u)).body.data.count).toBe(k);
  });
});

test("kill -9 of an owner while its users call: they wait and succeed once it is back", async () => {
  const c = await startCluster({ workers: N, env: { QDP_OWNER_WAIT_MS: "5000" } });
  try {
    const users = Array.from({ length: 400 }, (_, i) => `crash-${i}`)
      .filter((u) => ownerOf(u, N) === 1)
      .slice(0, 100);
    for (const u of users) expect((await counter(c, u)).body.data.count).toBe(1);
    const victim = (await c.stats()).workers[1]!;
    // The supervisor is paused while the owner dies, so no replacement can start before the
    // calls below are waiting for it; it resumes once they are.
    process.kill(c.proc.pid, "SIGSTOP");
    let results: Awaited<ReturnType<typeof counter>>[];
    try {
      process.kill(victim.pid!, "SIGKILL");
      while (alive(victim.pid!)) await Bun.sleep(5);
      // Calls that were already sent to the dying owner may have run, so they are answered 503
      // rather than run twice; calls made once the edge saw the owner go (its /readyz counts
      // the peers up) wait for its replacement (with fresh sessions: a crash loses them).
      while (((await (await fetch(`${c.url}/readyz`)).json()) as { peersUp: number }).peersUp !== 0) await Bun.sleep(5);
      const pending = Promise.all(users.map((u) => counter(c, u)));
      await Bun.sleep(200); // let the calls reach the edge and queue for the owner
      process.kill(c.proc.pid, "SIGCONT");
      results = await pending;
    } finally {
      process.kill(c.proc.pid, "SIGCONT");
    }
    expect(results.map((r) => r.status)).toEqual(users.map(() => 200));
    for (const r of results) expect(r.headers.get("x-qdp-worker")).toBe("1");
    const s = await c.waitReady();
    expect(s.workers[1]!.pid).not.toBe(victim.pid);
    expect(s.workers[0]!.ownerWaits as number).toBeGreaterThan(0);
  } finally {
    await c.stop();
  }
});

test("an owner down longer than QDP_OWNER_WAIT_MS → 503 OWNER_UNAVAILABLE with Retry-After", async () => {
  const c = await startCluster({ workers: N, env: { QDP_OWNER_WAIT_MS: "200" } });
  try {
    const u = Array.from({ length: 50 }, (_, i) => `down-${i}`).find((x) => ownerOf(x, N) === 1)!;
    // Crash index 1 repeatedly so its respawn backs off for longer than the owner wait.
    for (let k = 0; k < 4; k++) {
      const s = await c.waitReady({ timeoutMs: 10_000 });
      process.kill(s.workers[1]!.pid!, "SIGKILL");
      await Bun.sleep(30);
    }
    let seen: { status: number; body: any; headers: Headers } | null = null;
    for (let i = 0; i < 20 && !seen; i++) {
      const r = await counter(c, u);
      if (r.status === 503) seen = r;
    }
    expect(seen).not.toBeNull();
    expect(seen!.body.error.code).toBe("OWNER_UNAVAILABLE");
    expect(seen!.headers.get("retry-after")).toBe("1");
    expect(seen!.headers.get("x-qdp-edge")).toBe("0");
  } finally {
    await c.stop();
  }
});

test("SIGHUP under load: sessions move to the replacements, counters continue, no failed call", async () => {
  const c = await startCluster({ workers: N });
  try {
    const users = Array.from({ length: 200 }, (_, i) => `reload-${i}`);
    const expected = new Map<string, number>();
    for (const u of users) {
      expect((await counter(c, u)).body.data.count).toBe(1);
      expected.set(u, 1);
    }
    const before = await c.stats();
    let running = true;
    const failures: string[] = [];
    const loops = users.slice(0, 64).map(async (u, k) => {
      // Each loop owns a disjoint set of users, so per-user order is sequential.
      const mine = users.filter((_, i) => i % 64 === k);
      let j = 0;
      while (running) {
        const user = mine[j++ % mine.length]!;
        const r = await counter(c, user).catch((e) => ({ status: 0, body: String(e), headers: new Headers() }));
        const want = expected.get(user)! + 1;
        if (r.status !== 200 || r.body.data.count !== want) failures.push(`${user}: ${r.status} ${JSON.stringify(r.body)} want ${want}`);
        else expected.set(user, want);
      }
    });
    await Bun.sleep(300);
    process.kill(before.supervisor.pid, "SIGHUP");
    const t0 = Date.now();
    while ((await c.stats()).supervisor.reloads < 1 && Date.now() - t0 < 30_000) await Bun.sleep(100);
    await Bun.sleep(300);
    running = false;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    const after = await c.waitReady();
    for (const w of after.workers) expect(before.workers.map((b) => b.pid)).not.toContain(w.pid);
    // Every user's next call continues its count.
    for (const u of users) expect((await counter(c, u)).body.data.count).toBe(expected.get(u)! + 1);
  } finally {
    await c.stop();
  }
});
