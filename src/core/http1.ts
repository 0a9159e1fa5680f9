/**
 * HTTP/1.1 request framing for the public port (RFC 9112), as a pure parser: request line,
 * header section and body boundaries (Content-Length or chunked), nothing else.
 *
 * Why our own: Bun.serve 1.4.5 closes a connection when a pipelined request arrives while an
 * async handler is still running, after the first call already ran — its answer is lost
 * (oven-sh/bun PRs #33664, #38128). It also joins a repeated `X-QDP-User` into "a, b", and its
 * graceful stop cuts idle keep-alive connections that a client may be writing to. Owning the
 * framing lets the edge answer pipelined requests in order, see repeated headers, and close
 * keep-alive connections only where HTTP allows it.
 *
 * Strict on purpose (request smuggling lives in lenient parsers): CRLF line ends only, no
 * obs-fold, no whitespace before a header's colon, one Content-Length of digits, Transfer-Encoding
 * `chunked` only and never together with Content-Length, no control characters.
 * Pure TypeScript (Buffer from node:buffer only).
 */
import { Buffer } from "node:buffer";

/** Largest request line + header section; past it the request is refused 413. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Most header fields in one request; past it the request is refused 413. */
export const MAX_HEADERS = 100;

export interface RequestHead {
  method: string;
  /** The request target exactly as sent (origin form: path plus `?query`). */
  target: string;
  /** 1 for HTTP/1.1, 0 for HTTP/1.0. */
  minor: 0 | 1;
  /** Lower-case name → value as a byte string (one char per byte); repeats joined by ", ". */
  headers: Map<string, string>;
  /** Lower-case names that occurred more than once, or null. */
  repeated: Set<string> | null;
  /** Body length when framed by Content-Length (0 when there is no body). */
  contentLength: number;
  chunked: boolean;
  /** Whether the connection may carry another request after this one. */
  keepAlive: boolean;
  expectContinue: boolean;
}

/** A request that cannot be framed: answered with `status` and the connection closed. */
export class FramingError extends Error {
  constructor(
    readonly status: 400 | 413,
    message: string,
  ) {
    super(message);
    this.name = "FramingError";
  }
}

const CRLF2 = Buffer.from("\r\n\r\n");
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Visible ASCII only in the target; no spaces, no controls, no obs-text.
const TARGET = /^\/[\x21-\x7e]*$/;
// Field values: visible chars, space, tab and obs-text; no other control character.
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
// The same over a whole header section, where CR LF ends each line: any other control
// character, or a CR or LF that is not part of a CR LF pair.
const BAD_SECTION = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n/;

/**
 * Field names seen before, as sent → lower-cased. A caller sends the same dozen names on every
 * request; one Map lookup replaces a regex test and a toLowerCase per field (bench/http1-parse.ts:
 * a signed head went from 3.2 to 1.4–2.1 µs). Only names that passed the token check get in, and at
 * most {@link MAX_KNOWN_NAMES}, so a client inventing names cannot grow it.
 */
const knownNames = new Map<string, string>();
const MAX_KNOWN_NAMES = 512;

/**
 * Parses the request head starting at `from`.
 * @returns the head and the offset where its body starts, or `null` when more bytes are needed.
 * @throws FramingError for a request that cannot be framed.
 */
export function parseHead(buf: Buffer, from: number): { head: RequestHead; bodyAt: number } | null {
  const end = buf.indexOf(CRLF2, from);
  if (end < 0) {
    if (buf.length - from > MAX_HEAD_BYTES) throw new FramingError(413, `request head larger than ${MAX_HEAD_BYTES} bytes`);
    return null;
  }
  if (end - from > MAX_HEAD_BYTES) throw new FramingError(413, `request head larger than ${MAX_HEAD_BYTES} bytes`);
  const text = buf.toString("latin1", from, end);
  const lineEnd = text.indexOf("\r\n");
  const head = requestLine(lineEnd < 0 ? text : text.slice(0, lineEnd));
  if (lineEnd >= 0) readFields(head, text, lineEnd + 2);
  frameBody(head);
  return { head, bodyAt: end + 4 };
}

/** Adds the header fields of `text` from `at` (the section after the start line) to `head`. */
function readFields(head: RequestHead, text: string, at: number): void {
  // One scan of the whole header section for control characters instead of one per value.
  if (BAD_SECTION.test(text.slice(at))) throw new FramingError(400, "control character in a header value");
  let fields = 0;
  for (;;) {
    const next = text.indexOf("\r\n", at);
    if (++fields > MAX_HEADERS) throw new FramingError(413, `more than ${MAX_HEADERS} header fields`);
    addField(head, text, at, next < 0 ? text.length : next);
    if (next < 0) return;
    at = next + 2;
  }
}

function requestLine(line: string): RequestHead {
  const sp1 = line.indexOf(" ");
  const sp2 = line.indexOf(" ", sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || line.indexOf(" ", sp2 + 1) >= 0) throw new FramingError(400, "malformed request line");
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!TOKEN.test(method)) throw new FramingError(400, "malformed method");
  if (!TARGET.test(target)) throw new FramingError(400, "the request target must be a path (origin form)");
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") throw new FramingError(400, "only HTTP/1.1 and HTTP/1.0 are served");
  const minor = version === "HTTP/1.1" ? 1 : 0;
  return { method, target, minor, headers: new Map(), repeated: null, contentLength: 0, chunked: false, keepAlive: minor === 1, expectContinue: false };
}

/** Space or horizontal tab: optional whitespace around a field value. */
const isOws = (c: number) => c === 32 || c === 9;

/** Adds the field `text[from, to)` (one line, control characters already refused). */
function addField(head: RequestHead, text: string, from: number, to: number): void {
  const colon = text.indexOf(":", from);
  // No colon, an empty name, whitespace before the colon or a folded line are all refused.
  if (colon <= from || colon >= to) throw new FramingError(400, "malformed header field");
  const name = text.slice(from, colon);
  let key = knownNames.get(name);
  if (key === undefined) {
    if (!TOKEN.test(name)) throw new FramingError(400, "malformed header field name");
    key = name.toLowerCase();
    if (knownNames.size < MAX_KNOWN_NAMES) knownNames.set(name, key);
  }
  let a = colon + 1;
  let b = to;
  while (a < b && isOws(text.charCodeAt(a))) a++;
  while (b > a && isOws(text.charCodeAt(b - 1))) b--;
  const value = text.slice(a, b);
  const prev = head.headers.get(key);
  if (prev === undefined) head.headers.set(key, value);
  else {
    head.headers.set(key, `${prev}, ${value}`);
    (head.repeated ??= new Set()).add(key);
  }
}

/** Decides how the body is delimited, and whether the connection stays open after it. */
function frameBody(head: RequestHead): void {
  const h = head.headers;
  const te = h.get("transfer-encoding");
  const cl = h.get("content-length");
  if (te !== undefined) {
    if (cl !== undefined) throw new FramingError(400, "both Content-Length and Transfer-Encoding");
    if (te.toLowerCase() !== "chunked" || head.repeated?.has("transfer-encoding")) throw new FramingError(400, "only Transfer-Encoding: chunked is accepted");
    if (head.minor === 0) throw new FramingError(400, "Transfer-Encoding in an HTTP/1.0 request");
    head.chunked = true;
  } else if (cl !== undefined) {
    if (head.repeated?.has("content-length") || !/^\d{1,15}$/.test(cl)) throw new FramingError(400, "malformed Content-Length");
    head.contentLength = Number(cl);
  }
  const conn = h.get("connection");
  if (conn !== undefined) {
    for (const token of conn.toLowerCase().split(",")) {
      const t = token.trim();
      if (t === "close") head.keepAlive = false;
      else if (t === "keep-alive" && head.minor === 0) head.keepAlive = true;
    }
  }
  const expect = h.get("expect");
  if (expect !== undefined && expect.toLowerCase() === "100-continue" && head.minor === 1) head.expectContinue = true;
}

/** A chunked body decoded so far. */
export interface ChunkedBody {
  body: Buffer;
  /** Offset just past the body (after the last chunk and the trailer section). */
  end: number;
}

/**
 * Decodes a chunked body that starts at `from`, once all of it is buffered.
 * @returns the body, or `null` when more bytes are needed.
 * @throws FramingError for bad chunk framing, or a body over `maxBody` (413).
 */
export function parseChunked(buf: Buffer, from: number, maxBody: number): ChunkedBody | null {
  const parts: Buffer[] = [];
  let size = 0;
  let at = from;
  for (;;) {
    const eol = buf.indexOf("\r\n", at, "latin1");
    if (eol < 0) {
      if (buf.length - at > 1024) throw new FramingError(400, "malformed chunk size line");
      return null;
    }
    const line = buf.toString("latin1", at, eol);
    const semi = line.indexOf(";");
    const hex = semi < 0 ? line : line.slice(0, semi);
    if (!/^[0-9a-fA-F]{1,8}$/.test(hex) || BAD_VALUE.test(line)) throw new FramingError(400, "malformed chunk size line");
    const n = parseInt(hex, 16);
    if (size + n > maxBody) throw new FramingError(413, `body larger than ${maxBody} bytes`);
    at = eol + 2;
    if (n === 0) {
      // Trailer section: header-like lines up to an empty line; read past, never used.
      for (;;) {
        const e = buf.indexOf("\r\n", at, "latin1");
        if (e < 0) {
          if (buf.length - at > MAX_HEAD_BYTES) throw new FramingError(413, "trailer section too large");
          return null;
        }
        if (e === at) return { body: parts.length === 1 ? parts[0]! : Buffer.concat(parts, size), end: e + 2 };
        if (BAD_VALUE.test(buf.toString("latin1", at, e))) throw new FramingError(400, "control character in a trailer");
        at = e + 2;
      }
    }
    if (buf.length < at + n + 2) return null;
    if (buf[at + n] !== 13 || buf[at + n + 1] !== 10) throw new FramingError(400, "chunk data not followed by CRLF");
    parts.push(buf.subarray(at, at + n));
    size += n;
    at += n + 2;
  }
}

/** A response head, as an HTTP client reads it. */
export interface ResponseHead {
  status: number;
  /** Lower-case name → value; repeats joined by ", ". */
  headers: Map<string, string>;
  /** How the body ends: a length, chunked, at close, or no body at all. */
  body: { kind: "length"; length: number } | { kind: "chunked" } | { kind: "close" } | { kind: "none" };
  /** Whether the connection may carry another request after this response. */
  keepAlive: boolean;
}

/**
 * Parses a response head starting at `from` (RFC 9112 §6.3 for the body's end).
 * @param method the request's method (a HEAD response has no body whatever it says)
 * @returns the head and where its body starts, or `null` when more bytes are needed.
 * @throws FramingError for a response that cannot be framed.
 */
export function parseResponseHead(buf: Buffer, from: number, method: string): { head: ResponseHead; bodyAt: number } | null {
  const end = buf.indexOf(CRLF2, from);
  if (end < 0) {
    if (buf.length - from > MAX_HEAD_BYTES) throw new FramingError(413, `response head larger than ${MAX_HEAD_BYTES} bytes`);
    return null;
  }
  const text = buf.toString("latin1", from, end);
  const lineEnd = text.indexOf("\r\n");
  const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lineEnd < 0 ? text : text.slice(0, lineEnd));
  if (m === null) throw new FramingError(400, "malformed status line");
  const minor = Number(m[1]);
  const status = Number(m[2]);
  const probe: RequestHead = {
    method,
    target: "/",
    minor: minor === 1 ? 1 : 0,
    headers: new Map(),
    repeated: null,
    contentLength: 0,
    chunked: false,
    keepAlive: minor === 1,
    expectContinue: false,
  };
  if (lineEnd >= 0) readFields(probe, text, lineEnd + 2);
  const h = probe.headers;
  let keepAlive = probe.keepAlive;
  const conn = h.get("connection");
  if (conn !== undefined) {
    for (const token of conn.toLowerCase().split(",")) {
      const t = token.trim();
      if (t === "close") keepAlive = false;
      else if (t === "keep-alive" && minor === 0) keepAlive = true;
    }
  }
  let body: ResponseHead["body"];
  if (method === "HEAD" || (status >= 100 && status < 200) || status === 204 || status === 304) body = { kind: "none" };
  else if (h.has("transfer-encoding")) {
    if ((h.get("transfer-encoding") ?? "").toLowerCase() !== "chunked") throw new FramingError(400, "unsupported Transfer-Encoding");
    body = { kind: "chunked" };
  } else if (h.has("content-length")) {
    const cl = h.get("content-length")!;
    if (probe.repeated?.has("content-length") || !/^\d{1,15}$/.test(cl)) throw new FramingError(400, "malformed Content-Length");
    body = { kind: "length", length: Number(cl) };
  } else {
    body = { kind: "close" };
    keepAlive = false;
  }
  return { head: { status, headers: h, body, keepAlive }, bodyAt: end + 4 };
}
