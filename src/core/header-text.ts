/**
 * Header values as text. Bun (like the Fetch spec) exposes header values as byte strings — one
 * char per byte — while user ids, the signature and the owner hash are defined on UTF-8 text.
 * One decoder serves the edge, the signature check and the ownership rules.
 */
import { Buffer } from "node:buffer";

/**
 * Turns a header value as the runtime hands it over into text: a UTF-8 user id such as "用户"
 * arrives as "ç\u0094¨æ\u0088·" and comes back as "用户".
 *
 * @returns the decoded text, or `null` when the bytes are not valid UTF-8.
 */
export function decodeHeaderUtf8(value: string): string | null {
  // Fast path: pure ASCII needs no work (the common case for user ids).
  if (!/[^\x00-\x7f]/.test(value)) return value;
  if (/[^\x00-\xff]/.test(value)) return null;
  try {
    return UTF8_STRICT.decode(Buffer.from(value, "latin1"));
  } catch {
    return null;
  }
}

/**
 * The inverse of {@link decodeHeaderUtf8}: text → a byte string holding its UTF-8 bytes, which
 * is what `fetch`/`Headers` accept for a non-ASCII header value.
 */
export function encodeHeaderUtf8(text: string): string {
  if (!/[^\x00-\x7f]/.test(text)) return text;
  return Buffer.from(text, "utf8").toString("latin1");
}

const UTF8_STRICT = new TextDecoder("utf-8", { fatal: true });
