/**
 * Writing to a Bun socket without losing bytes: `socket.write()` returns how many bytes the
 * kernel took and drops the rest (HOP-NOTES.md), so the rest is kept here and written on
 * `drain`, in order. Used by the public HTTP/1.1 transport and the upstream client. Pure
 * TypeScript: the socket is anything with such a `write`.
 */
import { Buffer } from "node:buffer";

export interface ByteSink {
  /** Writes what it can; returns how many bytes it took (≤ 0 when none). */
  write(bytes: Uint8Array): number;
}

/** A socket's unwritten tail: null when everything was taken. */
export interface PendingWrites {
  out: Uint8Array | null;
}

/** Writes `bytes` after whatever is still pending, keeping what the socket does not take. */
export function writeAll(sink: ByteSink, p: PendingWrites, bytes: Uint8Array): void {
  if (p.out !== null) {
    p.out = Buffer.concat([p.out, bytes]);
    return;
  }
  const n = sink.write(bytes);
  if (n < bytes.length) p.out = bytes.subarray(Math.max(0, n));
}

/** On `drain`: writes the pending tail. @returns true when nothing is left pending. */
export function writePending(sink: ByteSink, p: PendingWrites): boolean {
  if (p.out === null) return true;
  const n = sink.write(p.out);
  p.out = n >= p.out.length ? null : p.out.subarray(Math.max(0, n));
  return p.out === null;
}
