/**
 * How many upstream requests one worker has open at once. The slow business call (bench B:
 * 10,000 callers, each waiting seconds on an upstream) needs one upstream connection per call in
 * flight; a pool capped at 1,024 per origin queued the rest, and calls timed out (504) at C =
 * 10,000. The cap is QDP_UPSTREAM_MAX_CONNECTIONS, by default QDP_MAX_INFLIGHT.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type Cluster, startCluster } from "./support/cluster.ts";
import { connect, type RawConnection, request } from "./support/raw-http.ts";
import { startUpstream, type Upstream } from "./support/upstream.ts";

const CALLS = 1100;

let up: Upstream;
let limited: Upstream;
let c: Cluster;
let small: Cluster;

beforeAll(async () => {
  // Every /a request is held until CALLS of them are open at once (or 20 s passed).
  up = startUpstream({ gate: { path: "/a", count: CALLS, maxMs: 20_000 } });
  limited = startUpstream({ gate: { path: "/a", count: 3, maxMs: 1500 } });
  [c, small] = await Promise.all([
    startCluster({ workers: 1, env: { QDP_UPSTREAM_A: `${up.url}/a`, QDP_UPSTREAM_B: `${up.url}/b` } }),
    startCluster({ workers: 1, env: { QDP_UPSTREAM_A: `${limited.url}/a`, QDP_UPSTREAM_B: `${limited.url}/b`, QDP_UPSTREAM_MAX_CONNECTIONS: "2" } }),
  ]);
});

afterAll(async () => {
  await Promise.all([c?.stop(), small?.stop()]);
  up?.stop();
  limited?.stop();
});

async function quotes(port: number, n: number): Promise<number[]> {
  const conns: RawConnection[] = await Promise.all(Array.from({ length: n }, () => connect(port)));
  const statuses = await Promise.all(
    conns.map(async (conn, i) => {
      conn.write(request("POST", "/api/1002", { "x-qdp-user": `pool-${i}`, "content-type": "application/json" }, '{"symbol":"X"}'));
      const [r] = await conn.responses(1);
      conn.close();
      return r!.status;
    }),
  );
  return statuses;
}

test(`one worker holds ${CALLS} slow upstream requests to one origin at once (more than 1,024): every call answered 200`, async () => {
  const statuses = await quotes(c.port, CALLS);
  expect(up.peakInflight).toBe(CALLS);
  expect(statuses.filter((s) => s !== 200)).toEqual([]);
}, 60_000);

test("QDP_UPSTREAM_MAX_CONNECTIONS=2: at most two upstream requests open, the third waits for a connection", async () => {
  const statuses = await quotes(small.port, 3);
  expect(statuses).toEqual([200, 200, 200]);
  expect(limited.peakInflight).toBe(2);
});
