/**
 * Sends one forwarded call to its backend (CONTRACT.md §8): `POST <backend><path>` with the
 * envelope `{"funcNo", "userId", "data"}`, the call's `X-Request-Id` and `traceparent`. It runs
 * inside the executor at the user's owner, after every check of the edge, bound to the call's
 * deadline (`ctx.signal`) like any handler.
 *
 * Transport: an `http(s)://` backend goes over the entry's own keep-alive HTTP/1.1 pool
 * (upstream/http1-client.ts), not Bun's fetch — 57–97 µs of CPU per fetch against 18–21 µs on
 * the pool, and the bridge is a front whose whole cost is its CPU per call (bench/forward-cost.ts
 * measures a forwarded call). A `uwsgi://` backend
 * (an extension beyond §8) gets the native uwsgi protocol, one connection per call, exactly as
 * nginx's `uwsgi_pass` sends it (upstream/uwsgi-client.ts).
 *
 * Backend choice: `backends[ownerOf(user, M)]` — the same hash as worker ownership, over the
 * backend list in file order, so a user's calls always reach the same backend process (what
 * SessionManager guaranteed). Calls without a user go round-robin over the backends not known
 * to be down.
 *
 * A backend that is down must not take its users' calls down with it slowly, nor hold up the
 * others: when a connection cannot be opened (refused, unreachable, no such Unix socket: an
 * `UpstreamHttpError` of kind `connect`) the backend is marked down for {@link BACKEND_DOWN_MS}
 * and its users get `502` at once instead of each trying again; calls in flight per backend are
 * capped (`maxInflight`, `503 OVERLOADED` past it), so a backend that accepts but never answers
 * holds at most that many calls of this worker. Other backends keep their own counters.
 */
import { Buffer } from "node:buffer";
import { QdpError } from "../../core/errors.ts";
import { backendAddress, type ForwardEntry } from "../../core/forward-file.ts";
import { ownerOf } from "../../core/ownership.ts";
import { upstreamStatsFor, type UpstreamStats } from "../../upstream/client.ts";
import { createHttpClient, UpstreamHttpError, type HttpClient } from "../../upstream/http1-client.ts";
import { uwsgiRequest } from "../../upstream/uwsgi-client.ts";
import { RawJson, type ServiceContext } from "../types.ts";

/** How long a backend whose connection could not be opened is answered 502 without being tried. */
export const BACKEND_DOWN_MS = 1000;

/**
 * An idle connection to a backend is not reused after this long. Below the keep-alive timeouts
 * of the servers the bridge sits in front of (gunicorn's default 2 s, uWSGI's socket timeout
 * 4 s): a connection the server is closing as qdp reuses it would fail a POST, which is never
 * retried. Reconnecting once a second costs nothing next to the calls.
 */
export const BACKEND_IDLE_MS = 1000;

/** One call's request, as every transport takes it. */
interface Call {
  headers: Record<string, string>;
  body: Buffer;
  signal: AbortSignal;
}

/** Sends one call to one backend; resolves with its answer or rejects with an UpstreamHttpError. */
type Send = (call: Call) => Promise<{ status: number; body: Buffer }>;

interface Backend {
  readonly index: number;
  /** `<backend><path>`, where every call of this entry goes (for logs). */
  readonly target: string;
  readonly send: Send;
  inflight: number;
  /** Epoch ms until which the backend is treated as down. */
  downUntil: number;
  readonly stats: UpstreamStats;
}

/** Forwarding state of one entry (per worker): its backends' counters and the round-robin cursor. */
export interface Forwarder {
  readonly entry: ForwardEntry;
  /** Forwards one call of function `funcNo`; resolves with the backend's JSON answer as text. */
  forward(funcNo: number, ctx: ServiceContext): Promise<RawJson>;
  /** Calls in flight per backend (stats, tests). */
  inflight(): number[];
  /** Closes the entry's idle connections. */
  close(): void;
}

/** The transport of one backend URL of `entry`. */
function sender(entry: ForwardEntry, url: string, pool: HttpClient): Send {
  const address = backendAddress(url);
  if (address.protocol === "uwsgi")
    return (call) => uwsgiRequest({ address, method: "POST", uri: entry.path, headers: call.headers, body: call.body, signal: call.signal });
  const target = new URL(url + entry.path);
  return (call) => pool.request({ method: "POST", url: target, headers: call.headers, body: call.body, signal: call.signal, keepAlive: entry.keepAlive });
}

export function createForwarder(entry: ForwardEntry, downMs = BACKEND_DOWN_MS): Forwarder {
  // The forwarder caps calls in flight per backend at maxInflight, so the pool never queues a
  // call unless several backends share an origin (same host and port, other base paths).
  const pool = createHttpClient({ maxPerOrigin: entry.maxInflight * entry.backends.length, idleMs: BACKEND_IDLE_MS });
  const backends: Backend[] = entry.backends.map((url, index) => ({
    index,
    target: url + entry.path,
    send: sender(entry, url, pool),
    inflight: 0,
    downUntil: 0,
    stats: upstreamStatsFor(`${entry.name}[${index}]`),
  }));
  const m = backends.length;
  let next = 0;

  function pick(user: string | null, now: number): Backend {
    if (user !== null) return backends[m === 1 ? 0 : ownerOf(user, m)]!;
    // No user, no pinning: any backend will do, preferably one that is up.
    for (let tries = 0; tries < m; tries++) {
      const b = backends[next]!;
      next = (next + 1) % m;
      if (b.downUntil <= now) return b;
    }
    return backends[next]!;
  }

  async function forward(funcNo: number, ctx: ServiceContext): Promise<RawJson> {
    const now = Date.now();
    const b = pick(ctx.user, now);
    const who = `${entry.name} backend ${b.index}`;
    if (b.downUntil > now) throw new QdpError("UPSTREAM_ERROR", `${who} is down (a connection failed less than ${downMs} ms ago)`);
    if (b.inflight >= entry.maxInflight) throw new QdpError("OVERLOADED", `${who} has ${b.inflight} calls in flight (maxInflight ${entry.maxInflight})`);
    const body = Buffer.from(JSON.stringify({ funcNo, userId: ctx.user, data: ctx.input === undefined ? null : ctx.input }));
    const signal = ctx.signal;
    b.inflight++;
    b.stats.calls++;
    const started = performance.now();
    try {
      const res = await b.send({
        headers: { "content-type": "application/json", accept: "application/json", "x-request-id": ctx.requestId, traceparent: ctx.traceparent },
        body,
        signal,
      });
      if (res.status < 200 || res.status > 299) throw new QdpError("UPSTREAM_ERROR", `${who} answered ${res.status}`);
      const text = res.body.toString("utf8");
      try {
        JSON.parse(text);
      } catch {
        throw new QdpError("UPSTREAM_ERROR", `${who} answered ${res.status} with a body that is not JSON`);
      }
      if (b.downUntil !== 0) {
        b.downUntil = 0;
        ctx.log.info("forward backend is back", { forward: entry.name, backend: b.index, url: b.target });
      }
      return new RawJson(text);
    } catch (err) {
      if (err instanceof QdpError) {
        b.stats.errors++;
        throw err;
      }
      if (signal.aborted) {
        b.stats.timeouts++;
        throw new QdpError("TIMEOUT", `${who} did not answer within the call's deadline`);
      }
      b.stats.errors++;
      // Only a connection that could not be opened (refused, unreachable, no such socket) marks
      // the backend down. One that dropped (a reused one the backend had closed, a backend dying
      // mid-call) or an answer that is not HTTP fails this call only.
      if (!(err instanceof UpstreamHttpError) || err.kind !== "connect") {
        const what = err instanceof UpstreamHttpError && err.kind === "bad-answer" ? "answered something that is not HTTP" : "dropped the connection";
        throw new QdpError("UPSTREAM_ERROR", `${who} ${what}`, { cause: err });
      }
      if (b.downUntil <= Date.now())
        ctx.log.warn("forward backend down", { forward: entry.name, backend: b.index, url: b.target, err: (err as Error).message, forMs: downMs });
      b.downUntil = Date.now() + downMs;
      throw new QdpError("UPSTREAM_ERROR", `${who} could not be reached`, { cause: err });
    } finally {
      b.inflight--;
      b.stats.latency.observe((performance.now() - started) / 1000);
    }
  }

  return { entry, forward, inflight: () => backends.map((b) => b.inflight), close: () => pool.close() };
}
