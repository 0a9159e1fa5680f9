/**
 * The public port: the HTTP/1.1 transport (http1-server.ts) with the edge behind it. The two
 * call routes go straight to the call handler — the hot path, with no `Request` or `Response`
 * object built; every other request (health, readiness, Swagger, unknown paths) is handed to
 * the Elysia app, which defines them.
 */
import type { Config } from "../core/config.ts";
import { QdpError } from "../core/errors.ts";
import type { EdgeAppDeps } from "./app.ts";
import { createCallHandler, type CallInput, type CallRoute } from "./call-handler.ts";
import { serveHttp1, type Http1Request, type Http1Server, type Reply } from "./http1-server.ts";
import { errorReply, requestIdOf, type ResponseMeta } from "./responses.ts";

export interface PublicServerOptions {
  hostname: string;
  port: number;
  deps: EdgeAppDeps;
  limits: Pick<Config, "bodyTimeoutMs" | "keepAliveMs">;
  /** HTTPS certificate and key (PEM text); absent = plain HTTP. */
  tls?: { cert: string; key: string };
  /** The Elysia app (its `handle`) for everything but the call routes. */
  app: { handle(request: Request): Promise<Response> | Response };
}

const ENVELOPE: CallRoute = { kind: "envelope" };
/** Response headers the transport writes itself. */
const TRANSPORT_HEADERS = new Set(["content-length", "transfer-encoding", "connection", "date", "keep-alive"]);

export function startPublicServer(o: PublicServerOptions): Http1Server {
  const d = o.deps;
  const { handleCall } = createCallHandler(d);
  const meta = (requestId: string | null): ResponseMeta => ({ edge: d.index, worker: d.index, requestId: requestIdOf(requestId, d.index), close: true });

  return serveHttp1({
    hostname: o.hostname,
    port: o.port,
    maxBody: d.config.maxBody,
    bodyTimeoutMs: o.limits.bodyTimeoutMs,
    idleTimeoutMs: o.limits.keepAliveMs,
    ...(o.tls === undefined ? {} : { tls: o.tls }),
    handle(req) {
      const { head } = req;
      const q = head.target.indexOf("?");
      const path = q < 0 ? head.target : head.target.slice(0, q);
      if (head.method === "POST") {
        if (path === "/qdp") return handleCall(callInput(req), ENVELOPE);
        if (path.startsWith("/api/") && path.indexOf("/", 5) < 0) return handleCall(callInput(req), { kind: "api", funcNo: path.slice(5) });
      }
      return viaElysia(req);
    },
    refuse(status, message) {
      d.counters.requests++;
      // A request that cannot be framed or arrives too slowly never reaches a route.
      const code = status === 413 ? "PAYLOAD_TOO_LARGE" : "VALIDATION";
      d.counters.errors[code] = (d.counters.errors[code] ?? 0) + 1;
      return errorReply(new QdpError(code, status === 413 ? message : `malformed or incomplete HTTP request: ${message}`), meta(null));
    },
    crashed(err) {
      d.log.error("edge failure", { err });
      return errorReply(new QdpError("INTERNAL", "internal error"), meta(null));
    },
    onClientAbort() {
      d.counters.clientAborts++;
    },
  });

  /** Health, readiness, Swagger and unknown paths: Elysia answers them as a Fetch handler. */
  async function viaElysia(req: Http1Request): Promise<Reply> {
    const { head } = req;
    const headers = new Headers();
    for (const [name, value] of head.headers) headers.set(name, value);
    const hasBody = head.method !== "GET" && head.method !== "HEAD" && req.body.length > 0;
    const request = new Request(`http://qdp.internal${head.target}`, { method: head.method, headers, body: hasBody ? req.body : null });
    const res = await o.app.handle(request);
    const out: Record<string, string> = {};
    res.headers.forEach((value, name) => {
      if (!TRANSPORT_HEADERS.has(name)) out[name] = value;
    });
    // Every response names the worker and carries a request id (CONTRACT.md §3), Swagger's too.
    out["x-qdp-worker"] ??= String(d.index);
    out["x-qdp-edge"] ??= String(d.index);
    out["x-request-id"] ??= requestIdOf(head.headers.get("x-request-id") ?? null, d.index);
    return { status: res.status, headers: out, body: new Uint8Array(await res.arrayBuffer()) };
  }
}

/** A call as the call handler takes it, from a request the transport read (bench/signed-path.ts builds its calls here too). */
export function callInput(req: Http1Request): CallInput {
  const h = req.head.headers;
  const repeated = req.head.repeated;
  return {
    method: req.head.method,
    target: req.head.target,
    header: (name) => h.get(name) ?? null,
    repeated: (name) => repeated !== null && repeated.has(name),
    body: req.body,
    clientIp: req.clientIp,
  };
}
