/**
 * In-process edges for tier-1 tests: the real Elysia app, executor, router and — when asked —
 * a real hop over a Unix socket to a second in-process "worker", so the same cases run through
 * the owner directly and through the hop. No mocks: only the process boundary is left out.
 */
import { loadServiceSettings } from "../../src/services/settings.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Executor } from "../../src/affinity/executor.ts";
import { startHopServer, type HopServer } from "../../src/affinity/hop-server.ts";
import { SessionStore } from "../../src/affinity/sessions.ts";
import { createAllowList } from "../../src/core/cidr.ts";
import { loadConfig, type Config } from "../../src/core/config.ts";
import { parseKeyList } from "../../src/core/keys.ts";
import { ownerOf } from "../../src/core/ownership.ts";
import { createReplayCache } from "../../src/core/replay-cache.ts";
import { createReplayFence, guardReplay } from "../../src/core/replay-fence.ts";
import { createEdgeApp } from "../../src/edge/app.ts";
import type { EdgeCounters } from "../../src/edge/call-handler.ts";
import { createLogger } from "../../src/telemetry/logger.ts";
import { buildRegistry } from "../../src/services/index.ts";
import type { AnyService } from "../../src/services/types.ts";
import { createReplayMarks } from "../../src/stores/replay-mark.ts";
import type { RecordStore } from "../../src/stores/record-store.ts";
import { createSqliteStore } from "../../src/stores/sqlite-store.ts";
import { createWorker } from "../../src/worker/create-worker.ts";

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
  const settings = loadServiceSettings(
    registry.list().map((s) => s.def),
    { ...o.env },
  );
  if (settings.problems.length > 0) throw new Error(`service settings: ${settings.problems.join("; ")}`);
  const secret = "test-cluster-secret";
  // Each in-process worker is built by the same factory as a worker process.
  const cores = Array.from({ length: workers }, (_, index) =>
    createWorker(
      config,
      { index, gen: index + 1, secret },
      {
        log,
        records,
        registry,
        settings: settings.byService,
        sessions: new SessionStore(config.sessionMax, config.sessionTtlS * 1000),
        replay: (() => {
          // The real mark files, in this edge's temporary data directory; no fence (a first start).
          const marks = createReplayMarks({ dataDir: dir, index });
          return guardReplay(createReplayCache({ maxEntries: config.nonceMax }), createReplayFence({ persistedSec: 0, persist: (sec) => marks.write(sec) }));
        })(),
      },
    ),
  );
  const executors = cores.map((c) => c.executor);
  const hop = cores[0]!.hop;
  let server: HopServer | null = null;
  if (o.hop) {
    // Worker 1 answers over a real Unix socket with the owner-side handler a worker process uses.
    const path = join(dir, "w1.sock");
    server = startHopServer({ path, secret, index: 1, gen: 2, log, handle: cores[1]!.ownerSide.handle });
    hop.setPeers([{ index: 1, gen: 2, path }]);
  }
  const router = cores[0]!.router;
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
      for (const c of cores) c.hop.stop();
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
