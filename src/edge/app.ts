/**
 * The HTTP edge as an Elysia app: the two call routes, health, Swagger, and the mapping of
 * anything else (unknown path, Elysia's own errors) to the contract's JSON error body.
 * `app.handle(new Request(...))` runs it in-process for tests.
 */
import { Elysia } from "elysia";
import { QdpError } from "../core/errors.ts";
import { BUILD_INFO } from "../telemetry/build-info.ts";
import { createCallHandler, type CallHandlerDeps } from "./call-handler.ts";
import { buildOpenApi } from "./openapi.ts";
import { swaggerAsset, swaggerPage } from "./swagger-ui.ts";
import { errorResponse, jsonResponse, requestIdOf, toResponse, type ResponseMeta } from "./responses.ts";

export interface EdgeAppDeps extends CallHandlerDeps {
  /** Readiness for /readyz: false while starting or draining. */
  ready: () => boolean;
  /** Extra readiness facts (peers up, state). */
  readyInfo: () => Record<string, unknown>;
  /** Whether Swagger shows the signing headers as required. */
  signing: boolean;
  /**
   * Cluster readiness for a load balancer (`GET /readyz/cluster`): this worker serves and every
   * other index is up and reachable over the hop. Default: this worker's own readiness.
   */
  clusterReady?: () => boolean;
  /** Sessions are stored in Redis (Swagger lists the session store's codes for stateful functions). */
  durableSessions?: boolean;
}

export function createEdgeApp(d: EdgeAppDeps) {
  const { handleRequest } = createCallHandler(d);
  const metaOf = (request: Request): ResponseMeta => ({
    edge: d.index,
    worker: d.index,
    requestId: requestIdOf(request.headers.get("x-request-id"), d.index),
    close: d.draining(),
  });

  let openApiText: string | null = null;
  const openApi = () =>
    (openApiText ??= JSON.stringify(
      buildOpenApi(d.registry, { signing: d.signing, allowList: d.allow !== null, durableSessions: d.durableSessions ?? false, version: BUILD_INFO.version }),
    ));
  const ready = () => d.ready() && !d.draining();

  const app = new Elysia({ name: "qdp-edge" })
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
    .get("/readyz", ({ request }) => jsonResponse(ready() ? 200 : 503, { ready: ready(), worker: d.index, ...d.readyInfo() }, metaOf(request)))
    // For a load balancer in front of the host: 200 only when every index can run calls, so a
    // host whose cluster is partly down (a crash loop, a stuck start) is taken out of rotation.
    .get("/readyz/cluster", ({ request }) => {
      const up = ready() && (d.clusterReady?.() ?? true);
      return jsonResponse(up ? 200 : 503, { ready: up, worker: d.index, ...d.readyInfo() }, metaOf(request));
    })
    // Swagger UI and its assets come from this server (swagger-ui.ts): no CDN needed.
    .get("/swagger", () => swaggerPage("QDP services — Swagger UI"))
    .get("/swagger/", () => swaggerPage("QDP services — Swagger UI"))
    .get("/swagger/json", () => new Response(openApi(), { headers: { "content-type": "application/json; charset=utf-8" } }))
    .get(
      "/swagger/assets/:file",
      ({ params, request }) => swaggerAsset(params.file) ?? errorResponse(new QdpError("UNKNOWN_FUNCTION", "no such path"), metaOf(request)),
    )
    // The public port runs these two through edge/public-server.ts without Elysia; here they
    // serve in-process use (`app.handle`) and define the routes for Swagger.
    .post(
      "/qdp",
      async ({ request, server }) => toResponse(await handleRequest(request, { kind: "envelope" }, () => server?.requestIP(request)?.address ?? null)),
      {
        parse: "none",
      },
    )
    .post(
      "/api/:funcNo",
      async ({ request, params, server }) =>
        toResponse(await handleRequest(request, { kind: "api", funcNo: params.funcNo }, () => server?.requestIP(request)?.address ?? null)),
      {
        parse: "none",
      },
    );
  return app;
}

/** `{path, message}` per failing field of an Elysia ValidationError (it carries TypeBox's errors). */
function validationDetails(error: unknown): Array<{ path: string; message: string }> {
  const all = (error as { all?: Array<{ path?: string; message?: string }> }).all;
  if (!Array.isArray(all)) return [];
  return all.slice(0, 20).map((e) => ({ path: e.path || "/", message: e.message ?? "invalid" }));
}
