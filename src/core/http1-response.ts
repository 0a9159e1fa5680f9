/**
 * Reading one HTTP/1.x response off a connection, as a client does: bytes are pushed as they
 * arrive, and the reader says when the answer is whole — by Content-Length, by the last chunk,
 * or, for a body without either, when the connection closes. Interim answers (1xx) are skipped.
 *
 * Why a reader of its own: the keep-alive pool (upstream/http1-client.ts) and the uwsgi client
 * (upstream/uwsgi-client.ts, whose servers answer raw HTTP and close) read answers the same
 * way; one reader means one set of framing rules (core/http1.ts) for both.
 * Pure TypeScript (Buffer from node:buffer only).
 */
import { Buffer } from "node:buffer";
import { FramingError, parseChunked, parseResponseHead, type ResponseHead } from "./http1.ts";

/** A whole response. */
export interface HttpAnswer {
  status: number;
  /** Lower-case name → value; repeats joined by ", ". */
  headers: Map<string, string>;
  body: Buffer;
  /** Whether the connection may carry another request. */
  keepAlive: boolean;
}

export class ResponseReader {
  /** Bytes of the answer seen so far (0 = the server never started answering). */
  received = 0;
  private buf: Buffer | null = null;
  private head: ResponseHead | null = null;
  private bodyAt = 0;

  /**
   * @param method the request's method (a HEAD answer has no body whatever it says)
   * @param maxBody largest body accepted
   */
  constructor(
    private readonly method: string,
    private readonly maxBody: number,
  ) {}

  /**
   * Adds bytes of the answer.
   * @returns the answer once it is whole, else null
   * @throws FramingError for an answer that is not HTTP/1.x, is too large, or has bytes after its end
   */
  push(chunk: Buffer): HttpAnswer | null {
    this.received += chunk.length;
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    return this.take(this.buf);
  }

  /**
   * The connection closed.
   * @returns the answer when its body ends at close; null when it was cut short or never began
   */
  atClose(): HttpAnswer | null {
    const head = this.head;
    if (head === null || head.body.kind !== "close") return null;
    const body = this.buf === null ? Buffer.alloc(0) : this.buf.subarray(this.bodyAt);
    return { status: head.status, headers: head.headers, body, keepAlive: false };
  }

  private take(buf: Buffer): HttpAnswer | null {
    if (this.head === null) {
      const got = parseResponseHead(buf, 0, this.method);
      if (got === null) return null;
      if (got.head.status >= 100 && got.head.status < 200) {
        // An interim answer (100 Continue): drop it and read the real one.
        this.buf = buf.length > got.bodyAt ? buf.subarray(got.bodyAt) : null;
        return this.buf === null ? null : this.take(this.buf);
      }
      this.head = got.head;
      this.bodyAt = got.bodyAt;
    }
    const head = this.head;
    let body: Buffer;
    let end: number;
    switch (head.body.kind) {
      case "none":
        body = Buffer.alloc(0);
        end = this.bodyAt;
        break;
      case "length":
        if (head.body.length > this.maxBody) throw new FramingError(413, `response body over ${this.maxBody} bytes`);
        end = this.bodyAt + head.body.length;
        if (buf.length < end) return null;
        body = buf.subarray(this.bodyAt, end);
        break;
      case "chunked": {
        const chunked = parseChunked(buf, this.bodyAt, this.maxBody);
        if (chunked === null) return null;
        body = chunked.body;
        end = chunked.end;
        break;
      }
      case "close":
        if (buf.length - this.bodyAt > this.maxBody) throw new FramingError(413, `response body over ${this.maxBody} bytes`);
        return null; // ends at close (atClose)
    }
    if (buf.length > end) throw new FramingError(400, "bytes after the response");
    this.buf = null;
    return { status: head.status, headers: head.headers, body, keepAlive: head.keepAlive };
  }
}
