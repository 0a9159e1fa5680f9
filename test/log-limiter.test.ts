/** Warn lines under a flood: a few per reason per window, and a count of what was held back. */
import { expect, test } from "bun:test";
import { authFailureOf, verifyRequest } from "../src/core/signing.ts";
import { parseKeyList } from "../src/core/keys.ts";
import { QdpError } from "../src/core/errors.ts";
import { createLogLimiter } from "../src/telemetry/log-limiter.ts";

test("the first lines of a window pass, the rest are counted and reported with the next line that passes", () => {
  const l = createLogLimiter(3, 1000);
  const passed = Array.from({ length: 10 }, () => l.take("401|bad_signature", 0).ok);
  expect(passed).toEqual([true, true, true, false, false, false, false, false, false, false]);
  expect(l.take("401|stale", 10).ok).toBe(true); // another reason has its own budget
  expect(l.take("401|bad_signature", 1000)).toEqual({ ok: true, suppressed: 7 });
  expect(l.take("401|bad_signature", 1001)).toEqual({ ok: true, suppressed: 0 });
});

test("drain reports windows that ended with lines held back, once", () => {
  const l = createLogLimiter(1, 1000);
  l.take("a", 0);
  l.take("a", 1);
  l.take("a", 2);
  l.take("b", 0);
  expect(l.drain(500)).toEqual([]);
  expect(l.drain(1000)).toEqual([{ key: "a", suppressed: 2 }]);
  expect(l.drain(5000)).toEqual([]);
  expect(l.take("a", 5000)).toEqual({ ok: true, suppressed: 0 });
});

test("every 401 reason the signature check gives is named", () => {
  const ring = parseKeyList("k1:0123456789abcdef0123456789abcdef").ring;
  const reasonOf = (headers: Partial<Record<"keyId" | "timestamp" | "nonce" | "signature", string>>, now = 1_700_000_000) => {
    try {
      verifyRequest(
        {
          method: "POST",
          target: "/api/1000",
          user: null,
          body: new Uint8Array(),
          headers: { keyId: null, timestamp: null, nonce: null, signature: null, ...headers },
        },
        ring,
        now,
      );
    } catch (err) {
      return authFailureOf((err as QdpError).message);
    }
    return "accepted";
  };
  const ok = { keyId: "k1", timestamp: "1700000000", nonce: "abcdefghijklmnop", signature: `v1=${"0".repeat(64)}` };
  expect(reasonOf({})).toBe("missing_header");
  expect(reasonOf({ ...ok, nonce: "short" })).toBe("malformed_header");
  expect(reasonOf({ ...ok, signature: `v2=${"0".repeat(64)}` })).toBe("unknown_version");
  expect(reasonOf({ ...ok, keyId: "k9" })).toBe("unknown_key");
  expect(reasonOf(ok, 1_700_000_000 + 301)).toBe("stale");
  expect(reasonOf(ok)).toBe("bad_signature");
  expect(authFailureOf("nonce already used (replay)")).toBe("replay");
  expect(authFailureOf("x-qdp-nonce sent more than once")).toBe("repeated_header");
});
