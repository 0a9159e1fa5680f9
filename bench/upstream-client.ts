/**
 * Client CPU per upstream GET (small JSON) at 100 and 1,000 concurrent: Bun's `fetch` vs the
 * worker's HTTP/1.1 pool (src/upstream/http1-client.ts). The upstream runs in its own process,
 * so only the client's CPU is counted (getrusage covers Bun's HTTP thread too).
 *
 *   bun bench/upstream-client.ts
 */
import { createHttpClient } from "../src/upstream/http1-client.ts";

const up = Bun.spawn(
  [
    process.execPath,
    "-e",
    `const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (r) => Response.json({ path: new URL(r.url).pathname, price: 42.5 }) }); console.log(s.port);`,
  ],
  { stdout: "pipe" },
);
const reader = up.stdout.getReader();
const first = await reader.read();
const port = Number(new TextDecoder().decode(first.value).trim());
const url = new URL(`http://127.0.0.1:${port}/a?symbol=IBM`);
const pool = createHttpClient();

async function run(name: string, one: () => Promise<unknown>, concurrency: number, total: number): Promise<void> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let left = total;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await one();
    }),
  );
  const c = process.cpuUsage(c0);
  const ms = performance.now() - t0;
  console.log(`${name} c=${concurrency}: ${((c.user + c.system) / total).toFixed(1)} µs CPU/request, ${((total / ms) * 1000).toFixed(0)} requests/s`);
}

try {
  for (const concurrency of [100, 1000]) {
    for (let round = 0; round < 2; round++) {
      await run("fetch", async () => JSON.parse(await (await fetch(url)).text()), concurrency, 40_000);
      await run("pool ", async () => JSON.parse((await pool.request({ method: "GET", url })).body.toString()), concurrency, 40_000);
    }
  }
} finally {
  pool.close();
  up.kill();
}
