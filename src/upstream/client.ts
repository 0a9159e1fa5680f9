/**
 * The HTTP client services use for upstream calls: the worker's keep-alive HTTP/1.1 pool
 * (http1-client.ts, measured at a fraction of `fetch`'s CPU per call). Every call is bound to
 * the request's AbortSignal and to a per-call timeout; failures become 502 UPSTREAM_ERROR,
 * deadlines 504 TIMEOUT. Nothing is retried automatically, except that the pool re-sends a GET
 * whose reused keep-alive connection closed before any byte of the answer (it never reached
 * the upstream): a POST may not be idempotent, and any other retry is the service's decision.
 */
import { Abort } from "../core/abort.ts";
import { DeadlineQueue, hostTimer } from "../core/deadlines.ts";
import { QdpError } from "../core/errors.ts";
import { Histogram } from "../telemetry/histogram.ts";
import type { UpstreamClient, UpstreamRequest } from "../services/types.ts";
import { createHttpClient, type HttpClient } from "./http1-client.ts";

/** Open connections per origin until createWorker sets QDP_UPSTREAM_MAX_CONNECTIONS (its default). */
let poolLimit = 20_000;
/** One pool per worker process, shared by every call's client; made at the first upstream call. */
let pool: HttpClient | null = null;

/**
 * Sets the pool's open connections per origin (QDP_UPSTREAM_MAX_CONNECTIONS). Called when the
 * worker is built, before any call. A pool already made with another limit is left to its
 * callers and idle timeout (in-process tests build several workers in one process); the next
 * call makes a new one.
 */
export function setUpstreamMaxConnections(maxPerOrigin: number): void {
  if (maxPerOrigin === poolLimit) return;
  poolLimit = maxPerOrigin;
  pool = null;
}

export interface UpstreamStats {
  calls: number;
  errors: number;
  timeouts: number;
  latency: Histogram;
}

export interface UpstreamClientOptions {
  /** Cap of one upstream call in ms (the call's own deadline still applies through its signal). */
  timeoutMs: number;
}

/** Per-upstream stats, keyed by name (host by default); shared by the worker's clients. */
export const upstreamStats = new Map<string, UpstreamStats>();

/** The stats entry of one upstream (created on first use); the bridge keeps its backends' here too. */
export function upstreamStatsFor(name: string): UpstreamStats {
  let s = upstreamStats.get(name);
  if (!s) upstreamStats.set(name, (s = { calls: 0, errors: 0, timeouts: 0, latency: new Histogram() }));
  return s;
}

/**
 * The call an upstream request belongs to. Instead of one `AbortSignal.any` and one
 * `AbortSignal.timeout` per request (measured at ~15 µs of CPU per fetch in Bun), each request
 * gets a plain {@link Abort} (core/abort.ts; an AbortController cost more again) that the call
 * registers in `children` — the executor aborts them when the call's deadline passes — and its
 * own timeout sits in one shared deadline queue.
 */
export interface CallScope {
  /** True once the call's deadline passed. */
  readonly aborted: boolean;
  /** Controllers of the call's upstream requests, aborted with the call. */
  readonly children: Abort[];
}

/** The request's header fields: JSON, the call's identity, then the service's own (which win). */
function headersFor(hasBody: boolean, who: CallIdentity | undefined, extra: Record<string, string> | undefined): Record<string, string> {
  const h: Record<string, string> = hasBody ? { accept: "application/json", "content-type": "application/json" } : { accept: "application/json" };
  if (who !== undefined) {
    h["x-request-id"] = who.requestId;
    h.traceparent = who.traceparent;
  }
  if (extra !== undefined) {
    for (const name in extra) {
      const value = extra[name]!;
      // Header injection: a value with CR/LF would start a new header (or a new request).
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name) || /[\r\n\0]/.test(value))
        throw new QdpError("INTERNAL", `upstream header ${JSON.stringify(name)} is not a valid header field`);
      h[name.toLowerCase()] = value;
    }
  }
  return h;
}

/**
 * Upstream URLs parsed once each: services call the same few configured URLs for every call,
 * and a URL object per request (with the origin read back out of it by the pool) was measurable.
 * The cached objects are never changed; bounded in case a service builds URLs per call.
 */
const parsed = new Map<string, URL>();
const MAX_PARSED = 1024;

function parsedUrl(url: string): URL {
  let u = parsed.get(url);
  if (u === undefined) {
    try {
      u = new URL(url);
    } catch {
      throw new QdpError("UPSTREAM_ERROR", "upstream URL is not configured or invalid");
    }
    if (parsed.size >= MAX_PARSED) parsed.clear();
    parsed.set(url, u);
  }
  return u;
}

// One timer at the earliest pending timeout (unref'd: it never keeps a process alive).
const timeouts = new DeadlineQueue(hostTimer(globalThis));

/** What every upstream request of a call carries, so the upstream's logs join the call's. */
export interface CallIdentity {
  requestId: string;
  /** The call's `traceparent` (core/trace.ts). */
  traceparent: string;
}

/** A client bound to one call. */
export function createUpstreamClient(scope: CallScope, opts: UpstreamClientOptions, who?: CallIdentity): UpstreamClient {
  async function call(method: "GET" | "POST", url: string, body: unknown, req: UpstreamRequest = {}): Promise<unknown> {
    const base = parsedUrl(url);
    // The query is appended as URLSearchParams.set would write it. A base URL with a query of
    // its own goes through URLSearchParams itself (set replaces a parameter already there).
    let target = base;
    let path: string | undefined;
    if (req.query !== undefined) {
      const params = new URLSearchParams(req.query).toString();
      if (params !== "") {
        if (base.search === "") path = `${base.pathname}?${params}`;
        else {
          target = new URL(base);
          for (const [k, v] of Object.entries(req.query)) target.searchParams.set(k, v);
        }
      }
    }
    const name = req.name ?? base.host;
    const stats = upstreamStatsFor(name);
    if (scope.aborted) throw new QdpError("TIMEOUT", `no time left to call upstream ${name}`);
    const timeoutMs = Math.min(req.timeoutMs ?? opts.timeoutMs, opts.timeoutMs);
    const controller = new Abort();
    scope.children.push(controller);
    let timedOut = false;
    const timer = timeouts.add(Date.now() + timeoutMs, () => {
      timedOut = true;
      controller.abort(new QdpError("TIMEOUT", `upstream ${name} timed out`));
    });
    const onCallerAbort = () => controller.abort(req.signal?.reason);
    req.signal?.addEventListener("abort", onCallerAbort, { once: true });
    const started = performance.now();
    stats.calls++;
    try {
      const res = await (pool ??= createHttpClient({ maxPerOrigin: poolLimit })).request({
        method,
        url: target,
        target: path,
        signal: controller,
        headers: headersFor(body !== undefined, who, req.headers),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (res.status < 200 || res.status > 299) throw new QdpError("UPSTREAM_ERROR", `upstream ${name} answered ${res.status}`);
      try {
        return JSON.parse(res.body.toString("utf8"));
      } catch {
        throw new QdpError("UPSTREAM_ERROR", `upstream ${name} answered with invalid JSON`);
      }
    } catch (err) {
      if (err instanceof QdpError) {
        stats.errors++;
        throw err;
      }
      if (timedOut || scope.aborted) {
        stats.timeouts++;
        throw new QdpError("TIMEOUT", `upstream ${name} did not answer in time`);
      }
      stats.errors++;
      throw new QdpError("UPSTREAM_ERROR", `upstream ${name} failed: ${(err as Error).message ?? "error"}`, { cause: err });
    } finally {
      timer.done = true;
      req.signal?.removeEventListener("abort", onCallerAbort);
      stats.latency.observe((performance.now() - started) / 1000);
    }
  }
  return {
    getJson: (url, req) => call("GET", url, undefined, req),
    postJson: (url, body, req) => call("POST", url, body, req),
  };
}
