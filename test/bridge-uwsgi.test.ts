/**
 * The bridge over the native uwsgi protocol (an extension beyond CONTRACT.md §8): a 2-worker
 * cluster forwards 2000-2099 to two uWSGI + Flask processes (Debian's packages,
 * test/fixtures/legacy_app.py) listening on uwsgi Unix sockets — the sockets nginx's uwsgi_pass
 * uses today — and 2100 to a socket whose server answers junk. Proves: every call of a user
 * reaches the same backend pid, the envelope and X-Request-Id arrive intact (non-ASCII too), a
 * non-2xx or non-JSON answer is 502, a slow backend 504, a killed backend 502 for its users only
 * and at once, junk 502 without harm to the cluster.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeHeaderUtf8 } from "../src/core/header-text.ts";
import { ownerOf } from "../src/core/ownership.ts";
import { startCluster, type Cluster } from "./support/cluster.ts";
import { ensureLegacyStack, startLegacyBackend, type LegacyBackend } from "./support/legacy.ts";

const dir = mkdtempSync(join(tmpdir(), "qdp-bridge-uwsgi-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Answer {
  status: number;
  body: any;
}

async function call(c: Cluster, funcNo: number, user: string, data: unknown, extra: Record<string, string> = {}): Promise<Answer> {
  const r = await fetch(`${c.url}/api/${funcNo}`, {
    method: "POST",
    headers: { "content-type": "application/json", connection: "close", "x-qdp-user": encodeHeaderUtf8(user), ...extra },
    body: JSON.stringify(data),
  });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: r.status, body: parsed };
}

/** A uwsgi socket whose server reads the request, writes junk and closes. */
function junkServer(path: string) {
  let calls = 0;
  const l = Bun.listen({
    unix: path,
    socket: {
      data(s) {
        calls++;
        s.write("\x00\x07 this is not HTTP at all\r\n\r\n\xff\xfe");
        s.end();
      },
    },
  });
  return { calls: () => calls, stop: () => l.stop(true) };
}

const why = ensureLegacyStack();
if (why) console.warn(`bridge-uwsgi: uWSGI + Flask tests skipped — ${why}`);

describe.if(!why)("2 workers → 2 uWSGI + Flask backends on uwsgi Unix sockets", () => {
  let a: LegacyBackend;
  let b: LegacyBackend;
  let c: Cluster;
  let junk: ReturnType<typeof junkServer>;
  const backendOf = (user: string) => [a, b][ownerOf(user, 2)]!;

  beforeAll(async () => {
    [a, b] = await Promise.all([startLegacyBackend({ uwsgi: true }), startLegacyBackend({ uwsgi: true })]);
    junk = junkServer(join(dir, "junk.sock"));
    const file = join(dir, "forward.json");
    writeFileSync(
      file,
      JSON.stringify([
        { funcNos: "2000-2099", name: "legacy.pricing", backends: [a.url, b.url], path: "/qdp", maxInflight: 32 },
        { funcNos: "2100", name: "legacy.junk", backends: [`uwsgi://${join(dir, "junk.sock")}`] },
      ]),
    );
    c = await startCluster({ workers: 2, env: { QDP_FORWARD_FILE: file, QDP_TIMEOUT_MS: "3000" } });
  });
  afterAll(async () => {
    await c?.stop();
    junk?.stop();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  test("the backends are uwsgi sockets", () => {
    expect(a.url).toStartWith("uwsgi:///");
    expect(b.url).toStartWith("uwsgi:///");
  });

  test("every call of a user reaches the same backend pid: backends[ownerOf(user, 2)]", async () => {
    const users = Array.from({ length: 40 }, (_, i) => `uwsgi-${i}-用户`);
    const pids = new Map<string, Set<number>>();
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        users.map(async (u) => {
          const r = await call(c, 2000 + round, u, { round });
          expect(r.status === 200 ? 200 : r).toBe(200);
          let seen = pids.get(u);
          if (!seen) pids.set(u, (seen = new Set()));
          seen.add(r.body.data.pid);
        }),
      );
    }
    for (const u of users) expect([...pids.get(u)!]).toEqual([backendOf(u).pid]);
    expect(new Set(users.map((u) => backendOf(u).pid))).toEqual(new Set([a.pid, b.pid]));
  });

  test("the envelope arrives intact (non-ASCII user and data), with the X-Request-Id", async () => {
    const user = "envelope-ü-✓-用户";
    const data = { symbol: "600519.SH", qty: 3, tags: ["a", "é", "😀"], nested: { ok: true, none: null }, text: 'quote " and \\ backslash\nline' };
    const r = await call(c, 2042, user, data, { "x-request-id": "uwsgi-req-42" });
    expect(r.status).toBe(200);
    const got = r.body.data;
    expect(got.pid).toBe(backendOf(user).pid);
    expect(got.envelope).toEqual({ funcNo: 2042, userId: user, data });
    expect(JSON.parse(got.raw)).toEqual({ funcNo: 2042, userId: user, data });
    expect(got.requestId).toBe("uwsgi-req-42");
    expect(got.contentType).toBe("application/json");
  });

  test("a non-2xx answer and a non-JSON answer are 502 UPSTREAM_ERROR; the next call goes through", async () => {
    const user = "bad-answer-user";
    const r1 = await call(c, 2000, user, { status: 500 });
    expect(r1.status).toBe(502);
    expect(r1.body.error.code).toBe("UPSTREAM_ERROR");
    expect(r1.body.error.message).toMatch(/legacy\.pricing backend \d answered 500/);
    const r2 = await call(c, 2000, user, { garbage: true });
    expect(r2.status).toBe(502);
    expect(r2.body.error.message).toMatch(/not JSON/);
    expect((await call(c, 2000, user, {})).status).toBe(200);
  });

  test("a server answering junk is 502, not a crash; the cluster keeps serving", async () => {
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => call(c, 2100, `junk-${i}`, {})));
    for (const r of answers) {
      expect(r.status).toBe(502);
      expect(r.body.error.code).toBe("UPSTREAM_ERROR");
      expect(r.body.error.message).not.toMatch(/is down/);
    }
    expect(junk.calls()).toBe(10);
    expect((await call(c, 2000, "after-junk", {})).status).toBe(200);
    expect((await c.stats()).workers.every((w) => w.pid !== undefined)).toBe(true);
  });

  test("a slow backend gives 504 TIMEOUT at the call's deadline", async () => {
    const t0 = performance.now();
    const r = await call(c, 2000, "slow-user", { sleepMs: 8000 });
    expect(r.status).toBe(504);
    expect(r.body.error.code).toBe("TIMEOUT");
    expect(performance.now() - t0).toBeGreaterThan(2900);
    expect(performance.now() - t0).toBeLessThan(6000);
    expect((await call(c, 2000, "slow-user", {})).status).toBe(200);
  });

  test("a killed backend: its users get 502 at once, the other backend's users are served", async () => {
    const victim = a;
    const users = Array.from({ length: 30 }, (_, i) => `kill-${i}`);
    const victims = users.filter((u) => backendOf(u) === victim);
    expect(victims.length).toBeGreaterThan(0);
    expect(victims.length).toBeLessThan(users.length);
    await victim.kill();
    const t0 = performance.now();
    const answers = await Promise.all(users.map(async (u) => [u, await call(c, 2001, u, {})] as const));
    expect(performance.now() - t0).toBeLessThan(1500);
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
