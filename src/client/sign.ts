/**
 * Client side of the UAP signature, for UAP implementers writing TypeScript and for our tests:
 * produces the X-QDP-* headers for one call (docs/signing.md describes the scheme).
 *
 * @example
 * const headers = signRequest({ keyId: "uap-1", secret, method: "POST",
 *   url: "http://127.0.0.1:8080/api/1000", user: "u1", body: '{"a":1}' });
 * await fetch("http://127.0.0.1:8080/api/1000", { method: "POST", headers, body: '{"a":1}' });
 */
import { randomBytes } from "node:crypto";
import { SIGNING_HEADERS, encodeHeaderUtf8, sha256Hex, sign } from "../core/signing.ts";

export interface SignRequestOptions {
  /** The key id UAP signs with (one of the server's `QDP_UAP_KEYS`). */
  keyId: string;
  /** That key's secret (a string is used as its UTF-8 bytes). */
  secret: string | Uint8Array;
  /** HTTP method; default "GET". */
  method?: string;
  /** The full URL; the target signed is its path plus `?query` as `fetch` will send it. */
  url?: string | URL;
  /** The request target (path plus `?query`) exactly as it will be sent; used when `url` is absent. */
  target?: string;
  /** The user id for `X-QDP-User`; omitted or null → no header and an empty user line. */
  user?: string | null;
  /** The exact body that will be sent; a string is sent (and hashed) as UTF-8. Default: empty. */
  body?: string | Uint8Array;
  /** Unix seconds; default now. */
  timestamp?: number;
  /** Default: 16 random bytes as base64url (22 characters). */
  nonce?: string;
}

/**
 * Signs one call. Returns `X-QDP-Key-Id`, `X-QDP-Timestamp`, `X-QDP-Nonce`,
 * `X-QDP-Signature` and, when a user is given, `X-QDP-User`.
 *
 * A non-ASCII user id is returned as the byte string of its UTF-8 bytes (one char per byte),
 * because that is what `fetch`/`Headers` accept and it puts the UTF-8 bytes on the wire; the
 * signature covers the user as text, which is the same bytes.
 */
export function signRequest(options: SignRequestOptions): Record<string, string> {
  const target = options.url !== undefined ? targetOf(options.url) : options.target;
  if (target === undefined || target === "") throw new TypeError("signRequest needs `url` or `target`");
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const nonce = options.nonce ?? newNonce();
  const user = options.user ?? null;
  const body = options.body ?? "";
  const signature = sign(options.secret, {
    method: options.method ?? "GET",
    target,
    timestamp,
    nonce,
    user,
    bodySha256Hex: sha256Hex(body),
  });
  const headers: Record<string, string> = {
    [SIGNING_HEADERS.keyId]: options.keyId,
    [SIGNING_HEADERS.timestamp]: String(timestamp),
    [SIGNING_HEADERS.nonce]: nonce,
    [SIGNING_HEADERS.signature]: signature,
  };
  if (user !== null) headers[SIGNING_HEADERS.user] = encodeHeaderUtf8(user);
  return headers;
}

/** A fresh nonce: 128 random bits, base64url, 22 characters. */
export function newNonce(): string {
  return randomBytes(16).toString("base64url");
}

/** `fetch` options plus what signing needs. The body must be a string or bytes (it is hashed). */
export type SignedFetchInit = Omit<RequestInit, "body"> & {
  keyId: string;
  secret: string | Uint8Array;
  user?: string | null;
  body?: string | Uint8Array | null;
  timestamp?: number;
  nonce?: string;
};

/**
 * `fetch` with the call signed. Headers in `init.headers` are kept; the signing headers win.
 * @example await signedFetch(`${base}/api/1001`, { method: "POST", body: "{}", keyId, secret, user: "u1" })
 */
export function signedFetch(url: string | URL, init: SignedFetchInit): Promise<Response> {
  const { keyId, secret, user, timestamp, nonce, body, ...rest } = init;
  const signing = signRequest({
    keyId,
    secret,
    method: rest.method ?? "GET",
    url,
    user: user ?? null,
    body: body ?? "",
    ...(timestamp === undefined ? {} : { timestamp }),
    ...(nonce === undefined ? {} : { nonce }),
  });
  const headers = new Headers(rest.headers);
  for (const [name, value] of Object.entries(signing)) headers.set(name, value);
  return fetch(url, { ...rest, headers, ...(body === undefined || body === null ? {} : { body }) });
}

/** Path plus `?query` of a URL, as the WHATWG URL parser (and so `fetch`) serialises it. */
function targetOf(url: string | URL): string {
  const u = typeof url === "string" ? new URL(url) : url;
  // `search` is "" both for no query and for a bare "?", but fetch sends the bare "?".
  const bareQuery = u.search === "" && u.href.split("#", 1)[0]?.endsWith("?") === true;
  return `${u.pathname}${bareQuery ? "?" : u.search}`;
}
