/**
 * The loopback operations server (CONTRACT.md §5): GET /stats (JSON) and GET /metrics
 * (Prometheus). It binds 127.0.0.1 only, whatever QDP_HOST is.
 */
import type { Server } from "bun";
import { renderMetrics } from "../ops/metrics.ts";
import type { Logger } from "../services/types.ts";
import type { ClusterStats } from "./supervisor.ts";

export function startStatsServer(port: number, collect: () => Promise<ClusterStats>, log: Logger): Server<undefined> {
  return Bun.serve({
    hostname: "127.0.0.1",
    port,
    async fetch(req) {
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
}
