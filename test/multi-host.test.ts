/**
 * Several hosts (CONTRACT.md §7, docs/multi-host.md), all real and on loopback: three qdp-server
 * instances on 127.0.0.2, 127.0.0.3 and 127.0.0.4 (own ports, stats ports, runtime and data
 * dirs, one UAP key), one nginx running exactly what `qdp nginx-conf --hosts` printed, one
 * redis-server holding the sessions (QDP_SESSION_STORE=redis) and the claimed nonces
 * (QDP_REPLAY_STORE=redis). Everything is started and stopped here.
 *
 * What it proves, in order:
 * 1. Consistency: for 1,000 users, which host serves each before, while and after a host leaves
 *    the upstream list (nginx reload); only that host's users move, they continue from Redis on
 *    their new host, and when they move back the stale copies there are refused by the versions
 *    (one SESSION_CONFLICT each) — no change lost or overwritten.
 * 2. A signed call accepted through one host and replayed directly to every host → 401, with a
 *    user and without.
 * 3. A call that reached a hung host is answered 504 by nginx and never sent to another host.
 * 4. SIGKILL of one host (supervisor and workers) under signed load of 1,000 users through nginx,
 *    then a restart: every count lies in [acknowledged, acknowledged + unknown].
 * 5. Redis away → signed calls 503 OVERLOADED (fail closed); back → served again.
 *
 * The only addition to the printed config is a test header at http level naming the host nginx
 * used ($upstream_addr).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signRequest } from "../src/client/sign.ts";
import { createRedisClient, type RedisClient } from "../src/stores/redis-client.ts";
import { alive, BUN, type Cluster, freePort, ROOT, startCluster } from "./support/cluster.ts";
import { counterLoad, ledgerViolations } from "./support/counter-load.ts";
import { ensureNginx, startNginx, type TestNginx } from "./support/nginx.ts";
import { ensureRedis, startRedis, type TestRedis } from "./support/redis.ts";

const USERS = 1000;
const KEY_ID = "uap-multi";
const SECRET = "multi-host-test-secret-0123456789";
const NAMES = ["A", "B", "C"] as const;
type Name = (typeof NAMES)[number];
const ADDRS: Record<Name, string> = { A: "127.0.0.2", B: "127.0.0.3", C: "127.0.0.4" };
/** QDP_TIMEOUT_MS of the hosts: the printed proxy_read_timeout is this + 5 s. */
const TIMEOUT_MS = 1000;

const nginxBin = ensureNginx();
const redisBin = ensureRedis();
const why = [nginxBin.why, redisBin.why].filter(Boolean).join("; ");
const can = !!nginxBin.path && !!redisBin.path;
if (!can) console.warn(`multi-host: skipped — ${why}`);
test.if(!can && !!process.env.CI)("nginx and redis-server are available in CI", () => {
  throw new Error(`nginx and redis-server are required in CI: ${why}`);
});

interface Host {
  name: Name;
  addr: string;
  port: number;
  dir: string;
  cluster: Cluster;
}

let redis: TestRedis;
let rc: RedisClient;
const hosts = {} as Record<Name, Host>;
let nginx: TestNginx;
let listen = 0;
let front = "";

function hostEnv(): Record<string, string> {
  return {
    QDP_UAP_KEYS: `${KEY_ID}:${SECRET}`,
    QDP_SESSION_STORE: "redis",
    QDP_REPLAY_STORE: "redis",
    QDP_REDIS_URL: redis.url,
    QDP_TIMEOUT_MS: String(TIMEOUT_MS),
    // Copies stay trusted for a minute, so a host that gets users back holds stale copies and
    // the versions — not the freshness re-check — must refuse their writes (test 1).
    QDP_SESSION_FRESH_MS: "60000",
    QDP_LOG_LEVEL: "warn",
  };
}

async function startHost(name: Name, port?: number, dir?: string): Promise<Host> {
  const d = dir ?? mkdtempSync(join(tmpdir(), `qdp-host-${name}-`));
  const cluster = await startCluster({ workers: 2, host: ADDRS[name], port, dir: d, env: hostEnv() });
  return { name, addr: ADDRS[name], port: cluster.port, dir: d, cluster };
}

/** What `qdp nginx-conf --hosts` prints for these hosts (the test runs the real command). */
function printedConf(names: Name[]): string {
  const list = names.map((n) => `${hosts[n].addr}:${hosts[n].port}`).join(",");
  const gen = Bun.spawnSync([BUN, "src/cli.ts", "nginx-conf", "--hosts", list, "--listen", `127.0.0.1:${listen}`, "--fail-timeout", "2"], {
    cwd: ROOT,
    env: { ...process.env, QDP_TIMEOUT_MS: String(TIMEOUT_MS) },
  });
  if (gen.exitCode !== 0) throw new Error(`qdp nginx-conf --hosts failed: ${gen.stderr.toString()}`);
  return gen.stdout.toString();
}

/** The host of an `X-Test-Upstream` value (the last address nginx tried). */
function hostOf(upstream: string | null): Name | "?" {
  const last = (upstream ?? "").split(",").pop()!.trim();
  for (const n of NAMES) if (hosts[n] && last === `${hosts[n].addr}:${hosts[n].port}`) return n;
  return "?";
}

interface Sent {
  target: string;
  headers: Record<string, string>;
  body: string;
}

/** Signs a POST for `target`; the same object can be sent again (a replay). */
function signed(target: string, user: string | null, body: string): Sent {
  const headers = { "content-type": "application/json", ...signRequest({ keyId: KEY_ID, secret: SECRET, method: "POST", target, user, body }) };
  return { target, headers, body };
}

async function send(base: string, s: Sent): Promise<{ status: number; json: any; host: Name | "?"; upstream: string | null }> {
  const r = await fetch(base + s.target, { method: "POST", headers: s.headers, body: s.body });
  const text = await r.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {}
  const upstream = r.headers.get("x-test-upstream");
  return { status: r.status, json, host: hostOf(upstream), upstream };
}

/** Counts stored in Redis (0 when none), read in one pipelined burst. */
async function storedCounts(users: string[]): Promise<Map<string, number>> {
  const vals = await Promise.all(users.map((u) => rc.send(["HGET", `qdp:session:${u}`, "d"])));
  return new Map(users.map((u, i) => [u, vals[i] === null ? 0 : (JSON.parse(String(vals[i])) as { count: number }).count]));
}

async function pool<T>(items: T[], width: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await f(items[next++]!);
    }),
  );
}

const users = (prefix: string) => Array.from({ length: USERS }, (_, i) => `${prefix}${i}`);

describe.if(can)("three hosts behind nginx sharing one Redis", () => {
  beforeAll(async () => {
    redis = await startRedis(redisBin.path!);
    rc = createRedisClient({ url: redis.url, timeoutMs: 5000 });
    await rc.waitConnected(5000);
    const started = await Promise.all(NAMES.map((n) => startHost(n)));
    for (const h of started) hosts[h.name] = h;
    listen = freePort();
    front = `http://127.0.0.1:${listen}`;
    nginx = await startNginx(nginxBin.path!, printedConf([...NAMES]), `${front}/healthz`, "    add_header X-Test-Upstream $upstream_addr always;");
  }, 60_000);

  afterAll(async () => {
    await nginx?.stop();
    await Promise.all(NAMES.map((n) => hosts[n]?.cluster.stop()));
    rc?.close();
    await redis?.dispose();
  }, 60_000);

  test(`consistency: for ${USERS} users only the leaving host's users move, continue from Redis, and move back without overwriting`, async () => {
    const us = users("c");
    /** One round: every user +1 (conflicts retried with a new signature); returns host per user. */
    const round = async (expected: number) => {
      const served = new Map<string, Name | "?">();
      const conflicts = new Map<string, number>();
      const bad: string[] = [];
      await pool(us, 40, async (u) => {
        for (let attempt = 0; attempt < 5; attempt++) {
          let r;
          try {
            r = await send(front, signed("/api/1001", u, "{}"));
          } catch {
            continue; // a keep-alive connection closed by the reload: not sent, sign again
          }
          if (r.status === 503 && r.json?.error?.code === "SESSION_CONFLICT") {
            conflicts.set(u, (conflicts.get(u) ?? 0) + 1);
            continue;
          }
          if (r.status !== 200 || r.json.data.count !== expected) bad.push(`${u}: ${r.status} ${JSON.stringify(r.json)} on ${r.host}`);
          served.set(u, r.host);
          return;
        }
        bad.push(`${u}: no answer in 5 attempts`);
      });
      expect(bad.slice(0, 5)).toEqual([]);
      return { served, conflicts };
    };
    const tally = (m: Map<string, string>) => NAMES.map((n) => `${n} ${[...m.values()].filter((h) => h === n).length}`).join(", ");

    const before = await round(1);
    for (const n of NAMES) expect([...before.served.values()].filter((h) => h === n).length).toBeGreaterThan(USERS / 10);

    // C leaves the upstream list (the documented way to remove a host), C itself keeps running
    // with its copies in memory.
    await nginx.reload(printedConf(["A", "B"]));
    const without = await round(2);
    const moved = us.filter((u) => before.served.get(u) !== without.served.get(u));
    const ofC = us.filter((u) => before.served.get(u) === "C");
    expect(moved).toEqual(ofC);
    for (const u of ofC) expect(["A", "B"]).toContain(without.served.get(u) ?? "none");
    expect(without.conflicts.size).toBe(0);

    // C returns: its users move back to it; C's copies are one version behind Redis, so each of
    // them is refused once (SESSION_CONFLICT) and the retry runs on the stored state.
    await nginx.reload(printedConf(["A", "B", "C"]));
    const back = await round(3);
    expect(us.filter((u) => back.served.get(u) !== before.served.get(u))).toEqual([]);
    expect([...back.conflicts.keys()].sort()).toEqual([...ofC].sort());
    expect([...back.conflicts.values()].every((n) => n === 1)).toBe(true);
    const counts = await storedCounts(us);
    expect(us.filter((u) => counts.get(u) !== 3)).toEqual([]);
    console.log(
      `multi-host consistency: before ${tally(before.served)}; C left: ${tally(without.served)} (moved ${moved.length}, all of C's ${ofC.length}); ` +
        `C back: ${tally(back.served)}, ${back.conflicts.size} stale copies refused once each, every count 3`,
    );
  }, 120_000);

  test("a signed call accepted through one host and replayed directly to each host → 401, with and without a user", async () => {
    for (const [user, target, body] of [
      ["replay-user-1", "/api/1001", "{}"],
      [null, "/api/1000", '{"hello":"hosts"}'],
    ] as const) {
      const call = signed(target, user, body);
      const first = await send(front, call);
      expect(first.status).toBe(200);
      expect(NAMES).toContain(first.host as Name);
      for (const n of NAMES) {
        const again = await send(`http://${hosts[n].addr}:${hosts[n].port}`, call);
        expect({ host: n, status: again.status, code: again.json?.error?.code }).toEqual({ host: n, status: 401, code: "UNAUTHENTICATED" });
      }
      // And through nginx once more.
      expect((await send(front, call)).status).toBe(401);
    }
    expect((await storedCounts(["replay-user-1"])).get("replay-user-1")).toBe(1);
    // The other hosts refused through the shared store (their memory had never seen the nonce).
    let sharedReplays = 0;
    for (const n of NAMES)
      for (const w of (await hosts[n].cluster.stats()).workers) sharedReplays += (w.replayStore as { replays: number } | undefined)?.replays ?? 0;
    expect(sharedReplays).toBeGreaterThanOrEqual(4);
  }, 60_000);

  test("a call that reached a hung host is answered 504 by nginx and never sent to another host", async () => {
    // A user that lives on B.
    let user = "";
    for (let i = 0; user === ""; i++) {
      const r = await send(front, signed("/api/1001", `hung-${i}`, "{}"));
      expect(r.status).toBe(200);
      if (r.host === "B") user = `hung-${i}`;
    }
    const b = hosts.B.cluster;
    const pids = [b.proc.pid, ...(await b.stats()).workers.map((w) => w.pid!)];
    for (const p of pids) process.kill(p, "SIGSTOP");
    let r: Awaited<ReturnType<typeof send>> | undefined;
    const t0 = performance.now();
    try {
      // The kernel still accepts the connection and the request: the call reached B.
      r = await send(front, signed("/api/1001", user, "{}"));
      // Nothing ran anywhere meanwhile.
      expect((await storedCounts([user])).get(user)).toBe(1);
    } finally {
      for (const p of pids) process.kill(p, "SIGCONT");
    }
    expect(r!.status).toBe(504);
    expect(r!.json?.ok).toBeUndefined(); // nginx's page, not a host's JSON
    expect(r!.upstream).toBe(`${hosts.B.addr}:${hosts.B.port}`); // one host tried, no next upstream
    expect(performance.now() - t0).toBeGreaterThan(TIMEOUT_MS + 4000);
    // B, resumed, may still run the request it had received: at most once, and only on B.
    await Bun.sleep(500);
    const after = (await storedCounts([user])).get(user)!;
    expect([1, 2]).toContain(after);
    const next = await send(front, signed("/api/1001", user, "{}"));
    expect({ status: next.status, host: next.host, count: next.json?.data?.count }).toEqual({ status: 200, host: "B", count: after + 1 });
  }, 60_000);

  test(`SIGKILL of one host under signed load of ${USERS} users through nginx, then a restart: every count within its ledger`, async () => {
    const served: Record<string, number> = { A: 0, B: 0, C: 0, "?": 0 };
    let phase = "before";
    const byPhase: Record<string, Record<string, number>> = {};
    const load = counterLoad(front, {
      users: USERS,
      concurrency: 32,
      prefix: "k",
      timeoutMs: 15_000,
      headers: (u) => signRequest({ keyId: KEY_ID, secret: SECRET, method: "POST", target: "/api/1001", user: u, body: "{}" }),
      unknownStatuses: [502],
      onResponse: (_u, r) => {
        if (r.status !== 200) return;
        const h = hostOf(r.headers.get("x-test-upstream"));
        served[h]!++;
        const p = (byPhase[phase] ??= { A: 0, B: 0, C: 0, "?": 0 });
        p[h]!++;
      },
    });
    const b = hosts.B;
    try {
      await Bun.sleep(2000);
      const pids = [b.cluster.proc.pid, ...(await b.cluster.stats()).workers.map((w) => w.pid!)];
      phase = "killing";
      for (const p of pids) process.kill(p, "SIGKILL");
      const until = Date.now() + 5000;
      while (pids.some(alive) && Date.now() < until) await Bun.sleep(20);
      expect(pids.filter(alive)).toEqual([]);
      // Answers B wrote just before it died may still be on their way through nginx.
      await Bun.sleep(300);
      phase = "down";
      await Bun.sleep(3000);
      phase = "restarting";
      hosts.B = await startHost("B", b.port, b.dir);
      phase = "back";
      // nginx tries B again after fail_timeout (2 s); wait until it serves again, then a little more.
      const seen = Date.now() + 10_000;
      while ((byPhase.back?.B ?? 0) === 0 && Date.now() < seen) await Bun.sleep(50);
      await Bun.sleep(1500);
    } finally {
      await load.stop();
    }
    const counts = await storedCounts([...load.ledger.keys()]);
    const violations = ledgerViolations(load, (u) => counts.get(u) ?? 0);
    console.log(
      `multi-host kill: ${load.total} calls, statuses ${JSON.stringify(load.statuses)}, served by phase ${JSON.stringify(byPhase)}, slowest ${load.slowestMs.toFixed(0)} ms`,
    );
    expect(violations.slice(0, 10)).toEqual([]);
    expect(load.unexpected.slice(0, 10)).toEqual([]);
    // While B was down its users were served by A and C; after the restart B serves again.
    expect(byPhase.down!.A! + byPhase.down!.C!).toBeGreaterThan(100);
    expect(byPhase.down!.B ?? 0).toBe(0);
    expect(byPhase.back?.B ?? 0).toBeGreaterThan(0);
    expect(load.statuses["200"]! / load.total).toBeGreaterThan(0.9);
  }, 120_000);

  test("Redis away: signed calls 503 OVERLOADED on every host, never run unchecked; back: served again", async () => {
    await redis.stop();
    try {
      for (const n of NAMES) {
        const base = `http://${hosts[n].addr}:${hosts[n].port}`;
        const noUser = await send(base, signed("/api/1000", null, '{"x":1}'));
        expect({ n, status: noUser.status, code: noUser.json?.error?.code }).toEqual({ n, status: 503, code: "OVERLOADED" });
        const withUser = await send(base, signed("/api/1000", "outage-user", '{"x":1}'));
        expect({ n, status: withUser.status, code: withUser.json?.error?.code }).toEqual({ n, status: 503, code: "OVERLOADED" });
      }
    } finally {
      await redis.start();
    }
    const until = Date.now() + 10_000;
    let last = 0;
    while (Date.now() < until) {
      last = (await send(front, signed("/api/1000", null, '{"x":2}'))).status;
      if (last === 200) break;
      await Bun.sleep(100);
    }
    expect(last).toBe(200);
  }, 60_000);
});
