/** A real local upstream HTTP server for demo.quote tests: /a and /b answer JSON after a delay. */
import type { Server } from "bun";

export interface Upstream {
  url: string;
  server: Server<undefined>;
  /** Requests received, and requests whose client went away before the answer. */
  received: number;
  aborted: number;
  /** Requests being answered now, and the most there were at once. */
  inflight: number;
  peakInflight: number;
  stop(): void;
}

export interface UpstreamOptions {
  /** Delay per path in ms (default 0). */
  delays?: Record<string, number>;
  /** Status per path (default 200). */
  status?: Record<string, number>;
  /** Answer this path with non-JSON. */
  garbage?: string[];
  /**
   * Hold requests to `path` until `count` of them are in flight at once (then answer them all),
   * or `maxMs` passed (later requests pass at once): a test can prove how many upstream requests a worker opens concurrently.
   */
  gate?: { path: string; count: number; maxMs: number };
}

export function startUpstream(o: UpstreamOptions = {}): Upstream {
  const up: Upstream = {
    url: "",
    received: 0,
    aborted: 0,
    inflight: 0,
    peakInflight: 0,
    server: null as never,
    stop: () => up.server.stop(true),
  };
  up.server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      up.received++;
      up.inflight++;
      up.peakInflight = Math.max(up.peakInflight, up.inflight);
      try {
        return await answer(req);
      } finally {
        up.inflight--;
      }
    },
  });
  const held: Array<() => void> = [];
  let gateTimer: Timer | null = null;
  let gateOpen = false;
  function openGate(): void {
    gateOpen = true;
    if (gateTimer !== null) clearTimeout(gateTimer);
    for (const release of held.splice(0)) release();
  }
  async function answer(req: Request): Promise<Response> {
    const u = new URL(req.url);
    const gate = o.gate;
    if (gate !== undefined && !gateOpen && u.pathname === gate.path) {
      const released = new Promise<void>((r) => held.push(r));
      gateTimer ??= setTimeout(openGate, gate.maxMs);
      if (held.length >= gate.count) openGate();
      await released;
    }
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
  }
  up.url = `http://127.0.0.1:${up.server.port}`;
  return up;
}
