/**
 * The hop's wire format: length-prefixed frames multiplexed over one stream per peer pair.
 *
 *   u32 length of the rest (big-endian) | u8 type | u32 call id | payload bytes
 *
 * Calls carry a one-line head and the already-validated input as the exact JSON bytes the
 * edge received (no re-serialisation); results carry the handler's output as JSON text, which
 * the edge splices into the HTTP body without parsing it. The cost of a hop is JavaScript
 * object work, not syscalls (see HOP-NOTES.md), so the codec avoids objects where it can.
 * Pure TypeScript.
 */

export const FrameType = {
  /** Peer authentication, both ways (affinity/peer-auth.ts): payload JSON {challenge} / {index, gen, challenge, mac} / {ok, mac}. */
  HELLO: 1,
  /** A call: payload = head line (encodeCallHead) + input JSON. */
  CALL: 2,
  /** A successful result: payload = output JSON text. */
  RESULT: 3,
  /** A failed call: payload JSON {code, message, details?, retryAfter?}. */
  ERROR: 4,
  /** The receiver is not (or no longer) the owner; the call did not run. Payload: JSON {index}. */
  MOVED: 5,
  /** Replay check for a call without a user: payload JSON [nonce, timestamp]; answered RESULT "fresh"/"replay"/"full". */
  NONCE: 6,
  /** Sessions (and nonces) handed to the replacement during a rolling reload. Payload JSON. */
  HANDOFF: 7,
  /** Acknowledges a HANDOFF batch. */
  HANDOFF_ACK: 8,
} as const;

export type FrameTypeId = (typeof FrameType)[keyof typeof FrameType];

export const HEADER_BYTES = 9;
/** Largest frame accepted from an authenticated peer (a safety cap, well above QDP_MAX_BODY's ceiling). */
export const MAX_FRAME_BYTES = 1024 * 1024 * 1024;
/**
 * Largest frame accepted before the peer has proved the cluster secret: the handshake's frames
 * are a few hundred bytes, so anything larger is refused as soon as its length arrives, before
 * a byte of it is buffered.
 */
export const PREAUTH_MAX_FRAME_BYTES = 4096;

const encoder = new TextEncoder();

/**
 * Appends frames to one growing buffer, so a tick's frames leave in one `write`.
 * `bytes()` shows them and `reset()` starts over on the same buffer.
 */
export class FrameWriter {
  private buf = new Uint8Array(64 * 1024);
  private view = new DataView(this.buf.buffer);
  private len = 0;

  get size(): number {
    return this.len;
  }

  private reserve(extra: number): void {
    const need = this.len + extra;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Appends a frame whose payload is text (UTF-8 encoded in place) and optional trailing bytes. */
  push(type: FrameTypeId, id: number, text: string, tail?: Uint8Array): void {
    const tailLen = tail ? tail.length : 0;
    this.reserve(HEADER_BYTES + text.length * 3 + tailLen);
    const start = this.len;
    let pos = start + HEADER_BYTES;
    if (text.length > 0) pos += encoder.encodeInto(text, this.buf.subarray(pos)).written;
    if (tail) {
      this.buf.set(tail, pos);
      pos += tailLen;
    }
    this.view.setUint32(start, pos - start - 4);
    this.buf[start + 4] = type;
    this.view.setUint32(start + 5, id);
    this.len = pos;
  }

  /** The pending bytes: a view valid until the next push or reset. */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  /** Starts over, reusing the buffer (shrunk back after a burst of large frames). */
  reset(): void {
    this.len = 0;
    if (this.buf.length > 4 * 1024 * 1024) {
      this.buf = new Uint8Array(64 * 1024);
      this.view = new DataView(this.buf.buffer);
    }
  }
}

export type FrameHandler = (type: number, id: number, payload: Uint8Array) => void;

/**
 * Reassembles frames from stream chunks of any size. A frame split across chunks is gathered in
 * one buffer of its final size, allocated once its length is known (and checked against the
 * cap), so a large frame costs one copy of its bytes, not one per chunk.
 */
export class FrameReader {
  /** Fewer than 4 bytes of a length prefix, waiting for the rest. */
  private head: Uint8Array | null = null;
  /** A frame (length prefix included) whose length is known, being filled. */
  private partial: Uint8Array | null = null;
  private filled = 0;

  /**
   * @param maxFrame largest frame length accepted; raise it with `setMaxFrame` once the peer
   *   is trusted (see PREAUTH_MAX_FRAME_BYTES).
   */
  constructor(
    private readonly onFrame: FrameHandler,
    private maxFrame = MAX_FRAME_BYTES,
  ) {}

  /** Changes the cap for frames whose length has not arrived yet (later frames of the same chunk included). */
  setMaxFrame(bytes: number): void {
    this.maxFrame = bytes;
  }

  /** Feeds a chunk; calls `onFrame` for every complete frame. Throws on a malformed stream. */
  feed(chunk: Uint8Array): void {
    let data = chunk;
    if (this.partial) {
      const p = this.partial;
      const n = Math.min(p.length - this.filled, chunk.length);
      p.set(chunk.subarray(0, n), this.filled);
      this.filled += n;
      if (this.filled < p.length) return;
      this.partial = null;
      this.onFrame(p[4]!, new DataView(p.buffer).getUint32(5), p.subarray(HEADER_BYTES));
      data = chunk.subarray(n);
    } else if (this.head) {
      const joined = new Uint8Array(this.head.length + chunk.length);
      joined.set(this.head);
      joined.set(chunk, this.head.length);
      data = joined;
      this.head = null;
    }
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let pos = 0;
    while (data.length - pos >= 4) {
      const len = view.getUint32(pos);
      if (len < HEADER_BYTES - 4 || len > this.maxFrame) throw new Error(`bad frame length ${len}`);
      if (data.length - pos - 4 < len) {
        // Copy what we have: Bun may reuse the chunk's memory after the data callback returns.
        const p = new Uint8Array(4 + len);
        p.set(data.subarray(pos));
        this.partial = p;
        this.filled = data.length - pos;
        return;
      }
      const type = data[pos + 4]!;
      const id = view.getUint32(pos + 5);
      this.onFrame(type, id, data.subarray(pos + HEADER_BYTES, pos + 4 + len));
      pos += 4 + len;
    }
    if (pos < data.length) this.head = data.slice(pos);
  }
}

const decoder = new TextDecoder();

export function decodeText(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** Head of a CALL frame. */
export interface CallHead {
  /** Function number. */
  f: number;
  /** User id or null. */
  u: string | null;
  /** Request id. */
  r: string;
  /** Milliseconds left until the call's deadline when it was sent. */
  t: number;
  /** Replay check to run at the owner before the call: [nonce, timestamp], when signing is on. */
  n?: [string, number];
}

/**
 * A call's head as one line of tab-separated fields: funcNo, ms left, request id, nonce,
 * timestamp, user. None of them can hold a tab or a newline (user ids exclude control
 * characters, request ids and nonces are printable ASCII without spaces), and splitting a short
 * line is cheaper than building and parsing a JSON object per hop. An empty user is "no user"
 * (a real user id is never empty).
 */
export function encodeCallHead(h: CallHead): string {
  return `${h.f}\t${Math.max(0, Math.floor(h.t))}\t${h.r}\t${h.n ? h.n[0] : ""}\t${h.n ? h.n[1] : ""}\t${h.u ?? ""}\n`;
}

/** Splits a CALL payload into its head and the raw input JSON bytes. */
export function splitCall(payload: Uint8Array): { head: CallHead; input: Uint8Array } {
  const nl = payload.indexOf(10);
  if (nl < 0) throw new Error("call frame without head separator");
  const parts = decoder.decode(payload.subarray(0, nl)).split("\t");
  if (parts.length !== 6) throw new Error("malformed call head");
  const head: CallHead = { f: Number(parts[0]), t: Number(parts[1]), r: parts[2]!, u: parts[5] === "" ? null : parts[5]! };
  if (parts[3] !== "") head.n = [parts[3]!, Number(parts[4])];
  return { head, input: payload.subarray(nl + 1) };
}
