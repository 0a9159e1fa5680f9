/**
 * The UAP request signature, scheme `v1` (CONTRACT.md §4; published for implementers in
 * docs/signing.md with test vectors).
 *
 * The string to sign S is these lines joined by "\n" (no trailing newline):
 *
 * ```text
 * v1
 * <METHOD>
 * <target: path plus ?query exactly as sent>
 * <X-QDP-Timestamp as sent: unix seconds>
 * <X-QDP-Nonce>
 * <X-QDP-User value, empty string if the header is absent>
 * <lowercase hex SHA-256 of the raw body bytes>
 * ```
 *
 * and `X-QDP-Signature: v1=<lowercase hex HMAC-SHA256(secret, UTF-8 bytes of S)>`.
 *
 * This module only proves that a call was signed by a key holder within the clock window. The
 * replay check (has this nonce been accepted before?) is the caller's next step, with
 * `replay-cache.ts`, and must come *after* this succeeds so forged traffic cannot fill the cache.
 *
 * Pure TypeScript plus node:crypto (and node:buffer), whose HMAC is synchronous and fast in Bun — unlike
 * WebCrypto's, which would put an await on every request's hot path.
 */
import { createHash, createHmac } from "node:crypto";
import { QdpError } from "./errors.ts";
import { decodeHeaderUtf8, encodeHeaderUtf8 } from "./header-text.ts";

// Re-exported: signers and the edge reach them through the signing module.
export { decodeHeaderUtf8, encodeHeaderUtf8 };
import type { KeyRing } from "./keys.ts";

/** How far (in seconds, either direction) a timestamp may be from server time. Exactly 300 is accepted. */
export const SIGNATURE_WINDOW_SEC = 300;

/** The only scheme version this server accepts. */
export const SIGNATURE_VERSION = "v1";

/** The header names of the scheme, as UAP sends them (HTTP header names are case-insensitive). */
export const SIGNING_HEADERS = {
  keyId: "X-QDP-Key-Id",
  timestamp: "X-QDP-Timestamp",
  nonce: "X-QDP-Nonce",
  signature: "X-QDP-Signature",
  user: "X-QDP-User",
} as const;

/** Nonces: 16..64 URL-safe characters (22 chars of base64url = 128 random bits is typical). */
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

/** Unix seconds as decimal digits. 1..15 digits keeps the number exact in a double. */
const TIMESTAMP_PATTERN = /^[0-9]{1,15}$/;
const SIGNATURE_PATTERN = /^v1=[0-9a-f]{64}$/;
const VERSIONED_PATTERN = /^(v[0-9]+)=/;

/** The inputs of the string to sign. */
export interface SigningParts {
  /** HTTP method; upper-cased into S. */
  method: string;
  /** Path plus `?query` exactly as sent on the request line, e.g. `/api/1000?x=%41`. */
  target: string;
  /** The X-QDP-Timestamp value as sent (unix seconds). */
  timestamp: string | number;
  /** The X-QDP-Nonce value. */
  nonce: string;
  /**
   * The user id as text — the X-QDP-User header value, decoded from its UTF-8 bytes.
   * `null`/`undefined`/absent header → empty line. A user given only in a `POST /qdp` envelope
   * (`userId`) is *not* signed through this line: the header is absent, so the line is empty and
   * the envelope is covered by the body hash instead.
   */
  user?: string | null | undefined;
  /** Lowercase hex SHA-256 of the raw body bytes ({@link sha256Hex}); the empty body has one too. */
  bodySha256Hex: string;
}

/**
 * Builds S, the string to sign (see the module comment). The HMAC is taken over its UTF-8
 * bytes, which equal the bytes on the wire when UAP sends the user header as UTF-8.
 *
 * @example
 * stringToSign({ method: "POST", target: "/api/1000", timestamp: 1700000000,
 *   nonce: "AAAAAAAAAAAAAAAAAAAAAA", user: "u1", bodySha256Hex: sha256Hex("{}") })
 * // "v1\nPOST\n/api/1000\n1700000000\nAAAAAAAAAAAAAAAAAAAAAA\nu1\n44136fa3…"
 */
export function stringToSign(parts: SigningParts): string {
  return `${SIGNATURE_VERSION}\n${parts.method.toUpperCase()}\n${parts.target}\n${parts.timestamp}\n${parts.nonce}\n${parts.user ?? ""}\n${parts.bodySha256Hex}`;
}

/**
 * The runtime's native hashers when there are some. Bun's `CryptoHasher` computes the same
 * SHA-256 and HMAC-SHA256 as node:crypto at about a third of the cost per call (no Hash/Hmac
 * stream objects), which is most of what verification costs; `SHA256.hash` writes a digest into
 * a buffer of ours, and a keyed hasher's `copy()` skips the key schedule of every call.
 * Detected, not imported, so this module still runs (more slowly) wherever only node:crypto exists.
 */
interface NativeHasher {
  update(data: string | Uint8Array): NativeHasher;
  digest(encoding: "hex"): string;
  digest(into: Uint8Array): Uint8Array;
  copy(): NativeHasher;
}
const NativeBun = (
  globalThis as {
    Bun?: {
      CryptoHasher?: { new (alg: "sha256", key?: Uint8Array | string): NativeHasher; hash(alg: "sha256", data: Uint8Array | string, encoding: "hex"): string };
      SHA256?: { hash(data: Uint8Array, into: Uint8Array): Uint8Array };
    };
  }
).Bun;
const NativeCryptoHasher = NativeBun?.CryptoHasher;
const NativeSha256 = NativeBun?.SHA256;
/** A digest as lowercase hex, natively (`Uint8Array.prototype.toHex`) where the runtime has it. */
const toHex = (Uint8Array.prototype as { toHex?: (this: Uint8Array) => string }).toHex;

/** Scratch space for digests on the verifying path (one call at a time: JavaScript is single-threaded). */
const digestOut = new Uint8Array(64);
const bodyDigest = digestOut.subarray(0, 32);

/** Lowercase hex SHA-256 of bytes (a string is hashed as its UTF-8 bytes). */
export function sha256Hex(bytes: Uint8Array | string): string {
  if (NativeSha256 && toHex && typeof bytes !== "string") return toHex.call(NativeSha256.hash(bytes, bodyDigest));
  if (NativeCryptoHasher) return NativeCryptoHasher.hash("sha256", bytes, "hex");
  return createHash("sha256").update(bytes).digest("hex");
}

/** Compares two equal-length lowercase hex strings in time independent of where they differ. */
function sameHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Value of each lowercase hex digit by char code (others 0: callers pass checked hex only). */
const HEX_VALUE = new Uint8Array(128);
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[97 + i] = 10 + i;

/**
 * Compares 32 digest bytes with 64 lowercase hex digits of `hex` from `at`, in time independent
 * of where they differ, without building either side's other form.
 */
function sameDigestHex(digest: Uint8Array, hex: string, at: number): boolean {
  let diff = 0;
  for (let i = 0; i < 32; i++) {
    const byte = ((HEX_VALUE[hex.charCodeAt(at + 2 * i)] ?? 0) << 4) | (HEX_VALUE[hex.charCodeAt(at + 2 * i + 1)] ?? 0);
    diff |= byte ^ (digest[i] ?? 0);
  }
  return diff === 0;
}

/** One keyed HMAC hasher per secret of the ring, copied per call (the ring's secrets are its map values). */
const keyedHashers = new WeakMap<Uint8Array, NativeHasher>();

/** Whether `v1=<hex>` in `signature` is the HMAC-SHA256 of `s` under `secret` (constant time). */
function signatureMatches(secret: Uint8Array, s: string, signature: string): boolean {
  if (NativeCryptoHasher) {
    let keyed = keyedHashers.get(secret);
    if (keyed === undefined) {
      keyed = new NativeCryptoHasher("sha256", secret);
      keyedHashers.set(secret, keyed);
    }
    return sameDigestHex(keyed.copy().update(s).digest(digestOut), signature, 3);
  }
  return sameHex(hmacHex(secret, s), signature.slice(3));
}

/**
 * Signs the parts with a secret: returns the full `X-QDP-Signature` value, `v1=<64 hex>`.
 * @param secret the key's secret (a string is used as its UTF-8 bytes, like the key ring does).
 */
export function sign(secret: Uint8Array | string, parts: SigningParts): string {
  return `${SIGNATURE_VERSION}=${hmacHex(secret, stringToSign(parts))}`;
}

/** The signing headers as the edge read them; `null` when absent. */
export interface SignatureHeaders {
  keyId: string | null;
  timestamp: string | null;
  nonce: string | null;
  signature: string | null;
}

/** One call to check. */
export interface VerifyInput {
  headers: SignatureHeaders;
  /** The request method. */
  method: string;
  /** Path plus `?query` exactly as on the request line (not re-encoded, not normalised). */
  target: string;
  /**
   * The X-QDP-User header value as sent, decoded from UTF-8 ({@link decodeHeaderUtf8}), or
   * `null` when the header is absent — including when the user is named only in a `POST /qdp`
   * envelope: the envelope is part of the body, which the signature covers by its hash.
   */
  user: string | null;
  /** The raw body bytes (empty for no body). */
  body: Uint8Array;
}

/** What a verified call proves: who signed it, and the nonce/timestamp for the replay check. */
export interface VerifiedCall {
  keyId: string;
  nonce: string;
  /** The X-QDP-Timestamp value, in unix seconds. */
  timestamp: number;
}

/**
 * Verifies a call's signature. Checks run cheapest first — presence, shape, key id, clock — and
 * the body hash and HMAC last, so forged or stale traffic is turned away before any hashing.
 * The HMAC is compared in constant time.
 *
 * Does not check replays: on success, the caller passes `nonce`/`timestamp` (with the user) to
 * the replay cache.
 *
 * @param nowSec the server's current time in unix seconds.
 * @throws QdpError UNAUTHENTICATED with a message naming the reason (missing or malformed header,
 *   unknown signature version, unknown key id, timestamp outside ±{@link SIGNATURE_WINDOW_SEC} s,
 *   bad signature). Messages never contain a secret or the expected signature.
 */
export function verifyRequest(input: VerifyInput, ring: KeyRing, nowSec: number): VerifiedCall {
  const { keyId, timestamp, nonce, signature } = input.headers;
  if (keyId === null) throw unauthenticated(`missing ${SIGNING_HEADERS.keyId} header`);
  if (timestamp === null) throw unauthenticated(`missing ${SIGNING_HEADERS.timestamp} header`);
  if (nonce === null) throw unauthenticated(`missing ${SIGNING_HEADERS.nonce} header`);
  if (signature === null) throw unauthenticated(`missing ${SIGNING_HEADERS.signature} header`);

  if (!TIMESTAMP_PATTERN.test(timestamp)) {
    throw unauthenticated(`malformed ${SIGNING_HEADERS.timestamp}: expected unix seconds as 1..15 digits`);
  }
  if (!NONCE_PATTERN.test(nonce)) {
    throw unauthenticated(`malformed ${SIGNING_HEADERS.nonce}: expected 16..64 characters of [A-Za-z0-9_-]`);
  }
  if (!SIGNATURE_PATTERN.test(signature)) {
    const version = VERSIONED_PATTERN.exec(signature)?.[1];
    if (version !== undefined && version !== SIGNATURE_VERSION) {
      throw unauthenticated(`unknown signature version '${version}' in ${SIGNING_HEADERS.signature}: this server accepts v1`);
    }
    throw unauthenticated(`malformed ${SIGNING_HEADERS.signature}: expected v1= followed by 64 lowercase hex digits`);
  }

  const secret = ring.get(keyId);
  // The id is echoed only when it has a key id's shape, so the message stays log-safe.
  if (secret === undefined) {
    throw unauthenticated(/^[A-Za-z0-9_.-]{1,64}$/.test(keyId) ? `unknown key id '${keyId}'` : "unknown key id");
  }

  const ts = Number(timestamp);
  const skew = ts - nowSec;
  if (skew > SIGNATURE_WINDOW_SEC || skew < -SIGNATURE_WINDOW_SEC) {
    const direction = skew > 0 ? "ahead of" : "behind";
    throw unauthenticated(
      `${SIGNING_HEADERS.timestamp} is ${Math.abs(skew)} s ${direction} server time (allowed ±${SIGNATURE_WINDOW_SEC} s); check the caller's clock`,
    );
  }

  const s = stringToSign({ method: input.method, target: input.target, timestamp, nonce, user: input.user, bodySha256Hex: sha256Hex(input.body) });
  // The given signature is 64 lowercase hex digits (the pattern above checked it); the comparison
  // looks at every digit whatever the first difference, so timing reveals nothing.
  if (!signatureMatches(secret, s, signature)) {
    throw unauthenticated("bad signature: the HMAC does not match this method, target, timestamp, nonce, user and body");
  }
  return { keyId, nonce, timestamp: ts };
}

function hmacHex(secret: Uint8Array | string, s: string): string {
  if (NativeCryptoHasher) return new NativeCryptoHasher("sha256", secret).update(s).digest("hex");
  return createHmac("sha256", secret).update(s).digest("hex");
}

function unauthenticated(reason: string): QdpError {
  return new QdpError("UNAUTHENTICATED", reason);
}

/** Why a call got 401, as a short stable word for logs and metrics (never the secret or signature). */
export type AuthFailure =
  | "missing_header"
  | "malformed_header"
  | "repeated_header"
  | "unknown_version"
  | "unknown_key"
  | "stale"
  | "bad_signature"
  | "replay"
  | "other";

/** The reason of an UNAUTHENTICATED error, from the messages this module (and the replay check) write. */
export function authFailureOf(message: string): AuthFailure {
  if (message.startsWith("missing ")) return "missing_header";
  if (message.startsWith("malformed ")) return "malformed_header";
  if (message.includes("sent more than once")) return "repeated_header";
  if (message.startsWith("unknown signature version")) return "unknown_version";
  if (message.startsWith("unknown key id")) return "unknown_key";
  if (message.includes("server time")) return "stale";
  if (message.startsWith("bad signature")) return "bad_signature";
  if (message.includes("(replay)")) return "replay";
  return "other";
}
