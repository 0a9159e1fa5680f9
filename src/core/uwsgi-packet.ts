/**
 * The uwsgi protocol's request packet (uWSGI's "uwsgi" socket, what nginx's `uwsgi_pass` sends):
 * a 4-byte header — modifier1 (0 = a WSGI request), the size of the vars block as u16
 * little-endian, modifier2 (0) — then the vars, each as u16 LE key length, key, u16 LE value
 * length, value (UTF-8), then the request body, whose length the CONTENT_LENGTH var gives.
 * The server answers with a raw HTTP/1.x response and closes the connection.
 *
 * Why a pure encoder: the bridge can then stand in front of Python processes that already
 * listen on uwsgi sockets for nginx, and the bytes are checked in a unit test without a socket.
 * Pure TypeScript (Buffer from node:buffer only).
 */
import { Buffer } from "node:buffer";

/** Largest key, value and vars block: each length is a u16 on the wire. */
export const UWSGI_MAX_SIZE = 0xffff;

/** A request that the uwsgi protocol cannot carry (a var or the vars block over 65,535 bytes). */
export class UwsgiPacketError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UwsgiPacketError";
  }
}

/**
 * Encodes one request packet: header, vars in the order given, body.
 * @param vars `[name, value]` pairs (CGI names: REQUEST_METHOD, PATH_INFO, HTTP_X_REQUEST_ID, …)
 * @throws UwsgiPacketError naming the var that does not fit, never a truncated packet
 */
export function encodeUwsgiPacket(vars: ReadonlyArray<readonly [string, string]>, body?: Uint8Array): Buffer {
  let size = 0;
  const lengths: number[] = [];
  for (const [key, value] of vars) {
    const k = Buffer.byteLength(key, "utf8");
    const v = Buffer.byteLength(value, "utf8");
    if (k > UWSGI_MAX_SIZE) throw new UwsgiPacketError(`uwsgi var name of ${k} bytes: at most ${UWSGI_MAX_SIZE}`);
    if (v > UWSGI_MAX_SIZE) throw new UwsgiPacketError(`uwsgi var ${key} holds ${v} bytes: at most ${UWSGI_MAX_SIZE}`);
    lengths.push(k, v);
    size += 4 + k + v;
  }
  if (size > UWSGI_MAX_SIZE) throw new UwsgiPacketError(`uwsgi vars of ${size} bytes in all: at most ${UWSGI_MAX_SIZE}`);
  const bodyLength = body?.length ?? 0;
  const out = Buffer.allocUnsafe(4 + size + bodyLength);
  out[0] = 0;
  out.writeUInt16LE(size, 1);
  out[3] = 0;
  let at = 4;
  let i = 0;
  for (const [key, value] of vars) {
    out.writeUInt16LE(lengths[i]!, at);
    at += 2;
    at += out.write(key, at, "utf8");
    out.writeUInt16LE(lengths[i + 1]!, at);
    at += 2;
    at += out.write(value, at, "utf8");
    i += 2;
  }
  if (body !== undefined && bodyLength > 0) out.set(body, at);
  return out;
}
