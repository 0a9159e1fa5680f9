/**
 * The supervisor: spawns QDP_WORKERS workers with stable indices, respawns a dead one at the
 * same index (so ownership never moves because of a crash), rolls a reload one index at a time,
 * stops gracefully, and serves the loopback stats. It does no request work: a worker never
 * needs it to serve a call.
 */
import { randomBytes } from "node:crypto";
import { unlinkSync } from "node:fs";
import type { Subprocess } from "bun";
import type { PeerAddress } from "../affinity/hop-client.ts";
import { hopSocketPath } from "../affinity/hop-server.ts";
import { ConfigError, type Config } from "../core/config.ts";
import { nextCrashStreak, respawnDelayMs } from "../core/respawn.ts";
import type { RecycleReason } from "../core/recycle.ts";
import type { Logger } from "../services/types.ts";
import { callBoardPath, createCallBoard } from "../worker/call-board.ts";
import type { Beat } from "../worker/heartbeat.ts";
import type { FromWorker, ToWorker } from "../worker/ipc.ts";
import type { ClusterStats, WorkerStats } from "../types.ts";
import { readForwardFile, SNAPSHOT_ENV, writeSnapshot } from "./forward-table.ts";
import { createRecycler } from "./recycler.ts";
import { BUILD_INFO } from "../telemetry/build-info.ts";
import { cpuSeconds } from "../telemetry/process-stats.ts";
import { startStatsServer } from "./stats-server.ts";
import { killStuckWorker, startWatchdog } from "./watchdog.ts";
import { workerRow } from "./worker-row.ts";
import { createRollingReload } from "./rolling-reload.ts";
import { workerGcRam } from "./gc-ram.ts";

const WORKER_ENTRY = new URL("../worker/worker.ts", import.meta.url).pathname;

type Proc = Subprocess<"ignore", "inherit", "inherit">;

interface Slot {
  index: number;
  proc: Proc | null;
  gen: number;
  state: "starting" | "ready" | "restarting" | "stopped" | "stuck";
  hopPath: string;
  startedAt: number;
  restarts: number;
  crashStreak: number;
  /** Counters of earlier processes of this index, so totals survive restarts. */
  carried: { requests: number; hopsIn: number; hopsOut: number };
  last: WorkerStats | null;
  readyWaiters: Array<(ok: boolean) => void>;
  /** The current process's last heartbeat, and when it came (0: none yet). */
  beat: Beat | null;
  lastBeatAt: number;
  /** A replacement of this index (reload or recycle) is under way: the watchdog leaves it to that path's timeouts. */
  replacing: boolean;
  recycles: Record<RecycleReason, number>;
  /** Processes of this index killed by the watchdog. */
  stuckKills: number;
  /** Why the latest process of this index could not start (its "fatal" message), if it said. */
  fatal: string | null;
}

export interface SupervisorOptions {
  /** The forward file's text as checked at start (QDP_FORWARD_FILE), when there is one. */
  forwardText?: string;
}

export async function runSupervisor(config: Config, log: Logger, opts: SupervisorOptions = {}): Promise<void> {
  const started = Date.now();
  const secret = randomBytes(32).toString("hex");
  // The RAM the workers' garbage collectors pace themselves against (QDP_GC_RAM_MB).
  const gcRam = workerGcRam(config.gcRamMb, config.workers, process.env);
  // The entry point has checked (or made) config.runtimeDir and holds its lock (main.ts).
  // Workers build their forward table from this snapshot, replaced only by an accepted SIGHUP.
  const forwardSnapshot = opts.forwardText === undefined ? undefined : writeSnapshot(config.runtimeDir, opts.forwardText);
  let genCounter = 0;
  let stopping = false;
  let reloading: Promise<void> | null = null;
  let reloadAgain = false;
  /** Processes being replaced by a reload, still alive. */
  const retiring = new Set<Proc>();
  const stats = new Map<number, (s: WorkerStats) => void>();
  let statsSeq = 0;

  const slots: Slot[] = Array.from({ length: config.workers }, (_, index) => ({
    index,
    proc: null,
    gen: 0,
    state: "starting",
    hopPath: "",
    startedAt: 0,
    restarts: 0,
    crashStreak: 0,
    carried: { requests: 0, hopsIn: 0, hopsOut: 0 },
    last: null,
    readyWaiters: [],
    beat: null,
    lastBeatAt: 0,
    replacing: false,
    recycles: { "max-requests": 0, "max-rss": 0 },
    stuckKills: 0,
    fatal: null,
  }));
  /** Processes the watchdog is killing, so their exit is logged as such. */
  const stuckProcs = new WeakSet<Proc>();
  /**
   * Replacements run one at a time, in order: a reload waits for a recycle under way, and a
   * recycle never starts while a reload runs or waits (`reloading`).
   */
  let lane: Promise<unknown> = Promise.resolve();
  function inLane<T>(fn: () => Promise<T>): Promise<T> {
    const p = lane.then(fn);
    lane = p.catch(() => {});
    return p;
  }

  function tell(p: Proc | null, m: ToWorker): void {
    try {
      p?.send(m);
    } catch {}
  }

  function peers(): PeerAddress[] {
    return slots.filter((s) => s.state === "ready").map((s) => ({ index: s.index, gen: s.gen, path: s.hopPath }));
  }

  function broadcastPeers(): void {
    const m: ToWorker = { type: "peers", peers: peers() };
    for (const s of slots) tell(s.proc, m);
    for (const p of retiring) tell(p, m);
  }

  function spawn(slot: Slot, handoff: boolean): Proc {
    const gen = ++genCounter;
    const board = callBoardPath(config.runtimeDir, slot.index, gen);
    try {
      createCallBoard(board);
    } catch (err) {
      // Without it a stuck worker's log line cannot say what it ran; nothing else depends on it.
      log.warn("cannot create the worker's call board", { index: slot.index, err: (err as Error).message });
    }
    const proc = Bun.spawn([process.execPath, ...config.workerBunArgs, WORKER_ENTRY], {
      env: {
        // Bun's fetch runs at most 256 requests at once per process by default and queues the
        // rest: with seconds-long upstream calls that caps a worker at 256 slow calls. Raise it
        // to what QDP_MAX_INFLIGHT allows (each call may make a couple of upstream requests),
        // unless the operator set it.
        BUN_CONFIG_MAX_HTTP_REQUESTS: String(Math.min(65_535, Math.max(256, config.maxInflight * 2))),
        ...gcRam.env,
        ...process.env,
        // Bun's allocator reads this at start: -1 keeps freed memory for reuse (QDP_MALLOC_PURGE_MS).
        MIMALLOC_PURGE_DELAY: String(config.mallocPurgeMs),
        QDP_PORT: String(config.port),
        QDP_RUNTIME_DIR: config.runtimeDir,
        QDP_WORKERS: String(config.workers),
        QDP_WORKER_INDEX: String(slot.index),
        QDP_WORKER_GEN: String(gen),
        QDP_WORKER_HANDOFF: handoff ? "1" : "0",
        QDP_CLUSTER_SECRET: secret,
        ...(forwardSnapshot ? { [SNAPSHOT_ENV]: forwardSnapshot } : {}),
      },
      stdio: ["ignore", "inherit", "inherit"],
      serialization: "json",
      ipc(message: FromWorker) {
        onMessage(slot, proc, gen, message);
      },
      onExit(_p, code, signal) {
        // A worker removes its socket as it exits; one killed by SIGKILL cannot.
        for (const path of [hopSocketPath(config.runtimeDir, slot.index, gen), board]) {
          try {
            unlinkSync(path);
          } catch {}
        }
        onExit(slot, proc, code, signal);
      },
    }) as Proc;
    recycler.assign(proc);
    if (!handoff) {
      slot.proc = proc;
      slot.gen = gen;
      slot.state = "starting";
      slot.startedAt = Date.now();
      slot.beat = null;
      slot.lastBeatAt = 0;
    }
    return proc;
  }

  function onMessage(slot: Slot, proc: Proc, gen: number, m: FromWorker): void {
    switch (m.type) {
      case "ready":
        if (slot.proc !== proc) {
          // A reload's replacement: it becomes the index's process now.
          if (slot.proc) retiring.add(slot.proc);
          carry(slot);
          slot.proc = proc;
          slot.startedAt = Date.now();
        }
        // The watchdog judges a process from its readiness on.
        slot.lastBeatAt = Date.now();
        slot.gen = gen;
        slot.hopPath = m.hopPath;
        slot.state = "ready";
        log.info("worker ready", { index: slot.index, pid: proc.pid, gen });
        broadcastPeers();
        for (const w of slot.readyWaiters.splice(0)) w(true);
        break;
      case "stats":
        stats.get(m.id)?.(m.stats);
        break;
      case "heartbeat":
        // A replacement's beats before it takes over, and a retiring worker's, are not this index's.
        if (slot.proc !== proc) break;
        slot.beat = m;
        slot.lastBeatAt = Date.now();
        recycler.consider(slot, proc, m);
        break;
      case "fatal":
        slot.fatal = m.message;
        log.error("worker failed to start", { index: slot.index, message: m.message });
        break;
    }
  }

  /** Adds the leaving process's counters (its last stats answer or heartbeat, whichever is newer) to the index's totals. */
  function carry(slot: Slot): void {
    const a = slot.last;
    const b = slot.beat;
    const src = a && b ? (b.requests >= a.requests ? b : a) : (a ?? b);
    slot.last = null;
    slot.beat = null;
    if (!src) return;
    slot.carried.requests += src.requests;
    slot.carried.hopsIn += src.hopsIn;
    slot.carried.hopsOut += src.hopsOut;
  }

  function onExit(slot: Slot, proc: Proc, code: number | null, signal: number | null | string): void {
    if (retiring.delete(proc)) return;
    if (slot.proc !== proc) {
      // A replacement that died before it was ready.
      for (const w of slot.readyWaiters.splice(0)) w(false);
      log.error("replacement worker died before it was ready", { index: slot.index, code, signal });
      return;
    }
    if (stopping) {
      slot.state = "stopped";
      slot.proc = null;
      return;
    }
    carry(slot);
    slot.proc = null;
    slot.state = "restarting";
    slot.restarts++;
    const lived = Date.now() - slot.startedAt;
    slot.crashStreak = nextCrashStreak(slot.crashStreak, lived);
    const delay = respawnDelayMs(slot.crashStreak);
    const cause = stuckProcs.has(proc) ? "stuck" : "died";
    log.error("worker died; respawning at the same index", { index: slot.index, pid: proc.pid, code, signal, cause, livedMs: lived, delayMs: delay });
    broadcastPeers();
    setTimeout(() => {
      if (!stopping && slot.proc === null) spawn(slot, false);
    }, delay);
  }

  function waitReady(slot: Slot, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      slot.readyWaiters.push((ok) => {
        clearTimeout(t);
        resolve(ok);
      });
    });
  }

  function waitExit(proc: Proc, timeoutMs: number): Promise<boolean> {
    return Promise.race([proc.exited.then(() => true), Bun.sleep(timeoutMs).then(() => false)]);
  }

  /**
   * Replaces the worker of one index through the hand-off: start the replacement, wait until it
   * is ready (it becomes the index's process then, see "ready"), and tell the old one to hand
   * its sessions and nonces over, drain and exit. Used by the rolling reload and by recycling.
   * Null once replaced, else why the replacement did not come up (the old worker keeps serving).
   */
  async function replaceOne(slot: Slot): Promise<string | null> {
    const old = slot.proc;
    if (!old || slot.state !== "ready") return "the worker is not ready";
    slot.replacing = true;
    try {
      slot.fatal = null;
      const readyWithinMs = Math.max(30_000, config.graceMs);
      const next = spawn(slot, true);
      const ok = await waitReady(slot, readyWithinMs);
      if (!ok) {
        const why =
          slot.fatal ??
          (next.exitCode !== null || next.signalCode !== null
            ? `it exited (${next.signalCode ?? `code ${next.exitCode}`})`
            : `not ready within ${readyWithinMs / 1000} s`);
        next.kill("SIGKILL");
        return why;
      }
      tell(old, { type: "handoff" });
      if (!(await waitExit(old, config.graceMs * 2 + 5000))) {
        log.warn("old worker did not exit in time; killing it", { index: slot.index, pid: old.pid });
        old.kill("SIGKILL");
      }
      return null;
    } finally {
      slot.replacing = false;
    }
  }

  // SIGHUP: replace each index in turn, never fewer than N-1 serving (rolling-reload.ts).
  const rolling = createRollingReload<Slot>({
    slots,
    stopping: () => stopping,
    replaceOne,
    reloadKeys: (s) => tell(s.proc, { type: "reload-keys" }),
    log,
    refresh() {
      if (config.forwardFile === undefined) return null;
      // A forward file that does not pass changes nothing: no worker is replaced (see forward-table.ts).
      try {
        const { text, functions } = readForwardFile(config.forwardFile, config.demoServices);
        writeSnapshot(config.runtimeDir, text);
        log.info("forward file re-read", { file: config.forwardFile, functions });
        return null;
      } catch (err) {
        const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
        log.error("reload refused: QDP_FORWARD_FILE does not pass its checks; the workers keep the previous table", { file: config.forwardFile, problems });
        return `QDP_FORWARD_FILE (${config.forwardFile}) does not pass its checks: ${problems.join("; ")}`;
      }
    },
  });

  const recycler = createRecycler<Proc>({
    limits: { maxRequests: config.maxRequests, maxRequestsJitter: config.maxRequestsJitter, maxRssBytes: config.maxRssBytes },
    log,
    blocked: () => stopping || reloading !== null,
    replace: (slot) => inLane(async () => (await replaceOne(slot as Slot)) === null),
  });

  // A ready worker whose heartbeat stopped is killed and respawned at its index (watchdog.ts);
  // its exit then takes the crash path of onExit.
  const stopWatchdog = startWatchdog({
    stuckMs: config.stuckMs,
    log,
    slots: () => (stopping ? [] : slots),
    onStuck(s, silentMs) {
      const slot = s as Slot;
      const proc = slot.proc!;
      slot.state = "stuck";
      slot.stuckKills++;
      stuckProcs.add(proc);
      killStuckWorker({
        proc,
        index: slot.index,
        gen: slot.gen,
        runtimeDir: config.runtimeDir,
        silentMs,
        stuckMs: config.stuckMs,
        graceMs: config.graceMs,
        log,
        beatSince: (t) => slot.proc === proc && slot.lastBeatAt > t,
      });
    },
  });

  function requestReload(): void {
    if (stopping) return;
    if (reloading) {
      reloadAgain = true;
      return;
    }
    reloading = inLane(rolling.run)
      .catch((err) => {
        log.error("reload failed", { err });
        rolling.crashed(err);
      })
      .finally(() => {
        reloading = null;
        if (reloadAgain) {
          reloadAgain = false;
          requestReload();
        }
      });
  }

  async function collect(): Promise<ClusterStats> {
    const id = ++statsSeq;
    const answers = new Map<number, WorkerStats>();
    const live = slots.filter((s) => s.proc);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1000);
      stats.set(id, (w) => {
        answers.set(w.index, w);
        if (answers.size >= live.length) {
          clearTimeout(t);
          resolve();
        }
      });
      for (const s of live) tell(s.proc, { type: "stats", id });
      if (live.length === 0) resolve();
    });
    stats.delete(id);
    return {
      supervisor: {
        pid: process.pid,
        uptimeSec: Math.round((Date.now() - started) / 1000),
        reloads: rolling.ledger.reloads,
        reloadFailures: rolling.ledger.failures,
        lastReload: rolling.ledger.last,
        version: BUILD_INFO.version,
        bun: BUILD_INFO.bun,
        cpuSeconds: cpuSeconds(),
        rssBytes: process.memoryUsage.rss(),
        host: config.host,
        port: config.port,
        statsPort: config.statsPort,
        workers: config.workers,
        directPortBase: config.directPortBase ?? null,
        recycles: {
          "max-requests": slots.reduce((a, s) => a + s.recycles["max-requests"], 0),
          "max-rss": slots.reduce((a, s) => a + s.recycles["max-rss"], 0),
        },
        stuckKills: slots.reduce((a, s) => a + s.stuckKills, 0),
        recycleBackoffMs: recycler.backoffMs(),
      },
      workers: slots.map((s) => {
        const w = answers.get(s.index);
        if (w && s.proc && w.pid === s.proc.pid) s.last = w;
        return workerRow(s, w, s.proc ? recycler.limitOf(s.proc) : 0, Date.now());
      }),
    };
  }

  async function stop(signal: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    stopWatchdog();
    log.info("graceful stop", { signal, graceMs: config.graceMs });
    const procs = [...slots.map((s) => s.proc), ...retiring].filter((p): p is Proc => p !== null);
    for (const p of procs) tell(p, { type: "drain" });
    const all = Promise.all(procs.map((p) => p.exited));
    const done = await Promise.race([all.then(() => true), Bun.sleep(config.graceMs + 3000).then(() => false)]);
    if (!done) {
      log.warn("workers still running after the grace period; killing them");
      for (const p of procs) p.kill("SIGKILL");
      await all;
    }
    statsServer.stop(true);
    log.info("supervisor stopped");
  }

  const statsServer = startStatsServer({ host: config.statsHost, port: config.statsPort, token: config.statsToken }, collect, log);
  config.statsPort = statsServer.port!;

  for (const slot of slots) spawn(slot, false);

  process.on("SIGHUP", requestReload);
  const finished = new Promise<void>((resolve) => {
    const onStop = (sig: string) => () => void stop(sig).then(resolve);
    process.on("SIGTERM", onStop("SIGTERM"));
    process.on("SIGINT", onStop("SIGINT"));
  });
  log.info("supervisor started", {
    pid: process.pid,
    port: config.port,
    statsPort: config.statsPort,
    workers: config.workers,
    runtimeDir: config.runtimeDir,
    // What QDP_GC_RAM_MB came to on this host (null: the runtime's own reading).
    gcRamMb: gcRam.mb,
  });
  const allReady = await Promise.race([Promise.all(slots.map((s) => waitReady(s, 30_000))), finished.then(() => [false])]);
  if (allReady.every(Boolean)) log.info("cluster ready", { port: config.port, workers: config.workers });
  await finished;
}
