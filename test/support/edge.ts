/**
 * In-process edges for tier-1 tests: the real Elysia app, executor, router and — when asked —
 * a real hop over a Unix socket to a second in-process "worker", so the same cases run through
 * the owner directly and through the hop. No mocks: only the process boundary is left out.
 */
import { loadServiceSettings } from "../../src/services/settings.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Executor } from "../../src/affinity/executor.ts";
import { HopClient } from "../../src/affinity/hop-client.ts";
import { startHopServer, type HopServer } from "../../src/affinity/hop-server.ts";
import { createOwnerSide } from "../../src/affinity/owner-side.ts";
import { Router } from "../../src/affinity/router.ts";
import { SessionStore } from "../../src/affinity/sessions.ts";
import { createAllowList } from "../../src/core/cidr.ts";
import { loadConfig, type Config } from "../../src/core/config.ts";
import { parseKeyList } from "../../src/core/keys.ts";
import { ownerOf } from "../../src/core/ownership.ts";
import { createReplayCache } from "../../src/core/replay-cache.ts";
import { createReplayFence, guardReplay } from "../../src/core/replay-fence.ts";
import { createEdgeApp } from "../../src/edge/app.ts";
import type { EdgeCounters } from "../../src/edge/call-handler.ts";
import { createLogger } from "../../src/ops/logger.ts";
import { buildRegistry } from "../../src/services/index.ts";
import type { AnyService } from "../../src/services/types.ts";
import { createReplayMarks } from "../../src/stores/replay-mark.ts";
import type { RecordStore } from "../../src/stores/record-store.ts";
import { createSqliteStore } from "../../src/stores/sqlite-store.ts";

export interface TestEdge {
  app: ReturnType<typeof createEdgeApp>;
  config: Config;
  counters: EdgeCounters;
  executors: Executor[];
  /** The record store the services write to (the embedded store in a temporary directory). */
  records: RecordStore;
  /** A user owned by worker `i` (of 2 in hop mode). */
  userOwnedBy(i: number, salt?: string): string;
  close(): void;
}

export interface TestEdgeOptions {
  /** Two workers: edge 0 hops to worker 1 over a real Unix socket. */
  hop?: boolean;
  services?: AnyService[];
  env?: Record<string, string>;
  keys?: string;
  allow?: string;
  /** Text of a forward file (QDP_FORWARD_FILE) whose ranges the edge forwards. */
  forward?: string;
}

export function createTestEdge(o: TestEdgeOptions = {}): TestEdge {
  const dir = mkdtempSync(join(tmpdir(), "qdp-edge-"));
  try {
    return build(dir, o);
  } catch (err) {
    // A definition or setting the edge refuses: leave no directory behind.
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

function build(dir: string, o: TestEdgeOptions): TestEdge {
  const workers = o.hop ? 2 : 1;
  const config = loadConfig({ QDP_WORKERS: String(workers), QDP_DATA_DIR: dir, ...o.env }, 2);
  const log = createLogger("error");
  const registry = buildRegistry({ demo: true, services: o.services, forwardText: o.forward });
  const records = createSqliteStore({ dataDir: dir });
  const settings = loadServiceSettings(registry.list().map((s) => s.def), { ...o.env });
  if (settings.problems.length > 0) throw new Error(`service settings: ${settings.problems.join("; ")}`);
  const executors = Array.from(
    { length: workers },
    (_, worker) =>
      new Executor({
        worker,
        log,
        records,
        settings: settings.byService,
        sessions: new SessionStore(config.sessionMax, config.sessionTtlS * 1000),
        replay: (() => {
          // The real mark files, in this edge's temporary data directory; no fence (a first start).
          const marks = createReplayMarks({ dataDir: dir, index: worker });
          return guardReplay(createReplayCache({ maxEntries: config.nonceMax }), createReplayFence({ persistedSec: 0, persist: (sec) => marks.write(sec) }));
        })(),
        maxExecuting: config.maxInflight,
        upstreamTimeoutMs: config.upstreamTimeoutMs,
      }),
  );
  const secret = "test-cluster-secret";
  const hop = new HopClient({ self: 0, selfGen: 1, workers, secret, ownerWaitMs: config.ownerWaitMs, maxPending: config.hopMaxPending, log });
  let server: HopServer | null = null;
  let ownerHop: HopClient | null = null;
  if (o.hop) {
    const path = join(dir, "w1.sock");
    // Worker 1 answers with the same owner-side handler a real worker uses.
    ownerHop = new HopClient({ self: 1, selfGen: 2, workers, secret, ownerWaitMs: 100, maxPending: 10, log });
    const router1 = new Router(1, workers, executors[1]!, ownerHop);
    const owner = createOwnerSide({ index: 1, router: router1, executor: executors[1]!, registry, log, timeoutMs: config.timeoutMs });
    server = startHopServer({ path, secret, index: 1, gen: 2, log, handle: owner.handle });
    hop.setPeers([{ index: 1, gen: 2, path }]);
  }
  const router = new Router(0, workers, executors[0]!, hop);
  const counters: EdgeCounters = { requests: 0, inflight: 0, errors: {}, clientAborts: 0 };
  const keys = o.keys ? parseKeyList(o.keys).ring : null;
  const app = createEdgeApp({
    index: 0,
    config,
    registry,
    router,
    keys: () => keys,
    allow: o.allow ? createAllowList(o.allow) : null,
    counters,
    draining: () => false,
    log,
    signing: keys !== null,
    ready: () => true,
    readyInfo: () => ({}),
  });
  return {
    app,
    config,
    counters,
    executors,
    records,
    userOwnedBy(i, salt = "user") {
      for (let k = 0; ; k++) {
        const u = `${salt}-${k}`;
        if (workers === 1 || ownerOf(u, workers) === i) return u;
      }
    },
    close() {
      hop.stop();
      ownerHop?.stop();
      server?.stop();
      for (const e of executors) e.close();
      void records.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Calls the app in-process. */
export async function handle(edge: TestEdge, path: string, body: unknown, headers: Record<string, string> = {}, method = "POST") {
  const init: RequestInit = { method, headers: { "content-type": "application/json", ...headers } };
  if (method !== "GET") init.body = typeof body === "string" ? body : JSON.stringify(body);
  const res = await edge.app.handle(new Request(`http://localhost${path}`, init));
  const text = await res.text();
  let json: any = text;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, body: json, headers: res.headers, text };
}
