/**
 * One dialled connection to a peer worker's hop socket: the socket, its outbox, the frame
 * reader and the handshake. The table of calls in flight on it is the hop client's
 * (hop-client.ts); this file only moves frames and proves who is at the other end.
 *
 * The handshake is mutual (peer-auth.ts): the listener sends a challenge, we answer with our
 * proof and our own challenge, and the connection is ready only once the listener proved the
 * cluster secret for the index and generation the supervisor gave for its path. Until then a
 * frame over PREAUTH_MAX_FRAME_BYTES closes the connection, and so does a handshake not finished
 * within HANDSHAKE_TIMEOUT_MS.
 */
import type { Socket } from "bun";
import { decodeText, FrameReader, FrameType, MAX_FRAME_BYTES, PREAUTH_MAX_FRAME_BYTES, type FrameTypeId } from "../core/frames.ts";
import type { Logger } from "../types.ts";
import { Outbox } from "./outbox.ts";
import { HANDSHAKE_TIMEOUT_MS, isChallenge, newChallenge, prove, verify, type HopTranscript } from "./peer-auth.ts";

/** Where a peer listens, as the supervisor tells it. */
export interface PeerAddress {
  index: number;
  gen: number;
  path: string;
}

export interface PeerEvents {
  /** The listener proved the cluster secret: calls may be sent. */
  ready(): void;
  /** An answer frame, after the handshake. */
  frame(type: number, id: number, payload: Uint8Array): void;
  /** The connection is gone (closed, refused, or it never opened). Called once. */
  closed(): void;
}

export interface PeerIdentity {
  /** This worker's index and generation. */
  index: number;
  gen: number;
  secret: string;
}

export class PeerConnection {
  readonly gen: number;
  /** The listener proved the secret. */
  ready = false;
  closed = false;
  /** Stop sending here (a newer worker has the index, or this worker stops); it closes once idle. */
  retired = false;
  private socket: Socket<PeerConnection> | null = null;
  private outbox: Outbox | null = null;
  /** The handshake so far: set once our proof is sent, awaiting the listener's. */
  private transcript: HopTranscript | null = null;
  private handshakeTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly reader: FrameReader;

  constructor(
    private readonly addr: PeerAddress,
    private readonly self: PeerIdentity,
    private readonly log: Logger,
    private readonly events: PeerEvents,
  ) {
    this.gen = addr.gen;
    this.reader = new FrameReader((type, id, payload) => this.onFrame(type, id, payload), PREAUTH_MAX_FRAME_BYTES);
    const conn = this;
    Bun.connect<PeerConnection>({
      unix: addr.path,
      data: conn,
      socket: {
        open(socket) {
          conn.socket = socket;
          conn.outbox = new Outbox(socket);
          if (conn.retired) socket.end();
          else conn.handshakeTimer = setTimeout(() => conn.refuse("handshake not finished in time"), HANDSHAKE_TIMEOUT_MS);
        },
        data(_socket, chunk) {
          if (conn.closed) return;
          try {
            conn.reader.feed(chunk);
          } catch (err) {
            conn.refuse(`malformed stream (${String(err)})`);
          }
        },
        drain() {
          conn.outbox?.onDrain();
        },
        close() {
          conn.markClosed();
        },
        error(_socket, err) {
          conn.log.debug("hop: connection error", { peer: addr.index, err: String(err) });
        },
      },
    }).catch(() => conn.markClosed());
  }

  /** Queues a frame; false when the outbox is full (the caller answers OVERLOADED). */
  send(type: FrameTypeId, id: number, text: string, tail: Uint8Array | undefined): boolean {
    return this.outbox!.send(type, id, text, tail);
  }

  /** Closes after what is queued is written (a connection still dialling closes once it opens). */
  end(): void {
    if (!this.closed) this.socket?.end();
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.outbox?.close();
    this.events.closed();
  }

  /** Drops a connection whose peer broke the protocol or failed to prove the secret. */
  private refuse(why: string): void {
    if (this.closed) return;
    this.log.warn(`hop: closing connection to peer: ${why}`, { peer: this.addr.index, gen: this.gen });
    this.socket?.terminate();
    this.markClosed();
  }

  private onFrame(type: number, id: number, payload: Uint8Array): void {
    if (this.closed) return;
    if (this.ready) {
      this.events.frame(type, id, payload);
      return;
    }
    if (type !== FrameType.HELLO) {
      this.refuse(`frame of type ${type} before the handshake finished`);
      return;
    }
    this.onHello(payload);
  }

  /**
   * The handshake, dialer side: answer the listener's challenge with our proof and our own
   * challenge, then accept the connection only with the listener's proof over both.
   */
  private onHello(payload: Uint8Array): void {
    let msg: { challenge?: unknown; ok?: unknown; mac?: unknown } = {};
    try {
      msg = JSON.parse(decodeText(payload));
    } catch {}
    if (!this.transcript) {
      if (!isChallenge(msg.challenge)) {
        this.refuse("listener sent no valid challenge");
        return;
      }
      this.transcript = {
        listenerChallenge: msg.challenge,
        dialerChallenge: newChallenge(),
        dialer: { index: this.self.index, gen: this.self.gen },
        listener: { index: this.addr.index, gen: this.gen },
      };
      const mac = prove(this.self.secret, "dialer", this.transcript);
      this.outbox!.send(FrameType.HELLO, 0, JSON.stringify({ index: this.self.index, gen: this.self.gen, challenge: this.transcript.dialerChallenge, mac }));
      return;
    }
    if (msg.ok !== true || !verify(this.self.secret, "listener", this.transcript, msg.mac)) {
      this.refuse("listener failed to prove the cluster secret");
      return;
    }
    this.ready = true;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.reader.setMaxFrame(MAX_FRAME_BYTES);
    this.events.ready();
  }
}
