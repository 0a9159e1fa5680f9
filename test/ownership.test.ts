/**
 * User ownership (CONTRACT.md §2): the hash must be zlib's crc32 and the owner formula must be
 * nginx's `hash $http_x_qdp_user;`, or a front nginx would route users to the wrong worker.
 */
import { describe, expect, test } from "bun:test";
import { crc32 as zlibCrc32 } from "node:zlib";
import { QdpError } from "../src/core/errors.ts";
import { USER_MAX_BYTES, checkUser, crc32, ownerOf, ownerOfBytes, userFromHeader } from "../src/core/ownership.ts";
import { rng } from "./support/rng.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
/** How an HTTP header carrying UTF-8 reaches JavaScript: one char per byte. */
const asHeader = (s: string) => Buffer.from(s, "utf8").toString("latin1");

function randomUser(rand: () => number): string {
  const alphabet = ["a", "Z", "0", "-", "_", "@", ".", "é", "ß", "用", "户", "Ω", "🙂", "𝄞", " ", "\u00a0"];
  const len = 1 + Math.floor(rand() * 24);
  let s = "";
  for (let i = 0; i < len; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
  return s;
}

function expectBadUser(fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(QdpError);
  expect((thrown as QdpError).code).toBe("BAD_USER");
  expect((thrown as QdpError).status).toBe(400);
}

describe("crc32", () => {
  test("equals zlib's crc32 on random byte strings, empty included", () => {
    const rand = rng(42);
    expect(crc32(new Uint8Array(0))).toBe(zlibCrc32(new Uint8Array(0)));
    expect(crc32(new Uint8Array(0))).toBe(0);
    for (let i = 0; i < 500; i++) {
      const bytes = new Uint8Array(Math.floor(rand() * 300));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
      expect(crc32(bytes)).toBe(zlibCrc32(bytes));
    }
  });

  test("equals zlib's crc32 on multi-byte UTF-8", () => {
    for (const s of ["用户", "Ärger", "🙂emoji", "𝄞 music", "x".repeat(128), "mixed ü 用 🙂 end"]) {
      expect(crc32(utf8(s))).toBe(zlibCrc32(Buffer.from(s, "utf8")));
    }
  });

  test("is unsigned", () => {
    // 0xdf1ef67a has the top bit set: a signed result would be negative.
    expect(crc32(utf8("🙂emoji"))).toBe(0xdf1ef67a);
  });
});

describe("owner of a user", () => {
  test("is ((crc32(utf8) >>> 16) & 0x7fff) % N for many users and N = 1..16", () => {
    const rand = rng(7);
    for (let i = 0; i < 400; i++) {
      const user = i % 4 === 0 ? `user-${i}` : randomUser(rand);
      const c = zlibCrc32(Buffer.from(user, "utf8"));
      for (let n = 1; n <= 16; n++) {
        const expected = ((c >>> 16) & 0x7fff) % n;
        expect(ownerOf(user, n)).toBe(expected);
        expect(ownerOfBytes(utf8(user), n)).toBe(expected);
      }
    }
  });

  test("is always a valid index", () => {
    const rand = rng(99);
    for (let i = 0; i < 200; i++) {
      const n = 1 + Math.floor(rand() * 64);
      const o = ownerOf(randomUser(rand), n);
      expect(Number.isInteger(o) && o >= 0 && o < n).toBe(true);
    }
  });

  // Computed independently with Python's zlib, e.g. for 用户:
  //   python3 -c 'import zlib; c=zlib.crc32("用户".encode()); print(hex(c), [((c>>16)&0x7fff)%n for n in (2,3,5,7,16)])'
  // → 0x1deaa2dd [0, 2, 3, 0, 10]
  const KNOWN: Array<[string, number, number[]]> = [
    ["u1", 0x424f9f76, [1, 1, 0, 0, 15]],
    ["alice", 0x278ebc47, [0, 1, 1, 4, 14]],
    ["用户", 0x1deaa2dd, [0, 2, 3, 0, 10]],
    ["user-42", 0x7d06b873, [0, 2, 1, 2, 6]],
    ["Ärger", 0x48f7e1ab, [1, 1, 4, 3, 7]],
    ["🙂emoji", 0xdf1ef67a, [0, 2, 0, 4, 14]],
    ["x".repeat(128), 0xace08a37, [0, 1, 3, 1, 0]],
  ];
  const NS = [2, 3, 5, 7, 16];

  test("matches values computed with Python's zlib", () => {
    for (const [user, c, owners] of KNOWN) {
      expect({ user, crc: crc32(utf8(user)) }).toEqual({ user, crc: c });
      expect({ user, owners: NS.map((n) => ownerOf(user, n)) }).toEqual({ user, owners });
    }
  });

  test("a user sent as UTF-8 in a header and in an envelope has one owner", () => {
    for (const user of ["用户", "Ärger", "🙂emoji", "plain"]) {
      const fromHeader = userFromHeader(asHeader(user));
      expect(fromHeader).toBe(user);
      for (let n = 1; n <= 16; n++) expect(ownerOf(fromHeader, n)).toBe(ownerOf(checkUser(user), n));
    }
  });
});

describe("user from a header", () => {
  test("rebuilds UTF-8 from the Latin-1 byte string", () => {
    expect(userFromHeader(Buffer.from("用户").toString("latin1"))).toBe("用户");
    expect(userFromHeader(asHeader("🙂 smile"))).toBe("🙂 smile");
  });

  test("passes ASCII through", () => {
    expect(userFromHeader("u1")).toBe("u1");
  });

  test("accepts a value the runtime already decoded as UTF-8", () => {
    expect(userFromHeader("用户")).toBe("用户");
  });

  test("invalid UTF-8 bytes are BAD_USER", () => {
    expectBadUser(() => userFromHeader("\xff\xfe"));
    expectBadUser(() => userFromHeader("abc\x80")); // lone continuation byte
    expectBadUser(() => userFromHeader("a\xe7\x94")); // truncated 3-byte sequence
    expectBadUser(() => userFromHeader("\xc0\xaf")); // overlong encoding of '/'
    expectBadUser(() => userFromHeader("\xed\xa0\x80")); // encoded surrogate
  });

  test("applies the user rules after decoding", () => {
    expect(userFromHeader(asHeader("用".repeat(42) + "ab"))).toBe("用".repeat(42) + "ab"); // 128 bytes
    expectBadUser(() => userFromHeader(asHeader("用".repeat(43)))); // 129 bytes
    expectBadUser(() => userFromHeader(asHeader("用\u0085户"))); // C1 control, as UTF-8 bytes c2 85
    expectBadUser(() => userFromHeader("a\x01b"));
    expectBadUser(() => userFromHeader(""));
  });
});

describe("user id rules", () => {
  test("1 to 128 bytes of UTF-8 are accepted", () => {
    expect(USER_MAX_BYTES).toBe(128);
    for (const ok of ["a", "x".repeat(128), "用".repeat(42) + "ab", "🙂".repeat(32), "é".repeat(64), "with space", "nb\u00a0sp"]) {
      expect(checkUser(ok)).toBe(ok);
    }
  });

  test("129 bytes are BAD_USER, however they are made", () => {
    expectBadUser(() => checkUser("x".repeat(129)));
    expectBadUser(() => checkUser("用".repeat(42) + "abc"));
    expectBadUser(() => checkUser("用".repeat(43)));
    expectBadUser(() => checkUser("é".repeat(64) + "x"));
    expectBadUser(() => checkUser("🙂".repeat(33)));
  });

  test("control characters are BAD_USER: C0, DEL and C1", () => {
    for (const c of ["\u0000", "\u0001", "\t", "\n", "\r", "\u001f", "\u007f", "\u0080", "\u0085", "\u009f"]) {
      expectBadUser(() => checkUser(`a${c}b`));
      expectBadUser(() => checkUser(c));
    }
  });

  test("the characters next to the control ranges are fine", () => {
    for (const c of [" ", "~", "\u00a0", "\u00ff"]) expect(checkUser(`a${c}b`)).toBe(`a${c}b`);
  });

  test("empty and non-strings are BAD_USER", () => {
    for (const bad of ["", null, undefined, 42, {}, ["u1"], true]) expectBadUser(() => checkUser(bad));
  });

  test("a lone surrogate is not UTF-8 and is BAD_USER", () => {
    expectBadUser(() => checkUser("a\ud800b"));
    expectBadUser(() => checkUser("\udc00"));
  });
});
