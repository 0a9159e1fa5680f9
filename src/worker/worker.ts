/**
 * One worker process: the edge (Elysia on the shared public port), the hop (listener and peer
 * connections), the executor with this index's sessions, and the record store. Started by the
 * supervisor with QDP_WORKER_INDEX, QDP_WORKER_GEN and QDP_CLUSTER_SECRET in its environment.
 */
import { mkdirSync, readFileSync, unlinkSync } from "node:fs";
import { availableParallelism } from "node:os";
import { DurableSessions } from "../affinity/durable-sessions.ts";
import { hopSocketPath, startHopServer } from "../affinity/hop-server.ts";
import { sendHandoff } from "../affinity/owner-side.ts";
import { outboxTotals } from "../affinity/outbox.ts";
import { SessionStore } from "../affinity/sessions.ts";
import { SharedReplay } from "../affinity/shared-replay.ts";
import { createAllowList } from "../core/cidr.ts";
import { ConfigError, configSource, loadConfig, type Config } from "../core/config.ts";
import { loadKeyRing, type KeyRing } from "../core/keys.ts";
import { createReplayCache } from "../core/replay-cache.ts";
import { createReplayFence, fenceFromMarks, guardReplay } from "../core/replay-fence.ts";
import { createEdgeApp } from "../edge/app.ts";
import { startPublicServer } from "../edge/public-server.ts";
import { createWorker } from "./create-worker.ts";
import type { EdgeCounters } from "../edge/call-handler.ts";
import { CallDurations } from "../telemetry/call-durations.ts";
import { createLogLimiter } from "../telemetry/log-limiter.ts";
import { createAccessWriter, createLogger, flushLogs } from "../telemetry/logger.ts";
import { cpuSeconds, openFds } from "../telemetry/process-stats.ts";
import { ALL_SERVICES, buildRegistry } from "../services/index.ts";
import type { Registry } from "../services/registry.ts";
import { loadServiceSettings, settingNames } from "../services/settings.ts";
import { createRecordStore, createRedisStores } from "../stores/index.ts";
import { timedRecordStore } from "../stores/timed-record-store.ts";
import { createReplayMarks, type ReplayMarks } from "../stores/replay-mark.ts";
import { SNAPSHOT_ENV } from "../supervisor/forward-table.ts";
import { upstreamStats } from "../upstream/client.ts";
import { setListenBacklog } from "./backlog.ts";
import { callBoardPath, openCallBoard } from "./call-board.ts";
import { startHeartbeat } from "./heartbeat.ts";
import type { FromWorker, ToWorker } from "./ipc.ts";
import type { WorkerStats } from "../types.ts";

const index = Number(process.env.QDP_WORKER_INDEX);
const gen = Number(process.env.QDP_WORKER_GEN);
const secret = process.env.QDP_CLUSTER_SECRET ?? "";
const takesOver = process.env.QDP_WORKER_HANDOFF === "1";
// The secret is for this process only: keep it out of anything that might print the env.
delete process.env.QDP_CLUSTER_SECRET;

const send = (m: FromWorker) => process.send?.(m);

/**
 * The configuration, read again by every worker (a rolling reload re-reads QDP_CONFIG). A bad
 * one — say the file was edited before a reload — is one JSON line and a "fatal" message to the
 * supervisor, which stops the reload and reports it (`qdp reload --wait` exits 1); never a stack.
 */
const serviceKeys = settingNames(ALL_SERVICES);
async function readConfig(): Promise<{ config: Config; configText: string | undefined }> {
  const file = process.env.QDP_CONFIG || undefined;
  try {
    const configText = file === undefined ? undefined : readFileSync(file, "utf8");
    return { config: loadConfig(process.env, availableParallelism(), configText, serviceKeys, file), configText };
  } catch (err) {
    const message = err instanceof ConfigError ? err.message : `QDP_CONFIG: cannot read ${file}: ${(err as Error).message}`;
    const line = { t: new Date().toISOString(), level: "error", msg: `worker cannot start: ${message}`, worker: index, pid: process.pid };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    send({ type: "fatal", message });
    await Bun.sleep(50); // let the IPC message leave first
    process.exit(1);
  }
}
const { config, configText } = await readConfig();
const log = createLogger(config.logLevel, { worker: index, pid: process.pid });

let state: WorkerStats["state"] = "starting";
const startedAt = Date.now();
const counters: EdgeCounters = { requests: 0, inflight: 0, errors: {}, clientAborts: 0 };

function readKeys(): KeyRing | null {
  const { ring, warnings } = loadKeyRing({ QDP_UAP_KEYS: config.uapKeys, QDP_UAP_KEYS_FILE: config.uapKeysFile }, (p) => readFileSync(p, "utf8"));
  for (const w of warnings) log.warn(w);
  return ring.size === 0 ? null : ring;
}
let keys = readKeys();

// Until the worker is up (the record store may take seconds to connect), a stop needs no drain.
const stopWhileStarting = (m: ToWorker) => {
  if (m.type === "drain") process.exit(0);
};
process.on("message", stopWhileStarting);

/** A start-up failure is reported in one log line and to the supervisor, never as a stack trace. */
async function fatal(message: string): Promise<never> {
  log.error(`worker cannot start: ${message}`);
  send({ type: "fatal", message });
  await flushLogs();
  process.exit(1);
}

const records = timedRecordStore(
  await createRecordStore({
    mongoUrl: config.mongoUrl,
    mongoPool: config.mongoPool,
    mongoWriteConcern: config.mongoWriteConcern,
    mongoSocketTimeoutMs: config.timeoutMs + 5000,
    dataDir: config.dataDir,
  }).catch((err: Error) => fatal(err.message)),
);
// The forward table comes from the supervisor's snapshot (the file as last accepted at start or
// by SIGHUP), not the file on disk: see supervisor/forward-table.ts.
const forwardPath = process.env[SNAPSHOT_ENV] || config.forwardFile;
let registry: Registry;
try {
  registry = buildRegistry({ demo: config.demoServices, forwardText: forwardPath ? readFileSync(forwardPath, "utf8") : undefined });
} catch (err) {
  registry = await fatal(err instanceof ConfigError ? err.problems.join("; ") : (err as Error).message);
}
// Read when the worker starts, so a rolling reload picks up a changed QDP_CONFIG file.
const serviceSettings = loadServiceSettings(
  registry.list().map((s) => s.def),
  configSource(process.env, configText, serviceKeys),
);
if (serviceSettings.problems.length > 0) await fatal(`invalid service settings: ${serviceSettings.problems.join("; ")}`);
const sessions = new SessionStore(config.sessionMax, config.sessionTtlS * 1000);
const redisStores = createRedisStores({
  store: config.sessionStore,
  replayStore: config.replayStore,
  redisUrl: config.redisUrl,
  redisPrefix: config.redisPrefix,
  redisTimeoutMs: config.redisTimeoutMs,
  ttlMs: config.sessionTtlS * 1000,
  onEvent: (event, detail) =>
    event === "up"
      ? log.info("redis connected", { detail, sessions: config.sessionStore, replay: config.replayStore })
      : log.warn(
          `redis connection lost; until it is back ${[config.sessionStore === "redis" ? "stateful calls" : "", config.replayStore === "redis" ? "signed calls" : ""].filter(Boolean).join(" and ")} answer 503`,
          { detail },
        ),
});
const sessionBackend = redisStores.sessions;
const sharedReplay = redisStores.replay === null ? null : new SharedReplay(redisStores.replay);
if (sharedReplay !== null && keys === null) log.warn("QDP_REPLAY_STORE=redis has nothing to do: no UAP keys, so no call is signed");
const durable = sessionBackend === null ? null : new DurableSessions({ cache: sessions, backend: sessionBackend, freshMs: config.sessionFreshMs });
// ---- replay protection that survives crashes and restarts (core/replay-fence.ts) ----
const marks: ReplayMarks = await Promise.resolve()
  .then(() => createReplayMarks({ dataDir: config.dataDir, index }))
  .catch((err: Error) => fatal(`cannot keep replay marks under QDP_DATA_DIR: ${err.message}`));
const ownMark = marks.readOwn();
let markErrorLoggedAt = 0;
/** Writes the mark; a failure refuses the call (INTERNAL) and is logged here, at most once a second. */
function persistMark(sec: number): number {
  try {
    return marks.write(sec);
  } catch (err) {
    if (Date.now() - markErrorLoggedAt >= 1000) {
      markErrorLoggedAt = Date.now();
      log.error("cannot write the replay mark: signed calls stamped after it are refused until it can", { dir: marks.dir, err: (err as Error).message });
    }
    throw err;
  }
}
const fence = createReplayFence({ persistedSec: ownMark !== null && "sec" in ownMark ? ownMark.sec : 0, persist: persistMark });
const replay = guardReplay(createReplayCache({ maxEntries: config.nonceMax }), fence);

/**
 * Sets the fence from every index's mark: for a worker that opens without its predecessor's
 * nonces. Read at the moment it opens (not earlier), so whatever a predecessor accepted up to
 * its death is under the fence.
 */
function fenceFromFiles(why: string): void {
  const nowSec = Math.floor(Date.now() / 1000);
  const { fenceSec, unreadable } = fenceFromMarks(marks.readAll(), nowSec);
  fence.raise(fenceSec);
  if (unreadable.length > 0) {
    log.error("unreadable replay marks taken as now + 300 s: signed calls are refused until then", { dir: marks.dir, unreadable, fenceSec });
    // Our own damaged mark is replaced by that value, so a later start does not push it further.
    if (unreadable.includes(`w${index}`)) marks.write(fenceSec);
  }
  if (fenceSec > 0) {
    log.info("replay fence set: signed calls stamped at or before it are refused (UAP signs them again)", {
      why,
      fenceSec,
      fenceAt: new Date(fenceSec * 1000).toISOString(),
    });
  }
}
const { executor, hop, router, ownerSide } = createWorker(
  config,
  { index, gen, secret },
  {
    log,
    records,
    registry,
    settings: serviceSettings.byService,
    sessions,
    durable,
    replay,
    sharedReplay,
    // What the supervisor reads if this worker's loop ever stops (call-board.ts).
    tracker: openCallBoard(callBoardPath(config.runtimeDir, index, gen)),
    onTakenOver() {
      if (handoffTimer) clearTimeout(handoffTimer);
      state = "ready";
    },
  },
);

// A replacement runs nothing for its users until the old worker handed their sessions over.
let handoffTimer: ReturnType<typeof setTimeout> | null = null;
if (takesOver) {
  state = "waiting-handoff";
  executor.closeGate();
  // If the old worker dies instead of handing over, its sessions are gone anyway: go on.
  handoffTimer = setTimeout(() => {
    if (executor.gateIsOpen) return;
    log.warn("no hand-off from the previous worker of this index; starting with empty sessions");
    fenceFromFiles("no hand-off from the previous worker");
    executor.openGate();
    state = "ready";
  }, config.graceMs + config.ownerWaitMs);
} else {
  // First start, respawn after a crash, full restart: the nonces of whoever ran before are gone.
  marks.removeStaleTemp();
  fenceFromFiles("started without a hand-off");
}

// ---- hop server: calls from other edges ----
// The supervisor checked (or made) the directory before starting any worker; this only brings
// it back if someone removed it meanwhile.
mkdirSync(config.runtimeDir, { recursive: true, mode: 0o700 });
const hopPath = hopSocketPath(config.runtimeDir, index, gen);
// However this process ends short of SIGKILL (drain, the supervisor gone, a fatal error), its
// socket goes with it; after a SIGKILL the supervisor removes it.
process.on("exit", () => {
  try {
    unlinkSync(hopPath);
  } catch {}
});
const hopServer = startHopServer({ path: hopPath, secret, index, gen, log, handle: ownerSide.handle });

// ---- edge ----
let draining = false;
const durations = new CallDurations();
const warnLimiter = createLogLimiter();
// Lines held back by the limiter are reported as one summary per reason when their window ends.
setInterval(() => {
  for (const { key, suppressed } of warnLimiter.drain(Date.now())) log.warn("similar lines suppressed", { key, suppressed, windowS: 10 });
}, 10_000).unref();
const allow = config.allowCidrs.trim() === "" ? null : createAllowList(config.allowCidrs);
const edgeDeps = {
  index,
  config,
  registry,
  router,
  keys: () => keys,
  allow,
  counters,
  draining: () => draining,
  log,
  accessLog: { share: config.accessLog, write: createAccessWriter(config.logLevel, { worker: index, pid: process.pid }) },
  durations,
  warnLimiter,
  signing: keys !== null,
  durableSessions: config.sessionStore === "redis",
  clusterReady: () => peersUp() === config.workers - 1,
  ready: () => state === "ready" || state === "waiting-handoff",
  readyInfo: () => ({ state, peersUp: peersUp(), workers: config.workers }),
};

function peersUp(): number {
  let n = 0;
  for (let i = 0; i < config.workers; i++) if (i !== index && hop.isUp(i)) n++;
  return n;
}

// The public port (and the direct port) speak HTTP/1.1 through our own transport; Elysia answers
// everything but the two call routes (edge/public-server.ts says why).
const app = createEdgeApp(edgeDeps);
// TLS on the public port: the files are read here, at every worker start, so a rolling reload
// (SIGHUP) serves renewed certificates — each replacement reads them anew, and one that cannot
// read them stops the reload while the old workers keep serving. The direct ports stay plain
// HTTP: they are for a front proxy on the same host (see README, TLS).
let tls: { cert: string; key: string } | undefined;
if (config.tlsCert !== undefined && config.tlsKey !== undefined) {
  try {
    tls = { cert: readFileSync(config.tlsCert, "utf8"), key: readFileSync(config.tlsKey, "utf8") };
  } catch (err) {
    await fatal(`cannot read the TLS certificate or key (QDP_TLS_CERT=${config.tlsCert}, QDP_TLS_KEY=${config.tlsKey}): ${(err as Error).message}`);
  }
}
const listen = (port: number, secure?: { cert: string; key: string }) =>
  startPublicServer({ hostname: config.host, port, deps: edgeDeps, limits: config, app, ...(secure === undefined ? {} : { tls: secure }) });
let server: ReturnType<typeof listen>;
try {
  server = listen(config.port, tls);
} catch (err) {
  // A certificate Bun refuses (not PEM, key not matching) fails here: one line, no stack.
  server = await fatal(`cannot listen on ${config.host}:${config.port}${tls ? " with TLS" : ""}: ${(err as Error).message}`);
}
setListenBacklog(server.port, config.backlog, log);
const direct = config.directPortBase === undefined ? null : listen(config.directPortBase + index);
if (direct) setListenBacklog(direct.port, config.backlog, log);

if (state === "starting") state = "ready";
log.info("worker listening", { port: server.port, tls: tls !== undefined, direct: direct?.port, hop: hopPath, gen, takesOver });
// Heartbeats start with readiness: the supervisor watches a worker from its first beat.
const heartbeat = startHeartbeat({
  stuckMs: config.stuckMs,
  send: (b) => send({ type: "heartbeat", ...b }),
  counts: () => ({ handled: counters.requests + ownerSide.hopsIn, requests: counters.requests, hopsIn: ownerSide.hopsIn, hopsOut: hop.hopsOut }),
});
send({ type: "ready", index, gen, hopPath });

// ---- sweeps ----
const sweeper = setInterval(() => sessions.sweep(), 10_000);
sweeper.unref();

// ---- life-cycle ----
/**
 * Stops accepting and lets in-flight work finish (bounded by QDP_GRACE_MS), then exits.
 * Closing our listener is safe only because the kernel migrates connections still queued on
 * it to the other listeners of the port (net.ipv4.tcp_migrate_req=1, which the supervisor
 * turns on; see docs/tuning.md). Open connections are not cut: each gets `Connection: close` on
 * its next response and is closed after it; one that stays idle for QDP_DRAIN_IDLE_MS is closed
 * (clients reusing a connection at once always get their answer). Only then do we exit.
 */
async function drainAndExit(): Promise<never> {
  if (!draining) {
    draining = true;
    if (state !== "handing-off") state = "draining";
    send({ type: "draining" });
    const until = Date.now() + config.graceMs;
    server.drain(config.drainIdleMs);
    direct?.drain(config.drainIdleMs);
    // Wait for calls at this edge, calls run for other edges and open connections, then a short
    // quiet period so a peer's call that is still in its event loop can arrive.
    let quietSince = 0;
    while (Date.now() < until) {
      const busy = counters.inflight > 0 || executor.executing > 0 || server.connections > 0 || (direct?.connections ?? 0) > 0;
      if (busy) quietSince = 0;
      else if (quietSince === 0) quietSince = Date.now();
      else if (Date.now() - quietSince >= 200) break;
      await Bun.sleep(10);
    }
    if (counters.inflight > 0 || executor.executing > 0 || server.connections > 0) {
      log.warn("grace period over with work in flight", { inflight: counters.inflight, executing: executor.executing, connections: server.connections });
    }
    hop.stop();
    hopServer.stop();
    server.close();
    direct?.close();
    await records.close().catch(() => {});
    sessionBackend?.close();
    sharedReplay?.close();
    redisStores.client?.close();
    log.info("worker stopped", { requests: counters.requests });
    await flushLogs();
  }
  process.exit(0);
}

/** Rolling reload: the replacement is up; hand it this index's sessions and nonces, then drain. */
async function handOff(): Promise<void> {
  if (!router.ownsIndex) return;
  state = "handing-off";
  const sessionsSent = await sendHandoff({ index, router, executor, hop, graceMs: config.graceMs, log });
  send({ type: "handed-off", sessions: sessionsSent });
}

process.off("message", stopWhileStarting);
process.on("message", (m: ToWorker) => {
  switch (m.type) {
    case "peers":
      hop.setPeers(m.peers);
      break;
    case "stats":
      send({ type: "stats", id: m.id, stats: collectStats() });
      break;
    case "handoff":
      handOff().then(drainAndExit);
      break;
    case "drain":
      void drainAndExit();
      break;
    case "reload-keys":
      try {
        keys = readKeys();
        log.info("UAP keys reloaded", { keys: keys ? [...keys.keys()] : [] });
      } catch (err) {
        log.error("UAP key reload failed; keeping the previous keys", { err: (err as Error).message });
      }
      break;
  }
});

// Never outlive the supervisor: a worker left behind would keep serving the port with stale
// ownership. The IPC channel closes when the supervisor dies, even by SIGKILL; the parent-pid
// check covers the case where the disconnect event is missed.
process.on("disconnect", () => process.exit(0));
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 500).unref();
// Signals belong to the supervisor; a worker sent SIGTERM directly drains like a stop.
process.on("SIGTERM", () => void drainAndExit());
process.on("SIGINT", () => {});
process.on("SIGHUP", () => {});

function collectStats(): WorkerStats {
  const mem = process.memoryUsage();
  const upstream: WorkerStats["upstream"] = {};
  for (const [name, s] of upstreamStats) upstream[name] = { calls: s.calls, errors: s.errors, timeouts: s.timeouts, latency: s.latency.toJSON() };
  return {
    index,
    pid: process.pid,
    gen,
    state,
    startedAt,
    requests: counters.requests,
    hopsIn: ownerSide.hopsIn,
    hopsOut: hop.hopsOut,
    inflight: counters.inflight,
    executing: executor.executing,
    rssBytes: mem.rss,
    eventLoopLag: heartbeat.lag.toJSON(),
    eventLoopLagMs: heartbeat.lagRecentMs,
    eventLoopLagMaxMs: heartbeat.lagMaxMs,
    heapBytes: mem.heapUsed,
    sessions: sessions.size,
    sessionsEvicted: sessions.evicted,
    sessionsExpired: sessions.expired,
    ...(durable === null ? {} : { sessionStore: { ...durable.stats, latency: durable.latency.toJSON() } }),
    nonces: replay.size,
    ...(sharedReplay === null ? {} : { replayStore: { ...sharedReplay.stats, latency: sharedReplay.latency.toJSON() } }),
    replayFence: fence.fenceSec,
    ownerWaits: hop.ownerWaits,
    ownerUnavailable: hop.ownerUnavailable,
    waitingForOwner: hop.waitingCounts().reduce((a, b) => a + b, 0),
    peersUp: peersUp(),
    hopLatency: hop.latency.toJSON(),
    hopFrames: outboxTotals.frames,
    hopWrites: outboxTotals.writes,
    errors: { ...counters.errors },
    clientAborts: counters.clientAborts,
    connections: server.connections + (direct?.connections ?? 0),
    upstream,
    records: records.stats(),
    cpuSeconds: cpuSeconds(),
    openFds: openFds(),
    durations: durations.toJSON(),
  };
}
