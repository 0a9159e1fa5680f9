/**
 * The HTTP edge as an Elysia app: the two call routes, health, Swagger, and the mapping of
 * anything else (unknown path, Elysia's own errors) to the contract's JSON error body.
 * `app.handle(new Request(...))` runs it in-process for tests.
 */
import { swagger } from "@elysiajs/swagger";
import { Elysia } from "elysia";
import { ERROR_CATALOGUE, QdpError } from "../core/errors.ts";
import { SIGNING_HEADERS } from "../core/signing.ts";
import type { Registry } from "../services/registry.ts";
import { createCallHandler, type CallHandlerDeps } from "./call-handler.ts";
import { errorResponse, jsonResponse, requestIdOf, toResponse, type ResponseMeta } from "./responses.ts";

export interface EdgeAppDeps extends CallHandlerDeps {
  /** Readiness for /readyz: false while starting or draining. */
  ready: () => boolean;
  /** Extra readiness facts (peers up, state). */
  readyInfo: () => Record<string, unknown>;
  /** Whether Swagger shows the signing headers as required. */
  signing: boolean;
}

export function createEdgeApp(d: EdgeAppDeps) {
  const { handleRequest } = createCallHandler(d);
  const metaOf = (request: Request): ResponseMeta => ({
    edge: d.index,
    worker: d.index,
    requestId: requestIdOf(request.headers.get("x-request-id"), d.index),
    close: d.draining(),
  });

  const app = new Elysia({ name: "qdp-edge" })
    .use(
      swagger({
        provider: "swagger-ui",
        path: "/swagger",
        exclude: ["/healthz", "/readyz", "/api/:funcNo", "/qdp"],
        documentation: openApiInfo(d.registry, d.signing),
      }),
    )
    .onError(({ code, error, request }) => {
      const meta = metaOf(request);
      if (code === "NOT_FOUND") return errorResponse(new QdpError("UNKNOWN_FUNCTION", "no such path"), meta);
      if (error instanceof QdpError) return errorResponse(error, meta);
      // Elysia's own checks (a route with an Elysia body schema, a body it cannot parse) speak
      // the contract too: its 422 becomes our 400 VALIDATION with field paths, its parse error BAD_JSON.
      if (code === "VALIDATION") return errorResponse(new QdpError("VALIDATION", "input is invalid", { details: validationDetails(error) }), meta);
      if (code === "PARSE") return errorResponse(new QdpError("BAD_JSON", "body could not be parsed"), meta);
      d.log.error("edge error", { requestId: meta.requestId, code: String(code), err: error });
      return errorResponse(new QdpError("INTERNAL", "internal error"), meta);
    })
    .get("/healthz", ({ request }) => jsonResponse(200, { ok: true, worker: d.index }, metaOf(request)))
    .get("/readyz", ({ request }) =>
      jsonResponse(d.ready() && !d.draining() ? 200 : 503, { ready: d.ready() && !d.draining(), worker: d.index, ...d.readyInfo() }, metaOf(request)),
    )
    // The public port runs these two through edge/public-server.ts without Elysia; here they
    // serve in-process use (`app.handle`) and define the routes for Swagger.
    .post("/qdp", async ({ request, server }) => toResponse(await handleRequest(request, { kind: "envelope" }, () => server?.requestIP(request)?.address ?? null)), {
      parse: "none",
    })
    .post("/api/:funcNo", async ({ request, params, server }) => toResponse(await handleRequest(request, { kind: "api", funcNo: params.funcNo }, () => server?.requestIP(request)?.address ?? null)), {
      parse: "none",
    });
  return app;
}

/** `{path, message}` per failing field of an Elysia ValidationError (it carries TypeBox's errors). */
function validationDetails(error: unknown): Array<{ path: string; message: string }> {
  const all = (error as { all?: Array<{ path?: string; message?: string }> }).all;
  if (!Array.isArray(all)) return [];
  return all.slice(0, 20).map((e) => ({ path: e.path || "/", message: e.message ?? "invalid" }));
}

/** The OpenAPI document: one operation per function (POST /api/<funcNo>) with its schemas. */
function openApiInfo(registry: Registry, signing: boolean) {
  const signingParams = [
    { name: SIGNING_HEADERS.keyId, description: "UAP key id (see README, Signing)" },
    { name: SIGNING_HEADERS.timestamp, description: "Unix seconds; within ±300 s of server time" },
    { name: SIGNING_HEADERS.nonce, description: "16..64 chars of [A-Za-z0-9_-], never reused within 300 s" },
    { name: SIGNING_HEADERS.signature, description: "v1=<lowercase hex HMAC-SHA256(secret, string-to-sign)>" },
  ].map((p) => ({ in: "header", required: signing, schema: { type: "string" }, ...p }));
  const userParam = { in: "header", name: "X-QDP-User", schema: { type: "string", maxLength: 128 }, description: "User id set by UAP (1..128 bytes UTF-8)" };
  const errorSchema = {
    type: "object",
    properties: {
      ok: { const: false },
      error: { type: "object", properties: { code: { enum: Object.keys(ERROR_CATALOGUE) }, message: { type: "string" }, details: {} }, required: ["code", "message"] },
    },
  };
  const errors = Object.fromEntries(
    [...new Set(Object.values(ERROR_CATALOGUE).map((e) => e.status))].map((s) => [
      String(s),
      {
        description: Object.entries(ERROR_CATALOGUE)
          .filter(([, e]) => e.status === s)
          .map(([c]) => c)
          .join(", "),
        content: { "application/json": { schema: errorSchema } },
      },
    ]),
  );
  const paths: Record<string, unknown> = {};
  for (const { def } of registry.list()) {
    paths[`/api/${def.funcNo}`] = {
      post: {
        // A forwarded range shares one name over many numbers: its functions are tagged with
        // that name, so Swagger UI lists them together under it.
        operationId: def.forward ? `${def.name}.${def.funcNo}` : def.name,
        summary: def.forward
          ? `${def.funcNo} ${def.name} (forwarded: ${def.forward.range} to ${def.forward.backends} backend${def.forward.backends === 1 ? "" : "s"})`
          : `${def.funcNo} ${def.name}${def.stateful ? " (stateful: X-QDP-User required)" : ""}`,
        description: def.description,
        tags: [def.forward ? def.name : def.name.split(".")[0]],
        parameters: [{ ...userParam, required: def.stateful }, ...signingParams],
        requestBody: { required: true, content: { "application/json": { schema: def.input, example: def.example ?? null } } },
        responses: {
          "200": {
            description: "Result",
            content: {
              "application/json": {
                schema: { type: "object", properties: { ok: { const: true }, funcNo: { const: def.funcNo }, data: def.output }, required: ["ok", "funcNo", "data"] },
              },
            },
          },
          ...errors,
        },
      },
    };
  }
  paths["/qdp"] = {
    post: {
      operationId: "envelope",
      summary: "Call any function by number in an envelope",
      parameters: [userParam, ...signingParams],
      requestBody: {
        required: true,
        content: {
          "application/json": {
            schema: {
              type: "object",
              required: ["funcNo"],
              properties: { funcNo: { oneOf: [{ type: "integer" }, { type: "string", pattern: "^\\d+$" }] }, userId: { type: "string" }, data: {} },
            },
            example: { funcNo: 1000, userId: "u1", data: { hello: "world" } },
          },
        },
      },
      responses: { "200": { description: "Result: {ok: true, funcNo, data}" }, ...errors },
    },
  };
  return {
    info: { title: "QDP services", version: "1", description: "Functions by number. Only UAP-signed calls run (see the signing headers)." },
    paths,
  } as never;
}
