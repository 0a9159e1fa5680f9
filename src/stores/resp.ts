/**
 * RESP2, the Redis wire format: encoding commands and an incremental reply parser. Pure code
 * with no socket, so it is tested byte by byte (test/redis-client.test.ts) and the client in
 * `redis-client.ts` stays about connections only.
 */

/** A reply: simple/bulk string, integer, nil, array, or an error reply (`-ERR ...`). */
export type RespValue = string | number | null | RespError | RespValue[];

/** An error reply from the server. It answers one command; the connection stays usable. */
export class RespError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RespError";
  }
}

/** One command as a RESP array of bulk strings. */
export function encodeCommand(args: ReadonlyArray<string | number>): string {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const s = typeof a === "string" ? a : String(a);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

const CR = 13;

/**
 * Parses replies out of a byte stream that arrives in arbitrary chunks. `push` returns the
 * replies completed by this chunk, in order; a partial reply waits for the next chunk.
 */
export class RespParser {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;

  push(chunk: Buffer): RespValue[] {
    this.buf = this.pos < this.buf.length ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : chunk;
    this.pos = 0;
    const out: RespValue[] = [];
    for (;;) {
      const start = this.pos;
      const v = this.value();
      if (v === INCOMPLETE) {
        this.pos = start;
        break;
      }
      out.push(v);
    }
    return out;
  }

  /** The line at `pos` (without CRLF), or null when its end has not arrived yet. */
  private line(): string | null {
    const end = this.buf.indexOf(CR, this.pos);
    if (end < 0 || end + 1 >= this.buf.length) return null;
    const s = this.buf.toString("utf8", this.pos, end);
    this.pos = end + 2;
    return s;
  }

  private value(): RespValue | typeof INCOMPLETE {
    if (this.pos >= this.buf.length) return INCOMPLETE;
    const type = this.buf[this.pos]!;
    this.pos++;
    const head = this.line();
    if (head === null) return INCOMPLETE;
    switch (type) {
      case 43: // +
        return head;
      case 45: // -
        return new RespError(head);
      case 58: // :
        return Number(head);
      case 36: {
        // $
        const len = Number(head);
        if (len < 0) return null;
        if (this.pos + len + 2 > this.buf.length) return INCOMPLETE;
        const s = this.buf.toString("utf8", this.pos, this.pos + len);
        this.pos += len + 2;
        return s;
      }
      case 42: {
        // *
        const n = Number(head);
        if (n < 0) return null;
        const items: RespValue[] = [];
        for (let i = 0; i < n; i++) {
          const v = this.value();
          if (v === INCOMPLETE) return INCOMPLETE;
          items.push(v);
        }
        return items;
      }
      default:
        throw new Error(`RESP: unexpected type byte ${type}`);
    }
  }
}

const INCOMPLETE = Symbol("incomplete");
