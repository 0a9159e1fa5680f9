/**
 * A keep-alive HTTP/1.1 client on `Bun.connect`, for the upstream calls services make.
 *
 * Why not `fetch`: in Bun 1.4.5 one `fetch` costs 57–97 µs of CPU (GET → small JSON), a
 * request over a kept-alive `Bun.connect` socket 18–21 µs; demo.quote makes two upstream calls,
 * so fetch alone was most of a call's CPU. Bun's fetch also queues past 256 requests per process
 * (BUN_CONFIG_MAX_HTTP_REQUESTS); this pool's limit is ours.
 *
 * What it does: a pool of connections per origin (`maxPerOrigin`, then callers queue), idle
 * connections closed after `idleMs`, Content-Length, chunked and close-delimited bodies, no body
 * for HEAD/1xx/204/304, `https:` through Bun's TLS sockets, abort through an `AbortSignal` (or the
 * lighter `Abort` of core/abort.ts).
 * A reset or EOF before the response is whole is an error. One retry, and only where the
 * request cannot have been processed: a GET or HEAD on a reused connection that closed before
 * any byte of the answer (the server closed it while idle). Every error says what went wrong
 * as a {@link UpstreamFailure}, so that a caller can tell a server that is not there (the bridge
 * marks a backend down) from one that dropped a connection (only that call fails).
 */
import type { AbortSource } from "../core/abort.ts";
import type { Socket, SocketHandler } from "bun";
import { Buffer } from "node:buffer";
import { ResponseReader } from "../core/http1-response.ts";
import { writeAll, writePending } from "../core/pending-writes.ts";

export interface HttpRequest {
  method: string;
  url: URL;
  /**
   * Path and query as sent on the request line; default `url.pathname + url.search`. Lets a
   * caller reuse one URL object for an origin and path it calls often (the origin is then
   * looked up once per URL object, not parsed out of it per request).
   */
  target?: string;
  /** Extra header fields (lower-case names); host and content-length are set here. */
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSource;
  /**
   * `false`: send `Connection: close` and never reuse the connection, for servers that close
   * after every answer without saying so (uWSGI's `--http-socket`). Default true.
   */
  keepAlive?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

export interface HttpClientOptions {
  /** Open connections per origin; past it requests wait for one. Default 1024. */
  maxPerOrigin?: number;
  /** An idle connection is closed after this long (keep it below the servers' idle timeouts). Default 4000. */
  idleMs?: number;
  /** Largest response body accepted. Default 16 MiB. */
  maxResponseBytes?: number;
  /** Extra trust for `https:` upstreams (PEM), e.g. an internal CA; the system's CAs apply too. */
  ca?: string | string[];
}

export interface HttpClient {
  request(req: HttpRequest): Promise<HttpResponse>;
  /** Connections open now, over all origins. */
  readonly open: number;
  /** Closes every connection; pending requests fail. */
  close(): void;
}

/**
 * What went wrong with an upstream request:
 * - `connect`: the connection could not be opened (refused, unreachable, no such Unix socket);
 *   nothing was sent, the server is not there.
 * - `closed-before-answer`: the connection closed before any byte of the answer.
 * - `closed-mid-answer`: it closed after part of the answer.
 * - `bad-answer`: the answer is not HTTP/1.x, is too large, or has bytes after its end.
 * - `bad-request`: the request cannot be sent (an unsupported URL, a field the protocol cannot carry).
 * - `aborted`: the caller's signal ended it.
 */
export type UpstreamFailure = "connect" | "closed-before-answer" | "closed-mid-answer" | "bad-answer" | "bad-request" | "aborted";

/** An upstream connection failed or answered something that is not HTTP/1.1. */
export class UpstreamHttpError extends Error {
  constructor(
    message: string,
    readonly kind: UpstreamFailure,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "UpstreamHttpError";
  }
}

interface Exchange {
  resolve(res: HttpResponse): void;
  reject(err: unknown): void;
  reader: ResponseReader;
  /** The connection may serve another request after this one (the request's `keepAlive`). */
  reuse: boolean;
}

interface Conn {
  socket: Socket<Conn>;
  origin: Origin;
  out: Uint8Array | null;
  exchange: Exchange | null;
  /** Served a request before (a failure before any answer may be a stale keep-alive). */
  reused: boolean;
  idleSince: number;
  closed: boolean;
}

interface Origin {
  key: string;
  hostname: string;
  port: number;
  tls: boolean;
  /** The Host header value. */
  host: string;
  idle: Conn[];
  open: number;
  waiters: Array<{ take(c: Conn | null): void }>;
}

const SWEEP_MS = 1000;

export function createHttpClient(options: HttpClientOptions = {}): HttpClient {
  const maxPerOrigin = options.maxPerOrigin ?? 1024;
  const idleMs = options.idleMs ?? 4000;
  const maxResponseBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
  const origins = new Map<string, Origin>();
  let open = 0;
  /** Connections done with, waiting for the server to close them (see onData). */
  const closing = new Set<Conn>();

  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const c of closing) if (now - c.idleSince > SWEEP_MS) c.socket.terminate();
    for (const o of origins.values()) {
      while (o.idle.length > 0 && now - o.idle[0]!.idleSince > idleMs) o.idle.shift()!.socket.end();
    }
  }, SWEEP_MS);
  sweeper.unref?.();

  /** The origin of each URL object seen, so a URL reused for many requests is read once. */
  const originByUrl = new WeakMap<URL, Origin>();

  function originOf(url: URL): Origin {
    let o = originByUrl.get(url);
    if (o === undefined) originByUrl.set(url, (o = originFromUrl(url)));
    return o;
  }

  function originFromUrl(url: URL): Origin {
    const tls = url.protocol === "https:";
    if (!tls && url.protocol !== "http:") throw new UpstreamHttpError(`unsupported URL scheme ${url.protocol}`, "bad-request");
    const port = url.port === "" ? (tls ? 443 : 80) : Number(url.port);
    const key = `${url.protocol}//${url.hostname}:${port}`;
    let o = origins.get(key);
    if (o === undefined) {
      // URL keeps IPv6 literals in brackets; the socket wants the bare address.
      const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
      origins.set(key, (o = { key, hostname, port, tls, host: url.host, idle: [], open: 0, waiters: [] }));
    }
    return o;
  }

  // One handlers object for every connection (the connection is the socket's data): Bun then
  // sets up no handler state per connect, which a bridge with a connection per call pays often.
  const handlers: SocketHandler<Conn> = {
    data(s, chunk) {
      onData(s.data, chunk);
    },
    drain(s) {
      writePending(s, s.data);
    },
    close(s) {
      onClose(s.data, null);
    },
    error(s, err) {
      onClose(s.data, err);
    },
    connectError(s, err) {
      onClose(s.data, err);
    },
  };

  async function connect(o: Origin): Promise<Conn> {
    o.open++;
    open++;
    const conn = { origin: o, out: null, exchange: null, reused: false, idleSince: 0, closed: false } as unknown as Conn;
    try {
      conn.socket = await Bun.connect<Conn>({
        hostname: o.hostname,
        port: o.port,
        tls: o.tls ? { serverName: o.hostname, ...(options.ca === undefined ? {} : { ca: options.ca }) } : undefined,
        data: conn,
        socket: handlers,
      });
    } catch (err) {
      onClose(conn, err);
      throw new UpstreamHttpError(`cannot connect to ${o.key}: ${(err as Error).message}`, "connect", { cause: err });
    }
    return conn;
  }

  /** A connection for one request: an idle one, a new one, or the next one released. */
  function acquire(o: Origin, signal: AbortSource | undefined): Conn | Promise<Conn> {
    while (o.idle.length > 0) {
      const c = o.idle.pop()!;
      if (c.closed) continue;
      // Idle past idleMs (the sweeper has not come by yet): the server may be closing it now;
      // the newest idle connection is popped first, so the rest are older still.
      if (Date.now() - c.idleSince > idleMs) {
        c.socket.end();
        continue;
      }
      return c;
    }
    if (o.open < maxPerOrigin) return connect(o);
    return new Promise<Conn>((resolve, reject) => {
      const waiter = {
        take(c: Conn | null) {
          signal?.removeEventListener("abort", onAbort);
          if (c !== null) resolve(c);
          else connect(o).then(resolve, reject);
        },
      };
      const onAbort = () => {
        const i = o.waiters.indexOf(waiter);
        if (i >= 0) o.waiters.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      o.waiters.push(waiter);
    });
  }

  /** A connection whose exchange ended cleanly goes to the next waiter, or idles. */
  function release(c: Conn): void {
    c.reused = true;
    c.exchange = null;
    const w = c.origin.waiters.shift();
    if (w !== undefined) {
      w.take(c);
      return;
    }
    c.idleSince = Date.now();
    c.origin.idle.push(c);
  }

  function onClose(c: Conn, err: unknown): void {
    if (c.closed) return;
    c.closed = true;
    open--;
    // A lingering connection gave its slot back when its answer was whole.
    if (closing.delete(c)) return;
    c.origin.open--;
    const ex = c.exchange;
    c.exchange = null;
    if (ex !== null) {
      // A close-delimited body ends here, cleanly.
      const res = ex.reader.atClose();
      if (res !== null) ex.resolve(res);
      else if (ex.reader.received === 0)
        ex.reject(new UpstreamHttpError("connection closed before any answer", "closed-before-answer", { cause: err ?? undefined }));
      else ex.reject(new UpstreamHttpError("connection closed mid-response", "closed-mid-answer", { cause: err ?? undefined }));
    }
    // A slot freed: a queued request may open a connection of its own.
    const w = c.origin.waiters.shift();
    w?.take(null);
  }

  function onData(c: Conn, chunk: Buffer): void {
    const ex = c.exchange;
    if (ex === null) {
      // Bytes nobody asked for: the connection is out of step; never reuse it.
      c.socket.terminate();
      return;
    }
    let res: HttpResponse & { keepAlive: boolean };
    try {
      const got = ex.reader.push(chunk);
      if (got === null) return;
      res = got;
    } catch (err) {
      c.exchange = null;
      c.socket.terminate();
      ex.reject(new UpstreamHttpError(`bad response from ${c.origin.key}: ${(err as Error).message}`, "bad-answer", { cause: err }));
      return;
    }
    c.exchange = null;
    ex.resolve(res);
    if (res.keepAlive && ex.reuse) release(c);
    else {
      // The server closes after this answer (it said so, or it must, having been sent
      // `Connection: close`): let it close first, so that the TIME_WAIT state is the server's
      // and not one more of this host's ephemeral ports — a bridge that opens a connection per
      // call would otherwise tie up thousands of them. A server that does not close is closed
      // by the sweeper a second later.
      // Its slot is free now: the answer is whole, only the close is left.
      c.idleSince = Date.now();
      closing.add(c);
      c.origin.open--;
      c.origin.waiters.shift()?.take(null);
    }
  }

  function encode(req: HttpRequest, o: Origin): Uint8Array {
    let head = `${req.method} ${req.target ?? req.url.pathname + req.url.search} HTTP/1.1\r\nhost: ${o.host}\r\n`;
    for (const name in req.headers) head += `${name}: ${req.headers[name]}\r\n`;
    if (req.keepAlive === false) head += "connection: close\r\n";
    const body = req.body === undefined ? null : typeof req.body === "string" ? Buffer.from(req.body) : req.body;
    if (body !== null || req.method === "POST" || req.method === "PUT" || req.method === "PATCH") head += `content-length: ${body?.length ?? 0}\r\n`;
    head += "\r\n";
    return body === null || body.length === 0 ? Buffer.from(head, "latin1") : Buffer.concat([Buffer.from(head, "latin1"), body]);
  }

  async function once(req: HttpRequest, o: Origin): Promise<{ res?: HttpResponse; stale?: boolean }> {
    const got = acquire(o, req.signal);
    const c = got instanceof Promise ? await got : got;
    const wasReused = c.reused;
    if (req.signal?.aborted) {
      release(c);
      throw req.signal.reason ?? new UpstreamHttpError("request aborted", "aborted");
    }
    const onAbort = () => c.socket.terminate();
    req.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const res = await new Promise<HttpResponse>((resolve, reject) => {
        c.exchange = { resolve, reject, reader: new ResponseReader(req.method, maxResponseBytes), reuse: req.keepAlive !== false };
        if (c.closed) onClose(c, null);
        else writeAll(c.socket, c, encode(req, o));
      });
      return { res };
    } catch (err) {
      if (req.signal?.aborted) throw req.signal.reason ?? new UpstreamHttpError("request aborted", "aborted");
      const idempotent = req.method === "GET" || req.method === "HEAD";
      if (wasReused && idempotent && err instanceof UpstreamHttpError && err.kind === "closed-before-answer") return { stale: true };
      throw err;
    } finally {
      req.signal?.removeEventListener("abort", onAbort);
    }
  }

  return {
    async request(req) {
      const o = originOf(req.url);
      const first = await once(req, o);
      if (first.res !== undefined) return first.res;
      // The server closed a kept-alive connection as we reused it; the GET never reached it.
      const second = await once(req, o);
      if (second.res !== undefined) return second.res;
      throw new UpstreamHttpError(`connection to ${o.key} closed before any answer, twice`, "closed-before-answer");
    },
    get open() {
      return open;
    },
    close() {
      clearInterval(sweeper);
      for (const c of closing) c.socket.terminate();
      closing.clear();
      for (const o of origins.values()) {
        for (const c of o.idle) c.socket.terminate();
        o.idle = [];
      }
    },
  };
}
