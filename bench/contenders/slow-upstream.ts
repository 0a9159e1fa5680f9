/**
 * The slow business upstream of scenario B: `/a` answers after 1 s, `/b` after 3 s,
 * both echo `?symbol=`. A timer per request, no CPU: it stands for a remote quote service.
 * Usage: bun slow-upstream.ts <port>   (delays overridable with BENCH_DELAY_A_MS / BENCH_DELAY_B_MS)
 */
const port = Number(process.argv[2]);
const delayA = Number(process.env.BENCH_DELAY_A_MS ?? 1000);
const delayB = Number(process.env.BENCH_DELAY_B_MS ?? 3000);

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  idleTimeout: 60,
  async fetch(req) {
    const url = new URL(req.url);
    const symbol = url.searchParams.get("symbol") ?? "";
    const delay = url.pathname === "/a" ? delayA : url.pathname === "/b" ? delayB : -1;
    if (delay < 0) return new Response("not found", { status: 404 });
    await Bun.sleep(delay);
    return Response.json({ source: url.pathname.slice(1), symbol, price: 100 + symbol.length });
  },
});

process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});

export {};
