/**
 * The public port's HTTP/1.1 transport: `Bun.listen` (SO_REUSEPORT) plus the framing of
 * core/http1.ts. Why not Bun.serve: see core/http1.ts. What this transport promises:
 *
 * - Requests on one connection are run one at a time and answered in order. A pipelined
 *   request is read only after the previous one was answered, so every request read either
 *   gets its answer in order or never runs.
 * - A connection is closed by the server only after a response that said `Connection: close`,
 *   after a request that cannot be framed (answered first), or when it stayed idle longer than
 *   a documented timeout (`idleTimeoutMs`; `drainIdleMs` while draining).
 * - A request must arrive whole within `bodyTimeoutMs` of its first byte, so slow senders hold
 *   neither a call slot nor a connection for long. Reading a body is not a call in flight.
 */
import type { Socket, TCPSocketListener, TCPSocketListenOptions } from "bun";
import { Buffer } from "node:buffer";
import { FramingError, MAX_HEAD_BYTES, parseChunked, parseHead, type RequestHead } from "../core/http1.ts";
import { writeAll, writePending } from "../core/pending-writes.ts";

/** One request, read whole. */
export interface Http1Request {
  head: RequestHead;
  body: Uint8Array;
  /** The peer's address as the socket reports it. */
  clientIp: string;
}

/** A response as the edge builds it; the transport adds Content-Length, Date and Connection. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string | Uint8Array;
  /**
   * `headers` already written as `name: value\r\n` lines (without Connection), when the builder
   * has them (edge/responses.ts, for every call's answer): the transport then writes them as
   * they are instead of walking `headers`, which took ~0.4 µs of a ~0.9 µs response head.
   */
  headLines?: string;
}

export interface Http1ServerOptions {
  hostname: string;
  port: number;
  /** Largest body; a larger one is refused 413 before it is read. */
  maxBody: number;
  /** A request (head and body) must be read whole within this long of its first byte. */
  bodyTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  idleTimeoutMs: number;
  /**
   * HTTPS: PEM certificate (chain) and private key, as text. Bun terminates TLS in the socket
   * layer, so framing, limits and timeouts below are the same with or without it.
   */
  tls?: { cert: string; key: string };
  /** Runs one request. Must not throw: every failure is a Reply. */
  handle(req: Http1Request): Reply | Promise<Reply>;
  /** The answer to a request that cannot be read: 400/413 framing, 408 too slow. */
  refuse(status: 400 | 408 | 413, message: string): Reply;
  /** The answer when `handle` threw or rejected (a bug: it should answer with a Reply). */
  crashed(err: unknown): Reply;
  /** A client closed its connection while its request ran (the answer is dropped) or before it was read. */
  onClientAbort?(): void;
}

export interface Http1Server {
  readonly port: number;
  /** Open connections. */
  readonly connections: number;
  /**
   * Stops accepting and starts closing connections the way clients expect: every later
   * response says `Connection: close`, and a connection idle for `drainIdleMs` is closed.
   */
  drain(drainIdleMs: number): void;
  /** Resolves when every connection is closed (after `drain`). */
  whenClosed(): Promise<void>;
  /** Closes everything now. */
  close(): void;
}

interface Conn {
  socket: Socket<Conn>;
  /**
   * The peer's address, read once: Bun's `remoteAddress` formats a new string on every read, and
   * every request on the connection needs it.
   */
  clientIp: string;
  /** Bytes received and not yet consumed (the start of the next request). */
  buf: Buffer | null;
  /** A request is being run; later bytes wait in `buf`. */
  busy: boolean;
  /** No more requests on this connection: close once the last response is written. */
  closing: boolean;
  closed: boolean;
  /** When the first byte of the request being read arrived (0: none being read). */
  readingSince: number;
  /**
   * When the sweep last saw bytes move in either direction (or the connection opened). Reads and
   * writes only set `moved`; the next sweep turns that into its own time. A connection is thus
   * taken for idle at most one sweep later than exact, never earlier, and a request costs no
   * clock reads for it (two `Date.now()` a request before, ~0.1 µs each on this VM).
   */
  lastActive: number;
  /** Bytes moved since the last sweep. */
  moved: boolean;
  /** Response bytes the kernel did not take yet (Bun drops what write() does not accept). */
  out: Uint8Array | null;
  sentContinue: boolean;
  paused: boolean;
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};
const CONTINUE = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n");
const SWEEP_MS = 250;

let dateSec = 0;
let dateText = "";
function httpDate(): string {
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  if (sec !== dateSec) {
    dateSec = sec;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

export function serveHttp1(o: Http1ServerOptions): Http1Server {
  const conns = new Set<Conn>();
  let draining = false;
  /** Idle limit while draining; also how long a closing connection may linger. */
  let drainIdleMs = 1000;
  let closedWaiters: Array<() => void> = [];
  // Bytes a busy connection may buffer (a pipelined request behind the running one) before
  // reading pauses; resumes when the running request is answered.
  const maxBuffered = o.maxBody + 2 * MAX_HEAD_BYTES;

  // Bun.listen takes reusePort (every worker binds the port) though its types omit it for listeners.
  const options: TCPSocketListenOptions<Conn> & { reusePort: boolean } = {
    hostname: o.hostname,
    port: o.port,
    reusePort: true,
    ...(o.tls === undefined ? {} : { tls: { cert: o.tls.cert, key: o.tls.key } }),
    socket: {
      open(socket) {
        const now = Date.now();
        const c: Conn = {
          socket,
          clientIp: socket.remoteAddress,
          buf: null,
          busy: false,
          closing: false,
          closed: false,
          readingSince: 0,
          lastActive: now,
          moved: false,
          out: null,
          sentContinue: false,
          paused: false,
        };
        socket.data = c;
        conns.add(c);
      },
      data(socket, chunk) {
        const c = socket.data;
        if (c.closing && !c.busy) return; // after a refusal, nothing more is read
        c.moved = true;
        // Bun hands a fresh buffer per callback; keeping a view of it past the callback is safe.
        c.buf = c.buf === null ? chunk : Buffer.concat([c.buf, chunk]);
        if (c.busy) {
          if (c.readingSince === 0) c.readingSince = Date.now();
          if (c.buf.length > maxBuffered && !c.paused) {
            c.paused = true;
            socket.pause();
          }
          return;
        }
        pump(c);
        // A request whose first bytes came in this callback and that is not whole yet: its time
        // to arrive starts now. (A whole one was consumed without reading the clock.)
        if (c.readingSince === 0 && c.buf !== null && !c.busy && !c.closing && !c.closed) c.readingSince = Date.now();
      },
      drain(socket) {
        flush(socket.data);
      },
      close(socket) {
        forget(socket.data);
      },
      error(socket) {
        forget(socket.data);
      },
    },
  };
  const listener: TCPSocketListener<Conn> = Bun.listen<Conn>(options);

  function forget(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    conns.delete(c);
    // Gone while its request ran (the answer is dropped) or before it was read whole.
    if (c.busy || (c.readingSince !== 0 && !c.closing)) o.onClientAbort?.();
    if (conns.size === 0 && closedWaiters.length > 0) {
      const w = closedWaiters;
      closedWaiters = [];
      for (const f of w) f();
    }
  }

  /** Reads and runs the next buffered request, if one is there whole. */
  function pump(c: Conn): void {
    while (!c.busy && !c.closed && !c.closing && c.buf !== null) {
      let parsed: { head: RequestHead; body: Uint8Array; end: number } | null;
      try {
        parsed = frame(c);
      } catch (err) {
        if (!(err instanceof FramingError)) throw err;
        c.closing = true;
        write(c, o.refuse(err.status, err.message), false, false);
        return;
      }
      if (parsed === null) return;
      const { head, body, end } = parsed;
      c.buf = end >= c.buf.length ? null : c.buf.subarray(end);
      c.readingSince = c.buf === null ? 0 : Date.now();
      c.sentContinue = false;
      c.busy = true;
      let reply: Reply | Promise<Reply>;
      try {
        reply = o.handle({ head, body, clientIp: c.clientIp });
      } catch (err) {
        reply = o.crashed(err);
      }
      if (reply instanceof Promise) {
        reply.then(
          (r) => answer(c, head, r, true),
          (err) => answer(c, head, o.crashed(err), true),
        );
        return;
      }
      // Answered in this tick: this loop reads the next request (answer calling pump again
      // would nest one level per pipelined request).
      answer(c, head, reply, false);
    }
  }

  /** The next request's head and body, or null while bytes are missing. */
  function frame(c: Conn): { head: RequestHead; body: Uint8Array; end: number } | null {
    const buf = c.buf!;
    const got = parseHead(buf, 0);
    if (got === null) return null;
    const { head, bodyAt } = got;
    if (head.chunked) {
      const chunked = parseChunked(buf, bodyAt, o.maxBody);
      if (chunked === null) return continueIfAsked(c, head);
      return { head, body: chunked.body, end: chunked.end };
    }
    if (head.contentLength > o.maxBody) throw new FramingError(413, `body larger than ${o.maxBody} bytes`);
    const end = bodyAt + head.contentLength;
    if (buf.length < end) return continueIfAsked(c, head);
    return { head, body: buf.subarray(bodyAt, end), end };
  }

  function continueIfAsked(c: Conn, head: RequestHead): null {
    if (head.expectContinue && !c.sentContinue) {
      c.sentContinue = true;
      send(c, CONTINUE);
    }
    return null;
  }

  /** Writes a reply; `readNext`: go on with the connection's next request (a later tick's answer). */
  function answer(c: Conn, head: RequestHead, reply: Reply, readNext: boolean): void {
    c.busy = false;
    if (c.closed) return;
    const keepAlive = head.keepAlive && !draining && !c.closing;
    if (!keepAlive) c.closing = true;
    write(c, reply, keepAlive, head.method === "HEAD");
    if (c.paused) {
      c.paused = false;
      c.socket.resume();
    }
    if (keepAlive && readNext) pump(c);
  }

  function write(c: Conn, reply: Reply, keepAlive: boolean, headOnly: boolean): void {
    const body = reply.body;
    // A string body (every call's JSON) is encoded straight into one buffer with the head: one
    // allocation per response instead of three (92 vs 246 ns for a call's answer).
    const length = typeof body === "string" ? Buffer.byteLength(body) : body.length;
    const lines = reply.headLines ?? headerLines(reply.headers);
    const text = `HTTP/1.1 ${reply.status} ${STATUS_TEXT[reply.status] ?? "Status"}\r\n${lines}content-length: ${length}\r\ndate: ${httpDate()}\r\n${keepAlive ? "" : "connection: close\r\n"}\r\n`;
    // Header values are byte strings (one char per byte, as parsed): latin1 keeps them so.
    if (headOnly || length === 0) send(c, Buffer.from(text, "latin1"));
    else if (typeof body === "string") {
      const out = Buffer.allocUnsafe(text.length + length);
      out.write(text, 0, "latin1");
      out.write(body, text.length, "utf8");
      send(c, out);
    } else send(c, Buffer.concat([Buffer.from(text, "latin1"), body]));
    if (!keepAlive && c.out === null) c.socket.end();
  }

  function send(c: Conn, bytes: Uint8Array): void {
    writeAll(c.socket, c, bytes);
    c.moved = true;
  }

  function flush(c: Conn): void {
    if (c.out === null) return;
    c.moved = true;
    if (writePending(c.socket, c) && c.closing && !c.busy) c.socket.end();
  }

  // One sweep for all deadlines instead of a timer per request.
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const c of conns) {
      if (c.moved) {
        c.moved = false;
        c.lastActive = now;
      }
      if (c.out !== null) {
        // A client that stops reading its answers is cut after the idle timeout.
        if (now - c.lastActive > o.idleTimeoutMs) c.socket.terminate();
        continue;
      }
      if (c.busy) continue;
      if (c.closing) {
        // Answered with Connection: close; a client that keeps its end open is cut.
        if (now - c.lastActive > drainIdleMs + SWEEP_MS) c.socket.terminate();
        continue;
      }
      if (c.readingSince !== 0) {
        if (now - c.readingSince > o.bodyTimeoutMs) {
          c.closing = true;
          write(c, o.refuse(408, `request not received whole within ${o.bodyTimeoutMs} ms`), false, false);
        }
        continue;
      }
      if (now - c.lastActive > (draining ? drainIdleMs : o.idleTimeoutMs)) c.socket.end();
    }
  }, SWEEP_MS);
  sweeper.unref?.();

  return {
    get port() {
      return listener.port;
    },
    get connections() {
      return conns.size;
    },
    drain(idleMs) {
      if (draining) return;
      draining = true;
      drainIdleMs = idleMs;
      // stop(false) closes the listening socket only; accepted connections stay open. The kernel
      // moves connections still queued on it to the port's other listeners (tcp_migrate_req).
      listener.stop(false);
    },
    whenClosed() {
      if (conns.size === 0) return Promise.resolve();
      return new Promise((resolve) => closedWaiters.push(resolve));
    },
    close() {
      clearInterval(sweeper);
      listener.stop(true);
      for (const c of conns) c.socket.terminate();
    },
  };
}

/** A reply's headers as the lines of a response head; Connection is the transport's to say (a reply's own would be written twice). */
export function headerLines(headers: Record<string, string>): string {
  let lines = "";
  for (const name in headers) if (name !== "connection") lines += `${name}: ${headers[name]}\r\n`;
  return lines;
}
