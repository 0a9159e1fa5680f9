/** Reading a call from its route and body (core/read-call.ts), alone. */
import { describe, expect, test } from "bun:test";
import { QdpError } from "../src/core/errors.ts";
import { parseFuncNo, readCall } from "../src/core/read-call.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as QdpError).code;
  }
  return "none";
};

describe("POST /api/<funcNo>", () => {
  test("the body is the input, kept as bytes for the hop; the user is the header's", () => {
    const body = bytes('{"a":1}');
    expect(readCall({ kind: "api", funcNo: "1000" }, body, "u1")).toEqual({ funcNo: 1000, data: { a: 1 }, user: "u1", inputBytes: body });
    expect(readCall({ kind: "api", funcNo: "1000" }, new Uint8Array(0), null)).toEqual({ funcNo: 1000, data: null, user: null });
  });
  test("a path that is not a function number is UNKNOWN_FUNCTION", () => {
    for (const n of ["abc", "0", "", "1.5", "-1"]) expect(code(() => readCall({ kind: "api", funcNo: n }, bytes("{}"), null))).toBe("UNKNOWN_FUNCTION");
  });
});

describe("POST /qdp", () => {
  test("funcNo as an integer or a string of digits; userId used when the header is absent", () => {
    expect(readCall({ kind: "envelope" }, bytes('{"funcNo":"1001","userId":"u2","data":{}}'), null)).toEqual({ funcNo: 1001, data: {}, user: "u2" });
    expect(readCall({ kind: "envelope" }, bytes('{"funcNo":1000}'), "h")).toEqual({ funcNo: 1000, data: null, user: "h" });
  });
  test("the envelope's errors", () => {
    expect(code(() => readCall({ kind: "envelope" }, bytes("[1]"), null))).toBe("BAD_JSON");
    expect(code(() => readCall({ kind: "envelope" }, bytes('{"data":1}'), null))).toBe("VALIDATION");
    expect(code(() => readCall({ kind: "envelope" }, bytes('{"funcNo":1001,"userId":"a"}'), "b"))).toBe("USER_MISMATCH");
    expect(code(() => readCall({ kind: "envelope" }, bytes('{"funcNo":1001,"userId":""}'), null))).toBe("BAD_USER");
  });
});

test("parseFuncNo", () => {
  expect([1000, "1000", "0", 0, -1, 1.5, "1e3", null, "9".repeat(16)].map(parseFuncNo)).toEqual([1000, 1000, null, null, null, null, null, null, null]);
});
