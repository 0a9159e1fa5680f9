/**
 * The upstream HTTP/1.1 client against real servers — Bun.serve, nginx, a Python HTTP/1.0
 * server, a TLS server with a certificate made here — and against a raw socket server that
 * answers badly on purpose: resets mid-body, garbage, bad chunks, extra bytes, silence.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server, Subprocess, TCPSocketListener } from "bun";
import { createHttpClient, UpstreamHttpError, type UpstreamFailure } from "../src/upstream/http1-client.ts";
import { freePort } from "./support/cluster.ts";
import { ensureNginx, startNginx, type Nginx } from "./support/nginx.ts";

const client = createHttpClient({ idleMs: 10_000 });
afterAll(() => client.close());
const get = (url: string, init: { signal?: AbortSignal; method?: string } = {}) =>
  client.request({ method: init.method ?? "GET", url: new URL(url), signal: init.signal });

describe("against Bun.serve", () => {
  let server: Server<undefined>;
  const ports = new Set<number>();
  beforeAll(() => {
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req, srv) {
        ports.add(srv.requestIP(req)!.port);
        const u = new URL(req.url);
        if (u.pathname === "/echo") return new Response(await req.text(), { headers: { "x-method": req.method } });
        if (u.pathname === "/stream") {
          const body = new ReadableStream({
            async start(c) {
              for (let i = 0; i < 5; i++) {
                c.enqueue(new TextEncoder().encode(`part${i};`));
                await Bun.sleep(5);
              }
              c.close();
            },
          });
          return new Response(body);
        }
        if (u.pathname === "/slow") {
          await Bun.sleep(100);
          return Response.json({ slow: true });
        }
        return Response.json({ path: u.pathname, q: u.searchParams.get("q") });
      },
    });
  });
  afterAll(() => server.stop(true));

  test("GETs reuse one keep-alive connection; the query is sent as is", async () => {
    ports.clear();
    for (let i = 0; i < 20; i++) {
      const r = await get(`http://127.0.0.1:${server.port}/x?q=${i}%20z`);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body.toString())).toEqual({ path: "/x", q: `${i} z` });
    }
    expect(ports.size).toBe(1);
  });

  test("POST with a body; a chunked (streamed) answer is read whole", async () => {
    const r = await client.request({
      method: "POST",
      url: new URL(`http://127.0.0.1:${server.port}/echo`),
      headers: { "content-type": "application/json" },
      body: '{"a":"é"}',
    });
    expect(r.headers.get("x-method")).toBe("POST");
    expect(r.body.toString()).toBe('{"a":"é"}');
    const s = await get(`http://127.0.0.1:${server.port}/stream`);
    expect(s.body.toString()).toBe("part0;part1;part2;part3;part4;");
  });

  test("HEAD has no body whatever Content-Length says", async () => {
    const r = await get(`http://127.0.0.1:${server.port}/x`, { method: "HEAD" });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(0);
    // The connection is still in step: the next GET works.
    expect((await get(`http://127.0.0.1:${server.port}/y`)).status).toBe(200);
  });

  test("the pool opens at most maxPerOrigin connections; the rest wait their turn", async () => {
    const small = createHttpClient({ maxPerOrigin: 2 });
    ports.clear();
    const rs = await Promise.all(Array.from({ length: 10 }, () => small.request({ method: "GET", url: new URL(`http://127.0.0.1:${server.port}/slow`) })));
    expect(rs.every((r) => r.status === 200)).toBe(true);
    expect(ports.size).toBe(2);
    small.close();
  });

  test("an abort ends the request at once and frees its slot", async () => {
    const t0 = Date.now();
    const err = await get(`http://127.0.0.1:${server.port}/slow`, { signal: AbortSignal.timeout(20) }).catch((e) => e);
    expect((err as Error).name).toBe("TimeoutError");
    expect(Date.now() - t0).toBeLessThan(90);
    expect((await get(`http://127.0.0.1:${server.port}/x`)).status).toBe(200);
  });
});

/** A raw server that answers each connection with `script` (bytes, pauses, resets). */
function rawServer(script: (write: (s: string) => void, end: () => void, reset: () => void) => void): TCPSocketListener<undefined> {
  return Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s) {
        script(
          (x) => s.write(x),
          () => s.end(),
          () => s.terminate(),
        );
      },
    },
  });
}

describe("broken answers", () => {
  const cases: Array<[string, Parameters<typeof rawServer>[0], RegExp, UpstreamFailure]> = [
    [
      "a reset mid-body",
      (w, _e, reset) => (w("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789"), setTimeout(reset, 10)),
      /mid-response/,
      "closed-mid-answer",
    ],
    ["EOF mid-head", (w, end) => (w("HTTP/1.1 200 OK\r\ncontent-le"), end()), /mid-response/, "closed-mid-answer"],
    ["garbage instead of a status line", (w, end) => (w("SSH-2.0-OpenSSH\r\n\r\n"), end()), /bad response/, "bad-answer"],
    ["a bad chunk size", (w) => w("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), /bad response/, "bad-answer"],
    ["bytes after the response", (w) => w("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}EXTRA"), /bad response/, "bad-answer"],
    ["a close before any answer", (_w, end) => end(), /before any answer/, "closed-before-answer"],
  ];
  for (const [name, script, error, kind] of cases) {
    test(`${name} → an error (${kind}), never a wrong answer`, async () => {
      const s = rawServer(script);
      try {
        const err = await get(`http://127.0.0.1:${s.port}/`).catch((e) => e);
        expect(err).toBeInstanceOf(UpstreamHttpError);
        expect((err as Error).message).toMatch(error);
        expect((err as UpstreamHttpError).kind).toBe(kind);
      } finally {
        s.stop(true);
      }
    });
  }

  test("a connection refused → an error of kind connect (the server is not there)", async () => {
    const err = await get(`http://127.0.0.1:${freePort()}/`).catch((e) => e);
    expect(err).toBeInstanceOf(UpstreamHttpError);
    expect((err as UpstreamHttpError).kind).toBe("connect");
  });

  test("keepAlive: false sends Connection: close, never reuses the connection, and lets the server close first", async () => {
    const heads: string[] = [];
    let connections = 0;
    let closedByServer = 0;
    const closedByClient = new Set<unknown>();
    // Like uWSGI's --http-socket: HTTP/1.1 without Connection: close, then the server closes.
    const s = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open() {
          connections++;
        },
        data(sock, chunk) {
          heads.push(chunk.toString("latin1"));
          sock.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
          // Closing a moment later: a client that ended the connection itself is seen first.
          setTimeout(() => {
            if (!closedByClient.has(sock)) closedByServer++;
            sock.end();
          }, 20);
        },
        close(sock) {
          closedByClient.add(sock);
        },
      },
    });
    const pool = createHttpClient();
    try {
      for (let i = 0; i < 3; i++) {
        const r = await pool.request({ method: "POST", url: new URL(`http://127.0.0.1:${s.port}/qdp`), body: "{}", keepAlive: false });
        expect(r.body.toString()).toBe("{}");
      }
      const until = Date.now() + 2000;
      while ((closedByServer < 3 || pool.open > 0) && Date.now() < until) await Bun.sleep(10);
      expect(connections).toBe(3);
      expect(closedByServer).toBe(3);
      for (const h of heads) expect(h).toContain("\r\nconnection: close\r\n");
      expect(pool.open).toBe(0);
    } finally {
      pool.close();
      s.stop(true);
    }
  });

  test("an answered keepAlive: false connection frees its slot at once; one the server never closes is closed within ~2 s", async () => {
    const s = rawServer((w) => w("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"));
    const pool = createHttpClient({ maxPerOrigin: 1 });
    try {
      const t0 = performance.now();
      for (let i = 0; i < 3; i++) {
        const r = await pool.request({ method: "POST", url: new URL(`http://127.0.0.1:${s.port}/`), body: "{}", keepAlive: false });
        expect(r.body.toString()).toBe("{}");
      }
      // Not queued behind the lingering connections (the server never closes them).
      expect(performance.now() - t0).toBeLessThan(500);
      expect(pool.open).toBe(3);
      const until = Date.now() + 4000;
      while (pool.open > 0 && Date.now() < until) await Bun.sleep(50);
      expect(pool.open).toBe(0);
    } finally {
      pool.close();
      s.stop(true);
    }
  });

  test("an interim 100 Continue is skipped; a body that ends at close is read whole", async () => {
    const s = rawServer((w, end) => {
      w("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n");
      w('{"until":"close"}');
      end();
    });
    try {
      const r = await get(`http://127.0.0.1:${s.port}/`);
      expect(r.body.toString()).toBe('{"until":"close"}');
    } finally {
      s.stop(true);
    }
  });
});

const nginx = ensureNginx();
test.if(!nginx.path && !!process.env.CI)("nginx is available in CI", () => {
  throw new Error(`nginx is required in CI: ${nginx.why}`);
});

describe.if(!!nginx.path)("against nginx", () => {
  let front: Nginx;
  let port = 0;
  beforeAll(async () => {
    port = freePort();
    front = await startNginx(
      nginx.path!,
      `server {
        listen 127.0.0.1:${port};
        keepalive_timeout 1s;
        location = /json { default_type application/json; return 200 '{"from":"nginx"}'; }
        location = /empty { return 204; }
        location = /missing { return 404 'no'; }
      }`,
      `http://127.0.0.1:${port}/json`,
    );
  });
  afterAll(async () => {
    await front.stop();
  });

  test("JSON, 204 without a body and 404 on one connection", async () => {
    expect(JSON.parse((await get(`http://127.0.0.1:${port}/json`)).body.toString())).toEqual({ from: "nginx" });
    const empty = await get(`http://127.0.0.1:${port}/empty`);
    expect([empty.status, empty.body.length]).toEqual([204, 0]);
    expect((await get(`http://127.0.0.1:${port}/missing`)).status).toBe(404);
  });

  test("after nginx closed an idle connection (keepalive_timeout), the next GET gets a new one", async () => {
    expect((await get(`http://127.0.0.1:${port}/json`)).status).toBe(200);
    await Bun.sleep(1500); // past nginx's keepalive_timeout 1s, within our idleMs
    expect((await get(`http://127.0.0.1:${port}/json`)).status).toBe(200);
  });
});

describe("against Python's http.server (HTTP/1.0, bodies ending at close)", () => {
  let proc: Subprocess;
  let port = 0;
  beforeAll(async () => {
    port = freePort();
    const script = `
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"py": self.path}).encode())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", ${port}), H).serve_forever()
`;
    proc = Bun.spawn(["python3", "-c", script], { stdout: "ignore", stderr: "ignore" });
    for (let i = 0; i < 200; i++) {
      try {
        await fetch(`http://127.0.0.1:${port}/probe`);
        return;
      } catch {
        await Bun.sleep(25);
      }
    }
    throw new Error("python http.server did not start");
  });
  afterAll(() => {
    proc.kill();
  });

  test("each answer read to close; the next request opens a new connection", async () => {
    for (let i = 0; i < 3; i++) expect(JSON.parse((await get(`http://127.0.0.1:${port}/p${i}`)).body.toString())).toEqual({ py: `/p${i}` });
  });
});

describe("https", () => {
  let dir = "";
  let server: Server<undefined> | null = null;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "qdp-tls-"));
    const r = Bun.spawnSync(
      [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stderr: "pipe" },
    );
    if (r.exitCode !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") },
      fetch: () => Response.json({ secure: true }),
    });
  });
  afterAll(() => {
    server?.stop(true);
    rmSync(dir, { recursive: true, force: true });
  });

  test("a trusted certificate works; an untrusted one is refused", async () => {
    const trusting = createHttpClient({ ca: readFileSync(join(dir, "cert.pem"), "utf8") });
    const r = await trusting.request({ method: "GET", url: new URL(`https://localhost:${server!.port}/`) });
    expect(JSON.parse(r.body.toString())).toEqual({ secure: true });
    trusting.close();
    const err = await get(`https://localhost:${server!.port}/`).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
  });
});
