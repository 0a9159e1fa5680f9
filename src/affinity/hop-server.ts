/**
 * The listening side of the hop: a Unix socket (mode 0600 in QDP_RUNTIME_DIR) that peers dial.
 * Each connection must authenticate first (peer-auth.ts); then frames are answered in any
 * order by id, so one socket carries thousands of concurrent calls.
 */
import { chmodSync, unlinkSync } from "node:fs";
import type { Socket, UnixSocketListener } from "bun";
import { decodeText, FrameReader, FrameType, type FrameTypeId } from "../core/frames.ts";
import type { Logger } from "../services/types.ts";
import { Outbox } from "./outbox.ts";
import { checkHello, newChallenge } from "./peer-auth.ts";

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
  outbox: Outbox;
  reader: FrameReader;
}

export interface HopServer {
  readonly path: string;
  stop(): void;
}

export function startHopServer(opts: { path: string; secret: string; log: Logger; handle: HopHandler }): HopServer {
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
          outbox: new Outbox(socket),
          reader: new FrameReader((type, id, payload) => onFrame(socket, state, type, id, payload)),
        };
        socket.data = state;
        state.outbox.send(FrameType.HELLO, 0, JSON.stringify({ challenge: state.challenge }));
      },
      data(socket, chunk) {
        try {
          socket.data.reader.feed(chunk);
          socket.data.outbox.flushNow();
        } catch (err) {
          opts.log.warn("hop: malformed stream, closing connection", { peer: socket.data.peer, err: String(err) });
          socket.end();
        }
      },
      drain(socket) {
        socket.data.outbox.onDrain();
      },
      close(socket) {
        socket.data.outbox.close();
      },
      error(socket, err) {
        opts.log.warn("hop: socket error", { peer: socket.data?.peer, err: String(err) });
      },
    },
  });
  // Only this user may dial the socket; the directory is 0700 as well.
  chmodSync(opts.path, 0o600);

  function onFrame(socket: Socket<ConnState>, state: ConnState, type: number, id: number, payload: Uint8Array): void {
    if (!state.authed) {
      let hello: { index?: unknown; gen?: unknown; mac?: unknown } = {};
      try {
        hello = type === FrameType.HELLO ? JSON.parse(decodeText(payload)) : {};
      } catch {}
      const index = hello.index;
      const gen = hello.gen;
      if (typeof index !== "number" || typeof gen !== "number" || !checkHello(opts.secret, state.challenge, index, gen, hello.mac)) {
        opts.log.warn("hop: peer failed authentication, closing");
        socket.end();
        return;
      }
      state.authed = true;
      state.peer = index;
      state.outbox.send(FrameType.HELLO, 0, JSON.stringify({ ok: true }));
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
    }
    else state.outbox.send(reply.type, id, reply.text);
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
