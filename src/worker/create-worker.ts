/**
 * Builds what runs calls in one worker — the executor, the hop client to the other workers,
 * the router between them, and the owner side that answers calls hopped in — from a config, the
 * worker's identity and the pieces of I/O it works with. The worker process (worker.ts), the
 * in-process test edges (test/support/edge.ts) and the hop micro-benchmark (bench/hop-micro.ts)
 * all build workers here, so they run the same wiring.
 *
 * What stays with the caller is what differs between them: where records, sessions and replay
 * marks live, whether a public port is served, and the process's life-cycle.
 */
import type { DurableSessions } from "../affinity/durable-sessions.ts";
import { Executor, type CallTracker } from "../affinity/executor.ts";
import { HopClient } from "../affinity/hop-client.ts";
import { createOwnerSide } from "../affinity/owner-side.ts";
import { Router } from "../affinity/router.ts";
import type { SessionStore } from "../affinity/sessions.ts";
import type { SharedReplay } from "../affinity/shared-replay.ts";
import type { Config } from "../core/config.ts";
import type { ReplayGuard } from "../core/replay-fence.ts";
import type { Registry } from "../services/registry.ts";
import type { ServiceSettings } from "../services/types.ts";
import type { RecordStore } from "../stores/record-store.ts";
import type { Logger } from "../types.ts";
import { setUpstreamMaxConnections } from "../upstream/client.ts";

/** Who a worker is: its index, the generation of this process, and the cluster's hop secret. */
export interface WorkerIdentity {
  index: number;
  gen: number;
  secret: string;
}

/** The I/O a worker's call machinery works with. */
export interface WorkerIo {
  log: Logger;
  records: RecordStore;
  registry: Registry;
  /** Each service's settings by service name. */
  settings: ReadonlyMap<string, ServiceSettings>;
  sessions: SessionStore;
  /** The durable session store (QDP_SESSION_STORE=redis). */
  durable?: DurableSessions | null;
  /** The owner's replay memory and fence. */
  replay: ReplayGuard;
  /** The cluster-wide nonce claim (QDP_REPLAY_STORE=redis). */
  sharedReplay?: SharedReplay | null;
  /** What a blocked loop can be traced to (worker/call-board.ts). */
  tracker?: CallTracker | null;
  /** Called when a rolling reload's hand-off has fully arrived. */
  onTakenOver?: () => void;
}

export type WorkerLimits = Pick<
  Config,
  "workers" | "maxInflight" | "upstreamTimeoutMs" | "upstreamMaxConnections" | "ownerWaitMs" | "hopMaxPending" | "timeoutMs"
>;

export interface WorkerCore {
  executor: Executor;
  hop: HopClient;
  router: Router;
  /** The hop handler (give it to startHopServer) and the count of calls run for other edges. */
  ownerSide: ReturnType<typeof createOwnerSide>;
}

export function createWorker(config: WorkerLimits, id: WorkerIdentity, io: WorkerIo): WorkerCore {
  setUpstreamMaxConnections(config.upstreamMaxConnections);
  const executor = new Executor({
    worker: id.index,
    log: io.log,
    records: io.records,
    settings: io.settings,
    sessions: io.sessions,
    durable: io.durable,
    replay: io.replay,
    sharedReplay: io.sharedReplay,
    maxExecuting: config.maxInflight,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    tracker: io.tracker,
  });
  const hop = new HopClient({
    self: id.index,
    selfGen: id.gen,
    workers: config.workers,
    secret: id.secret,
    ownerWaitMs: config.ownerWaitMs,
    maxPending: config.hopMaxPending,
    log: io.log,
  });
  const router = new Router(id.index, config.workers, executor, hop);
  const ownerSide = createOwnerSide({
    index: id.index,
    router,
    executor,
    registry: io.registry,
    log: io.log,
    timeoutMs: config.timeoutMs,
    onTakenOver: io.onTakenOver,
  });
  return { executor, hop, router, ownerSide };
}
