/**
 * Rolling reloads under clients that reuse each keep-alive connection the instant an answer
 * arrives — the race wrk hides: a worker that closes an idle connection while the client is
 * already writing its next request on it loses that request. The guarantee: no connection is
 * closed unless its last response said `Connection: close` (or it stayed idle past
 * QDP_DRAIN_IDLE_MS), so every call is answered and every counter is exact.
 */
import { expect, test } from "bun:test";
import { startCluster } from "./support/cluster.ts";
import { connect, request, type RawConnection } from "./support/raw-http.ts";

const CLIENTS = 80;
const USERS = 200;
const RELOADS = 5;

test(`${RELOADS} SIGHUPs under ${CLIENTS} clients reusing connections at once: every call answered, counters exact`, async () => {
  const c = await startCluster({ workers: 2 });
  try {
    const acked = new Array<number>(USERS).fill(0);
    const failures: string[] = [];
    let calls = 0;
    let closes = 0;
    let running = true;

    async function client(id: number): Promise<void> {
      let conn: RawConnection = await connect(c.port);
      let n = id;
      while (running) {
        const u = n++ % USERS;
        conn.write(request("POST", "/api/1001", { "x-qdp-user": `ka-${u}`, "content-type": "application/json" }, "{}"));
        calls++;
        let status = 0;
        let close = false;
        try {
          const [r] = await conn.responses(1, 15_000);
          status = r!.status;
          close = r!.headers.connection === "close";
          if (status === 200) acked[u]!++;
          else failures.push(`client ${id}: ${status} ${r!.body}`);
        } catch (err) {
          failures.push(`client ${id}: ${(err as Error).message}`);
          close = true;
        }
        // A client does some work between calls (20–120 ms, well under QDP_DRAIN_IDLE_MS); its
        // connection sits idle meanwhile, which is when a careless drain cuts it.
        await Bun.sleep(20 + ((n * 37) % 100));
        if (close) {
          closes++;
          conn.close();
          conn = await connect(c.port);
        }
      }
      conn.close();
    }

    const clients = Array.from({ length: CLIENTS }, (_, i) => client(i));
    for (let i = 1; i <= RELOADS; i++) {
      await Bun.sleep(300);
      c.proc.kill("SIGHUP");
      const until = Date.now() + 30_000;
      while ((await c.stats()).supervisor.reloads < i && Date.now() < until) await Bun.sleep(50);
    }
    await Bun.sleep(300);
    running = false;
    await Promise.all(clients);

    const stats = await c.stats();
    expect(stats.supervisor.reloads).toBe(RELOADS);
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(5_000);
    // The reloads did move clients: connections were closed with Connection: close.
    expect(closes).toBeGreaterThan(0);

    // Every acknowledged increment is there, and nothing else ran.
    const check = await connect(c.port);
    for (let u = 0; u < USERS; u++) {
      check.write(request("POST", "/api/1001", { "x-qdp-user": `ka-${u}` }, "{}"));
      const [r] = await check.responses(1);
      expect({ user: u, count: JSON.parse(r!.body).data.count }).toEqual({ user: u, count: acked[u]! + 1 });
    }
    check.close();
  } finally {
    await c.stop();
  }
}, 180_000);
