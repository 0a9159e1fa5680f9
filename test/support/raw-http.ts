/**
 * A raw HTTP/1.1 client on a TCP socket, for the tests where the bytes matter: pipelining,
 * repeated headers, slow bodies, and connections reused the instant an answer arrives (fetch
 * and wrk hide those races).
 */
import type { Socket } from "bun";

export interface RawResponse {
  status: number;
  /** Lower-case names; repeats joined by ", ". */
  headers: Record<string, string>;
  body: string;
}

export interface RawConnection {
  /** Sends bytes as they are. */
  write(data: string | Uint8Array): void;
  /** Resolves with the next `n` responses, in order (rejects if the connection ends first or after `timeoutMs`). */
  responses(n: number, timeoutMs?: number): Promise<RawResponse[]>;
  /** Resolves when the server closed the connection. */
  readonly closed: Promise<void>;
  readonly isClosed: boolean;
  /** Responses received so far and not yet taken by `responses`. */
  readonly pending: RawResponse[];
  close(): void;
}

/** Builds one request's bytes. */
export function request(method: string, path: string, headers: Array<[string, string]> | Record<string, string>, body = ""): string {
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  let head = `${method} ${path} HTTP/1.1\r\nhost: qdp\r\n`;
  for (const [k, v] of list) head += `${k}: ${v}\r\n`;
  const bytes = Buffer.byteLength(body);
  if (method !== "GET" || bytes > 0) head += `content-length: ${bytes}\r\n`;
  return `${head}\r\n${body}`;
}

/** Parses as many whole responses as `buf` holds; returns them and the bytes left over. */
export function parseResponses(buf: Buffer): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const end = buf.indexOf("\r\n\r\n", at);
    if (end < 0) break;
    const lines = buf.toString("latin1", at, end).split("\r\n");
    const status = Number(lines[0]!.split(" ")[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(":");
      const k = line.slice(0, c).toLowerCase();
      const v = line.slice(c + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    if (status === 100) {
      at = end + 4;
      continue;
    }
    const len = Number(headers["content-length"] ?? 0);
    if (buf.length < end + 4 + len) break;
    responses.push({ status, headers, body: buf.toString("utf8", end + 4, end + 4 + len) });
    at = end + 4 + len;
  }
  return { responses, rest: buf.subarray(at) };
}

export async function connect(port: number, hostname = "127.0.0.1"): Promise<RawConnection> {
  let buf: Buffer = Buffer.alloc(0);
  const got: RawResponse[] = [];
  let isClosed = false;
  let wake: (() => void) | null = null;
  let onClosed!: () => void;
  const closed = new Promise<void>((r) => (onClosed = r));
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const socket: Socket<undefined> = await Bun.connect({
    hostname,
    port,
    socket: {
      data(_s, chunk) {
        buf = Buffer.concat([buf, chunk]);
        const parsed = parseResponses(buf);
        buf = parsed.rest;
        got.push(...parsed.responses);
        notify();
      },
      close() {
        isClosed = true;
        onClosed();
        notify();
      },
      error() {
        isClosed = true;
        onClosed();
        notify();
      },
    },
  });
  return {
    write(data) {
      socket.write(data);
    },
    async responses(n, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      while (got.length < n) {
        if (isClosed) throw new Error(`connection closed after ${got.length} of ${n} responses`);
        const left = until - Date.now();
        if (left <= 0) throw new Error(`timed out after ${got.length} of ${n} responses`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, left);
        });
      }
      return got.splice(0, n);
    },
    closed,
    get isClosed() {
      return isClosed;
    },
    get pending() {
      return got;
    },
    close() {
      socket.end();
    },
  };
}
