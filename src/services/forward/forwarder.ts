/**
 * Sends one forwarded call to its backend (CONTRACT.md §8): `POST <backend><path>` with the
 * envelope `{"funcNo", "userId", "data"}`, the call's `X-Request-Id` and `traceparent`, on the keep-alive
 * connections Bun's fetch pools per origin. It runs inside the executor at the user's owner,
 * after every check of the edge, bound to the call's deadline like any handler.
 *
 * Backend choice: `backends[ownerOf(user, M)]` — the same hash as worker ownership, over the
 * backend list in file order, so a user's calls always reach the same backend process (what
 * SessionManager guaranteed). Calls without a user go round-robin over the backends not known
 * to be down.
 *
 * A backend that is down must not take its users' calls down with it slowly, nor hold up the
 * others: when a connection cannot be opened (refused, unreachable) the backend is marked down for {@link BACKEND_DOWN_MS} and
 * its users get `502` at once instead of each trying again; calls in flight per backend are
 * capped (`maxInflight`, `503 OVERLOADED` past it), so a backend that accepts but never answers
 * holds at most that many calls of this worker. Other backends keep their own counters.
 */
import { QdpError } from "../../core/errors.ts";
import type { ForwardEntry } from "../../core/forward-file.ts";
import { ownerOf } from "../../core/ownership.ts";
import { upstreamStatsFor, type UpstreamStats } from "../../upstream/client.ts";
import { RawJson, type ServiceContext } from "../types.ts";

/** How long a backend whose connection could not be opened is answered 502 without being tried. */
export const BACKEND_DOWN_MS = 1000;

/** Error codes of a connection that was open and then dropped: the backend is not known to be down. */
const DROPPED = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ConnectionClosed"]);

interface Backend {
  readonly index: number;
  /** `<backend><path>`, the URL every call of this entry is posted to. */
  readonly target: string;
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
}

export function createForwarder(entry: ForwardEntry, downMs = BACKEND_DOWN_MS): Forwarder {
  const backends: Backend[] = entry.backends.map((url, index) => ({
    index,
    target: url + entry.path,
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
    const body = JSON.stringify({ funcNo, userId: ctx.user, data: ctx.input === undefined ? null : ctx.input });
    const signal = ctx.signal;
    b.inflight++;
    b.stats.calls++;
    const started = performance.now();
    try {
      const res = await fetch(b.target, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json", "x-request-id": ctx.requestId, traceparent: ctx.traceparent },
        body,
        signal,
        keepalive: entry.keepAlive,
      });
      const text = await res.text();
      if (res.status < 200 || res.status > 299) throw new QdpError("UPSTREAM_ERROR", `${who} answered ${res.status}`);
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
      // A connection that dropped (a reused one the backend had closed, or a backend dying
      // mid-call) fails this call only; one that could not be opened marks the backend down.
      if (DROPPED.has((err as { code?: string }).code ?? "")) throw new QdpError("UPSTREAM_ERROR", `${who} dropped the connection`, { cause: err });
      if (b.downUntil <= Date.now())
        ctx.log.warn("forward backend down", { forward: entry.name, backend: b.index, url: b.target, err: (err as Error).message, forMs: downMs });
      b.downUntil = Date.now() + downMs;
      throw new QdpError("UPSTREAM_ERROR", `${who} could not be reached`, { cause: err });
    } finally {
      b.inflight--;
      b.stats.latency.observe((performance.now() - started) / 1000);
    }
  }

  return { entry, forward, inflight: () => backends.map((b) => b.inflight) };
}
