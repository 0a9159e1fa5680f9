/**
 * The contract's responses (edge/responses.ts): the header lines a reply carries for the HTTP/1.1
 * transport (Reply.headLines) say exactly what its `headers` say, which the in-process Elysia
 * routes send, so both transports answer with the same headers.
 */
import { describe, expect, test } from "bun:test";
import { QdpError } from "../src/core/errors.ts";
import { headerLines } from "../src/edge/http1-server.ts";
import { errorReply, okReply, type ResponseMeta } from "../src/edge/responses.ts";

const metas: ResponseMeta[] = [
  { edge: 0, worker: 1, requestId: "abc-0-1", close: false },
  { edge: 3, worker: 3, requestId: "caller's-id_~!", close: true },
];

describe("a reply's header lines are its headers", () => {
  for (const meta of metas) {
    test(`ok reply, close ${meta.close}`, () => {
      const r = okReply(1000, '{"a":1}', meta);
      expect(r.headLines).toBe(headerLines(r.headers));
    });
    for (const err of [new QdpError("VALIDATION", "no"), new QdpError("OVERLOADED", "busy", { retryAfter: 2 })]) {
      test(`error reply ${err.code}${err.retryAfter === undefined ? "" : " with Retry-After"}, close ${meta.close}`, () => {
        const r = errorReply(err, meta);
        expect(r.headLines).toBe(headerLines(r.headers));
        if (err.retryAfter !== undefined) expect(r.headLines).toContain("retry-after: 2\r\n");
      });
    }
  }

  test("Connection is left to the transport", () => {
    expect(headerLines({ a: "1", connection: "close", b: "2" })).toBe("a: 1\r\nb: 2\r\n");
  });
});
