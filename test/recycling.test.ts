/**
 * Recycling with real processes (QDP_MAX_REQUESTS, QDP_MAX_REQUESTS_JITTER, QDP_MAX_RSS): a
 * worker over its limit is replaced through the rolling reload's hand-off, so under load no call
 * fails and every user's counter continues exactly; one replacement at a time, never overlapping
 * a reload; a limit every fresh worker exceeds backs off instead of replacing in a loop. Counts
 * and reasons show in /stats, /metrics and `qdp status`.
 */
import { expect, test } from "bun:test";
import { renderStatus } from "../src/commands/status.ts";
import { startCluster, type Cluster } from "./support/cluster.ts";
import { counterLoad, ledgerViolations } from "./support/counter-load.ts";

interface Line {
  msg: string;
  t: string;
  [k: string]: unknown;
}

function logLines(c: Cluster): Line[] {
  return c
    .output()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Line);
}

/** [start, end] of each recycle and each reload, from the supervisor's log, in order. */
function spans(lines: Line[], start: string, end: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let open: number | null = null;
  for (const [i, l] of lines.entries()) {
    if (l.msg === start) {
      expect(open).toBeNull(); // never two at once
      open = i;
    } else if (l.msg === end && open !== null) {
      out.push([open, i]);
      open = null;
    }
  }
  return out;
}

async function waitFor<T>(what: string, probe: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(100);
  }
}

async function counts(c: Cluster, users: Iterable<string>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const u of users) {
    const r = await fetch(`${c.url}/api/1001`, { method: "POST", headers: { "x-qdp-user": u, "content-type": "application/json" }, body: "{}" });
    const body = (await r.json()) as { data: { count: number } };
    expect(r.status).toBe(200);
    // This probe itself is one more increment.
    out.set(u, body.data.count - 1);
  }
  return out;
}

test("QDP_MAX_REQUESTS under load with a SIGHUP in between: no failed call, every counter exact, one replacement at a time", async () => {
  const c = await startCluster({ workers: 2, env: { QDP_MAX_REQUESTS: "1500", QDP_MAX_REQUESTS_JITTER: "500" } });
  try {
    const load = counterLoad(c.url, { users: 300, concurrency: 24, prefix: "rc-" });
    // A reload while recycling goes on: it must wait for a recycle under way, and hold new ones.
    await waitFor("the first recycle", async () => ((await c.stats()).supervisor.recycles?.["max-requests"] ?? 0) >= 1 || null, 30_000);
    c.proc.kill("SIGHUP");
    await waitFor("the reload", async () => (await c.stats()).supervisor.reloads >= 1 || null, 30_000);
    const stats = await waitFor(
      "three recycles",
      async () => {
        const s = await c.stats();
        return (s.supervisor.recycles?.["max-requests"] ?? 0) >= 3 ? s : null;
      },
      45_000,
    );
    await load.stop();

    expect(load.unexpected).toEqual([]);
    expect(load.statuses).toEqual({ "200": load.total });
    expect(load.total).toBeGreaterThan(4_500);
    const final = await counts(c, load.ledger.keys());
    // Exact: with no failed call there is no "unknown", so final = acknowledged.
    expect(ledgerViolations(load, (u) => final.get(u)!)).toEqual([]);
    for (const [u, l] of load.ledger) expect({ u, n: final.get(u) }).toEqual({ u, n: l.acked });

    const lines = logLines(c);
    const recycles = spans(lines, "recycling worker", "worker recycled");
    const reloads = spans(lines, "rolling reload started", "rolling reload finished");
    expect(recycles.length).toBeGreaterThanOrEqual(3);
    expect(reloads.length).toBe(1);
    // Never during a reload: no recycle starts or ends inside the reload's span.
    const [r0, r1] = reloads[0]!;
    for (const [a, b] of recycles) expect(b < r0 || a > r1).toBe(true);
    for (const l of lines.filter((x) => x.msg === "recycling worker")) {
      expect(l.reason).toBe("max-requests");
      expect(l.handled as number).toBeGreaterThanOrEqual(l.requestLimit as number);
      expect(l.requestLimit as number).toBeGreaterThanOrEqual(1500);
      expect(l.requestLimit as number).toBeLessThanOrEqual(2000);
    }
    // Recycles are not crashes.
    expect(stats.workers.map((w) => w.restarts)).toEqual([0, 0]);
    expect(stats.workers.reduce((a, w) => a + (w.recycles?.["max-requests"] ?? 0), 0)).toBe(stats.supervisor.recycles!["max-requests"]);

    // The count probes above may push a worker over its limit: a replacement that started a moment
    // ago has not taken its first lag sample (every 100 ms) yet, so wait for one rather than assume it.
    const metrics = await waitFor(
      "worker 0's first event-loop lag sample",
      async () => {
        const m = await (await fetch(`http://127.0.0.1:${c.statsPort}/metrics`)).text();
        return /^qdp_event_loop_lag_seconds_count\{worker="0"\} [1-9]\d*$/m.test(m) ? m : null;
      },
      5_000,
    );
    const recycled = [...metrics.matchAll(/^qdp_recycles_total\{worker="\d",reason="max-requests"\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
    expect(recycled).toBeGreaterThanOrEqual(3);

    const now = await c.stats();
    const status = renderStatus(now, null, 0, c.statsPort);
    expect(status.split("\n")[0]).toContain(`recycled max-requests ${now.supervisor.recycles!["max-requests"]}, max-rss 0`);
    expect(status.split("\n")[1]).toMatch(/RECYCLED\s+STUCK\s+LAG$/);
  } finally {
    await c.stop();
  }
}, 150_000);

test("QDP_MAX_RSS below a fresh worker's footprint: replaced one at a time with a growing back-off, sessions kept", async () => {
  const c = await startCluster({ workers: 2, env: { QDP_MAX_RSS: "1m" } });
  try {
    const user = "rss-user";
    let expected = 0;
    const bump = async () => {
      const r = await fetch(`${c.url}/api/1001`, { method: "POST", headers: { "x-qdp-user": user }, body: "{}" });
      expect(r.status).toBe(200);
      expect(((await r.json()) as { data: { count: number } }).data.count).toBe(++expected);
    };
    await bump();
    const s = await waitFor(
      "four RSS recycles",
      async () => {
        await bump();
        const s = await c.stats();
        return (s.supervisor.recycles?.["max-rss"] ?? 0) >= 4 ? s : null;
      },
      40_000,
    );
    expect(s.supervisor.recycles?.["max-requests"]).toBe(0);
    const waits = logLines(c)
      .filter((l) => l.msg.startsWith("workers reach their recycling limit soon after they start"))
      .map((l) => l.waitMs as number);
    expect(waits.slice(0, 3)).toEqual([1000, 2000, 4000]);
    expect(spans(logLines(c), "recycling worker", "worker recycled").length).toBeGreaterThanOrEqual(4);
    await bump();
  } finally {
    await c.stop();
  }
}, 90_000);
