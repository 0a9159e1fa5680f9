/**
 * User ownership (CONTRACT.md §2): which worker runs a user's calls.
 * `owner(user) = ((crc32(utf8(user)) >>> 16) & 0x7fff) % N` — exactly the peer nginx's
 * non-consistent `hash $http_x_qdp_user;` picks among N equal servers, so a front nginx can
 * route straight to owners. Pure TypeScript.
 */
import { QdpError } from "./errors.ts";
import { decodeHeaderUtf8 } from "./header-text.ts";

const TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, zlib's) of bytes, as an unsigned 32-bit number. */
export function crc32(bytes: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** The owner index of a user given as UTF-8 bytes. */
export function ownerOfBytes(bytes: Uint8Array, workers: number): number {
  return ((crc32(bytes) >>> 16) & 0x7fff) % workers;
}

const encoder = new TextEncoder();

/** The owner index of a user id string (hashed as its UTF-8 bytes). */
export function ownerOf(user: string, workers: number): number {
  return ownerOfBytes(encoder.encode(user), workers);
}

export const USER_MAX_BYTES = 128;

// C0 controls, DEL and C1 controls.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Validates a user id given as a string (the envelope's `userId`): 1..128 bytes of UTF-8, no
 * control characters. Returns it unchanged or throws BAD_USER.
 */
export function checkUser(user: unknown): string {
  if (typeof user !== "string" || user.length === 0) throw badUser("must be a non-empty string");
  if (user.isWellFormed && !user.isWellFormed()) throw badUser("is not valid Unicode");
  if (CONTROL.test(user)) throw badUser("contains control characters");
  // Fast path: ASCII-only strings are as many bytes as characters.
  const bytes = user.length <= USER_MAX_BYTES / 3 ? user.length : encoder.encode(user).length;
  if (bytes > USER_MAX_BYTES) throw badUser(`is ${bytes} bytes of UTF-8; at most ${USER_MAX_BYTES} allowed`);
  return user;
}

/**
 * A user id from an HTTP header. Header values reach JavaScript as Latin-1 text (one char per
 * byte); decoding them as strict UTF-8 first means a user sent as UTF-8 in the header and the
 * same user in a JSON envelope are one user and hash to the same owner. A value holding a char
 * above U+00FF was already decoded by the runtime and is taken as it is.
 * @param decoded the value through {@link decodeHeaderUtf8}, when the caller has it already.
 */
export function userFromHeader(value: string, decoded: string | null = decodeHeaderUtf8(value)): string {
  if (decoded !== null) return checkUser(decoded);
  if (/[^\x00-\xff]/.test(value)) return checkUser(value);
  throw badUser("is not valid UTF-8");
}

function badUser(why: string): QdpError {
  return new QdpError("BAD_USER", `user id ${why}`);
}
