/**
 * Only UAP-signed calls run (CONTRACT.md §4), on the real cluster: every rejection reason is a
 * 401 with the contract body and the call never runs (demo.counter proves it), replays are
 * refused wherever in the cluster they land, keys rotate through the key file and SIGHUP, the
 * source allow list answers 403, open development mode stays on loopback, and no secret leaks.
 */
import { ownerOf } from "../src/core/ownership.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signRequest } from "../src/client/sign.ts";
import { call, startCluster, type Cluster } from "./support/cluster.ts";

const K1 = "k1-secret-0123456789abcdef0123456789abcdef";
const K2 = "k2-secret-fedcba9876543210fedcba9876543210";
const OLD = "old-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const NEW = "new-secret-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SECRETS = [K1, K2, OLD, NEW];

/** Every 401 body seen, for the "secrets never appear" check. */
const rejectionBodies: string[] = [];

interface Sent {
  status: number;
  body: any;
  text: string;
  edge: string | null;
  worker: string | null;
}

/** Sends raw bytes with the given headers on a fresh connection. */
async function send(base: string, target: string, body: string, headers: Record<string, string>): Promise<Sent> {
  const r = await fetch(base + target, {
    method: "POST",
    headers: { "content-type": "application/json", connection: "close", ...headers },
    body,
  });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  if (r.status === 401) rejectionBodies.push(text);
  return { status: r.status, body: parsed, text, edge: r.headers.get("x-qdp-edge"), worker: r.headers.get("x-qdp-worker") };
}

interface SignOpts {
  keyId?: string;
  secret?: string;
  user?: string | null;
  timestamp?: number;
  nonce?: string;
}

/** Signs `target`+`body` and returns the headers. */
function sig(target: string, body: string, o: SignOpts = {}): Record<string, string> {
  return signRequest({
    keyId: o.keyId ?? "k1",
    secret: o.secret ?? K1,
    method: "POST",
    target,
    user: o.user === undefined ? null : o.user,
    body,
    ...(o.timestamp === undefined ? {} : { timestamp: o.timestamp }),
    ...(o.nonce === undefined ? {} : { nonce: o.nonce }),
  });
}

/** A correctly signed demo.counter call for `user`. */
function counter(base: string, user: string, o: SignOpts = {}): Promise<Sent> {
  return send(base, "/api/1001", "{}", sig("/api/1001", "{}", { ...o, user }));
}

function expectUnauthenticated(r: Sent, message?: RegExp): void {
  expect(r.status).toBe(401);
  expect(r.body).toEqual({ ok: false, error: { code: "UNAUTHENTICATED", message: expect.any(String) } });
  if (message) expect(r.body.error.message).toMatch(message);
}

/** Waits until the current second has just begun, so "now ± 300/301" cannot tip over a second boundary. */
async function startOfSecond(): Promise<number> {
  const ms = Date.now() % 1000;
  if (ms > 100) await Bun.sleep(1000 - ms + 5);
  return Math.floor(Date.now() / 1000);
}

let userSeq = 0;
const freshUser = (tag: string) => `auth-${tag}-${process.pid}-${userSeq++}`;

describe("signed calls on a 2-worker cluster with keys k1, k2", () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ workers: 2, env: { QDP_UAP_KEYS: `k1:${K1},k2:${K2}`, QDP_LOG_LEVEL: "debug" } });
  });
  afterAll(async () => {
    await c.stop();
  });

  test("a correctly signed call runs, with either key (rotation)", async () => {
    const u = freshUser("ok");
    const a = await counter(c.url, u, { keyId: "k1", secret: K1 });
    expect(a.status).toBe(200);
    expect(a.body).toEqual({ ok: true, funcNo: 1001, data: { count: 1 } });
    const b = await counter(c.url, u, { keyId: "k2", secret: K2 });
    expect(b.status).toBe(200);
    expect(b.body.data.count).toBe(2);
    // The envelope route too, with the user only in the (signed) body.
    const env = JSON.stringify({ funcNo: 1001, userId: u, data: {} });
    const e = await send(c.url, "/qdp", env, sig("/qdp", env, { keyId: "k2", secret: K2 }));
    expect(e.status).toBe(200);
    expect(e.body.data.count).toBe(3);
    // The query is signed exactly as sent: the same query passes, another encoding of it does not.
    const q = await send(c.url, "/api/1001?x=1&y=%41", "{}", sig("/api/1001?x=1&y=%41", "{}", { user: u }));
    expect(q.status).toBe(200);
    expect(q.body.data.count).toBe(4);
    expectUnauthenticated(await send(c.url, "/api/1001?x=1&y=%41", "{}", sig("/api/1001?x=1&y=A", "{}", { user: u })), /bad signature/);
    expect((await counter(c.url, u)).body.data.count).toBe(5);
    // A unicode user id goes on the wire as UTF-8 and is signed as text.
    const uni = `用户-é-${process.pid}`;
    const x = await counter(c.url, uni);
    expect(x.status).toBe(200);
    expect(x.body.data.count).toBe(1);
  });

  // Each case: (user, base url) → the rejected request. The user has count 1 before it and must
  // have count 2 after the next valid call: the rejected call never ran.
  type Case = [name: string, message: RegExp, make: (u: string) => Promise<Sent>];
  const drop = (h: Record<string, string>, name: string) => {
    const copy = { ...h };
    delete copy[name];
    return copy;
  };
  const cases: Case[] = [
    ["missing X-QDP-Key-Id", /missing X-QDP-Key-Id/, (u) => send(c.url, "/api/1001", "{}", drop(sig("/api/1001", "{}", { user: u }), "X-QDP-Key-Id"))],
    ["missing X-QDP-Timestamp", /missing X-QDP-Timestamp/, (u) => send(c.url, "/api/1001", "{}", drop(sig("/api/1001", "{}", { user: u }), "X-QDP-Timestamp"))],
    ["missing X-QDP-Nonce", /missing X-QDP-Nonce/, (u) => send(c.url, "/api/1001", "{}", drop(sig("/api/1001", "{}", { user: u }), "X-QDP-Nonce"))],
    ["missing X-QDP-Signature", /missing X-QDP-Signature/, (u) => send(c.url, "/api/1001", "{}", drop(sig("/api/1001", "{}", { user: u }), "X-QDP-Signature"))],
    [
      "malformed timestamp",
      /malformed X-QDP-Timestamp/,
      (u) => send(c.url, "/api/1001", "{}", { ...sig("/api/1001", "{}", { user: u }), "X-QDP-Timestamp": "17e8" }),
    ],
    [
      "negative timestamp",
      /malformed X-QDP-Timestamp/,
      (u) => send(c.url, "/api/1001", "{}", { ...sig("/api/1001", "{}", { user: u }), "X-QDP-Timestamp": "-1" }),
    ],
    // A correctly signed call whose nonce is malformed: the signature alone would pass.
    ["nonce too short", /malformed X-QDP-Nonce/, (u) => send(c.url, "/api/1001", "{}", sig("/api/1001", "{}", { user: u, nonce: "abcdefghijklmno" }))],
    ["nonce too long", /malformed X-QDP-Nonce/, (u) => send(c.url, "/api/1001", "{}", sig("/api/1001", "{}", { user: u, nonce: "n".repeat(65) }))],
    [
      "nonce with bad chars",
      /malformed X-QDP-Nonce/,
      (u) => send(c.url, "/api/1001", "{}", sig("/api/1001", "{}", { user: u, nonce: "abcdefgh.jklmnopq+rs" })),
    ],
    [
      "malformed signature (uppercase hex)",
      /malformed X-QDP-Signature/,
      (u) => {
        const h = sig("/api/1001", "{}", { user: u });
        return send(c.url, "/api/1001", "{}", { ...h, "X-QDP-Signature": h["X-QDP-Signature"]!.toUpperCase().replace("V1=", "v1=") });
      },
    ],
    [
      "malformed signature (short)",
      /malformed X-QDP-Signature/,
      (u) => {
        const h = sig("/api/1001", "{}", { user: u });
        return send(c.url, "/api/1001", "{}", { ...h, "X-QDP-Signature": h["X-QDP-Signature"]!.slice(0, 40) });
      },
    ],
    [
      "unknown version v2=",
      /unknown signature version 'v2'/,
      (u) => {
        const h = sig("/api/1001", "{}", { user: u });
        return send(c.url, "/api/1001", "{}", { ...h, "X-QDP-Signature": h["X-QDP-Signature"]!.replace(/^v1=/, "v2=") });
      },
    ],
    ["unknown key id", /unknown key id 'k3'/, (u) => send(c.url, "/api/1001", "{}", sig("/api/1001", "{}", { user: u, keyId: "k3", secret: K1 }))],
    ["bad signature (wrong secret)", /bad signature/, (u) => send(c.url, "/api/1001", "{}", sig("/api/1001", "{}", { user: u, keyId: "k1", secret: K2 }))],
    ["tampered body", /bad signature/, (u) => send(c.url, "/api/1001", '{"x":1}', sig("/api/1001", "{}", { user: u }))],
    // Signed for the stateless echo, sent to the counter.
    ["tampered target", /bad signature/, (u) => send(c.url, "/api/1001", "{}", sig("/api/1000", "{}", { user: u }))],
    ["tampered query", /bad signature/, (u) => send(c.url, "/api/1001?x=2", "{}", sig("/api/1001?x=1", "{}", { user: u }))],
    [
      "timestamp 301 s old",
      /301 s behind/,
      async (u) => {
        const now = await startOfSecond();
        return send(c.url, "/api/1001", "{}", sig("/api/1001", "{}", { user: u, timestamp: now - 301 }));
      },
    ],
    [
      "timestamp 301 s ahead",
      /301 s ahead/,
      async (u) => {
        const now = await startOfSecond();
        return send(c.url, "/api/1001", "{}", sig("/api/1001", "{}", { user: u, timestamp: now + 301 }));
      },
    ],
  ];

  for (const [name, message, make] of cases) {
    test(`rejected, never run: ${name}`, async () => {
      const u = freshUser("rej");
      expect((await counter(c.url, u)).body.data.count).toBe(1);
      expectUnauthenticated(await make(u), message);
      const after = await counter(c.url, u);
      expect(after.status).toBe(200);
      expect(after.body.data.count).toBe(2);
    });
  }

  test("rejected, never run: tampered X-QDP-User (neither the signed nor the sent user counts)", async () => {
    const signedFor = freshUser("signed");
    const sentAs = freshUser("sent");
    expect((await counter(c.url, signedFor)).body.data.count).toBe(1);
    expect((await counter(c.url, sentAs)).body.data.count).toBe(1);
    const h = sig("/api/1001", "{}", { user: signedFor });
    expectUnauthenticated(await send(c.url, "/api/1001", "{}", { ...h, "X-QDP-User": sentAs }), /bad signature/);
    // A signed user header removed is tampering too.
    expectUnauthenticated(await send(c.url, "/api/1001", "{}", drop(h, "X-QDP-User")), /bad signature/);
    expect((await counter(c.url, signedFor)).body.data.count).toBe(2);
    expect((await counter(c.url, sentAs)).body.data.count).toBe(2);
  });

  test("timestamps exactly 300 s old and 300 s ahead are accepted", async () => {
    const u = freshUser("edge300");
    let now = await startOfSecond();
    const behind = await counter(c.url, u, { timestamp: now - 300 });
    now = await startOfSecond();
    const ahead = await counter(c.url, u, { timestamp: now + 300 });
    expect([behind.status, ahead.status]).toEqual([200, 200]);
    expect(ahead.body.data.count).toBe(2);
  });

  test("replay on a second fresh connection → 401, and the call ran once", async () => {
    const u = freshUser("replay");
    const h = sig("/api/1001", "{}", { user: u });
    const first = await send(c.url, "/api/1001", "{}", h);
    expect(first.status).toBe(200);
    expect(first.body.data.count).toBe(1);
    expectUnauthenticated(await send(c.url, "/api/1001", "{}", h), /replay/);
    expect((await counter(c.url, u)).body.data.count).toBe(2);
  });

  /** Replays `h` on fresh connections until one lands on an edge other than `origEdge`; all must be 401. */
  async function replayUntilOtherEdge(target: string, body: string, h: Record<string, string>, origEdge: string) {
    const edges: string[] = [];
    for (let i = 0; i < 60; i++) {
      const r = await send(c.url, target, body, h);
      expectUnauthenticated(r, /replay/);
      edges.push(r.edge!);
      if (r.edge !== origEdge) break;
    }
    expect(edges.some((e) => e !== origEdge)).toBe(true);
    return edges;
  }

  test("replay of a user call arriving at the other worker → 401", async () => {
    const u = freshUser("replay-x");
    const h = sig("/api/1001", "{}", { user: u });
    const first = await send(c.url, "/api/1001", "{}", h);
    expect(first.status).toBe(200);
    await replayUntilOtherEdge("/api/1001", "{}", h, first.edge!);
    expect((await counter(c.url, u)).body.data.count).toBe(2);
  });

  test("replay of a call without a user (demo.echo) arriving at either worker → 401", async () => {
    const body = JSON.stringify({ hello: "replay", n: Math.random() });
    const h = sig("/api/1000", body);
    expect(h["X-QDP-User"]).toBeUndefined();
    const first = await send(c.url, "/api/1000", body, h);
    expect(first.status).toBe(200);
    expect(first.body.data).toEqual(JSON.parse(body));
    const second = await send(c.url, "/api/1000", body, h);
    expectUnauthenticated(second, /replay/);
    await replayUntilOtherEdge("/api/1000", body, h, first.edge!);
    // Also the envelope route without a user.
    const env = JSON.stringify({ funcNo: 1000, data: { x: Math.random() } });
    const he = sig("/qdp", env);
    const e1 = await send(c.url, "/qdp", env, he);
    expect(e1.status).toBe(200);
    await replayUntilOtherEdge("/qdp", env, he, e1.edge!);
  });

  test("replay of an envelope call whose user is only in the body → 401 at either worker", async () => {
    const u = freshUser("replay-env");
    const env = JSON.stringify({ funcNo: 1001, userId: u, data: {} });
    const h = sig("/qdp", env);
    const first = await send(c.url, "/qdp", env, h);
    expect(first.status).toBe(200);
    expect(first.body.data.count).toBe(1);
    await replayUntilOtherEdge("/qdp", env, h, first.edge!);
    expect((await counter(c.url, u)).body.data.count).toBe(2);
  });

  test("the same nonce for two different users is two calls", async () => {
    const nonce = "shared-nonce-" + Math.random().toString(36).slice(2, 12).padEnd(10, "x");
    // Two users of the same owner, so one replay cache sees both (users of different owners
    // would pass even if the cache ignored the user).
    const first = freshUser("na");
    let second = freshUser("nb");
    while (ownerOf(second, 2) !== ownerOf(first, 2)) second = freshUser("nb");
    const a = await counter(c.url, first, { nonce });
    const b = await counter(c.url, second, { nonce });
    expect([a.status, b.status]).toEqual([200, 200]);
  });

  test("secrets never appear in logs, /stats, /metrics, /swagger/json or 401 bodies", async () => {
    const stats = await (await fetch(`http://127.0.0.1:${c.statsPort}/stats`)).text();
    const metrics = await (await fetch(`http://127.0.0.1:${c.statsPort}/metrics`)).text();
    const swaggerRes = await fetch(`${c.url}/swagger/json`);
    expect(swaggerRes.status).toBe(200);
    const swagger = await swaggerRes.text();
    expect(swagger).toContain("/api/1001");
    expect(rejectionBodies.length).toBeGreaterThan(20);
    const places: Record<string, string> = { logs: c.output(), stats, metrics, swagger, rejections: rejectionBodies.join("\n") };
    for (const [where, text] of Object.entries(places)) {
      for (const s of SECRETS) {
        if (text.includes(s)) throw new Error(`a secret appears in ${where}`);
        // Not even a recognisable fragment.
        expect(text.includes(s.slice(10, 30))).toBe(false);
      }
    }
    // The key ids may be logged.
    expect(c.output()).toContain("k1");
  });
});

describe("key rotation through QDP_UAP_KEYS_FILE and SIGHUP", () => {
  let c: Cluster;
  let tmp: string;
  let file: string;
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "qdp-keys-"));
    file = join(tmp, "uap.keys");
    writeFileSync(file, `# test keys\nold:${OLD}\n`, { mode: 0o600 });
    c = await startCluster({ workers: 2, env: { QDP_UAP_KEYS_FILE: file } });
  });
  afterAll(async () => {
    await c.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** SIGHUPs the supervisor and waits until the reload count went up and every worker is ready. */
  async function reload(): Promise<void> {
    const before = await c.stats();
    process.kill(before.supervisor.pid, "SIGHUP");
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      const s = await c.stats().catch(() => null);
      if (s && s.supervisor.reloads > before.supervisor.reloads && s.workers.every((w) => w.state === "ready")) return;
      await Bun.sleep(50);
    }
    throw new Error(`no reload within 30 s:\n${c.output().slice(-3000)}`);
  }

  /** Several calls on fresh connections, so both workers' edges judge them. */
  async function statuses(keyId: string, secret: string): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < 8; i++) {
      const body = JSON.stringify({ i });
      out.push((await send(c.url, "/api/1000", body, sig("/api/1000", body, { keyId, secret }))).status);
    }
    return out;
  }

  test("old only → new refused; old+new → both; new only → old refused", async () => {
    expect(new Set(await statuses("old", OLD))).toEqual(new Set([200]));
    const unknown = await send(c.url, "/api/1000", "{}", sig("/api/1000", "{}", { keyId: "new", secret: NEW }));
    expectUnauthenticated(unknown, /unknown key id 'new'/);
    expect(new Set(await statuses("new", NEW))).toEqual(new Set([401]));

    writeFileSync(file, `old:${OLD}\nnew:${NEW}\n`);
    await reload();
    expect(new Set(await statuses("old", OLD))).toEqual(new Set([200]));
    expect(new Set(await statuses("new", NEW))).toEqual(new Set([200]));

    writeFileSync(file, `new:${NEW}\n`);
    await reload();
    expect(new Set(await statuses("old", OLD))).toEqual(new Set([401]));
    expect(new Set(await statuses("new", NEW))).toEqual(new Set([200]));
    expectUnauthenticated(await send(c.url, "/api/1000", "{}", sig("/api/1000", "{}", { keyId: "old", secret: OLD })), /unknown key id 'old'/);
  });

  test("the key file's secrets never appear in logs or /stats", async () => {
    const stats = await (await fetch(`http://127.0.0.1:${c.statsPort}/stats`)).text();
    const metrics = await (await fetch(`http://127.0.0.1:${c.statsPort}/metrics`)).text();
    for (const text of [c.output(), stats, metrics, rejectionBodies.join("\n")]) {
      for (const s of SECRETS) expect(text.includes(s)).toBe(false);
    }
  });
});

describe("source allow list (QDP_ALLOW_CIDRS)", () => {
  test("10.0.0.0/8 → calls from 127.0.0.1 get 403 FORBIDDEN and never run", async () => {
    const c = await startCluster({ workers: 2, env: { QDP_UAP_KEYS: `k1:${K1}`, QDP_ALLOW_CIDRS: "10.0.0.0/8" } });
    try {
      const u = freshUser("deny");
      for (let i = 0; i < 4; i++) {
        const r = await counter(c.url, u);
        expect(r.status).toBe(403);
        expect(r.body).toEqual({ ok: false, error: { code: "FORBIDDEN", message: expect.any(String) } });
      }
      // Unsigned too: the address is judged before anything else.
      const unsigned = await call(c.url, "/api/1000", {});
      expect(unsigned.status).toBe(403);
      expect(unsigned.body.error.code).toBe("FORBIDDEN");
    } finally {
      await c.stop();
    }
  });

  test("127.0.0.0/8,::1 → signed calls from 127.0.0.1 run", async () => {
    const c = await startCluster({ workers: 2, env: { QDP_UAP_KEYS: `k1:${K1}`, QDP_ALLOW_CIDRS: "127.0.0.0/8,::1" } });
    try {
      const u = freshUser("allow");
      for (let i = 1; i <= 4; i++) {
        const r = await counter(c.url, u);
        expect(r.status).toBe(200);
        expect(r.body.data.count).toBe(i);
      }
      // The allow list does not replace signing.
      expect((await call(c.url, "/api/1000", {})).status).toBe(401);
    } finally {
      await c.stop();
    }
  });
});

describe("open development mode", () => {
  test("no keys on loopback → unsigned calls run", async () => {
    const c = await startCluster({ workers: 2 });
    try {
      const u = freshUser("open");
      const a = await call(c.url, "/api/1001", {}, { "x-qdp-user": u });
      const b = await call(c.url, "/api/1001", {}, { "x-qdp-user": u });
      expect([a.status, b.status]).toEqual([200, 200]);
      expect(b.body.data.count).toBe(2);
      expect(c.output()).toContain("open development mode");
    } finally {
      await c.stop();
    }
  });

  test("QDP_HOST=0.0.0.0 without keys → refused at start (exit 2, names QDP_INSECURE)", async () => {
    const c = await startCluster({ workers: 1, env: { QDP_HOST: "0.0.0.0" }, noWait: true });
    const code = await Promise.race([c.proc.exited, Bun.sleep(15_000).then(() => "timeout" as const)]);
    const out = c.output();
    await c.stop();
    expect(code).toBe(2);
    expect(out).toContain("QDP_INSECURE");
    expect(out).toContain("0.0.0.0");
    expect(out).not.toMatch(/^\s+at /m); // a sentence, not a stack trace
  });

  test("QDP_HOST=0.0.0.0 with QDP_INSECURE=1 → starts, warns INSECURE, serves unsigned calls", async () => {
    const c = await startCluster({ workers: 1, env: { QDP_HOST: "0.0.0.0", QDP_INSECURE: "1" } });
    try {
      expect(c.output()).toMatch(/warn.*INSECURE|INSECURE.*warn/i);
      const r = await call(c.url, "/api/1000", { a: 1 });
      expect(r.status).toBe(200);
      expect(r.body.data).toEqual({ a: 1 });
    } finally {
      expect(await c.stop()).toBe(0);
    }
  });
});
