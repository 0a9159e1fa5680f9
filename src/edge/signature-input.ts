/**
 * What the signature check reads from an HTTP request (CONTRACT.md §4): the four signing
 * headers, the method, the request target exactly as sent, the X-QDP-User text and the raw body.
 * The edge uses it for both transports, and so do tests that stand up a verifying server, so
 * every reader takes a request apart the same way.
 */
import { decodeHeaderUtf8 } from "../core/header-text.ts";
import type { VerifyInput } from "../core/signing.ts";

/** The parts of a request the signature covers, whatever carried it. */
export interface SignedRequest {
  method: string;
  /** Path plus `?query` exactly as on the request line. */
  target: string;
  /** A header's value as a byte string (one char per byte), or null if absent. */
  header(name: string): string | null;
  body: Uint8Array;
}

/** Path plus `?query` of a request, as on its request line. */
export function requestTarget(request: Request): string {
  const url = request.url;
  return url.slice(url.indexOf("/", url.indexOf("//") + 2));
}

/**
 * @param user the X-QDP-User value already decoded, when the caller has it; by default decoded
 *   here (an undecodable value is passed as sent, and cannot match a signature)
 */
export function signatureInputOf(req: SignedRequest, user?: string | null): VerifyInput {
  const raw = req.header("x-qdp-user");
  return {
    headers: {
      keyId: req.header("x-qdp-key-id"),
      timestamp: req.header("x-qdp-timestamp"),
      nonce: req.header("x-qdp-nonce"),
      signature: req.header("x-qdp-signature"),
    },
    method: req.method,
    target: req.target,
    user: raw === null ? null : (user ?? decodeHeaderUtf8(raw) ?? raw),
    body: req.body,
  };
}

/** The same for a Fetch `Request` whose body was read as `body`. */
export function signatureInput(request: Request, body: Uint8Array, user?: string | null): VerifyInput {
  const h = request.headers;
  return signatureInputOf({ method: request.method, target: requestTarget(request), header: (n) => h.get(n), body }, user);
}
