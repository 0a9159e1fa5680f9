/**
 * One worker process: the edge (Elysia on the shared public port), the hop (listener and peer
 * connections), the executor with this index's sessions, and the record store. Started by the
 * supervisor with QDP_WORKER_INDEX, QDP_WORKER_GEN and QDP_CLUSTER_SECRET in its environment.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Executor } from "../affinity/executor.ts";
import { HopClient } from "../affinity/hop-client.ts";
import { startHopServer, type HopReply } from "../affinity/hop-server.ts";
import { outboxTotals } from "../affinity/outbox.ts";
import { Router } from "../affinity/router.ts";
import { SessionStore, type SessionSnapshot } from "../affinity/sessions.ts";
import { createAllowList } from "../core/cidr.ts";
import { loadConfig } from "../core/config.ts";
import { QdpError, toQdpError } from "../core/errors.ts";
import { decodeText, FrameType, splitCall } from "../core/frames.ts";
import { loadKeyRing, type KeyRing } from "../core/keys.ts";
import { createReplayCache, type ReplayEntry } from "../core/replay-cache.ts";
import { createEdgeApp } from "../edge/app.ts";
import type { EdgeCounters } from "../edge/call-handler.ts";
import { createLogger, flushLogs } from "../ops/logger.ts";
import { buildRegistry } from "../services/index.ts";
import { createRecordStore } from "../stores/index.ts";
import { upstreamStats } from "../upstream/client.ts";
import { setListenBacklog } from "./backlog.ts";
import type { FromWorker, ToWorker } from "./ipc.ts";
import type { WorkerStats } from "./stats.ts";

const index = Number(process.env.QDP_WORKER_INDEX);
const gen = Number(process.env.QDP_WORKER_GEN);
const secret = process.env.QDP_CLUSTER_SECRET ?? "";
const takesOver = process.env.QDP_WORKER_HANDOFF === "1";
// The secret is for this process only: keep it out of anything that might print the env.
delete process.env.QDP_CLUSTER_SECRET;

const config = loadConfig(process.env, availableParallelism(), process.env.QDP_CONFIG ? readFileSync(process.env.QDP_CONFIG, "utf8") : undefined);
const log = createLogger(config.logLevel, { worker: index, pid: process.pid });
const send = (m: FromWorker) => process.send?.(m);

let state: WorkerStats["state"] = "starting";
const startedAt = Date.now();
let hopsIn = 0;
const counters: EdgeCounters = { requests: 0, inflight: 0, errors: {} };

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

const records = await createRecordStore({
  mongoUrl: config.mongoUrl,
  mongoPool: config.mongoPool,
  mongoWriteConcern: config.mongoWriteConcern,
  dataDir: config.dataDir,
}).catch((err: Error) => fatal(err.message));
const registry = buildRegistry({ demo: config.demoServices });
const sessions = new SessionStore(config.sessionMax, config.sessionTtlS * 1000);
const replay = createReplayCache({ maxEntries: config.nonceMax });
const executor = new Executor({
  worker: index,
  log,
  records,
  settings: { upstreamA: config.upstreamA, upstreamB: config.upstreamB },
  sessions,
  replay,
  maxExecuting: config.maxInflight,
  upstreamTimeoutMs: config.upstreamTimeoutMs,
});
const hop = new HopClient({
  self: index,
  selfGen: gen,
  workers: config.workers,
  secret,
  ownerWaitMs: config.ownerWaitMs,
  maxPending: config.hopMaxPending,
  log,
});
const router = new Router(index, config.workers, executor, hop);

// A replacement runs nothing for its users until the old worker handed their sessions over.
let handoffTimer: ReturnType<typeof setTimeout> | null = null;
if (takesOver) {
  state = "waiting-handoff";
  executor.closeGate();
  // If the old worker dies instead of handing over, its sessions are gone anyway: go on.
  handoffTimer = setTimeout(() => {
    if (executor.gateIsOpen) return;
    log.warn("no hand-off from the previous worker of this index; starting with empty sessions");
    executor.openGate();
    state = "ready";
  }, config.graceMs + config.ownerWaitMs);
}

// ---- hop server: calls from other edges ----
mkdirSync(config.runtimeDir, { recursive: true, mode: 0o700 });
const hopPath = `${config.runtimeDir}/w${index}-g${gen}.sock`;
const ERROR_INTERNAL: HopReply = { type: FrameType.ERROR, text: JSON.stringify({ code: "INTERNAL", message: "internal error" }) };
const MOVED: HopReply = { type: FrameType.MOVED, text: JSON.stringify({ index }) };

function errorReply(err: unknown): HopReply {
  const e = toQdpError(err);
  return { type: FrameType.ERROR, text: JSON.stringify({ code: e.code, message: e.message, details: e.details, retryAfter: e.retryAfter }) };
}

function onHopCall(payload: Uint8Array): HopReply | Promise<HopReply> {
  if (!router.ownsIndex) return MOVED;
  hopsIn++;
  try {
    const { head, input } = splitCall(payload);
    // A hopped call is never hopped again: if this worker does not own the user (a
    // misconfigured peer), refuse it rather than bounce it around the cluster.
    if (head.u !== null && router.ownerOf(head.u) !== index) {
      log.error("hop: call for a user this worker does not own", { requestId: head.r });
      throw new QdpError("OWNER_UNAVAILABLE", "ownership disagreement between workers");
    }
    const out = executor.run({
      service: registry.require(head.f),
      user: head.u,
      requestId: head.r,
      input: input.length === 0 ? null : JSON.parse(decodeText(input)),
      deadline: Date.now() + head.t,
      replay: head.n,
    });
    // Synchronous handlers answer without a promise.
    return typeof out === "string" ? { type: FrameType.RESULT, text: out } : out.then(resultReply, errorReply);
  } catch (err) {
    return errorReply(err);
  }
}

function resultReply(text: string): HopReply {
  return { type: FrameType.RESULT, text };
}

async function onHopNonce(payload: Uint8Array): Promise<HopReply> {
  if (!router.ownsIndex) return MOVED;
  const [nonce, ts] = JSON.parse(decodeText(payload)) as [string, number];
  // The replacement must have the old worker's nonces before it may judge a replay.
  await executor.awaitGate(Date.now() + config.timeoutMs);
  return { type: FrameType.RESULT, text: JSON.stringify(replay.checkAndRemember(null, nonce, ts, Math.floor(Date.now() / 1000))) };
}

interface HandoffBatch {
  sessions: SessionSnapshot[];
  nonces: ReplayEntry[];
  last: boolean;
}

function onHandoff(payload: Uint8Array): HopReply {
  const batch = JSON.parse(decodeText(payload)) as HandoffBatch;
  sessions.restore(batch.sessions);
  replay.import(batch.nonces, Math.floor(Date.now() / 1000));
  if (batch.last) {
    if (handoffTimer) clearTimeout(handoffTimer);
    log.info("took over sessions from the previous worker", { sessions: sessions.size, nonces: replay.size });
    executor.openGate();
    state = "ready";
  }
  return { type: FrameType.HANDOFF_ACK, text: "" };
}

const hopServer = startHopServer({
  path: hopPath,
  secret,
  log,
  handle(type, payload) {
    switch (type) {
      case FrameType.CALL:
        return onHopCall(payload);
      case FrameType.NONCE:
        return onHopNonce(payload).catch(errorReply);
      case FrameType.HANDOFF:
        return onHandoff(payload);
      default:
        return ERROR_INTERNAL;
    }
  },
});

// ---- edge ----
let draining = false;
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
  signing: keys !== null,
  ready: () => state === "ready" || state === "waiting-handoff",
  readyInfo: () => ({ state, peersUp: peersUp(), workers: config.workers }),
};

function peersUp(): number {
  let n = 0;
  for (let i = 0; i < config.workers; i++) if (i !== index && hop.isUp(i)) n++;
  return n;
}

// Bun answers bodies past maxRequestBodySize itself; keep that well above QDP_MAX_BODY so our
// own 413 with the contract's body is what callers see. Bun also closes a connection whose
// request shows no activity for idleTimeout seconds, pending handler included: keep it past
// the call deadline (Bun's maximum is 255 s), so a slow call ends in our 504, not a cut socket.
const serveOptions = {
  hostname: config.host,
  reusePort: true,
  maxRequestBodySize: config.maxBody * 2 + 65536,
  idleTimeout: Math.min(255, Math.max(60, Math.ceil(config.timeoutMs / 1000) + 10)),
} as const;
const app = createEdgeApp(edgeDeps).listen({ ...serveOptions, port: config.port });
const server = app.server!;
setListenBacklog(server.port!, config.backlog, log);
const direct =
  config.directPortBase === undefined ? null : createEdgeApp(edgeDeps).listen({ ...serveOptions, port: config.directPortBase + index }).server!;
if (direct) setListenBacklog(direct.port!, config.backlog, log);

if (state === "starting") state = "ready";
log.info("worker listening", { port: server.port, direct: direct?.port, hop: hopPath, gen, takesOver });
send({ type: "ready", index, gen, hopPath });

// ---- sweeps ----
const sweeper = setInterval(() => sessions.sweep(), 10_000);
sweeper.unref();

// ---- life-cycle ----
/**
 * Stops accepting and lets in-flight work finish (bounded by QDP_GRACE_MS), then exits.
 * Closing our listener is safe only because the kernel migrates connections still queued on
 * it to the other listeners of the port (net.ipv4.tcp_migrate_req=1, which the supervisor
 * turns on; see docs/tuning.md). Responses get `Connection: close` meanwhile, so keep-alive
 * clients move to the other workers instead of being cut.
 */
async function drainAndExit(): Promise<never> {
  if (!draining) {
    draining = true;
    if (state !== "handing-off") state = "draining";
    send({ type: "draining" });
    const until = Date.now() + config.graceMs;
    // Keep the listener a moment so requests already on the way still land here and are answered.
    await Bun.sleep(50);
    server.stop(false);
    direct?.stop(false);
    // Wait for calls at this edge and calls run for other edges, then a short quiet period so
    // a peer's call that is still in its event loop can arrive.
    let quietSince = 0;
    while (Date.now() < until) {
      const busy = counters.inflight > 0 || executor.executing > 0;
      if (busy) quietSince = 0;
      else if (quietSince === 0) quietSince = Date.now();
      else if (Date.now() - quietSince >= 200) break;
      await Bun.sleep(10);
    }
    if (counters.inflight > 0 || executor.executing > 0) {
      log.warn("grace period over with work in flight", { inflight: counters.inflight, executing: executor.executing });
    }
    hop.stop();
    hopServer.stop();
    server.stop(true);
    direct?.stop(true);
    await records.close().catch(() => {});
    log.info("worker stopped", { requests: counters.requests });
    await flushLogs();
  }
  process.exit(0);
}

/** Rolling reload: the replacement is up; hand it this index's sessions and nonces, then drain. */
async function handOff(): Promise<void> {
  if (!router.ownsIndex) return;
  state = "handing-off";
  // From here calls for this index go to the replacement; calls already running finish first.
  router.ownsIndex = false;
  const idle = executor.whenIdle();
  await Promise.race([idle, Bun.sleep(config.graceMs)]);
  const snap = sessions.snapshot();
  const nonces = replay.export(Math.floor(Date.now() / 1000));
  const BATCH = 5000;
  const deadline = Date.now() + config.graceMs;
  let sent = 0;
  try {
    do {
      const batch: HandoffBatch = {
        sessions: snap.slice(sent, sent + BATCH),
        nonces: sent === 0 ? nonces : [],
        last: sent + BATCH >= snap.length,
      };
      sent += BATCH;
      const res = await hop.request(index, FrameType.HANDOFF, JSON.stringify(batch), undefined, deadline);
      if (res.type !== FrameType.HANDOFF_ACK) throw new Error(`unexpected reply ${res.type}`);
    } while (sent < snap.length);
    log.info("handed sessions to the replacement", { sessions: snap.length, nonces: nonces.length });
  } catch (err) {
    log.error("hand-off failed; the replacement starts without these sessions", { err, sessions: snap.length });
  }
  send({ type: "handed-off", sessions: snap.length });
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
    hopsIn,
    hopsOut: hop.hopsOut,
    inflight: counters.inflight,
    executing: executor.executing,
    rssBytes: mem.rss,
    heapBytes: mem.heapUsed,
    sessions: sessions.size,
    sessionsEvicted: sessions.evicted,
    sessionsExpired: sessions.expired,
    nonces: replay.size,
    ownerWaits: hop.ownerWaits,
    ownerUnavailable: hop.ownerUnavailable,
    waitingForOwner: hop.waitingCounts().reduce((a, b) => a + b, 0),
    peersUp: peersUp(),
    hopLatency: hop.latency.toJSON(),
    hopFrames: outboxTotals.frames,
    hopWrites: outboxTotals.writes,
    errors: { ...counters.errors },
    upstream,
  };
}
