/**
 * One request over the native uwsgi protocol (uWSGI's `--socket`, what nginx's `uwsgi_pass`
 * speaks), on a Unix socket or TCP: connect, send the packet (core/uwsgi-packet.ts: the request
 * as CGI vars, then the body), read the raw HTTP/1.x answer uWSGI writes (core/http1-response.ts)
 * until it is whole or the server closes. One connection per request, as nginx does: uWSGI
 * closes after every answer.
 *
 * Why: the Python processes the bridge stands in front of already listen on uwsgi sockets for
 * nginx; speaking their protocol lets an operator point qdp at those sockets on day one, and a
 * Unix socket connect costs far less than a TCP one.
 *
 * Errors are the pool's (`UpstreamHttpError` with a `kind`): a socket that cannot be opened —
 * refused, or a socket file that does not exist (ENOENT) — is `connect`.
 */
import type { Socket, SocketHandler } from "bun";
import { Buffer } from "node:buffer";
import { ResponseReader, type HttpAnswer } from "../core/http1-response.ts";
import { writeAll, writePending, type PendingWrites } from "../core/pending-writes.ts";
import { encodeUwsgiPacket } from "../core/uwsgi-packet.ts";
import { UpstreamHttpError } from "./http1-client.ts";

/** How long an answered connection is left for the server to close. */
const LINGER_MS = 1000;

/** A uwsgi socket: a Unix socket path, or a TCP host and port. */
export type UwsgiAddress = { readonly unix: string } | { readonly hostname: string; readonly port: number };

export interface UwsgiRequest {
  address: UwsgiAddress;
  method: string;
  /** Path and query as the client asked (REQUEST_URI), e.g. `/qdp`. */
  uri: string;
  /** Header fields, lower-case names; each becomes HTTP_<NAME> (content-type: CONTENT_TYPE). */
  headers: Record<string, string>;
  body: Uint8Array;
  signal?: AbortSignal;
  /** Largest response body accepted. Default 16 MiB. */
  maxResponseBytes?: number;
}

/** How messages name a uwsgi socket. */
export function uwsgiName(a: UwsgiAddress): string {
  return "unix" in a ? `uwsgi://${a.unix}` : `uwsgi://${a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname}:${a.port}`;
}

/**
 * The request as the CGI vars nginx's stock `uwsgi_params` sends. SERVER_NAME, SERVER_PORT and
 * HTTP_HOST name the backend (a Unix socket has no port: `localhost` and 80), REMOTE_ADDR is
 * this end of the connection — the caller's own address stays at qdp's edge.
 */
export function uwsgiVars(req: UwsgiRequest, localAddress: string): Array<[string, string]> {
  const q = req.uri.indexOf("?");
  const path = q < 0 ? req.uri : req.uri.slice(0, q);
  let pathInfo = path;
  try {
    pathInfo = decodeURIComponent(path);
  } catch {}
  const tcp = "unix" in req.address ? null : req.address;
  const vars: Array<[string, string]> = [
    ["REQUEST_METHOD", req.method],
    ["REQUEST_URI", req.uri],
    ["PATH_INFO", pathInfo],
    ["QUERY_STRING", q < 0 ? "" : req.uri.slice(q + 1)],
    ["SERVER_PROTOCOL", "HTTP/1.1"],
    ["CONTENT_TYPE", req.headers["content-type"] ?? ""],
    ["CONTENT_LENGTH", String(req.body.length)],
    ["SERVER_NAME", tcp?.hostname ?? "localhost"],
    ["SERVER_PORT", String(tcp?.port ?? 80)],
    ["REMOTE_ADDR", localAddress || "127.0.0.1"],
    ["HTTP_HOST", tcp === null ? "localhost" : `${tcp.hostname.includes(":") ? `[${tcp.hostname}]` : tcp.hostname}:${tcp.port}`],
  ];
  for (const name in req.headers) {
    if (name === "content-type" || name === "content-length" || name === "host") continue;
    vars.push([`HTTP_${name.toUpperCase().replaceAll("-", "_")}`, req.headers[name]!]);
  }
  return vars;
}

/** One request in flight: the socket's data. */
interface Exchange extends PendingWrites {
  readonly req: UwsgiRequest;
  readonly name: string;
  readonly reader: ResponseReader;
  settled: boolean;
  socket: Socket<Exchange> | null;
  resolve(res: HttpAnswer): void;
  reject(err: unknown): void;
  onAbort(): void;
}

function finish(ex: Exchange, err: unknown, res: HttpAnswer | null): void {
  if (ex.settled) return;
  ex.settled = true;
  ex.req.signal?.removeEventListener("abort", ex.onAbort);
  if (res !== null) ex.resolve(res);
  else ex.reject(err);
}

/** The connection ended: a close-delimited answer is whole now; anything else was cut short. */
function closed(ex: Exchange, err: unknown): void {
  const res = ex.reader.atClose();
  if (res !== null) finish(ex, null, res);
  else if (ex.reader.received === 0)
    finish(ex, new UpstreamHttpError(`${ex.name} closed the connection before any answer`, "closed-before-answer", { cause: err }), null);
  else finish(ex, new UpstreamHttpError(`${ex.name} closed the connection mid-answer`, "closed-mid-answer", { cause: err }), null);
}

function cannotConnect(ex: Exchange, err: unknown): void {
  const why = (err as { code?: string }).code ?? (err as Error).message;
  finish(ex, new UpstreamHttpError(`cannot connect to ${ex.name}: ${why}`, "connect", { cause: err }), null);
}

/** Answered connections, waiting for uWSGI to close them, by when they were answered. */
const lingering = new Map<Socket<Exchange>, number>();
let sweeper: ReturnType<typeof setInterval> | null = null;

/**
 * After a whole answer uWSGI closes the connection: let it close first, so that over TCP the
 * TIME_WAIT state is the server's, not one more of this host's ephemeral ports (a connection
 * per call would tie up thousands). One that is still open a second later is closed here.
 */
function linger(s: Socket<Exchange>): void {
  lingering.set(s, Date.now());
  if (sweeper !== null) return;
  sweeper = setInterval(() => {
    const now = Date.now();
    for (const [socket, since] of lingering) {
      if (now - since < LINGER_MS) break; // in answer order: the rest are younger
      lingering.delete(socket);
      socket.terminate();
    }
  }, LINGER_MS);
  sweeper.unref?.();
}

// One handlers object for every connection (the exchange is the socket's data): Bun then sets
// up no handler state per connect, and the protocol takes a connect per call.
const handlers: SocketHandler<Exchange> = {
  open(s) {
    const ex = s.data;
    // Aborted while connecting: the request must not reach the server after its caller gave up.
    if (ex.settled) {
      s.terminate();
      return;
    }
    let packet: Buffer;
    try {
      packet = encodeUwsgiPacket(uwsgiVars(ex.req, s.localAddress), ex.req.body);
    } catch (err) {
      // A var the protocol cannot carry (UwsgiPacketError): the request is never sent.
      finish(ex, new UpstreamHttpError((err as Error).message, "bad-request", { cause: err }), null);
      s.terminate();
      return;
    }
    writeAll(s, ex, packet);
  },
  drain(s) {
    writePending(s, s.data);
  },
  data(s, chunk) {
    const ex = s.data;
    if (ex.settled) return;
    let res: HttpAnswer | null;
    try {
      res = ex.reader.push(chunk);
    } catch (err) {
      finish(ex, new UpstreamHttpError(`bad response from ${ex.name}: ${(err as Error).message}`, "bad-answer", { cause: err }), null);
      s.terminate();
      return;
    }
    if (res === null) return;
    finish(ex, null, res);
    linger(s);
  },
  close(s, err) {
    lingering.delete(s);
    closed(s.data, err);
  },
  error(s, err) {
    closed(s.data, err);
  },
  connectError(s, err) {
    cannotConnect(s.data, err);
  },
};

/** Sends one request and resolves with the whole answer; rejects with an {@link UpstreamHttpError}. */
export function uwsgiRequest(req: UwsgiRequest): Promise<HttpAnswer> {
  return new Promise<HttpAnswer>((resolve, reject) => {
    const signal = req.signal;
    const ex: Exchange = {
      req,
      name: uwsgiName(req.address),
      reader: new ResponseReader(req.method, req.maxResponseBytes ?? 16 * 1024 * 1024),
      out: null,
      settled: false,
      socket: null,
      resolve,
      reject,
      onAbort() {
        finish(ex, signal!.reason ?? new UpstreamHttpError("request aborted", "aborted"), null);
        ex.socket?.terminate();
      },
    };
    if (signal?.aborted) {
      ex.onAbort();
      return;
    }
    signal?.addEventListener("abort", ex.onAbort, { once: true });
    const a = req.address;
    const connecting =
      "unix" in a ? Bun.connect({ unix: a.unix, data: ex, socket: handlers }) : Bun.connect({ hostname: a.hostname, port: a.port, data: ex, socket: handlers });
    connecting.then(
      (s) => {
        ex.socket = s;
        // Aborted while connecting: nobody waits for this connection any more.
        if (ex.settled && ex.reader.received === 0) s.terminate();
      },
      (err) => cannotConnect(ex, err),
    );
  });
}
