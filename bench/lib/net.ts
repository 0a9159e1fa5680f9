/** Free loopback ports and readiness polling. Never a fixed port. */
import { createServer } from "node:net";

const handedOut = new Set<number>();

/** A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once("error", reject);
      srv.listen(0, "127.0.0.1", () => {
        const addr = srv.address();
        const p = typeof addr === "object" && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error("could not find a free loopback port");
}

/**
 * Poll `url` until it answers `status` (default 200) or `timeoutMs` passes.
 * `alive` lets the caller stop early when the process under test has died.
 */
export async function waitForHttp(url: string, opts: { timeoutMs?: number; status?: number; init?: RequestInit; alive?: () => boolean } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let last = "no answer";
  while (Date.now() < deadline) {
    if (opts.alive && !opts.alive()) throw new Error(`process exited before ${url} answered`);
    try {
      const res = await fetch(url, { ...opts.init, signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === (opts.status ?? 200)) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = String(err);
    }
    await Bun.sleep(150);
  }
  throw new Error(`${url} not ready after ${opts.timeoutMs ?? 30_000} ms (${last})`);
}
