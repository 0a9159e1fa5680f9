/**
 * The migration bridge against the old stack's real parts (CONTRACT.md §8): a 2-worker cluster
 * with signing on forwards 2000-2099 to two uWSGI + Flask processes (Debian's packages,
 * test/fixtures/legacy_app.py) on free loopback ports. Proves: every call of a user reaches the
 * same backend pid, the envelope arrives intact, a refused call never reaches a backend (counted
 * at the backends), a slow backend gives 504, SIGHUP re-reads the file (and refuses a bad one
 * without touching the workers), a killed backend gives 502 to its users only — and a forward
 * file that conflicts with a local service stops start-up with exit code 2.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signRequest } from "../src/client/sign.ts";
import { ownerOf } from "../src/core/ownership.ts";
import { startCluster, type Cluster } from "./support/cluster.ts";
import { ensureLegacyStack, startLegacyBackend, type LegacyBackend } from "./support/legacy.ts";

const KEY = "bridge-k1-secret-0123456789abcdef0123456789";
const dir = mkdtempSync(join(tmpdir(), "qdp-bridge-"));
const FILE = join(dir, "forward.json");
/**
 * A threaded uWSGI keeps a thread on each kept-alive connection, so qdp's connections to one
 * backend (at most maxInflight per worker) must not outnumber its threads (64, test/support/legacy.ts):
 * 2 workers × 32. The rule operators follow too (docs/porting.md).
 */
const MAX_INFLIGHT = 32;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Answer {
  status: number;
  body: any;
}

/** A signed call of `funcNo` for `user` on a fresh connection. */
async function signed(c: Cluster, funcNo: number, user: string, data: unknown, extra: Record<string, string> = {}): Promise<Answer> {
  const body = JSON.stringify(data);
  const headers = signRequest({ keyId: "k1", secret: KEY, method: "POST", target: `/api/${funcNo}`, user, body });
  return send(c, `/api/${funcNo}`, body, { ...headers, ...extra });
}

/** Expects a 200, showing the error body otherwise. */
function ok(r: Answer): any {
  expect(r.status === 200 ? 200 : r).toBe(200);
  return r.body.data;
}

async function send(c: Cluster, target: string, body: string, headers: Record<string, string>): Promise<Answer> {
  const r = await fetch(c.url + target, { method: "POST", headers: { "content-type": "application/json", connection: "close", ...headers }, body });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: r.status, body: parsed };
}

test("a forwarded number that is also a local service stops start-up with exit code 2, naming both", async () => {
  const file = join(dir, "conflict.json");
  writeFileSync(file, JSON.stringify([{ funcNos: "999-1001", name: "legacy.low", backends: ["http://127.0.0.1:9"] }]));
  const c = await startCluster({ noWait: true, env: { QDP_FORWARD_FILE: file } });
  const code = await c.proc.exited;
  await c.stop();
  expect(code).toBe(2);
  expect(c.output()).toContain("QDP_FORWARD_FILE entry 0 (legacy.low, 999-1001) forwards 1000, which is also the local service demo.echo");
});

const why = ensureLegacyStack();
if (why) console.warn(`bridge-legacy: uWSGI + Flask tests skipped — ${why}`);
test.if(!!why && !!process.env.CI)("uWSGI and Flask are available in CI", () => {
  throw new Error(`uWSGI + Flask are required in CI: ${why}`);
});

describe.if(!why)("2 workers → 2 uWSGI + Flask backends", () => {
  let a: LegacyBackend;
  let b: LegacyBackend;
  let c: Cluster;
  /** The backend list as the workers currently have it. */
  let table: LegacyBackend[];
  const backendOf = (user: string) => table[ownerOf(user, table.length)]!;

  beforeAll(async () => {
    [a, b] = await Promise.all([startLegacyBackend(), startLegacyBackend()]);
    table = [a, b];
    writeFileSync(FILE, JSON.stringify([{ funcNos: "2000-2099", name: "legacy.pricing", backends: [a.url, b.url], path: "/qdp", maxInflight: MAX_INFLIGHT }]));
    c = await startCluster({ workers: 2, env: { QDP_UAP_KEYS: `k1:${KEY}`, QDP_FORWARD_FILE: FILE, QDP_TIMEOUT_MS: "4000" } });
  });
  afterAll(async () => {
    await c?.stop();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  test("every call of a user reaches the same backend pid: backends[ownerOf(user, 2)]", async () => {
    const users = Array.from({ length: 40 }, (_, i) => `legacy-${i}-用户`);
    const pids = new Map<string, Set<number>>();
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        users.map(async (u) => {
          const data = ok(await signed(c, 2000 + round, u, { round }));
          let seen = pids.get(u);
          if (!seen) pids.set(u, (seen = new Set()));
          seen.add(data.pid);
        }),
      );
    }
    for (const u of users) expect([...pids.get(u)!]).toEqual([backendOf(u).pid]);
    const used = new Set(users.map((u) => backendOf(u).pid));
    expect(used).toEqual(new Set([a.pid, b.pid]));
  });

  test("the envelope arrives intact, with the X-Request-Id", async () => {
    const user = "envelope-ü-✓";
    const data = { symbol: "600519.SH", qty: 3, price: 1.25, tags: ["a", "é", "😀"], nested: { ok: true, none: null }, text: 'quote " and \\ backslash\nline' };
    const r = await signed(c, 2042, user, data, { "x-request-id": "bridge-req-42" });
    expect(r.status).toBe(200);
    const got = r.body.data;
    expect(got.pid).toBe(backendOf(user).pid);
    expect(got.envelope).toEqual({ funcNo: 2042, userId: user, data });
    expect(JSON.parse(got.raw)).toEqual({ funcNo: 2042, userId: user, data });
    expect(got.requestId).toBe("bridge-req-42");
    expect(got.contentType).toBe("application/json");
    // The envelope route: the same envelope reaches the backend.
    const env = JSON.stringify({ funcNo: 2043, userId: user, data });
    const e = await send(c, "/qdp", env, signRequest({ keyId: "k1", secret: KEY, method: "POST", target: "/qdp", body: env }));
    expect(e.status).toBe(200);
    expect(e.body.data.envelope).toEqual({ funcNo: 2043, userId: user, data });
  });

  test("signing is enforced before anything is forwarded: refused calls never reach a backend", async () => {
    const before = (await a.count()) + (await b.count());
    const user = "refused-user";
    const body = JSON.stringify({ x: 1 });
    const good = signRequest({ keyId: "k1", secret: KEY, method: "POST", target: "/api/2000", user, body });
    const refused: Answer[] = [
      await send(c, "/api/2000", body, { "x-qdp-user": user }),
      await send(c, "/api/2000", body, { ...good, "X-QDP-Signature": `v1=${"0".repeat(64)}` }),
      await send(c, "/api/2000", body, signRequest({ keyId: "k1", secret: "wrong-secret-0123456789abcdef", method: "POST", target: "/api/2000", user, body })),
      await send(
        c,
        "/api/2000",
        body,
        signRequest({ keyId: "k1", secret: KEY, method: "POST", target: "/api/2000", user, body, timestamp: Math.floor(Date.now() / 1000) - 400 }),
      ),
      // Signed for another user than the one sent.
      await send(c, "/api/2000", body, { ...good, "X-QDP-User": "someone-else" }),
      await send(c, "/api/2000", JSON.stringify({ x: 2 }), good),
    ];
    for (const r of refused) expect(r.status).toBe(401);
    expect((await a.count()) + (await b.count())).toBe(before);
    expect((await send(c, "/api/2000", body, good)).status).toBe(200);
    // The accepted call replayed, on fresh connections that may land on either worker.
    for (let i = 0; i < 4; i++) expect((await send(c, "/api/2000", body, good)).status).toBe(401);
    expect((await a.count()) + (await b.count())).toBe(before + 1);
  });

  test("a slow backend gives 504 TIMEOUT at the call's deadline", async () => {
    const t0 = performance.now();
    // The deadline is 4 s (generous, so that ordinary calls on a busy test machine never hit it).
    const r = await signed(c, 2000, "slow-user", { sleepMs: 10_000 });
    expect(r.status).toBe(504);
    expect(r.body.error.code).toBe("TIMEOUT");
    expect(performance.now() - t0).toBeGreaterThan(3900);
    expect(performance.now() - t0).toBeLessThan(7000);
    // The backend answers its other users meanwhile.
    expect((await signed(c, 2000, "slow-user", {})).status).toBe(200);
  });

  test("SIGHUP re-reads the file: nothing changes before it (a respawned worker keeps the accepted table); a bad file is refused and changes nothing", async () => {
    const users = Array.from({ length: 20 }, (_, i) => `hup-${i}`);
    const pids = (await c.stats()).workers.map((w) => w.pid!);
    expect(pids).toHaveLength(2);
    // The edited file: order swapped (pinning is by position, so users move) and a new range.
    writeFileSync(
      FILE,
      JSON.stringify([
        { funcNos: "2000-2099", name: "legacy.pricing", backends: [b.url, a.url], maxInflight: MAX_INFLIGHT },
        { funcNos: 3000, name: "legacy.new", backends: [a.url], maxInflight: MAX_INFLIGHT },
      ]),
    );
    // Not re-read yet — not even by a worker that crashes and is respawned meanwhile.
    process.kill(pids[1]!, "SIGKILL");
    await c.waitReady({ notPids: [pids[1]!] });
    // The respawned worker refuses calls signed at or before its replay fence (the last second
    // its predecessor accepted): sign after it, as UAP would after a 401 "sign the call again".
    const fence = Math.max(...(await c.stats()).workers.map((w) => Number(w.replayFence ?? 0)));
    while (Math.floor(Date.now() / 1000) <= fence) await Bun.sleep(20);
    expect((await signed(c, 3000, users[0]!, {})).status).toBe(404);
    for (const u of users) expect((await signed(c, 2000, u, {})).body.data.pid).toBe(backendOf(u).pid);

    const current = await c.stats();
    c.proc.kill("SIGHUP");
    // Finished means every old worker has exited: until then one may still accept calls with
    // the previous table (each index switches when its replacement is ready).
    const reloaded = Date.now() + 30_000;
    while ((await c.stats()).supervisor.reloads === current.supervisor.reloads && Date.now() < reloaded) await Bun.sleep(50);
    await c.waitReady({ notPids: current.workers.map((w) => w.pid!) });
    table = [b, a];
    for (const u of users) expect((await signed(c, 2000, u, {})).body.data.pid).toBe(backendOf(u).pid);
    expect(ok(await signed(c, 3000, users[0]!, { hello: 1 })).pid).toBe(a.pid);

    // A file that overlaps: refused as a whole, workers untouched, old table served.
    writeFileSync(
      FILE,
      JSON.stringify([
        { funcNos: "2000-2099", name: "legacy.pricing", backends: [a.url] },
        { funcNos: "2090-2100", name: "legacy.more", backends: [b.url] },
      ]),
    );
    const pids2 = (await c.stats()).workers.map((w) => w.pid!);
    const outputBefore = c.output().length;
    c.proc.kill("SIGHUP");
    const until = Date.now() + 10_000;
    while (!c.output().slice(outputBefore).includes("reload refused") && Date.now() < until) await Bun.sleep(50);
    const log = c.output().slice(outputBefore);
    expect(log).toContain("reload refused");
    expect(log).toContain("entries 0 (legacy.pricing, 2000-2099) and 1 (legacy.more, 2090-2100) overlap at 2090-2099");
    await Bun.sleep(300);
    expect((await c.stats()).workers.map((w) => w.pid)).toEqual(pids2);
    for (const u of users) expect((await signed(c, 2000, u, {})).body.data.pid).toBe(backendOf(u).pid);
    expect((await signed(c, 3000, users[0]!, {})).status).toBe(200);
  });

  test("a killed backend: its users get 502 quickly, the other backend's users are served", async () => {
    const victim = table[0]!;
    const users = Array.from({ length: 30 }, (_, i) => `kill-${i}`);
    const victims = users.filter((u) => backendOf(u) === victim);
    const others = users.filter((u) => backendOf(u) !== victim);
    expect(victims.length).toBeGreaterThan(0);
    expect(others.length).toBeGreaterThan(0);
    await victim.kill();
    const t0 = performance.now();
    const answers = await Promise.all(users.map(async (u) => [u, await signed(c, 2001, u, {})] as const));
    expect(performance.now() - t0).toBeLessThan(2000);
    for (const [u, r] of answers) {
      if (victims.includes(u)) {
        expect(r.status).toBe(502);
        expect(r.body.error.code).toBe("UPSTREAM_ERROR");
      } else {
        expect(r.status).toBe(200);
        expect(r.body.data.pid).toBe(backendOf(u).pid);
      }
    }
  });
});
