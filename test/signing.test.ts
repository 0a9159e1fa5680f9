import { describe, expect, test } from "bun:test";
import { QdpError } from "../src/core/errors.ts";
import { parseKeyList } from "../src/core/keys.ts";
import {
  SIGNATURE_WINDOW_SEC,
  decodeHeaderUtf8,
  encodeHeaderUtf8,
  sha256Hex,
  sign,
  stringToSign,
  verifyRequest,
  type VerifyInput,
} from "../src/core/signing.ts";
import { signRequest } from "../src/client/sign.ts";
import { signatureInput } from "../src/edge/signature-input.ts";
import fixtures from "./fixtures/signing-vectors.json";

const ring = parseKeyList(
  Object.entries(fixtures.keys)
    .map(([id, s]) => `${id}:${s}`)
    .join(","),
).ring;
const enc = new TextEncoder();
const first = fixtures.vectors[0]!;

/** A verify input from a vector, with overrides. */
function inputOf(v: (typeof fixtures.vectors)[number], over: Partial<VerifyInput> = {}, headers: Partial<VerifyInput["headers"]> = {}): VerifyInput {
  return {
    method: v.method,
    target: v.target,
    user: v.user,
    body: enc.encode(v.body),
    ...over,
    headers: { keyId: v.keyId, timestamp: String(v.timestamp), nonce: v.nonce, signature: v.signature, ...headers },
  };
}

function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(QdpError);
    const q = e as QdpError;
    expect(q.code).toBe("UNAUTHENTICATED");
    expect(q.status).toBe(401);
    return q.message;
  }
  throw new Error("expected a rejection");
}

describe("published test vectors", () => {
  test("there are at least 4, covering query, empty and unicode user, empty and JSON body, both keys", () => {
    const vs = fixtures.vectors;
    expect(vs.length).toBeGreaterThanOrEqual(4);
    expect(vs.some((v) => v.target.includes("?"))).toBe(true);
    expect(vs.some((v) => v.user === null)).toBe(true);
    expect(vs.some((v) => v.user !== null && /[^\x00-\x7f]/.test(v.user))).toBe(true);
    expect(vs.some((v) => v.body === "")).toBe(true);
    expect(vs.some((v) => v.body.startsWith("{"))).toBe(true);
    expect(new Set(vs.map((v) => v.keyId)).size).toBe(2);
  });

  test("docs/signing.md publishes every vector and key", async () => {
    const doc = await Bun.file(new URL("../docs/signing.md", import.meta.url)).text();
    for (const [id, secret] of Object.entries(fixtures.keys)) expect(doc).toContain(`| \`${id}\` | \`${secret}\` |`);
    for (const v of fixtures.vectors) {
      expect(doc).toContain(`X-QDP-Signature: ${v.signature}`);
      expect(doc).toContain(JSON.stringify(v.stringToSign));
    }
  });

  for (const v of fixtures.vectors) {
    test(v.name, () => {
      expect(sha256Hex(enc.encode(v.body))).toBe(v.bodySha256Hex);
      const parts = { method: v.method, target: v.target, timestamp: v.timestamp, nonce: v.nonce, user: v.user, bodySha256Hex: v.bodySha256Hex };
      expect(stringToSign(parts)).toBe(v.stringToSign);
      expect(stringToSign(parts).split("\n")).toHaveLength(7);
      const secret = (fixtures.keys as Record<string, string>)[v.keyId]!;
      expect(sign(secret, parts)).toBe(v.signature);
      expect(sign(ring.get(v.keyId)!, parts)).toBe(v.signature);
      expect(verifyRequest(inputOf(v), ring, v.timestamp)).toEqual({ keyId: v.keyId, nonce: v.nonce, timestamp: v.timestamp });
      // The client helper produces the same signature.
      const headers = signRequest({
        keyId: v.keyId,
        secret,
        method: v.method,
        target: v.target,
        user: v.user,
        body: v.body,
        timestamp: v.timestamp,
        nonce: v.nonce,
      });
      expect(headers["X-QDP-Signature"]).toBe(v.signature);
      expect(headers["X-QDP-User"] === undefined ? null : decodeHeaderUtf8(headers["X-QDP-User"])).toBe(v.user);
    });
  }
});

describe("rejections, each with its own reason", () => {
  const now = first.timestamp;
  for (const [name, header] of [
    ["keyId", "X-QDP-Key-Id"],
    ["timestamp", "X-QDP-Timestamp"],
    ["nonce", "X-QDP-Nonce"],
    ["signature", "X-QDP-Signature"],
  ] as const) {
    test(`missing ${header}`, () => {
      expect(rejection(() => verifyRequest(inputOf(first, {}, { [name]: null }), ring, now))).toBe(`missing ${header} header`);
    });
  }

  test("malformed timestamp (digits only)", () => {
    for (const ts of ["", "-1700000000", "1700000000.5", "1.7e9", " 1700000000", "0x6553f100", "1234567890123456"]) {
      expect(rejection(() => verifyRequest(inputOf(first, {}, { timestamp: ts }), ring, now))).toContain("malformed X-QDP-Timestamp");
    }
  });

  test("malformed nonce (16..64 of [A-Za-z0-9_-])", () => {
    for (const n of ["short", "a".repeat(15), "a".repeat(65), "has space 0123456789", "plus+slash/0123456789", "ünïcödé-0123456789"]) {
      expect(rejection(() => verifyRequest(inputOf(first, {}, { nonce: n }), ring, now))).toContain("malformed X-QDP-Nonce");
    }
    // The bounds themselves are fine (they then fail on the signature, not the shape).
    expect(rejection(() => verifyRequest(inputOf(first, {}, { nonce: "a".repeat(16) }), ring, now))).toContain("bad signature");
    expect(rejection(() => verifyRequest(inputOf(first, {}, { nonce: "a".repeat(64) }), ring, now))).toContain("bad signature");
  });

  test("malformed signature (v1= + 64 lowercase hex)", () => {
    const hex = first.signature.slice(3);
    for (const s of ["", hex, `v1=${hex.toUpperCase()}`, `v1=${hex.slice(1)}`, `v1=${hex}0`, `v1:${hex}`, `V1=${hex}`, `v1=${hex.slice(2)}zz`]) {
      expect(rejection(() => verifyRequest(inputOf(first, {}, { signature: s }), ring, now))).toContain("malformed X-QDP-Signature");
    }
  });

  test("unknown signature version", () => {
    const hex = first.signature.slice(3);
    expect(rejection(() => verifyRequest(inputOf(first, {}, { signature: `v2=${hex}` }), ring, now))).toContain("unknown signature version 'v2'");
    expect(rejection(() => verifyRequest(inputOf(first, {}, { signature: "v10=abc" }), ring, now))).toContain("unknown signature version 'v10'");
  });

  test("unknown key id", () => {
    expect(rejection(() => verifyRequest(inputOf(first, {}, { keyId: "uap-retired" }), ring, now))).toBe("unknown key id 'uap-retired'");
    // A key id that is not even id-shaped is not echoed.
    expect(rejection(() => verifyRequest(inputOf(first, {}, { keyId: "x\ny z" }), ring, now))).toBe("unknown key id");
    expect(rejection(() => verifyRequest(inputOf(first), new Map(), now))).toContain("unknown key id");
  });

  test("bad signature (wrong key's signature, flipped digit)", () => {
    const other = fixtures.vectors.find((v) => v.keyId !== first.keyId && v.target === first.target && v.nonce === first.nonce)!;
    expect(rejection(() => verifyRequest(inputOf(first, {}, { signature: other.signature }), ring, now))).toContain("bad signature");
    const flipped = first.signature.slice(0, -1) + (first.signature.endsWith("0") ? "1" : "0");
    expect(rejection(() => verifyRequest(inputOf(first, {}, { signature: flipped }), ring, now))).toContain("bad signature");
  });

  test("a signature off by one hex digit anywhere, by any value, is refused; the right one still passes", () => {
    const hex = first.signature.slice(3);
    for (let at = 0; at < 64; at++) {
      for (const digit of "0123456789abcdef") {
        if (digit === hex[at]) continue;
        const wrong = `v1=${hex.slice(0, at)}${digit}${hex.slice(at + 1)}`;
        expect(rejection(() => verifyRequest(inputOf(first, {}, { signature: wrong }), ring, now))).toContain("bad signature");
      }
    }
    expect(verifyRequest(inputOf(first), ring, now).keyId).toBe(first.keyId);
  });

  test("messages never contain a secret", () => {
    const inputs: VerifyInput[] = [inputOf(first, {}, { signature: "v1=" + "0".repeat(64) }), inputOf(first, { body: enc.encode("x") })];
    for (const input of inputs) {
      const msg = rejection(() => verifyRequest(input, ring, now));
      for (const s of Object.values(fixtures.keys)) expect(msg).not.toContain(s);
    }
  });
});

describe("tampering breaks the signature", () => {
  const now = first.timestamp;
  const cases: Array<[string, Partial<VerifyInput>]> = [
    ["body", { body: enc.encode('{"a":2}') }],
    ["body (extra whitespace)", { body: enc.encode('{"a": 1}') }],
    ["body (empty)", { body: new Uint8Array() }],
    ["path", { target: "/api/1001?trace=1&x=%41" }],
    ["query value", { target: "/api/1000?trace=2&x=%41" }],
    ["query encoding (same meaning, different bytes)", { target: "/api/1000?trace=1&x=A" }],
    ["query dropped", { target: "/api/1000" }],
    ["query order", { target: "/api/1000?x=%41&trace=1" }],
    ["user changed", { user: "u2" }],
    ["user removed", { user: null }],
    ["method", { method: "PUT" }],
  ];
  for (const [name, over] of cases) {
    test(name, () => {
      expect(rejection(() => verifyRequest(inputOf(first, over), ring, now))).toContain("bad signature");
    });
  }

  test("user added where none was signed", () => {
    const noUser = fixtures.vectors.find((v) => v.user === null)!;
    expect(rejection(() => verifyRequest(inputOf(noUser, { user: "u1" }), ring, noUser.timestamp))).toContain("bad signature");
  });

  test("nonce and timestamp are covered too", () => {
    expect(rejection(() => verifyRequest(inputOf(first, {}, { nonce: "k3J9x_Qa-7LmN2pR4sTuVx" }), ring, now))).toContain("bad signature");
    expect(rejection(() => verifyRequest(inputOf(first, {}, { timestamp: String(now + 1) }), ring, now))).toContain("bad signature");
  });

  test("method case does not matter (S carries it upper-cased)", () => {
    expect(verifyRequest(inputOf(first, { method: "post" }), ring, now).keyId).toBe(first.keyId);
  });
});

describe("clock window", () => {
  test("the window is 300 s", () => expect(SIGNATURE_WINDOW_SEC).toBe(300));

  test("exactly 300 s is accepted in both directions, 301 s is not", () => {
    const ts = first.timestamp;
    expect(verifyRequest(inputOf(first), ring, ts + 300).nonce).toBe(first.nonce);
    expect(verifyRequest(inputOf(first), ring, ts - 300).nonce).toBe(first.nonce);
    expect(rejection(() => verifyRequest(inputOf(first), ring, ts + 301))).toContain("301 s behind server time");
    expect(rejection(() => verifyRequest(inputOf(first), ring, ts - 301))).toContain("301 s ahead of server time");
  });

  test("a stale timestamp is refused before the HMAC (a forged signature reports staleness)", () => {
    const forged = inputOf(first, {}, { signature: "v1=" + "0".repeat(64) });
    expect(rejection(() => verifyRequest(forged, ring, first.timestamp + 10_000))).toContain("behind server time");
  });
});

describe("key rotation", () => {
  test("both keys of a rotation are accepted side by side", () => {
    const body = '{"x":1}';
    const now = 1_710_000_000;
    for (const [keyId, secret] of Object.entries(fixtures.keys)) {
      const h = signRequest({ keyId, secret, method: "POST", url: "http://qdp.local/api/1000?a=b", user: "u1", body, timestamp: now });
      const result = verifyRequest(
        {
          method: "POST",
          target: "/api/1000?a=b",
          user: "u1",
          body: enc.encode(body),
          headers: { keyId: h["X-QDP-Key-Id"]!, timestamp: h["X-QDP-Timestamp"]!, nonce: h["X-QDP-Nonce"]!, signature: h["X-QDP-Signature"]! },
        },
        ring,
        now,
      );
      expect(result.keyId).toBe(keyId);
    }
  });

  test("a key removed from the ring stops working", () => {
    const only2025 = parseKeyList(`uap-test-2025:${fixtures.keys["uap-test-2025"]}`).ring;
    expect(rejection(() => verifyRequest(inputOf(first), only2025, first.timestamp))).toContain("unknown key id");
  });
});

describe("client helper", () => {
  test("defaults: 22-char base64url nonce, current time, X-QDP-User only with a user", () => {
    const h = signRequest({ keyId: "k", secret: "s", url: "http://h/p" });
    expect(h["X-QDP-Nonce"]).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(Math.abs(Number(h["X-QDP-Timestamp"]) - Date.now() / 1000)).toBeLessThan(5);
    expect(h["X-QDP-User"]).toBeUndefined();
    expect(Object.keys(signRequest({ keyId: "k", secret: "s", url: "http://h/p", user: "u" })).sort()).toEqual([
      "X-QDP-Key-Id",
      "X-QDP-Nonce",
      "X-QDP-Signature",
      "X-QDP-Timestamp",
      "X-QDP-User",
    ]);
    expect(signRequest({ keyId: "k", secret: "s", url: "http://h/p" })["X-QDP-Nonce"]).not.toBe(h["X-QDP-Nonce"]);
  });

  test("the target of a URL is what fetch sends", () => {
    const a = signRequest({ keyId: "k", secret: "s", url: "http://h/a b?x=ü#frag", timestamp: 1, nonce: "n".repeat(16) });
    const b = signRequest({ keyId: "k", secret: "s", target: "/a%20b?x=%C3%BC", timestamp: 1, nonce: "n".repeat(16) });
    expect(a["X-QDP-Signature"]).toBe(b["X-QDP-Signature"]!);
    const bare = signRequest({ keyId: "k", secret: "s", url: "http://h/a?", timestamp: 1, nonce: "n".repeat(16) });
    expect(bare["X-QDP-Signature"]).toBe(signRequest({ keyId: "k", secret: "s", target: "/a?", timestamp: 1, nonce: "n".repeat(16) })["X-QDP-Signature"]!);
  });

  test("a unicode user travels as its UTF-8 bytes and round-trips", () => {
    const h = signRequest({ keyId: "k", secret: "s", url: "http://h/p", user: "用户-é" });
    expect(h["X-QDP-User"]).toBe(Buffer.from("用户-é", "utf8").toString("latin1"));
    expect(() => new Headers(h)).not.toThrow();
    expect(decodeHeaderUtf8(h["X-QDP-User"]!)).toBe("用户-é");
    expect(encodeHeaderUtf8("ascii")).toBe("ascii");
    expect(decodeHeaderUtf8("\xff\xfe")).toBeNull();
    expect(decodeHeaderUtf8("\u0100")).toBeNull();
  });

  test("end to end over a real socket: signedFetch verified by a server", async () => {
    const seen: string[] = [];
    const server = Bun.serve({
      port: 0,
      async fetch(req) {
        try {
          const r = verifyRequest(signatureInput(req, new Uint8Array(await req.arrayBuffer())), ring, Math.floor(Date.now() / 1000));
          seen.push(r.keyId);
          return new Response("ok");
        } catch (e) {
          return new Response((e as Error).message, { status: 401 });
        }
      },
    });
    try {
      const { signedFetch } = await import("../src/client/sign.ts");
      const base = `http://127.0.0.1:${server.port}`;
      const secret = fixtures.keys["uap-test-2024"];
      const ok = await signedFetch(`${base}/api/1000?x=%41&y=b`, { method: "POST", body: '{"s":"茅台"}', keyId: "uap-test-2024", secret, user: "用户" });
      expect(await ok.text()).toBe("ok");
      const get = await signedFetch(`${base}/healthz`, { keyId: "uap-test-2024", secret });
      expect(get.status).toBe(200);
      const wrong = await signedFetch(`${base}/api/1000`, { method: "POST", body: "{}", keyId: "uap-test-2024", secret: "not-the-secret" });
      expect(wrong.status).toBe(401);
      expect(await wrong.text()).toContain("bad signature");
      expect(seen).toEqual(["uap-test-2024", "uap-test-2024"]);
    } finally {
      server.stop(true);
    }
  });
});
