/**
 * The listening side of the hop: a Unix socket (mode 0600 in QDP_RUNTIME_DIR) that peers dial.
 * Each connection must authenticate first, and this side proves the cluster secret back
 * (peer-auth.ts); until then frames over PREAUTH_MAX_FRAME_BYTES close the connection at once.
 * Then frames are answered in any order by id, so one socket carries thousands of calls.
 */
import { chmodSync, unlinkSync } from "node:fs";
import type { Socket, UnixSocketListener } from "bun";
import { decodeText, FrameReader, FrameType, MAX_FRAME_BYTES, PREAUTH_MAX_FRAME_BYTES, type FrameTypeId } from "../core/frames.ts";
import type { Logger } from "../services/types.ts";
import { Outbox } from "./outbox.ts";
import { HANDSHAKE_TIMEOUT_MS, isChallenge, isId, newChallenge, prove, verify, type HopTranscript } from "./peer-auth.ts";

export interface HopReply {
  type: FrameTypeId;
  text: string;
}

/** Handles one authenticated frame; the reply goes back with the frame's id. */
export type HopHandler = (type: number, payload: Uint8Array, peer: number) => HopReply | Promise<HopReply>;

interface ConnState {
  challenge: string;
  peer: number;
  authed: boolean;
  /** Refused: whatever else arrives is ignored. */
  dead: boolean;
  handshakeTimer: ReturnType<typeof setTimeout> | null;
  outbox: Outbox;
  reader: FrameReader;
}

/** Where worker `index` of generation `gen` listens: one name per process, so a replacement never takes over a live path. */
export function hopSocketPath(runtimeDir: string, index: number, gen: number): string {
  return `${runtimeDir}/w${index}-g${gen}.sock`;
}

/** Names that hopSocketPath makes (for the clean-up of a dead cluster's sockets). */
export const HOP_SOCKET_NAME = /^w\d+-g\d+\.sock$/;

export interface HopServer {
  readonly path: string;
  stop(): void;
}

export interface HopServerOptions {
  path: string;
  secret: string;
  /** This worker's index and generation, which its proof covers. */
  index: number;
  gen: number;
  log: Logger;
  handle: HopHandler;
}

export function startHopServer(opts: HopServerOptions): HopServer {
  try {
    unlinkSync(opts.path);
  } catch {}
  const listener: UnixSocketListener<ConnState> = Bun.listen<ConnState>({
    unix: opts.path,
    socket: {
      open(socket) {
        const state: ConnState = {
          challenge: newChallenge(),
          peer: -1,
          authed: false,
          dead: false,
          handshakeTimer: null,
          outbox: new Outbox(socket),
          reader: new FrameReader((type, id, payload) => onFrame(socket, state, type, id, payload), PREAUTH_MAX_FRAME_BYTES),
        };
        socket.data = state;
        // A peer that never finishes the handshake does not keep a connection open.
        state.handshakeTimer = setTimeout(() => refuse(socket, "handshake not finished in time"), HANDSHAKE_TIMEOUT_MS);
        state.outbox.send(FrameType.HELLO, 0, JSON.stringify({ challenge: state.challenge }));
      },
      data(socket, chunk) {
        if (socket.data.dead) return;
        try {
          socket.data.reader.feed(chunk);
          socket.data.outbox.flushNow();
        } catch (err) {
          refuse(socket, `malformed stream (${String(err)})`);
        }
      },
      drain(socket) {
        socket.data.outbox.onDrain();
      },
      close(socket) {
        if (socket.data.handshakeTimer) clearTimeout(socket.data.handshakeTimer);
        socket.data.outbox.close();
      },
      error(socket, err) {
        opts.log.warn("hop: socket error", { peer: socket.data?.peer, err: String(err) });
      },
    },
  });
  // Only this user may dial the socket; the directory is 0700 as well.
  chmodSync(opts.path, 0o600);

  /** Closes at once, without reading or answering anything more from this peer. */
  function refuse(socket: Socket<ConnState>, why: string): void {
    const state = socket.data;
    if (state.dead) return;
    state.dead = true;
    if (state.handshakeTimer) clearTimeout(state.handshakeTimer);
    opts.log.warn(`hop: closing connection: ${why}`, { peer: state.peer });
    state.outbox.close();
    socket.terminate();
  }

  function onFrame(socket: Socket<ConnState>, state: ConnState, type: number, id: number, payload: Uint8Array): void {
    if (state.dead) return;
    if (!state.authed) {
      let hello: { index?: unknown; gen?: unknown; challenge?: unknown; mac?: unknown } = {};
      try {
        hello = type === FrameType.HELLO ? JSON.parse(decodeText(payload)) : {};
      } catch {}
      const { index, gen, challenge } = hello;
      if (!isId(index) || !isId(gen) || !isChallenge(challenge)) {
        refuse(socket, "peer failed authentication");
        return;
      }
      const t: HopTranscript = {
        listenerChallenge: state.challenge,
        dialerChallenge: challenge,
        dialer: { index, gen },
        listener: { index: opts.index, gen: opts.gen },
      };
      if (!verify(opts.secret, "dialer", t, hello.mac)) {
        refuse(socket, "peer failed authentication");
        return;
      }
      state.authed = true;
      state.peer = index;
      if (state.handshakeTimer) clearTimeout(state.handshakeTimer);
      state.handshakeTimer = null;
      state.reader.setMaxFrame(MAX_FRAME_BYTES);
      state.outbox.send(FrameType.HELLO, 0, JSON.stringify({ ok: true, mac: prove(opts.secret, "listener", t) }));
      return;
    }
    let reply: HopReply | Promise<HopReply>;
    try {
      reply = opts.handle(type, payload, state.peer);
    } catch (err) {
      reply = { type: FrameType.ERROR, text: JSON.stringify({ code: "INTERNAL", message: "internal error" }) };
      opts.log.error("hop: handler threw", { err });
    }
    if (reply instanceof Promise) {
      reply.then(
        (r) => state.outbox.send(r.type, id, r.text),
        (err) => {
          opts.log.error("hop: handler failed", { err });
          state.outbox.send(FrameType.ERROR, id, JSON.stringify({ code: "INTERNAL", message: "internal error" }));
        },
      );
    } else state.outbox.send(reply.type, id, reply.text);
  }

  return {
    path: opts.path,
    stop() {
      listener.stop(true);
      try {
        unlinkSync(opts.path);
      } catch {}
    },
  };
}
