/**
 * Bare `Bun.serve` with `reusePort`: the ceiling for any Bun server on this machine.
 * Run it N times on the same port; the kernel spreads connections (SO_REUSEPORT).
 * Routes match bench/contenders/flask_app.py. Usage: bun bun-bare.ts <port>
 */
const port = Number(process.argv[2]);
const hello = "<html><body><h1>Hello from Bun.serve</h1></body></html>";

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  reusePort: true,
  async fetch(req) {
    const url = new URL(req.url);
    if (req.method === "GET" && url.pathname === "/uwsgi/") {
      return new Response(hello, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    const m = /^\/api\/(\d+)$/.exec(url.pathname);
    if (req.method === "POST" && m) {
      let data: unknown;
      try {
        data = await req.json();
      } catch {
        return Response.json({ ok: false, error: { code: "BAD_JSON", message: "bad json" } }, { status: 400 });
      }
      return Response.json({ ok: true, funcNo: Number(m[1]), data });
    }
    return new Response("not found", { status: 404 });
  },
});

process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});

export {};
