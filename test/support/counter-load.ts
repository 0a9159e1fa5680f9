/**
 * Load on `demo.counter` that keeps an exact ledger per user: increments acknowledged with 200,
 * and calls whose outcome the caller cannot know (503, 504, or no answer at all). After crashes
 * or outages, every stored count must lie in [acknowledged, acknowledged + unknown].
 */

export interface Ledger {
  acked: number;
  unknown: number;
}

export interface CounterLoad {
  ledger: Map<string, Ledger>;
  /** Answers neither 200 nor an "outcome unknown" status: each one is a bug. */
  unexpected: string[];
  /** Count of answers by status ("net" for no answer). */
  statuses: Record<string, number>;
  /** Slowest answer seen, in ms (bounded waits show here). */
  slowestMs: number;
  readonly total: number;
  stop(): Promise<void>;
}

/**
 * Starts `concurrency` loops, each calling `demo.counter` for users `${prefix}0..users-1` in turn,
 * over keep-alive connections to `url`.
 */
export function counterLoad(
  url: string,
  o: {
    users: number;
    concurrency: number;
    prefix: string;
    timeoutMs?: number;
    /** Extra headers per call (e.g. the UAP signature of `POST /api/1001` with body `{}` for the user). */
    headers?: (user: string) => Record<string, string>;
    /**
     * Statuses whose outcome the caller cannot know besides 503 and 504 — e.g. a front proxy's
     * 502 for a call its host died with.
     */
    unknownStatuses?: number[];
    /** Sees every answer (status and headers) as it arrives. */
    onResponse?: (user: string, r: Response) => void;
  },
): CounterLoad {
  const unknown = new Set([503, 504, ...(o.unknownStatuses ?? [])]);
  const extra = o.headers;
  const ledger = new Map<string, Ledger>();
  for (let u = 0; u < o.users; u++) ledger.set(`${o.prefix}${u}`, { acked: 0, unknown: 0 });
  const load: CounterLoad = {
    ledger,
    unexpected: [],
    statuses: {},
    slowestMs: 0,
    get total() {
      return Object.values(load.statuses).reduce((a, b) => a + b, 0);
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
  let running = true;
  let next = 0;
  const loop = async () => {
    while (running) {
      const user = `${o.prefix}${next++ % o.users}`;
      const entry = ledger.get(user)!;
      const t0 = performance.now();
      let status = "net";
      try {
        const r = await fetch(`${url}/api/1001`, {
          method: "POST",
          headers: extra === undefined ? { "content-type": "application/json", "x-qdp-user": user } : withHeaders(user, extra(user)),
          body: "{}",
          signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
        });
        status = String(r.status);
        const text = await r.text();
        o.onResponse?.(user, r);
        if (r.status !== 200 && !unknown.has(r.status)) load.unexpected.push(`${user}: ${r.status} ${text}`);
      } catch {
        status = "net";
      }
      load.slowestMs = Math.max(load.slowestMs, performance.now() - t0);
      load.statuses[status] = (load.statuses[status] ?? 0) + 1;
      if (status === "200") entry.acked++;
      else {
        entry.unknown++;
        // A refused call is answered at once; pause so an outage is not a busy loop.
        await Bun.sleep(5);
      }
    }
  };
  const loops = Array.from({ length: o.concurrency }, loop);
  return load;
}

/** Users whose final count is outside [acked, acked + unknown], as readable lines. */
export function ledgerViolations(load: CounterLoad, finalCount: (user: string) => number): string[] {
  const bad: string[] = [];
  for (const [user, l] of load.ledger) {
    const n = finalCount(user);
    if (n < l.acked || n > l.acked + l.unknown) bad.push(`${user}: count ${n}, acknowledged ${l.acked}, unknown ${l.unknown}`);
  }
  return bad;
}

/** The load's headers plus `more`, names compared case-insensitively (`more` wins, never doubled). */
function withHeaders(user: string, more: Record<string, string>): Headers {
  const h = new Headers({ "content-type": "application/json", "x-qdp-user": user });
  for (const [k, v] of Object.entries(more)) h.set(k, v);
  return h;
}
