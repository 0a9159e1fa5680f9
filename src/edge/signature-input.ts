/**
 * What the signature check reads from an HTTP request (CONTRACT.md §4): the four signing
 * headers, the method, the request target exactly as sent, the X-QDP-User text and the raw body.
 * The edge uses it, and so do tests that stand up a verifying server, so both read a request
 * the same way.
 */
import { decodeHeaderUtf8 } from "../core/header-text.ts";
import type { VerifyInput } from "../core/signing.ts";

/** Path plus `?query` of a request, as on its request line. */
export function requestTarget(request: Request): string {
  const url = request.url;
  return url.slice(url.indexOf("/", url.indexOf("//") + 2));
}

/**
 * @param body the raw body bytes
 * @param user the X-QDP-User value already decoded, when the caller has it; by default decoded
 *   here (an undecodable value is passed as sent, and cannot match a signature)
 */
export function signatureInput(request: Request, body: Uint8Array, user?: string | null): VerifyInput {
  const h = request.headers;
  const raw = h.get("x-qdp-user");
  return {
    headers: { keyId: h.get("x-qdp-key-id"), timestamp: h.get("x-qdp-timestamp"), nonce: h.get("x-qdp-nonce"), signature: h.get("x-qdp-signature") },
    method: request.method,
    target: requestTarget(request),
    user: raw === null ? null : (user ?? decodeHeaderUtf8(raw) ?? raw),
    body,
  };
}
