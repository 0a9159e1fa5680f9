/**
 * The public port as careless clients and attackers use it, over raw sockets on a real
 * cluster: pipelined requests (in one write and behind a running call), repeated identity
 * headers, bodies that are not UTF-8 or nest too deep, slow and abandoned bodies.
 * Each case failed on the Bun.serve transport this project used before.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sha256Hex, sign } from "../src/core/signing.ts";
import { startCluster, type Cluster } from "./support/cluster.ts";
import { connect, request } from "./support/raw-http.ts";
import { startUpstream, type Upstream } from "./support/upstream.ts";

const KEY = "k1";
const SECRET = "transport-test-secret-0123456789";

let c: Cluster;
let slow: Upstream;

beforeAll(async () => {
  slow = startUpstream({ delays: { "/a": 300 } });
  c = await startCluster({
    workers: 2,
    env: { QDP_BODY_TIMEOUT_MS: "700", QDP_UPSTREAM_A: `${slow.url}/a`, QDP_UPSTREAM_B: `${slow.url}/b` },
  });
});

afterAll(async () => {
  await c.stop();
  slow.stop();
});

const counter = (user: string) => request("POST", "/api/1001", { "x-qdp-user": user, "content-type": "application/json" }, "{}");

async function count(user: string): Promise<number> {
  const conn = await connect(c.port);
  conn.write(counter(user));
  const [r] = await conn.responses(1);
  conn.close();
  return JSON.parse(r!.body).data.count;
}

describe("pipelining", () => {
  test("three calls in one write: three answers in order, each ran once", async () => {
    const user = `pipe-burst-${Date.now()}`;
    const conn = await connect(c.port);
    conn.write(counter(user) + counter(user) + counter(user));
    const rs = await conn.responses(3);
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(rs.map((r) => JSON.parse(r.body).data.count)).toEqual([1, 2, 3]);
    conn.close();
    expect(await count(user)).toBe(4);
  });

  test("a request pipelined behind a running call waits for it: both answered, in order", async () => {
    const user = `pipe-late-${Date.now()}`;
    const conn = await connect(c.port);
    conn.write(request("POST", "/api/1002", { "x-qdp-user": user }, JSON.stringify({ symbol: "IBM" })));
    await Bun.sleep(100); // demo.quote is waiting 300 ms on upstream A now
    conn.write(counter(user));
    const [quote, next] = await conn.responses(2);
    expect(quote!.status).toBe(200);
    expect(JSON.parse(quote!.body).data.symbol).toBe("IBM");
    expect(next!.status).toBe(200);
    expect(JSON.parse(next!.body).data.count).toBe(1);
    conn.close();
  });

  test("fifty pipelined calls with mixed functions are all answered in order", async () => {
    const user = `pipe-many-${Date.now()}`;
    const conn = await connect(c.port);
    let bytes = "";
    for (let i = 0; i < 50; i++) bytes += i % 2 ? counter(user) : request("POST", "/api/1000", {}, JSON.stringify({ i }));
    conn.write(bytes);
    const rs = await conn.responses(50);
    rs.forEach((r, i) => {
      expect(r.status).toBe(200);
      if (i % 2) expect(JSON.parse(r.body).data.count).toBe((i + 1) / 2);
      else expect(JSON.parse(r.body).data).toEqual({ i });
    });
    conn.close();
  });
});

test("20,000 calls pipelined in one write, each answered in the tick it is read: all answered, in order", async () => {
  // A call answered synchronously (demo.echo at its own edge) once made the transport read the
  // next request from inside the answer, one stack level per pipelined request.
  // Behind a slow call (demo.quote waits 300 ms on upstream A) they are all buffered at once.
  const conn = await connect(c.port);
  let bytes = request("POST", "/api/1002", {}, JSON.stringify({ symbol: "IBM" }));
  for (let i = 0; i < 20_000; i++) bytes += request("POST", "/api/1000", {}, `{"i":${i}}`);
  conn.write(bytes);
  const rs = await conn.responses(20_001);
  expect(rs[0]!.status).toBe(200);
  expect(rs.slice(1).filter((r, i) => r.status !== 200 || JSON.parse(r.body).data.i !== i).length).toBe(0);
  conn.close();
}, 60_000);

describe("identity headers sent twice", () => {
  test("two X-QDP-User headers → 400 BAD_USER, nothing runs", async () => {
    const conn = await connect(c.port);
    conn.write(
      request(
        "POST",
        "/api/1001",
        [
          ["x-qdp-user", "alice"],
          ["x-qdp-user", "bob"],
        ],
        "{}",
      ),
    );
    const [r] = await conn.responses(1);
    expect(r!.status).toBe(400);
    expect(JSON.parse(r!.body).error.code).toBe("BAD_USER");
    conn.close();
    expect(await count("alice, bob")).toBe(1);
  });

  test("one user whose id holds a comma is still one user", async () => {
    const user = `carol, dave ${Date.now()}`;
    expect(await count(user)).toBe(1);
    expect(await count(user)).toBe(2);
  });
});

describe("bodies", () => {
  test("a JSON string with invalid UTF-8 → 400 BAD_JSON, on both routes", async () => {
    const bad = Buffer.concat([Buffer.from('{"x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    for (const path of ["/api/1000", "/qdp"]) {
      const body = path === "/qdp" ? Buffer.concat([Buffer.from('{"funcNo":1000,"data":{"x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}')]) : bad;
      const conn = await connect(c.port);
      conn.write(Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nhost: q\r\ncontent-length: ${body.length}\r\n\r\n`), body]));
      const [r] = await conn.responses(1);
      expect(r!.status).toBe(400);
      expect(JSON.parse(r!.body).error.code).toBe("BAD_JSON");
      conn.close();
    }
  });

  test("100,000 nested arrays → 400 before any work, on both routes, and the worker lives", async () => {
    const before = await c.stats();
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    for (const [path, body] of [
      ["/api/1000", deep],
      ["/qdp", `{"funcNo":1000,"userId":"deep","data":${deep}}`],
    ] as const) {
      const conn = await connect(c.port);
      conn.write(request("POST", path, { "x-qdp-user": "deep" }, body));
      const [r] = await conn.responses(1);
      expect(r!.status).toBe(400);
      expect(JSON.parse(r!.body).error.code).toBe("VALIDATION");
      conn.close();
    }
    // 64 levels still pass (the documented limit).
    const ok = await connect(c.port);
    ok.write(request("POST", "/api/1000", {}, "[".repeat(64) + "]".repeat(64)));
    expect((await ok.responses(1))[0]!.status).toBe(200);
    ok.close();
    const after = await c.stats();
    expect(after.workers.map((w) => w.pid)).toEqual(before.workers.map((w) => w.pid));
  });

  test("a body that stops coming: 400 after QDP_BODY_TIMEOUT_MS, connection closed, never a call in flight", async () => {
    const conn = await connect(c.port);
    conn.write('POST /api/1000 HTTP/1.1\r\nhost: q\r\ncontent-length: 100\r\n\r\n{"x":');
    await Bun.sleep(200);
    const mid = await c.stats();
    expect(mid.workers.reduce((n, w) => n + w.inflight, 0)).toBe(0);
    const [r] = await conn.responses(1, 3000);
    expect(r!.status).toBe(400);
    expect(r!.headers.connection).toBe("close");
    await conn.closed;
  });

  test("clients that give up mid-body are counted as client aborts, not INTERNAL", async () => {
    const before = await c.stats();
    const internal = (s: typeof before) => s.workers.reduce((n, w) => n + (w.errors?.INTERNAL ?? 0), 0);
    const aborts = (s: typeof before) => s.workers.reduce((n, w) => n + (w.clientAborts ?? 0), 0);
    for (let i = 0; i < 20; i++) {
      const conn = await connect(c.port);
      conn.write("POST /api/1000 HTTP/1.1\r\nhost: q\r\ncontent-length: 50\r\n\r\n{");
      conn.close();
      await conn.closed;
    }
    let after = await c.stats();
    for (let i = 0; i < 50 && aborts(after) - aborts(before) < 20; i++) {
      await Bun.sleep(20);
      after = await c.stats();
    }
    expect(aborts(after) - aborts(before)).toBe(20);
    expect(internal(after)).toBe(internal(before));
  });

  test("chunked bodies and Expect: 100-continue are served", async () => {
    const conn = await connect(c.port);
    conn.write("POST /api/1000 HTTP/1.1\r\nhost: q\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\n\r\n");
    await Bun.sleep(50);
    conn.write('5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n');
    const [r] = await conn.responses(1);
    expect(r!.status).toBe(200);
    expect(JSON.parse(r!.body).data).toEqual({ a: 1 });
    conn.close();
  });

  test("Content-Length with Transfer-Encoding (a smuggling shape) → 400 and closed", async () => {
    const conn = await connect(c.port);
    conn.write(
      "POST /api/1000 HTTP/1.1\r\nhost: q\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nPOST /api/1001 HTTP/1.1\r\nx-qdp-user: smuggled\r\ncontent-length: 2\r\n\r\n{}",
    );
    const [r] = await conn.responses(1);
    expect(r!.status).toBe(400);
    await conn.closed;
    expect(await count("smuggled")).toBe(1);
  });
});

describe("signing headers sent twice", () => {
  test("a repeated X-QDP-Nonce → 401 on a signed cluster", async () => {
    const s = await startCluster({ workers: 1, env: { QDP_UAP_KEYS: `${KEY}:${SECRET}` } });
    try {
      const ts = Math.floor(Date.now() / 1000);
      const nonce = "nonce-0123456789abcdef";
      const body = "{}";
      const sig = sign(SECRET, { method: "POST", target: "/api/1001", timestamp: ts, nonce, user: "eve", bodySha256Hex: sha256Hex(body) });
      const headers: Array<[string, string]> = [
        ["x-qdp-user", "eve"],
        ["x-qdp-key-id", KEY],
        ["x-qdp-timestamp", String(ts)],
        ["x-qdp-nonce", nonce],
        ["x-qdp-signature", sig],
      ];
      const conn = await connect(s.port);
      conn.write(request("POST", "/api/1001", [...headers, ["x-qdp-nonce", "another-nonce-0123456789"]], body));
      const [dup] = await conn.responses(1);
      expect(dup!.status).toBe(401);
      conn.write(request("POST", "/api/1001", headers, body));
      const [ok] = await conn.responses(1);
      expect({ status: ok!.status, body: ok!.body }).toEqual({ status: 200, body: '{"ok":true,"funcNo":1001,"data":{"count":1}}' });
      conn.close();
    } finally {
      await s.stop();
    }
  });
});

describe("idle keep-alive connections (QDP_KEEPALIVE_MS)", () => {
  let k: Cluster;
  const KEEPALIVE_MS = 600;
  // The transport checks its connections every 250 ms (http1-server.ts SWEEP_MS).
  const SWEEP_MS = 250;

  beforeAll(async () => {
    k = await startCluster({ workers: 1, env: { QDP_KEEPALIVE_MS: String(KEEPALIVE_MS) } });
  });
  afterAll(() => k.stop());

  test("a connection in use past the timeout stays open; left idle, it is closed after the timeout and within two sweeps of it", async () => {
    const conn = await connect(k.port);
    let closedAt = 0;
    void conn.closed.then(() => (closedAt = Date.now()));
    // Calls 150 ms apart for 1.5 s: never idle as long as the timeout, so never closed.
    for (let i = 0; i < 10; i++) {
      conn.write(request("POST", "/api/1000", { "content-type": "application/json" }, `{"i":${i}}`));
      const [r] = await conn.responses(1);
      expect(r!.status).toBe(200);
      await Bun.sleep(150);
    }
    expect(closedAt).toBe(0);
    const idleFrom = Date.now() - 150;
    await conn.closed;
    const idleFor = closedAt - idleFrom;
    expect(idleFor).toBeGreaterThanOrEqual(KEEPALIVE_MS);
    expect(idleFor).toBeLessThan(KEEPALIVE_MS + 2 * SWEEP_MS + 300);
  });
});
