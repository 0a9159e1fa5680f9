/**
 * Decides where a call runs and gets its answer: here when this worker owns the user (or the
 * call has no user), otherwise at the owner through the hop. Only the call travels — function,
 * user, validated input bytes, request id, time left, replay check — never the HTTP request.
 */
import { QdpError, isErrorCode } from "../core/errors.ts";
import { decodeText, encodeCallHead, FrameType, type CallHead } from "../core/frames.ts";
import { ownerOf } from "../core/ownership.ts";
import { replayRefusal } from "../core/replay-fence.ts";
import type { Call, Executor } from "./executor.ts";
import type { HopClient } from "./hop-client.ts";

const encoder = new TextEncoder();

export class Router {
  /**
   * False once this worker has started handing its index to a replacement during a rolling
   * reload: from then on its own users' calls go to the replacement like any hop.
   */
  ownsIndex = true;
  /** Calls run here (local or hopped in). */
  localCalls = 0;

  constructor(
    readonly self: number,
    readonly workers: number,
    private readonly executor: Executor,
    private readonly hop: HopClient,
  ) {}

  ownerOf(user: string): number {
    return this.workers === 1 ? 0 : ownerOf(user, this.workers);
  }

  /**
   * Runs the call at its owner and gives its output as JSON text. `inputBytes` is the input's
   * JSON exactly as received, when the edge has it (POST /api/<funcNo>), so the hop does not
   * serialise it again. `owner` is `ownerIndex(call.user)`, passed by a caller that already has it
   * (the edge reports it in X-QDP-Worker), so the user is not hashed twice.
   */
  call(call: Call, inputBytes?: Uint8Array, owner = this.ownerIndex(call.user)): string | Promise<string> {
    if (owner === this.self && this.ownsIndex) {
      this.localCalls++;
      // A handler that answers synchronously here costs no promise (executor.run's sync path).
      return this.executor.run(call);
    }
    return this.viaHop(owner, call, inputBytes);
  }

  /** The index whose worker runs a call of `user` (this one for a call without a user). */
  ownerIndex(user: string | null): number {
    return user === null ? this.self : this.ownerOf(user);
  }

  private viaHop(owner: number, call: Call, inputBytes: Uint8Array | undefined): Promise<string> {
    // The trace rides in the request-id field after a space (request ids hold none), which a
    // peer of the previous version mid-reload reads as part of the id instead of failing.
    const r = call.traceparent === undefined ? call.requestId : `${call.requestId} ${call.traceparent}`;
    const head: CallHead = { f: call.service.def.funcNo, u: call.user, r, t: call.deadline - Date.now() };
    if (call.replay) head.n = call.replay;
    const tail = inputBytes ?? encoder.encode(JSON.stringify(call.input === undefined ? null : call.input));
    return this.hop.request(owner, FrameType.CALL, encodeCallHead(head), tail, call.deadline).then((res) => replyText(res.type, res.payload));
  }

  /**
   * Replay check of a signed call without a user. Such nonces are owned like user ids — by
   * ownerOf(nonce) — so every worker asks the same place and a replay is seen cluster-wide.
   */
  async checkNonce(nonce: string, timestamp: number, deadline: number): Promise<void> {
    const owner = this.ownerOf(nonce);
    if (owner === this.self && this.ownsIndex) {
      // A replacement judges no nonce before the old worker's nonces (and fence) arrived —
      // exactly as when the check comes through the hop (owner-side onNonce).
      await this.executor.awaitGate(deadline);
      // Fence and memory, then (QDP_REPLAY_STORE=redis) the cluster-wide claim; throws the refusal.
      await this.executor.admitNonce(null, nonce, timestamp);
      return;
    }
    // The owner answers a refusal as an error frame (replyText throws it); "replay"/"full"
    // as a verdict are still understood from a worker of the previous version mid-reload.
    const res = await this.hop.request(owner, FrameType.NONCE, JSON.stringify([nonce, timestamp]), undefined, deadline);
    const refusal = replayRefusal(JSON.parse(replyText(res.type, res.payload)) as string, 0);
    if (refusal) throw refusal;
  }
}

/** The text of a RESULT frame, or the QdpError an ERROR frame carries. */
function replyText(type: number, payload: Uint8Array): string {
  if (type === FrameType.RESULT) return decodeText(payload);
  if (type === FrameType.ERROR) {
    const e = JSON.parse(decodeText(payload)) as { code: unknown; message: string; details?: unknown; retryAfter?: number };
    const err = new QdpError(isErrorCode(e.code) ? e.code : "INTERNAL", e.message, { details: e.details, retryAfter: e.retryAfter });
    // The owner logged it with its cause.
    err.logged = true;
    throw err;
  }
  throw new QdpError("INTERNAL", `unexpected hop reply type ${type}`);
}
