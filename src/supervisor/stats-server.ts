/**
 * The operations server (CONTRACT.md §5): GET /stats (JSON) and GET /metrics (Prometheus).
 * It binds QDP_STATS_HOST, loopback by default. Anything else lets a remote Prometheus scrape,
 * and then a bearer token (QDP_STATS_TOKEN) is required — the config refuses a non-loopback
 * host without one — because /stats names pids, ports and the runtime directory.
 */
import type { Server } from "bun";
import { timingSafeEqual } from "node:crypto";
import { renderMetrics } from "../telemetry/metrics.ts";
import type { Logger } from "../services/types.ts";
import type { ClusterStats } from "../types.ts";

export interface StatsServerOptions {
  host: string;
  port: number;
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token: string | undefined;
}

/** Whether an Authorization header carries the token; compares in constant time. */
export function bearerMatches(header: string | null, token: string): boolean {
  if (header === null || !header.startsWith("Bearer ")) return false;
  const given = Buffer.from(header.slice(7).trim());
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

export function startStatsServer(o: StatsServerOptions, collect: () => Promise<ClusterStats>, log: Logger): Server<undefined> {
  const server = Bun.serve({
    hostname: o.host,
    port: o.port,
    async fetch(req) {
      if (o.token !== undefined && !bearerMatches(req.headers.get("authorization"), o.token)) {
        return new Response("unauthorized: send Authorization: Bearer <QDP_STATS_TOKEN>\n", {
          status: 401,
          headers: { "www-authenticate": 'Bearer realm="qdp-stats"' },
        });
      }
      const path = new URL(req.url).pathname;
      if (req.method !== "GET") return new Response("method not allowed\n", { status: 405 });
      if (path === "/stats") return Response.json(await collect());
      if (path === "/metrics") return new Response(renderMetrics(await collect()), { headers: { "content-type": "text/plain; version=0.0.4" } });
      return new Response("not found: use /stats or /metrics\n", { status: 404 });
    },
    error(err) {
      log.error("stats server error", { err });
      return new Response("internal error\n", { status: 500 });
    },
  });
  log.info(
    o.token === undefined
      ? "stats server listening (no token: loopback only)"
      : "stats server listening; requests need Authorization: Bearer <QDP_STATS_TOKEN>",
    {
      host: o.host,
      port: server.port,
      token: o.token === undefined ? "none" : "required",
    },
  );
  return server;
}
