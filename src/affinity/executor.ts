/**
 * Runs calls in this worker — the owner side of affinity. The same code runs a call whether it
 * came from this worker's own edge or through the hop, so a service cannot tell the difference.
 *
 * It owns the three pieces of per-user state of this index: sessions, the replay guard of
 * signed calls (fence and cache, checked here, at the owner, so a replay is caught wherever in
 * the cluster it lands and whatever happened to the processes), and the gate used during a
 * rolling reload: a replacement worker keeps its gate closed until the old worker of its index
 * has handed over its sessions and nonces.
 */
import type { Abort } from "../core/abort.ts";
import { traceFrom, traceparentOf, type TraceContext } from "../core/trace.ts";
import { DeadlineQueue, hostTimer } from "../core/deadlines.ts";
import { QdpError, toQdpError } from "../core/errors.ts";
import { replayRefusal, type ReplayGuard } from "../core/replay-fence.ts";
import type { RegisteredService } from "../services/registry.ts";
import { RawJson, type Logger, type ServiceContext, type ServiceSettings, type UpstreamClient } from "../services/types.ts";
import type { RecordStore } from "../stores/record-store.ts";
import { createUpstreamClient } from "../upstream/client.ts";
import type { DurableSessions } from "./durable-sessions.ts";
import type { SharedReplay } from "./shared-replay.ts";
import { SessionStore } from "./sessions.ts";

export interface Call {
  service: RegisteredService;
  user: string | null;
  requestId: string;
  input: unknown;
  /** Epoch ms after which the call is answered TIMEOUT and its signal aborted. */
  deadline: number;
  /** Replay check to pass before running: [nonce, timestamp] of a signed call with a user. */
  replay?: [string, number];
  /**
   * The caller's `traceparent` when it sent a valid one (the edge checks). The trace context is
   * made only if the handler uses it (core/trace.ts).
   */
  traceparent?: string;
}

export interface ExecutorOptions {
  worker: number;
  log: Logger;
  records: RecordStore;
  /** Each service's settings by service name (services/settings.ts). */
  settings: ReadonlyMap<string, ServiceSettings>;
  sessions: SessionStore;
  /** The durable store behind `sessions` (QDP_SESSION_STORE=redis); absent with `memory`. */
  durable?: DurableSessions | null;
  replay: ReplayGuard;
  /** The cluster-wide claim after `replay` (QDP_REPLAY_STORE=redis); absent with `memory`. */
  sharedReplay?: SharedReplay | null;
  maxExecuting: number;
  upstreamTimeoutMs: number;
  /** Told as a handler is entered and as its synchronous part returns (worker/call-board.ts). */
  tracker?: CallTracker | null;
}

/** Brackets a handler's synchronous part, so a blocked loop can be traced to the call that blocked it. */
export interface CallTracker {
  enter(funcNo: number, name: string, requestId: string, user: string | null): void;
  leave(): void;
}

export class Executor {
  /** Calls running now (local and hopped in). */
  executing = 0;
  /** Calls waiting at the closed gate. */
  private gated: Array<() => void> = [];
  private gateOpen = true;
  private idleWaiters: Array<() => void> = [];
  /** Calls' deadlines: one unref'd timer at the earliest pending one. */
  readonly deadlines = new DeadlineQueue(hostTimer(globalThis));

  constructor(private readonly o: ExecutorOptions) {}

  get sessions(): SessionStore {
    return this.o.sessions;
  }

  get replay(): ReplayGuard {
    return this.o.replay;
  }

  /** Closes the gate: calls wait until `openGate` (a replacement waiting for its hand-off). */
  closeGate(): void {
    this.gateOpen = false;
  }

  openGate(): void {
    this.gateOpen = true;
    const waiting = this.gated;
    this.gated = [];
    for (const go of waiting) go();
  }

  get gateIsOpen(): boolean {
    return this.gateOpen;
  }

  /** Resolves when no call is running (used before handing sessions over). */
  whenIdle(): Promise<void> {
    if (this.executing === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Waits while the gate is closed (a replacement before its hand-off), up to `deadline`. */
  async awaitGate(deadline: number): Promise<void> {
    if (this.gateOpen) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new QdpError("TIMEOUT", "deadline passed while the owner took over its sessions")),
        Math.max(0, deadline - Date.now()),
      );
      this.gated.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Runs a call; gives the output as JSON text (serialised here, so the hop passes it on
   * untouched), or throws / rejects with a QdpError. A handler that answers synchronously
   * costs no promise, timer or deadline entry.
   */
  run(call: Call): string | Promise<string> {
    if (!this.gateOpen) return this.awaitGate(call.deadline).then(() => this.run(call));
    if (this.executing >= this.o.maxExecuting) {
      throw new QdpError("OVERLOADED", `worker ${this.o.worker} has ${this.executing} calls running`);
    }
    if (call.replay && call.user !== null) {
      const claimed = this.admitNonce(call.user, call.replay[0], call.replay[1]);
      if (claimed !== undefined) return claimed.then(() => this.runAdmitted(call));
    }
    return this.runAdmitted(call);
  }

  /**
   * The owner's replay check of a signed call (with a user: here, before it runs; without one:
   * at the owner of its nonce, through the router or the hop). The fence and the in-memory
   * cache answer first, synchronously — a replay to the same owner never costs a round trip.
   * With a shared replay store a nonce new to this owner is then claimed cluster-wide, and the
   * promise returned settles with that claim. Throws / rejects with the refusal.
   */
  admitNonce(user: string | null, nonce: string, timestampSec: number): void | Promise<void> {
    const nowSec = Math.floor(Date.now() / 1000);
    const refusal = replayRefusal(this.o.replay.checkAndRemember(user, nonce, timestampSec, nowSec), this.o.replay.fence.fenceSec);
    if (refusal) throw refusal;
    return this.o.sharedReplay?.claim(user, nonce, timestampSec, nowSec);
  }

  /** Runs a call whose nonce (if signed) was admitted. */
  private runAdmitted(call: Call): string | Promise<string> {
    const def = call.service.def;
    let session: unknown = undefined;
    if (def.stateful) {
      if (call.user === null) throw new QdpError("USER_REQUIRED", `${def.name} is stateful and needs a user`);
      if (this.o.durable) return this.runDurable(call, this.o.durable);
      session = this.o.sessions.get(call.user, def.initSession ?? (() => ({})));
    }
    return this.invoke(call, session);
  }

  /**
   * A stateful call with a durable store: load (or re-check) the session, run the handler, and
   * answer only after a change is stored (durable-sessions.ts). The call counts as executing
   * from its load to its write, so a reload's hand-off waits for both.
   */
  private async runDurable(call: Call, durable: DurableSessions): Promise<string> {
    const def = call.service.def;
    this.executing++;
    try {
      const h = durable.acquire(call.user!, def.initSession ?? (() => ({})));
      const held = h instanceof Promise ? await h : h;
      let out: string | undefined;
      let failure: unknown = undefined;
      try {
        const r = this.invoke(call, held.entry.state);
        out = typeof r === "string" ? r : await r;
      } catch (err) {
        failure = err;
      }
      // A change that could not be stored wins over the handler's own answer: the caller must
      // learn that the change is not kept.
      const stored = durable.release(held);
      if (stored !== undefined) await stored;
      if (failure !== undefined) throw failure;
      return out!;
    } finally {
      this.finished();
    }
  }

  /** Runs the handler with its context; the synchronous path costs no promise. */
  private invoke(call: Call, session: unknown): string | Promise<string> {
    const def = call.service.def;
    if (Date.now() >= call.deadline) throw new QdpError("TIMEOUT", "deadline passed before the call started");
    const o = this.o;
    const abort: CallAbort = { controller: null, aborted: false, children: [] };
    // The AbortController and the upstream client are built only if the handler asks for them.
    // Made on first use: most handlers never look at their trace.
    let made: TraceContext | undefined;
    const trace = (): TraceContext => (made ??= traceFrom(call.traceparent));
    let upstream: UpstreamClient | undefined;
    const ctx: ServiceContext<unknown, unknown> = {
      input: call.input,
      user: call.user,
      requestId: call.requestId,
      worker: o.worker,
      session,
      settings: o.settings.get(def.name) ?? NO_SETTINGS,
      get records() {
        return tracedRecords(o.records, call.requestId, trace().traceId);
      },
      get traceId() {
        return trace().traceId;
      },
      get traceparent() {
        return traceparentOf(trace());
      },
      get log() {
        return o.log.child({ requestId: call.requestId, traceId: trace().traceId, funcNo: def.funcNo });
      },
      get signal() {
        abort.controller ??= new AbortController();
        return abort.controller.signal;
      },
      // One client per call, made on first use: every use shares the call's abort and headers.
      get upstream() {
        return (upstream ??= createUpstreamClient(abort, { timeoutMs: o.upstreamTimeoutMs }, { requestId: call.requestId, traceparent: ctx.traceparent }));
      },
    };
    this.executing++;
    let result: unknown;
    const tracker = o.tracker;
    tracker?.enter(def.funcNo, def.name, call.requestId, call.user);
    try {
      result = def.handler(ctx);
    } catch (err) {
      tracker?.leave();
      this.finished();
      throw this.failure(err, call);
    }
    tracker?.leave();
    if (!(result instanceof Promise)) {
      this.finished();
      return this.output(result, call);
    }
    return this.settle(result, call, abort);
  }

  /** The asynchronous path: race the handler against the call's deadline. */
  private async settle(result: Promise<unknown>, call: Call, abort: CallAbort): Promise<string> {
    const def = call.service.def;
    let rejectTimeout!: (e: QdpError) => void;
    const timeout = new Promise<never>((_, reject) => (rejectTimeout = reject));
    let timedOut = false;
    const deadline = this.deadlines.add(call.deadline, () => {
      // Answer TIMEOUT first: a handler that settles as it sees the abort is still too late.
      timedOut = true;
      rejectTimeout(new QdpError("TIMEOUT", `${def.name} did not finish within the deadline`));
      abort.aborted = true;
      const reason = new QdpError("TIMEOUT", "deadline passed");
      abort.controller?.abort(reason);
      for (const c of abort.children) c.abort(reason);
    });
    try {
      const output = await Promise.race([result, timeout]);
      if (timedOut) throw new QdpError("TIMEOUT", `${def.name} did not finish within the deadline`);
      return this.output(output, call);
    } catch (err) {
      throw this.failure(err, call);
    } finally {
      deadline.done = true;
      this.finished();
    }
  }

  /**
   * The handler's output as JSON text, checked against the function's output schema first: an
   * output the schema rejects is a bug in the service, answered 500 INTERNAL and logged with the
   * failing path — never sent to the caller as if it were the documented result.
   */
  private output(output: unknown, call: Call): string {
    const check = call.service.checkOut;
    if (check !== null && !(output instanceof RawJson) && !check.Check(output === undefined ? null : output)) {
      const first = check.Errors(output === undefined ? null : output).First();
      const e = new QdpError("INTERNAL", "internal error");
      this.o.log.error("handler output does not match its schema", {
        requestId: call.requestId,
        funcNo: call.service.def.funcNo,
        path: first?.path === "" ? "/" : (first?.path ?? "/"),
        message: first?.message ?? "invalid",
      });
      e.logged = true;
      throw e;
    }
    return serialise(output);
  }

  private failure(err: unknown, call: Call): QdpError {
    const e = toQdpError(err);
    if (e.code === "INTERNAL" && !e.logged) {
      this.o.log.error("handler failed", { requestId: call.requestId, funcNo: call.service.def.funcNo, err });
      e.logged = true;
    }
    return e;
  }

  private finished(): void {
    this.executing--;
    if (this.executing === 0 && this.idleWaiters.length > 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  close(): void {
    this.deadlines.stop();
  }
}

/** What the deadline aborts: the handler's signal (made on first use) and its upstream requests. */
interface CallAbort {
  controller: AbortController | null;
  aborted: boolean;
  children: Abort[];
}

const NO_SETTINGS: ServiceSettings = Object.freeze({});

/**
 * The record store as one call sees it: every record it writes also carries the call's
 * `requestId` and `traceId` (unless the service set them), so a stored record leads back to the
 * call and its trace in the logs and upstreams.
 */
function tracedRecords(store: RecordStore, requestId: string, traceId: string): RecordStore {
  return {
    kind: store.kind,
    insert: (collection, record) => store.insert(collection, { requestId, traceId, ...record }),
    get: (collection, id) => store.get(collection, id),
    find: (collection, query) => store.find(collection, query),
    close: () => store.close(),
  };
}

function serialise(output: unknown): string {
  if (output instanceof RawJson) return output.text;
  return JSON.stringify(output === undefined ? null : output);
}
