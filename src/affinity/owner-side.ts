/**
 * The owner's side of the hop: how a worker answers the frames its peers send — calls, replay
 * checks of calls without a user, and the session hand-off of a rolling reload — and how the
 * old worker of an index sends that hand-off. Used by the worker and, unchanged, by the
 * in-process tests, so both exercise the same code.
 */
import { QdpError, toQdpError } from "../core/errors.ts";
import { decodeText, FrameType, splitCall } from "../core/frames.ts";
import type { ReplayEntry } from "../core/replay-cache.ts";
import type { Registry } from "../services/registry.ts";
import type { Logger } from "../services/types.ts";
import type { Executor } from "./executor.ts";
import type { HopClient } from "./hop-client.ts";
import type { HopHandler, HopReply } from "./hop-server.ts";
import type { Router } from "./router.ts";
import type { SessionSnapshot } from "./sessions.ts";

/** One batch of a hand-off; the last one opens the replacement's gate. */
export interface HandoffBatch {
  sessions: SessionSnapshot[];
  nonces: ReplayEntry[];
  /**
   * The old worker's replay fence (0 = none). A worker fenced after a crash does not hold the
   * nonces below its fence, so its replacement must keep refusing them.
   */
  fenceSec?: number;
  last: boolean;
}

export interface OwnerSideDeps {
  index: number;
  router: Router;
  executor: Executor;
  registry: Registry;
  log: Logger;
  /** How long a replay check may wait for a pending hand-off. */
  timeoutMs: number;
  /** Called when the last hand-off batch arrived (the gate is open again). */
  onTakenOver?: () => void;
}

const ERROR_INTERNAL: HopReply = { type: FrameType.ERROR, text: JSON.stringify({ code: "INTERNAL", message: "internal error" }) };

export function errorReply(err: unknown): HopReply {
  const e = toQdpError(err);
  return { type: FrameType.ERROR, text: JSON.stringify({ code: e.code, message: e.message, details: e.details, retryAfter: e.retryAfter }) };
}

function resultReply(text: string): HopReply {
  return { type: FrameType.RESULT, text };
}

/** The hop handler of a worker, plus the count of calls it ran for other edges. */
export function createOwnerSide(d: OwnerSideDeps): { handle: HopHandler; readonly hopsIn: number } {
  const { router, executor, log } = d;
  const MOVED: HopReply = { type: FrameType.MOVED, text: JSON.stringify({ index: d.index }) };
  let hopsIn = 0;

  function onCall(payload: Uint8Array): HopReply | Promise<HopReply> {
    if (!router.ownsIndex) return MOVED;
    hopsIn++;
    try {
      const { head, input } = splitCall(payload);
      // A hopped call is never hopped again: if this worker does not own the user (a
      // misconfigured peer), refuse it rather than bounce it around the cluster.
      if (head.u !== null && router.ownerOf(head.u) !== d.index) {
        log.error("hop: call for a user this worker does not own", { requestId: head.r });
        throw new QdpError("OWNER_UNAVAILABLE", "ownership disagreement between workers");
      }
      const sp = head.r.indexOf(" ");
      const out = executor.run({
        service: d.registry.require(head.f),
        user: head.u,
        requestId: sp < 0 ? head.r : head.r.slice(0, sp),
        traceparent: sp < 0 ? undefined : head.r.slice(sp + 1),
        input: input.length === 0 ? null : JSON.parse(decodeText(input)),
        deadline: Date.now() + head.t,
        replay: head.n,
      });
      // Synchronous handlers answer without a promise.
      return typeof out === "string" ? resultReply(out) : out.then(resultReply, errorReply);
    } catch (err) {
      return errorReply(err);
    }
  }

  async function onNonce(payload: Uint8Array): Promise<HopReply> {
    if (!router.ownsIndex) return MOVED;
    const [nonce, ts] = JSON.parse(decodeText(payload)) as [string, number];
    // A replacement must have the old worker's nonces before it may judge a replay.
    await executor.awaitGate(Date.now() + d.timeoutMs);
    // Fence and memory, then (QDP_REPLAY_STORE=redis) the cluster-wide claim; throws the refusal.
    await executor.admitNonce(null, nonce, ts);
    return resultReply(JSON.stringify("fresh"));
  }

  function onHandoff(payload: Uint8Array): HopReply {
    const batch = JSON.parse(decodeText(payload)) as HandoffBatch;
    // Before the gate opens: the predecessor's fence goes with its nonces.
    if (typeof batch.fenceSec === "number") executor.replay.fence.raise(batch.fenceSec);
    executor.sessions.restore(batch.sessions);
    executor.replay.import(batch.nonces, Math.floor(Date.now() / 1000));
    if (batch.last) {
      log.info("took over sessions from the previous worker", {
        sessions: executor.sessions.size,
        nonces: executor.replay.size,
        replayFence: executor.replay.fence.fenceSec,
      });
      executor.openGate();
      d.onTakenOver?.();
    }
    return { type: FrameType.HANDOFF_ACK, text: "" };
  }

  return {
    get hopsIn() {
      return hopsIn;
    },
    handle(type, payload) {
      switch (type) {
        case FrameType.CALL:
          return onCall(payload);
        case FrameType.NONCE:
          return onNonce(payload).catch(errorReply);
        case FrameType.HANDOFF:
          return onHandoff(payload);
        default:
          return ERROR_INTERNAL;
      }
    },
  };
}

/**
 * Rolling reload, old worker's side: stop taking calls for this index (they go to the
 * replacement, which holds them at its gate), let running calls finish, then send the live
 * sessions and remembered nonces in batches. Returns how many sessions went over.
 */
export async function sendHandoff(o: { index: number; router: Router; executor: Executor; hop: HopClient; graceMs: number; log: Logger }): Promise<number> {
  o.router.ownsIndex = false;
  await Promise.race([o.executor.whenIdle(), Bun.sleep(o.graceMs)]);
  const sessions = o.executor.sessions.snapshot();
  const nonces = o.executor.replay.export(Math.floor(Date.now() / 1000));
  const BATCH = 5000;
  const batches = Math.max(1, Math.ceil(sessions.length / BATCH), Math.ceil(nonces.length / (BATCH * 10)));
  const deadline = Date.now() + o.graceMs;
  try {
    for (let b = 0; b < batches; b++) {
      const batch: HandoffBatch = {
        sessions: sessions.slice(b * BATCH, (b + 1) * BATCH),
        nonces: nonces.slice(b * BATCH * 10, (b + 1) * BATCH * 10),
        fenceSec: o.executor.replay.fence.fenceSec,
        last: b === batches - 1,
      };
      const res = await o.hop.request(o.index, FrameType.HANDOFF, JSON.stringify(batch), undefined, deadline);
      if (res.type !== FrameType.HANDOFF_ACK) throw new Error(`unexpected hand-off reply ${res.type}`);
    }
    o.log.info("handed sessions to the replacement", { sessions: sessions.length, nonces: nonces.length });
  } catch (err) {
    o.log.error("hand-off failed; the replacement starts without these sessions", { err, sessions: sessions.length });
  }
  return sessions.length;
}
