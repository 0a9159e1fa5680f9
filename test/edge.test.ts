/**
 * The HTTP contract of a call (CONTRACT.md §3), in process (`app.handle`). One suite runs twice:
 * with the user's owner being the edge itself, and with the owner behind a real hop — a service
 * must behave the same either way.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Type as t } from "@sinclair/typebox";
import { defineService } from "../src/services/types.ts";
import { encodeHeaderUtf8 } from "../src/core/signing.ts";
import { createTestEdge, handle, type TestEdge } from "./support/edge.ts";

const aborted: string[] = [];
const TEST_SERVICES = [
  defineService({
    funcNo: 9001,
    name: "test.throws",
    description: "throws",
    stateful: false,
    input: t.Unknown(),
    output: t.Unknown(),
    handler: () => {
      throw new Error("secret internals at /srv/app.ts:12");
    },
  }),
  defineService({
    funcNo: 9002,
    name: "test.slow",
    description: "waits until aborted",
    stateful: false,
    input: t.Object({ id: t.String() }),
    output: t.Unknown(),
    handler: ({ signal, input }) =>
      new Promise((resolve) => {
        signal.addEventListener("abort", () => {
          aborted.push(input.id);
          resolve(null);
        });
      }),
  }),
  defineService({
    funcNo: 9003,
    name: "test.typed",
    description: "typed input",
    stateful: false,
    input: t.Object({ n: t.Integer({ minimum: 1 }), name: t.String() }),
    output: t.Unknown(),
    handler: ({ input }) => ({ twice: input.n * 2 }),
  }),
];

for (const mode of ["owner is the edge", "owner behind the hop"] as const) {
  describe(`call contract — ${mode}`, () => {
    let edge: TestEdge;
    let ownerIdx: number;
    let user: (salt: string) => string;
    beforeAll(() => {
      const hop = mode === "owner behind the hop";
      edge = createTestEdge({ hop, services: TEST_SERVICES, env: { QDP_TIMEOUT_MS: "300", QDP_MAX_BODY: "2k" } });
      ownerIdx = hop ? 1 : 0;
      user = (salt) => edge.userOwnedBy(ownerIdx, salt);
    });
    afterAll(() => edge.close());

    test("echo by /api and by envelope; worker and edge headers", async () => {
      const u = user("echo");
      const a = await handle(edge, "/api/1000", { x: [1, "é"] }, { "x-qdp-user": u, "x-request-id": "rid-1" });
      expect(a.status).toBe(200);
      expect(a.body).toEqual({ ok: true, funcNo: 1000, data: { x: [1, "é"] } });
      expect(a.headers.get("x-qdp-worker")).toBe(String(ownerIdx));
      expect(a.headers.get("x-qdp-edge")).toBe("0");
      expect(a.headers.get("x-request-id")).toBe("rid-1");
      const b = await handle(edge, "/qdp", { funcNo: "1000", userId: u, data: "hi" });
      expect(b.body).toEqual({ ok: true, funcNo: 1000, data: "hi" });
      expect(b.headers.get("x-qdp-worker")).toBe(String(ownerIdx));
      expect(b.headers.get("x-request-id")).toMatch(/^\S+$/);
    });

    test("counter: a user's session counts, by header and by envelope alike", async () => {
      const u = `用户-é-${user("ctr")}`;
      const one = await handle(edge, "/api/1001", {}, { "x-qdp-user": encodeHeaderUtf8(u) });
      expect(one.body.data).toEqual({ count: 1 });
      const two = await handle(edge, "/qdp", { funcNo: 1001, userId: u, data: {} });
      expect(two.body.data).toEqual({ count: 2 });
      const three = await handle(edge, "/qdp", { funcNo: 1001, userId: u }, { "x-qdp-user": encodeHeaderUtf8(u) });
      expect(three.body.data).toEqual({ count: 3 });
      expect(new Set([one, two, three].map((r) => r.headers.get("x-qdp-worker"))).size).toBe(1);
    });

    test("128-byte user ids pass, 129 bytes and control characters are BAD_USER", async () => {
      const u128 = "é".repeat(64);
      expect((await handle(edge, "/qdp", { funcNo: 1001, userId: u128 })).status).toBe(200);
      expect((await handle(edge, "/api/1001", {}, { "x-qdp-user": encodeHeaderUtf8(u128) })).body.data.count).toBe(2);
      for (const bad of ["é".repeat(64) + "x", "a\u0001b", "", "\u0085x"]) {
        const r = await handle(edge, "/qdp", { funcNo: 1001, userId: bad });
        expect(r.status).toBe(400);
        expect(r.body.error.code).toBe("BAD_USER");
      }
      const invalidUtf8 = await handle(edge, "/api/1000", {}, { "x-qdp-user": "\xff\xfe" });
      expect(invalidUtf8.body.error.code).toBe("BAD_USER");
    });

    test("USER_MISMATCH and USER_REQUIRED", async () => {
      const m = await handle(edge, "/qdp", { funcNo: 1000, userId: "a" }, { "x-qdp-user": "b" });
      expect([m.status, m.body.error.code]).toEqual([400, "USER_MISMATCH"]);
      const r = await handle(edge, "/api/1001", {});
      expect([r.status, r.body.error.code]).toEqual([400, "USER_REQUIRED"]);
    });

    test("BAD_JSON, VALIDATION with field paths, UNKNOWN_FUNCTION", async () => {
      const bj = await handle(edge, "/api/1000", "{nope", { "x-qdp-user": user("j") });
      expect([bj.status, bj.body.error.code]).toEqual([400, "BAD_JSON"]);
      expect((await handle(edge, "/qdp", "[1,2]")).body.error.code).toBe("BAD_JSON");
      const v = await handle(edge, "/api/9003", { n: 0 }, { "x-qdp-user": user("v") });
      expect([v.status, v.body.error.code]).toEqual([400, "VALIDATION"]);
      const paths = (v.body.error.details as Array<{ path: string }>).map((d) => d.path);
      expect(paths).toContain("/n");
      expect(paths).toContain("/name");
      expect((await handle(edge, "/qdp", { userId: "x" })).body.error.code).toBe("VALIDATION");
      expect((await handle(edge, "/qdp", { funcNo: 1.5 })).body.error.code).toBe("VALIDATION");
      expect((await handle(edge, "/api/9003", { n: 2, name: "x" }, { "x-qdp-user": user("v") })).body.data).toEqual({ twice: 4 });
      for (const [path, body] of [
        ["/api/9999", {}],
        ["/api/abc", {}],
        ["/qdp", { funcNo: 9999 }],
      ] as const) {
        const r = await handle(edge, path, body);
        expect([r.status, r.body.error.code]).toEqual([404, "UNKNOWN_FUNCTION"]);
      }
    });

    test("PAYLOAD_TOO_LARGE past QDP_MAX_BODY", async () => {
      const r = await handle(edge, "/api/1000", { s: "x".repeat(3000) }, { "x-qdp-user": user("big") });
      expect([r.status, r.body.error.code]).toEqual([413, "PAYLOAD_TOO_LARGE"]);
    });

    test("a handler that throws → 500 INTERNAL without internals, and the next call works", async () => {
      const r = await handle(edge, "/api/9001", {}, { "x-qdp-user": user("boom") });
      expect(r.status).toBe(500);
      expect(r.body).toEqual({ ok: false, error: { code: "INTERNAL", message: "internal error" } });
      expect(r.text).not.toContain("secret");
      expect(r.text).not.toContain(".ts");
      expect((await handle(edge, "/api/1000", 1, { "x-qdp-user": user("boom") })).status).toBe(200);
    });

    test("a handler past QDP_TIMEOUT_MS → 504 TIMEOUT and its signal is aborted", async () => {
      const id = `${mode}-${Date.now()}`;
      const r = await handle(edge, "/api/9002", { id }, { "x-qdp-user": user("slow") });
      expect([r.status, r.body.error.code]).toEqual([504, "TIMEOUT"]);
      await Bun.sleep(50);
      expect(aborted).toContain(id);
    });
  });
}

describe("limits and docs", () => {
  test("Elysia's own 422 and parse errors become the contract's VALIDATION and BAD_JSON", async () => {
    const edge = createTestEdge();
    try {
      // A route that lets Elysia validate its body (as a future plain Elysia route would).
      const app = edge.app.post("/typed", ({ body }) => body, { body: t.Object({ n: t.Integer() }) });
      const call = async (body: string) => {
        const r = await app.handle(new Request("http://localhost/typed", { method: "POST", body, headers: { "content-type": "application/json" } }));
        return { status: r.status, body: (await r.json()) as any, worker: r.headers.get("x-qdp-worker") };
      };
      const v = await call('{"n":"x"}');
      expect([v.status, v.body.error.code, v.worker]).toEqual([400, "VALIDATION", "0"]);
      expect(v.body.error.details.map((d: { path: string }) => d.path)).toContain("/n");
      const p = await call("{bad");
      expect([p.status, p.body.error.code]).toEqual([400, "BAD_JSON"]);
    } finally {
      edge.close();
    }
  });

  test("QDP_MAX_INFLIGHT → 503 OVERLOADED with Retry-After", async () => {
    const edge = createTestEdge({ services: TEST_SERVICES, env: { QDP_MAX_INFLIGHT: "1", QDP_TIMEOUT_MS: "300" } });
    try {
      const slow = handle(edge, "/api/9002", { id: "hold" });
      // Wait until the slow call holds the one slot (the edge counts it), not a fixed time.
      while (edge.counters.inflight < 1) await Bun.sleep(1);
      const r = await handle(edge, "/api/1000", {});
      expect([r.status, r.body.error.code]).toEqual([503, "OVERLOADED"]);
      expect(r.headers.get("retry-after")).toBe("1");
      expect((await slow).status).toBe(504);
      expect((await handle(edge, "/api/1000", {})).status).toBe(200);
    } finally {
      edge.close();
    }
  });

  test("Swagger UI and OpenAPI JSON list every function with schemas and signing headers", async () => {
    const edge = createTestEdge({ services: TEST_SERVICES, keys: "k1:0123456789abcdef0123456789abcdef" });
    try {
      const ui = await edge.app.handle(new Request("http://localhost/swagger"));
      expect(ui.status).toBe(200);
      expect(await ui.text()).toContain("swagger-ui");
      const doc = (await (await edge.app.handle(new Request("http://localhost/swagger/json"))).json()) as any;
      for (const n of [1000, 1001, 1002, 9001, 9002, 9003]) {
        const op = doc.paths[`/api/${n}`]?.post;
        expect(op).toBeDefined();
        expect(op.requestBody.content["application/json"].schema).toBeDefined();
        expect(op.parameters.map((p: any) => p.name)).toEqual(
          expect.arrayContaining(["X-QDP-User", "X-QDP-Key-Id", "X-QDP-Timestamp", "X-QDP-Nonce", "X-QDP-Signature"]),
        );
        expect(op.responses["200"]).toBeDefined();
      }
      expect(doc.paths["/api/1002"].post.requestBody.content["application/json"].schema.properties.symbol.type).toBe("string");
      expect(doc.paths["/api/1002"].post.requestBody.content["application/json"].example).toEqual({ symbol: "600519.SH" });
      expect(doc.paths["/qdp"]).toBeDefined();
      expect(JSON.stringify(doc)).not.toContain("0123456789abcdef");
    } finally {
      edge.close();
    }
  });
});
