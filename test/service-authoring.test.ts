/**
 * Writing a service, as its author tests it with the kit (test/support/service-kit.ts): the
 * reference services as examples, settings, checked outputs, per-function timeouts, upstream
 * headers and W3C trace propagation. Services here import only from src/services/api.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import counter from "../src/services/demo/counter.ts";
import quote from "../src/services/demo/quote.ts";
import { defineService, setting, settingSchemas, t } from "../src/services/api.ts";
import { createServiceKit, type ServiceKit } from "./support/service-kit.ts";
import { startUpstream, type Upstream } from "./support/upstream.ts";

describe("example: demo.quote with a real upstream", () => {
  let up: Upstream;
  let kit: ServiceKit;
  beforeAll(() => {
    up = startUpstream();
    kit = createServiceKit({ services: [], settings: { QDP_UPSTREAM_A: `${up.url}/a`, QDP_UPSTREAM_B: `${up.url}/b` } });
  });
  afterAll(() => {
    kit.close();
    up.stop();
  });

  test("returns both quotes and stores the record, with the call's request and trace ids", async () => {
    const r = await kit.call(
      quote,
      { symbol: "IBM" },
      { user: "alice", headers: { "x-request-id": "quote-req-1", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } },
    );
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    expect(r.data).toMatchObject({ symbol: "IBM", a: { path: "/a", symbol: "IBM" }, b: { path: "/b", symbol: "IBM" } });
    const stored = await kit.records.get("quotes", r.data.recordId);
    expect(stored).toMatchObject({ user: "alice", symbol: "IBM", requestId: "quote-req-1", traceId: "0af7651916cd43dd8448eb211c80319c" });
  });

  test("bad input is the caller's VALIDATION error, not a call", async () => {
    const before = up.received;
    const r = await kit.call(quote, { symbol: "" });
    expect(r).toMatchObject({ ok: false, status: 400, error: { code: "VALIDATION" } });
    expect(up.received).toBe(before);
  });
});

describe("example: a stateful service (demo.counter)", () => {
  test("each user's calls count in that user's session, through the hop too", async () => {
    const kit = createServiceKit({ services: [], hop: true });
    try {
      for (let i = 1; i <= 3; i++) expect(await kit.call(counter, {}, { user: "bob" })).toMatchObject({ ok: true, data: { count: i } });
      expect(await kit.call(counter, {}, { user: "carol" })).toMatchObject({ ok: true, data: { count: 1 } });
      expect(kit.session("bob")).toEqual({ count: 3 });
      expect(await kit.call(counter, {})).toMatchObject({ ok: false, status: 400, error: { code: "USER_REQUIRED" } });
    } finally {
      kit.close();
    }
  });
});

describe("what the server enforces for a service", () => {
  const liar = defineService({
    funcNo: 9201,
    name: "test.liar",
    description: "returns something its output schema rejects",
    stateful: false,
    input: t.Object({}),
    output: t.Object({ count: t.Integer() }),
    handler: () => ({ count: "three" }) as unknown as { count: number },
  });
  const sleepy = defineService({
    funcNo: 9202,
    name: "test.sleepy",
    description: "sleeps past its own timeout",
    stateful: false,
    timeoutMs: 150,
    input: t.Object({}),
    output: t.Object({}),
    handler: async ({ signal }) => {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 3000);
        signal.addEventListener("abort", () => clearTimeout(timer));
      });
      return {};
    },
  });
  const configured = defineService({
    funcNo: 9203,
    name: "test.configured",
    description: "reads its settings",
    stateful: false,
    input: t.Object({}),
    output: t.Object({ url: t.String(), retries: t.Integer() }),
    settings: {
      url: setting(settingSchemas.url(), { env: "TEST_SERVICE_URL", description: "where to go" }),
      retries: setting(t.Integer(), { env: "TEST_SERVICE_RETRIES", default: 2, description: "how often" }),
    },
    handler: ({ settings }) => ({ url: settings.url, retries: settings.retries }),
  });
  let kit: ServiceKit;
  beforeAll(() => {
    kit = createServiceKit({ services: [liar, sleepy, configured], settings: { TEST_SERVICE_URL: "https://svc.internal/x" } });
  });
  afterAll(() => kit.close());

  test("an output its schema rejects is 500 INTERNAL, never sent as a result", async () => {
    const r = await kit.call(liar, {});
    expect(r).toMatchObject({ ok: false, status: 500, error: { code: "INTERNAL", message: "internal error" } });
  });

  test("a function's own timeoutMs shortens its deadline: 504 and the handler's signal aborted", async () => {
    const t0 = performance.now();
    const r = await kit.call(sleepy, {});
    expect(r).toMatchObject({ ok: false, status: 504, error: { code: "TIMEOUT" } });
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  test("settings arrive typed, with defaults", async () => {
    expect(await kit.call(configured, {})).toMatchObject({ ok: true, data: { url: "https://svc.internal/x", retries: 2 } });
  });

  test("a timeoutMs that is not a positive whole number stops start-up", () => {
    const bad = { ...sleepy, funcNo: 9204, name: "test.bad_timeout", timeoutMs: 0 };
    expect(() => createServiceKit({ services: [bad] })).toThrow("timeoutMs 0 must be a positive whole number");
  });
});

describe("upstream headers and W3C trace context", () => {
  let server: Server<undefined>;
  const seen: Array<Record<string, string>> = [];
  const caller = defineService({
    funcNo: 9301,
    name: "test.caller",
    description: "calls an upstream with its own header",
    stateful: false,
    input: t.Object({ header: t.Optional(t.String()) }),
    output: t.Object({ traceId: t.String() }),
    handler: async ({ input, upstream, traceId }) => {
      await upstream.getJson(`http://127.0.0.1:${server.port}/x`, { headers: { authorization: input.header ?? "Bearer k1" } });
      return { traceId };
    },
  });
  // Every client a handler was handed, in order: each read of ctx.upstream within one call
  // must give the same client (one abort, one set of headers), and each call its own.
  const clients: unknown[] = [];
  const twice = defineService({
    funcNo: 9302,
    name: "test.upstream_twice",
    description: "reads ctx.upstream twice",
    stateful: false,
    input: t.Object({}),
    output: t.Object({ ok: t.Boolean() }),
    handler: (ctx) => {
      clients.push(ctx.upstream, ctx.upstream);
      return { ok: true };
    },
  });
  let kit: ServiceKit;
  beforeAll(() => {
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        seen.push(Object.fromEntries(req.headers.entries()));
        return Response.json({ ok: true });
      },
    });
    kit = createServiceKit({ services: [caller, twice] });
  });
  afterAll(() => {
    kit.close();
    server.stop(true);
  });

  test("the upstream gets the service's headers, the request id and the caller's trace", async () => {
    const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const r = await kit.call(caller, {}, { headers: { "x-request-id": "req-trace-1", traceparent: incoming } });
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    const h = seen.at(-1)!;
    expect(h.authorization).toBe("Bearer k1");
    expect(h["x-request-id"]).toBe("req-trace-1");
    expect(h.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    // This call's span is the upstream's parent: not the caller's span.
    expect(h.traceparent).not.toContain("00f067aa0ba902b7");
    expect(r.data.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
  });

  test("without a valid traceparent a new trace starts", async () => {
    for (const bad of [
      undefined,
      "garbage",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ]) {
      const r = await kit.call(caller, {}, { headers: bad === undefined ? {} : { traceparent: bad } });
      if (!r.ok) throw new Error(JSON.stringify(r.error));
      expect(seen.at(-1)!.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      expect(r.data.traceId).not.toBe("00000000000000000000000000000000");
      expect(r.data.traceId).not.toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    }
  });

  test("ctx.upstream is one client per call, made on first use", async () => {
    for (let i = 0; i < 2; i++) {
      const r = await kit.call(twice, {});
      if (!r.ok) throw new Error(JSON.stringify(r.error));
    }
    expect(clients).toHaveLength(4);
    expect(clients[0]).toBe(clients[1]);
    expect(clients[2]).toBe(clients[3]);
    expect(clients[0]).not.toBe(clients[2]);
  });

  test("a header value that would inject a line is refused before anything is sent", async () => {
    const before = seen.length;
    const r = await kit.call(caller, { header: "x\r\nx-evil: 1" });
    expect(r).toMatchObject({ ok: false, status: 500, error: { code: "INTERNAL" } });
    expect(seen.length).toBe(before);
  });
});
