/**
 * The migration bridge in process (CONTRACT.md §8): forwarded ranges through the real edge,
 * executor, router and hop, to real local HTTP backends (Bun.serve on free ports). What reaches
 * a backend, which backend, and every way a backend can fail, each mapped to the contract's
 * code. The same proofs against the old stack itself (uWSGI + Flask) are in bridge-legacy.test.ts.
 */
import SwaggerParser from "@apidevtools/swagger-parser";
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { signRequest } from "../src/client/sign.ts";
import { ownerOf } from "../src/core/ownership.ts";
import { BACKEND_DOWN_MS } from "../src/services/forward/forwarder.ts";
import { freePort } from "./support/cluster.ts";
import { createTestEdge, handle } from "./support/edge.ts";

interface Received {
  path: string;
  body: string;
  requestId: string | null;
  contentType: string | null;
}

interface Backend {
  url: string;
  port: number;
  received: Received[];
  server: Server<undefined>;
  stop(): void;
}

/** A backend that records every call and can be told by `data` to be slow, fail or answer garbage. */
function startBackend(name: string, port = 0): Backend {
  const received: Received[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port,
    idleTimeout: 0,
    async fetch(req) {
      const body = await req.text();
      received.push({ path: new URL(req.url).pathname, body, requestId: req.headers.get("x-request-id"), contentType: req.headers.get("content-type") });
      const data = (JSON.parse(body) as { data?: Record<string, unknown> }).data ?? {};
      if (typeof data.sleepMs === "number") await Bun.sleep(data.sleepMs);
      if (typeof data.status === "number") return Response.json({ error: "asked to" }, { status: data.status });
      if (data.garbage) return new Response("<html>oops</html>");
      return Response.json({ backend: name, got: JSON.parse(body) });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, port: server.port!, received, server, stop: () => server.stop(true) };
}

const started: Array<{ stop(): void }> = [];
function track<T extends { stop(): void }>(x: T): T {
  started.push(x);
  return x;
}
afterAll(() => {
  for (const s of started) s.stop();
});

function forwardFile(entries: object[]): string {
  return JSON.stringify(entries);
}

describe("forwarding to two backends", () => {
  const a = track(startBackend("a"));
  const b = track(startBackend("b"));
  const edge = createTestEdge({
    hop: true,
    forward: forwardFile([
      {
        funcNos: "2000-2099",
        name: "legacy.pricing",
        backends: [a.url, b.url],
        path: "/legacy/qdp",
        input: { type: "object", properties: { symbol: { type: "string", minLength: 1 }, qty: { type: "integer", minimum: 1 } }, required: ["symbol"] },
        example: { symbol: "ACME" },
      },
      { funcNos: 2500, name: "legacy.any", backends: [a.url] },
    ]),
  });
  afterAll(() => edge.close());
  afterEach(() => {
    a.received.length = 0;
    b.received.length = 0;
  });

  test("the envelope and X-Request-Id reach the backend; its JSON answer is data", async () => {
    const user = edge.userOwnedBy(0, "env");
    const r = await handle(edge, "/api/2042", { symbol: "ACME", qty: 2, note: "é ✓ \u0000" }, { "x-qdp-user": user, "x-request-id": "req-bridge-1" });
    expect(r.status).toBe(200);
    const backend = ownerOf(user, 2) === 0 ? a : b;
    expect(backend.received).toHaveLength(1);
    const got = backend.received[0]!;
    expect(got.path).toBe("/legacy/qdp");
    expect(got.requestId).toBe("req-bridge-1");
    expect(got.contentType).toBe("application/json");
    expect(JSON.parse(got.body)).toEqual({ funcNo: 2042, userId: user, data: { symbol: "ACME", qty: 2, note: "é ✓ \u0000" } });
    expect(r.body).toEqual({ ok: true, funcNo: 2042, data: { backend: backend === a ? "a" : "b", got: JSON.parse(got.body) } });
    expect(r.headers.get("x-request-id")).toBe("req-bridge-1");
  });

  test("the envelope route works too, with a funcNo given as digits", async () => {
    const r = await handle(edge, "/qdp", { funcNo: "2500", userId: "env-user", data: [1, "two", null] });
    expect(r.status).toBe(200);
    expect(JSON.parse(a.received[0]!.body)).toEqual({ funcNo: 2500, userId: "env-user", data: [1, "two", null] });
  });

  test("every call of a user reaches backends[ownerOf(user, 2)], run at the user's owner worker", async () => {
    const users = Array.from({ length: 60 }, (_, i) => `pin-${i}`);
    for (const round of [0, 1]) {
      for (const u of users) {
        const r = await handle(edge, "/api/2001", { symbol: "X" }, { "x-qdp-user": u });
        expect(r.status).toBe(200);
        expect(r.body.data.backend).toBe(ownerOf(u, 2) === 0 ? "a" : "b");
        // The call ran at the user's owner (worker 1 through the hop), as a local service would.
        expect(r.headers.get("x-qdp-worker")).toBe(String(ownerOf(u, 2)));
      }
      expect(a.received.length + b.received.length).toBe(users.length * (round + 1));
    }
    expect(a.received.length).toBeGreaterThan(0);
    expect(b.received.length).toBeGreaterThan(0);
  });

  test("calls without a user go to any backend (round-robin)", async () => {
    for (let i = 0; i < 6; i++) expect((await handle(edge, "/api/2003", { symbol: "X" })).status).toBe(200);
    expect(a.received).toHaveLength(3);
    expect(b.received).toHaveLength(3);
  });

  test("input is validated against the entry's JSON Schema before anything is forwarded", async () => {
    const r = await handle(edge, "/api/2000", { qty: 0 }, { "x-qdp-user": "v1" });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("VALIDATION");
    expect(r.body.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: "/qty" }), expect.objectContaining({ path: "/symbol" })]));
    expect(a.received.length + b.received.length).toBe(0);
  });

  test("a number next to a range is not forwarded", async () => {
    const r = await handle(edge, "/api/2100", {}, { "x-qdp-user": "v1" });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe("UNKNOWN_FUNCTION");
  });

  test("a non-2xx answer and a non-JSON answer are 502 UPSTREAM_ERROR", async () => {
    const user = edge.userOwnedBy(0, "bad");
    const r1 = await handle(edge, "/api/2000", { symbol: "X", status: 500 }, { "x-qdp-user": user });
    expect(r1.status).toBe(502);
    expect(r1.body.error).toEqual({ code: "UPSTREAM_ERROR", message: expect.stringMatching(/legacy\.pricing backend \d answered 500/) });
    const r2 = await handle(edge, "/api/2000", { symbol: "X", status: 404 }, { "x-qdp-user": user });
    expect(r2.status).toBe(502);
    const r3 = await handle(edge, "/api/2000", { symbol: "X", garbage: true }, { "x-qdp-user": user });
    expect(r3.status).toBe(502);
    expect(r3.body.error.message).toMatch(/not JSON/);
    // Neither counts as the backend being down: the next call goes through.
    expect((await handle(edge, "/api/2000", { symbol: "X" }, { "x-qdp-user": user })).status).toBe(200);
  });

  test("Swagger lists forwarded functions under their name, with their schema", async () => {
    const r = await handle(edge, "/swagger/json", undefined, {}, "GET");
    const doc = r.body as { paths: Record<string, { post: { tags: string[]; summary: string; operationId: string; requestBody: any } }> };
    const op = doc.paths["/api/2042"]!.post;
    expect(op.tags).toEqual(["legacy.pricing"]);
    expect(op.operationId).toBe("legacy.pricing.2042");
    expect(op.summary).toMatch(/legacy\.pricing \(forwarded: 2000-2099 to 2 backends\)/);
    expect(op.requestBody.content["application/json"].schema.required).toEqual(["symbol"]);
    expect(op.requestBody.content["application/json"].example).toEqual({ symbol: "ACME" });
    expect(Object.keys(doc.paths).filter((p) => /^\/api\/20\d\d$/.test(p))).toHaveLength(100);
    expect(doc.paths["/api/2500"]!.post.tags).toEqual(["legacy.any"]);
    // Backend addresses are internal: never in the public document.
    expect(r.text).not.toContain(a.url);
    // Still a valid OpenAPI document with 100 forwarded operations, each allowed UPSTREAM_ERROR.
    await SwaggerParser.validate(structuredClone(r.body));
    expect(JSON.stringify(doc.paths["/api/2042"]!.post)).toContain("UPSTREAM_ERROR");
  });
});

describe("backend failures", () => {
  test("a slow backend gives 504 TIMEOUT at the call's deadline", async () => {
    const slow = track(startBackend("slow"));
    const edge = createTestEdge({ env: { QDP_TIMEOUT_MS: "300" }, forward: forwardFile([{ funcNos: "3000", name: "legacy.slow", backends: [slow.url] }]) });
    try {
      const t0 = performance.now();
      const r = await handle(edge, "/api/3000", { sleepMs: 2000 }, { "x-qdp-user": "slow-u" });
      expect(r.status).toBe(504);
      expect(r.body.error.code).toBe("TIMEOUT");
      expect(performance.now() - t0).toBeLessThan(1500);
    } finally {
      edge.close();
    }
  });

  test("maxInflight per backend: past it 503 OVERLOADED with Retry-After; the other backend is unaffected", async () => {
    const a = track(startBackend("a"));
    const b = track(startBackend("b"));
    const edge = createTestEdge({ forward: forwardFile([{ funcNos: "3100-3101", name: "legacy.busy", backends: [a.url, b.url], maxInflight: 2 }]) });
    try {
      const onA = Array.from({ length: 40 }, (_, i) => `busy-${i}`).filter((u) => ownerOf(u, 2) === 0);
      const onB = Array.from({ length: 40 }, (_, i) => `busy-${i}`).filter((u) => ownerOf(u, 2) === 1);
      const slow = onA.slice(0, 2).map((u) => handle(edge, "/api/3100", { sleepMs: 400 }, { "x-qdp-user": u }));
      await Bun.sleep(50);
      const third = await handle(edge, "/api/3100", {}, { "x-qdp-user": onA[2]! });
      expect(third.status).toBe(503);
      expect(third.body.error.code).toBe("OVERLOADED");
      expect(third.headers.get("retry-after")).toBe("1");
      expect((await handle(edge, "/api/3101", {}, { "x-qdp-user": onB[0]! })).status).toBe(200);
      for (const r of await Promise.all(slow)) expect(r.status).toBe(200);
      expect((await handle(edge, "/api/3100", {}, { "x-qdp-user": onA[2]! })).status).toBe(200);
    } finally {
      edge.close();
    }
  });

  test("a down backend: its users get 502 at once and it is not retried for a moment; the other backend's users are served; it comes back", async () => {
    const up = track(startBackend("up"));
    const port = freePort();
    const edge = createTestEdge({ forward: forwardFile([{ funcNos: "3200", name: "legacy.half", backends: [`http://127.0.0.1:${port}`, up.url] }]) });
    try {
      const users = Array.from({ length: 40 }, (_, i) => `half-${i}`);
      const onDown = users.filter((u) => ownerOf(u, 2) === 0);
      const onUp = users.filter((u) => ownerOf(u, 2) === 1);
      const first = await handle(edge, "/api/3200", {}, { "x-qdp-user": onDown[0]! });
      expect(first.status).toBe(502);
      expect(first.body.error.message).toMatch(/could not be reached/);
      const t0 = performance.now();
      const rest = await Promise.all(onDown.slice(1).map((u) => handle(edge, "/api/3200", {}, { "x-qdp-user": u })));
      for (const r of rest) {
        expect(r.status).toBe(502);
        expect(r.body.error.message).toMatch(/is down/);
      }
      expect(performance.now() - t0).toBeLessThan(200);
      for (const u of onUp) expect((await handle(edge, "/api/3200", {}, { "x-qdp-user": u })).status).toBe(200);
      // Calls without a user avoid the down backend.
      for (let i = 0; i < 4; i++) expect((await handle(edge, "/api/3200", {})).status).toBe(200);
      // The backend returns; after the down window its users are served again.
      const back = track(startBackend("back", port));
      await Bun.sleep(BACKEND_DOWN_MS + 50);
      const again = await handle(edge, "/api/3200", {}, { "x-qdp-user": onDown[0]! });
      expect(again.status).toBe(200);
      expect(again.body.data.backend).toBe("back");
      expect(back.received).toHaveLength(1);
    } finally {
      edge.close();
    }
  });
});

/** A server like uWSGI's --http-socket: answers HTTP/1.1 without `Connection: close`, then closes. */
function startClosingBackend(): { url: string; calls: () => number; stop(): void } {
  let calls = 0;
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket, chunk) {
        if (!chunk.toString("latin1").includes("\r\n\r\n")) return;
        calls++;
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}');
        socket.end();
      },
    },
  });
  return { url: `http://127.0.0.1:${listener.port}`, calls: () => calls, stop: () => listener.stop(true) };
}

describe("backends that close every connection", () => {
  test('with "keepAlive": false every call gets a fresh connection and succeeds', async () => {
    const be = track(startClosingBackend());
    const edge = createTestEdge({ forward: forwardFile([{ funcNos: "3300", name: "legacy.closing", backends: [be.url], keepAlive: false }]) });
    try {
      const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => handle(edge, "/api/3300", {}, { "x-qdp-user": `c-${i % 7}` })));
      expect(answers.map((r) => r.status).filter((s) => s !== 200)).toEqual([]);
      expect(be.calls()).toBe(200);
    } finally {
      edge.close();
    }
  });

  test("a dropped connection fails that call only: the backend is not marked down", async () => {
    const be = track(startClosingBackend());
    const edge = createTestEdge({ forward: forwardFile([{ funcNos: "3301", name: "legacy.dropping", backends: [be.url] }]) });
    try {
      const statuses: number[] = [];
      for (let round = 0; round < 20; round++) {
        const rs = await Promise.all(Array.from({ length: 10 }, () => handle(edge, "/api/3301", {}, { "x-qdp-user": "drop-u" })));
        for (const r of rs) {
          statuses.push(r.status);
          if (r.status !== 200) expect(r.body.error.message).not.toMatch(/is down/);
        }
      }
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
    } finally {
      edge.close();
    }
  });
});

describe("signing comes first", () => {
  const KEY = "bridge-secret-0123456789abcdef0123456789";
  test("a refused call never reaches the backend; a signed one does, once", async () => {
    const be = track(startBackend("signed"));
    const edge = createTestEdge({ keys: `k1:${KEY}`, forward: forwardFile([{ funcNos: "4000", name: "legacy.signed", backends: [be.url] }]) });
    try {
      const body = JSON.stringify({ x: 1 });
      const headers = signRequest({ keyId: "k1", secret: KEY, method: "POST", target: "/api/4000", user: "s1", body });
      expect((await handle(edge, "/api/4000", body, { "x-qdp-user": "s1" })).status).toBe(401);
      expect((await handle(edge, "/api/4000", body, { ...headers, "x-qdp-signature": "v1=" + "0".repeat(64) })).status).toBe(401);
      expect(be.received).toHaveLength(0);
      expect((await handle(edge, "/api/4000", body, headers)).status).toBe(200);
      // The same signed request again is a replay.
      const replay = await handle(edge, "/api/4000", body, headers);
      expect(replay.status).toBe(401);
      expect(replay.body.error.message).toMatch(/replay/);
      expect(be.received).toHaveLength(1);
    } finally {
      edge.close();
    }
  });
});
