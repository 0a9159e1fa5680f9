/** A real local upstream HTTP server for demo.quote tests: /a and /b answer JSON after a delay. */
import type { Server } from "bun";

export interface Upstream {
  url: string;
  server: Server<undefined>;
  /** Requests received, and requests whose client went away before the answer. */
  received: number;
  aborted: number;
  stop(): void;
}

export interface UpstreamOptions {
  /** Delay per path in ms (default 0). */
  delays?: Record<string, number>;
  /** Status per path (default 200). */
  status?: Record<string, number>;
  /** Answer this path with non-JSON. */
  garbage?: string[];
}

export function startUpstream(o: UpstreamOptions = {}): Upstream {
  const up: Upstream = {
    url: "",
    received: 0,
    aborted: 0,
    server: null as never,
    stop: () => up.server.stop(true),
  };
  up.server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      up.received++;
      const u = new URL(req.url);
      const delay = o.delays?.[u.pathname] ?? 0;
      if (delay > 0) {
        const aborted = await Promise.race([
          Bun.sleep(delay).then(() => false),
          new Promise<boolean>((r) => req.signal.addEventListener("abort", () => r(true))),
        ]);
        if (aborted) {
          up.aborted++;
          return new Response("gone");
        }
      }
      if (o.garbage?.includes(u.pathname)) return new Response("<html>oops</html>");
      return Response.json({ path: u.pathname, symbol: u.searchParams.get("symbol"), price: 42.5 }, { status: o.status?.[u.pathname] ?? 200 });
    },
  });
  up.url = `http://127.0.0.1:${up.server.port}`;
  return up;
}
