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
// Global only so that `lastIndex` says where `test` starts (readFields).
const BAD_SECTION = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n/g;

/**
 * Field names seen before: the spelling as sent and its lower-case key, in a fixed table by a
 * hash of the name's first and last letters and length (case-folded). A caller sends the same
 * dozen names on every request, so `startsWith` at the field's offset recognises the name in place:
 * no substring is made, so none has to be resolved and hashed for a Map lookup, which cost ~100 ns
 * a field (with the request line and Content-Length read in place too, a signed head's 9 fields
 * take ~0.6 µs less, an echo's 3 ~0.3 µs, in paired in-process rounds). Only names
 * that passed the token check get in; a slot holds one spelling, so a client inventing names or
 * mixing cases only evicts entries (the table never grows) and pays the slow path.
 */
const NAME_SLOTS = 512;
const nameSpelling: (string | undefined)[] = new Array(NAME_SLOTS).fill(undefined);
const nameKey: string[] = new Array(NAME_SLOTS).fill("");

function nameSlot(text: string, from: number, colon: number): number {
  const first = text.charCodeAt(from) | 0x20;
  const last = text.charCodeAt(colon - 1) | 0x20;
  return (first * 31 + last * 7 + (colon - from)) & (NAME_SLOTS - 1);
}

/** The lower-case key of the field name `text[from, colon)`; refuses a name that is not a token. */
function fieldKey(text: string, from: number, colon: number): string {
  const slot = nameSlot(text, from, colon);
  const spelling = nameSpelling[slot];
  if (spelling !== undefined && spelling.length === colon - from && text.startsWith(spelling, from)) return nameKey[slot]!;
  const name = text.slice(from, colon);
  if (!TOKEN.test(name)) throw new FramingError(400, "malformed header field name");
  const key = name.toLowerCase();
  nameSpelling[slot] = name;
  nameKey[slot] = key;
  return key;
}

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
  const head = requestLine(text, lineEnd < 0 ? text.length : lineEnd);
  if (lineEnd >= 0) readFields(head, text, lineEnd + 2);
  frameBody(head);
  return { head, bodyAt: end + 4 };
}

/** Adds the header fields of `text` from `at` (the section after the start line) to `head`. */
function readFields(head: RequestHead, text: string, at: number): void {
  // One scan of the whole header section for control characters instead of one per value,
  // from `at` in place (a sliced copy would have to be resolved first).
  BAD_SECTION.lastIndex = at;
  if (BAD_SECTION.test(text)) throw new FramingError(400, "control character in a header value");
  let fields = 0;
  for (;;) {
    const next = text.indexOf("\r\n", at);
    if (++fields > MAX_HEADERS) throw new FramingError(413, `more than ${MAX_HEADERS} header fields`);
    addField(head, text, at, next < 0 ? text.length : next);
    if (next < 0) return;
    at = next + 2;
  }
}

/** The request line `text[0, end)`, read in place: only the method (when unusual) and the target become strings. */
function requestLine(text: string, end: number): RequestHead {
  const sp1 = text.indexOf(" ");
  const sp2 = sp1 < 0 ? -1 : text.indexOf(" ", sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || sp2 >= end || text.lastIndexOf(" ", end - 1) !== sp2) throw new FramingError(400, "malformed request line");
  const method = knownMethod(text, sp1);
  const target = text.slice(sp1 + 1, sp2);
  if (!TOKEN.test(method)) throw new FramingError(400, "malformed method");
  if (!TARGET.test(target)) throw new FramingError(400, "the request target must be a path (origin form)");
  if (end - sp2 !== 9 || !text.startsWith("HTTP/1.", sp2 + 1)) throw new FramingError(400, "only HTTP/1.1 and HTTP/1.0 are served");
  const last = text.charCodeAt(end - 1);
  if (last !== 0x31 && last !== 0x30) throw new FramingError(400, "only HTTP/1.1 and HTTP/1.0 are served");
  const minor = last === 0x31 ? 1 : 0;
  return { method, target, minor, headers: new Map(), repeated: null, contentLength: 0, chunked: false, keepAlive: minor === 1, expectContinue: false };
}

/** `text[0, sp)` as a string: the same constant for POST and GET (no substring to resolve), else a slice. */
function knownMethod(text: string, sp: number): string {
  if (sp === 4 && text.startsWith("POST")) return "POST";
  if (sp === 3 && text.startsWith("GET")) return "GET";
  return text.slice(0, sp);
}

/** Space or horizontal tab: optional whitespace around a field value. */
const isOws = (c: number) => c === 32 || c === 9;

/** Adds the field `text[from, to)` (one line, control characters already refused). */
function addField(head: RequestHead, text: string, from: number, to: number): void {
  const colon = text.indexOf(":", from);
  // No colon, an empty name, whitespace before the colon or a folded line are all refused.
  if (colon <= from || colon >= to) throw new FramingError(400, "malformed header field");
  const key = fieldKey(text, from, colon);
  let a = colon + 1;
  let b = to;
  while (a < b && isOws(text.charCodeAt(a))) a++;
  while (b > a && isOws(text.charCodeAt(b - 1))) b--;
  const value = text.slice(a, b);
  // Read where it lies: a regex over the sliced value would resolve it into a string of its own.
  if (key === "content-length") head.contentLength = decimalAt(text, a, b);
  const prev = head.headers.get(key);
  if (prev === undefined) head.headers.set(key, value);
  else {
    head.headers.set(key, `${prev}, ${value}`);
    (head.repeated ??= new Set()).add(key);
  }
}

/** The value of 1..15 decimal digits `text[from, to)` (exact in a double), or -1 for anything else. */
function decimalAt(text: string, from: number, to: number): number {
  if (to <= from || to - from > 15) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
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
    // addField read the digits (-1: not 1..15 of them).
    if (head.repeated?.has("content-length") || head.contentLength < 0) throw new FramingError(400, "malformed Content-Length");
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
    // addField read the digits, as for a request (-1: not 1..15 of them).
    if (probe.repeated?.has("content-length") || probe.contentLength < 0) throw new FramingError(400, "malformed Content-Length");
    body = { kind: "length", length: probe.contentLength };
  } else {
    body = { kind: "close" };
    keepAlive = false;
  }
  return { head: { status, headers: h, body, keepAlive }, bodyAt: end + 4 };
}
