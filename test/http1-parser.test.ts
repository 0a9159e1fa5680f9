/**
 * The public port's request framing (core/http1.ts) as a pure parser: what it accepts, what it
 * refuses, and that the fast paths (cached field names, one scan for control characters) say
 * exactly what the strict rules say.
 */
import { describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { FramingError, MAX_HEADERS, parseHead, parseResponseHead } from "../src/core/http1.ts";

const parse = (text: string) => parseHead(Buffer.from(text, "latin1"), 0);
const refused = (text: string): string => {
  try {
    parse(text);
  } catch (err) {
    if (err instanceof FramingError) return `${err.status} ${err.message}`;
    throw err;
  }
  throw new Error("accepted");
};

describe("request heads that pass", () => {
  test("a signed call's head: every field, names lower-cased, values as sent", () => {
    const got = parse(
      "POST /api/1000?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nX-QDP-Key-Id: bench\r\nX-QDP-Timestamp: 1700000000\r\n" +
        "X-QDP-Nonce: abc-0-00000001\r\nX-QDP-Signature: v1=00ff\r\nX-QDP-User: u17\r\nContent-Length: 40\r\n\r\n{}",
    )!;
    expect(got.head.method).toBe("POST");
    expect(got.head.target).toBe("/api/1000?x=1");
    expect(got.head.minor).toBe(1);
    expect(Object.fromEntries(got.head.headers)).toEqual({
      host: "127.0.0.1:8080",
      "content-type": "application/json",
      "x-qdp-key-id": "bench",
      "x-qdp-timestamp": "1700000000",
      "x-qdp-nonce": "abc-0-00000001",
      "x-qdp-signature": "v1=00ff",
      "x-qdp-user": "u17",
      "content-length": "40",
    });
    expect(got.head.contentLength).toBe(40);
    expect(got.head.keepAlive).toBe(true);
    expect(got.head.repeated).toBeNull();
  });

  test("optional whitespace around a value (spaces and tabs) is not part of it; inside it is", () => {
    const h = parse("GET / HTTP/1.1\r\nA:x\r\nB: \t y z \t \r\nC:\t\r\nD:   \r\nE: a\tb\r\n\r\n")!.head.headers;
    expect(h.get("a")).toBe("x");
    expect(h.get("b")).toBe("y z");
    expect(h.get("c")).toBe("");
    expect(h.get("d")).toBe("");
    expect(h.get("e")).toBe("a\tb");
  });

  test("names are case-insensitive, the same name in any case is one field; repeats are joined and reported", () => {
    const got = parse("GET / HTTP/1.1\r\nX-QDP-User: a\r\nx-qdp-user: b\r\nX-Qdp-User: c\r\n\r\n")!;
    expect(got.head.headers.get("x-qdp-user")).toBe("a, b, c");
    expect([...got.head.repeated!]).toEqual(["x-qdp-user"]);
  });

  test("bytes 0x80–0xff (obs-text) pass through as one char per byte", () => {
    const got = parseHead(Buffer.concat([Buffer.from("GET / HTTP/1.1\r\nX-QDP-User: "), Buffer.from("用户"), Buffer.from("\r\n\r\n")]), 0)!;
    expect(Buffer.from(got.head.headers.get("x-qdp-user")!, "latin1").toString("utf8")).toBe("用户");
  });

  test("a head that is not whole yet asks for more bytes", () => {
    expect(parse("GET / HTTP/1.1\r\nHost: a\r\n")).toBeNull();
  });

  test("many distinct names (past any cache of known names) still parse right", () => {
    let text = "GET / HTTP/1.1\r\n";
    for (let i = 0; i < MAX_HEADERS; i++) text += `X-Field-${i}-${"n".repeat(i % 7)}: v${i}\r\n`;
    for (let round = 0; round < 20; round++) {
      const h = parse(`${text.replace(/X-Field-/g, `X-R${round}-`)}\r\n`)!.head.headers;
      expect(h.size).toBe(MAX_HEADERS);
      expect(h.get(`x-r${round}-42-`)).toBe("v42");
    }
  });
});

describe("names and request lines read in place", () => {
  test("a name that shares a known name's slot (first and last letter, length) is its own field, both ways round", () => {
    for (let round = 0; round < 3; round++) {
      const h = parse("GET / HTTP/1.1\r\nX-QDP-User: a\r\nX-QDP-Usor: b\r\nx-qdp-user: c\r\n\r\n")!.head;
      expect(Object.fromEntries(h.headers)).toEqual({ "x-qdp-user": "a, c", "x-qdp-usor": "b" });
      expect([...h.repeated!]).toEqual(["x-qdp-user"]);
    }
  });

  test("a name one letter longer or shorter than a known spelling is not taken for it", () => {
    parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    const h = parse("GET / HTTP/1.1\r\nHostt: b\r\nHos: c\r\nHost: d\r\n\r\n")!.head.headers;
    expect(Object.fromEntries(h)).toEqual({ hostt: "b", hos: "c", host: "d" });
  });

  test("a bad name in the slot of a known good one is still refused", () => {
    parse("GET / HTTP/1.1\r\nAcb: x\r\n\r\n");
    expect(refused("GET / HTTP/1.1\r\nA)b: x\r\n\r\n")).toBe("400 malformed header field name");
    expect(parse("GET / HTTP/1.1\r\nAcb: y\r\n\r\n")!.head.headers.get("acb")).toBe("y");
  });

  test("methods other than GET and POST, and ones that start like them, keep their text", () => {
    for (const m of ["PUT", "DELETE", "POSTS", "GETX", "get", "OPTIONS"]) expect(parse(`${m} /a HTTP/1.0\r\n\r\n`)!.head.method).toBe(m);
  });

  const lines: Array<[string, string]> = [
    ["a third space", "GET / HTTP/1.1 \r\n\r\n"],
    ["two spaces after the method", "GET  / HTTP/1.1\r\n\r\n"],
    ["no version", "GET /\r\nHost: a b\r\n\r\n"],
    ["HTTP/1.2", "GET / HTTP/1.2\r\n\r\n"],
    ["HTTP/1.10", "GET / HTTP/1.10\r\n\r\n"],
    ["HTTP/1.", "GET / HTTP/1.\r\n\r\n"],
    ["http/1.1 in lower case", "GET / http/1.1\r\n\r\n"],
  ];
  for (const [what, text] of lines) test(`request line with ${what} → 400`, () => expect(refused(text)).toStartWith("400 "));
});

describe("request heads that are refused", () => {
  const cases: Array<[string, string, string]> = [
    ["no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", "400 malformed header field"],
    ["empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n", "400 malformed header field"],
    ["space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "400 malformed header field name"],
    ["obs-fold (a continuation line)", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", "400 malformed header field"],
    ["a separator in the name", "GET / HTTP/1.1\r\nA(b): c\r\n\r\n", "400 malformed header field name"],
    ["a non-ASCII name", "GET / HTTP/1.1\r\nNäme: c\r\n\r\n", "400 malformed header field name"],
    ["NUL in a value", "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", "400 control character in a header value"],
    ["DEL in a value", "GET / HTTP/1.1\r\nA: b\x7fc\r\n\r\n", "400 control character in a header value"],
    ["a lone CR in a value", "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", "400 control character in a header value"],
    ["a lone LF in a value", "GET / HTTP/1.1\r\nA: b\nc\r\n\r\n", "400 control character in a header value"],
    ["a lone LF ending a line", "GET / HTTP/1.1\nA: b\r\n\r\n", "400 "],
    ["ESC in a value", "GET / HTTP/1.1\r\nA: \x1b[31m\r\n\r\n", "400 control character in a header value"],
    ["a control character in the name", "GET / HTTP/1.1\r\nA\x01: b\r\n\r\n", "400 "],
    ["two Content-Lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n", "400 malformed Content-Length"],
    ["a signed Content-Length", "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", "400 malformed Content-Length"],
    [
      "Content-Length with Transfer-Encoding",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "400 both Content-Length and Transfer-Encoding",
    ],
    ["an absolute-form target", "GET http://a/ HTTP/1.1\r\n\r\n", "400 the request target must be a path (origin form)"],
    ["HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", "400 only HTTP/1.1 and HTTP/1.0 are served"],
  ];
  for (const [what, text, answer] of cases) test(what, () => expect(refused(text)).toStartWith(answer));

  test(`more than ${MAX_HEADERS} fields → 413`, () => {
    let text = "GET / HTTP/1.1\r\n";
    for (let i = 0; i <= MAX_HEADERS; i++) text += `A${i}: b\r\n`;
    expect(refused(`${text}\r\n`)).toBe(`413 more than ${MAX_HEADERS} header fields`);
  });
});

describe("a response's Content-Length (upstream answers), read as a request's", () => {
  const response = (fields: string) => parseResponseHead(Buffer.from(`HTTP/1.1 200 OK\r\n${fields}\r\n\r\n`, "latin1"), 0, "GET");
  test("1..15 digits give the body's length", () => {
    for (const n of ["0", "7", "007", "123456789012345"]) expect(response(`Content-Length: ${n}`)!.head.body).toEqual({ kind: "length", length: Number(n) });
  });
  for (const [what, fields] of [
    ["a sign", "Content-Length: +1"],
    ["letters", "Content-Length: 1a"],
    ["nothing", "Content-Length: "],
    ["16 digits", "Content-Length: 1234567890123456"],
    ["a list", "Content-Length: 1, 1"],
    ["two fields", "Content-Length: 1\r\nContent-Length: 1"],
  ] as const) {
    test(`${what} → malformed`, () => {
      expect(() => response(fields)).toThrow("malformed Content-Length");
    });
  }
});
