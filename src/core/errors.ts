/**
 * The one catalogue of error codes (CONTRACT.md §3). Every error a client can see is built from
 * here; `test/errors.test.ts` keeps codes unique, documented and in step with the contract.
 * Pure TypeScript: no Bun, Elysia or MongoDB import.
 */

export interface ErrorSpec {
  /** HTTP status sent with the code. */
  readonly status: number;
  /** What the code means, for the README and Swagger. */
  readonly doc: string;
}

export const ERROR_CATALOGUE = {
  BAD_JSON: { status: 400, doc: "The body is not valid JSON, or the envelope is not a JSON object." },
  VALIDATION: { status: 400, doc: "The input does not match the function's schema; `details` lists the failing paths." },
  BAD_USER: { status: 400, doc: "The user id is not 1..128 bytes of UTF-8 without control characters." },
  USER_MISMATCH: { status: 400, doc: "`X-QDP-User` and the envelope's `userId` are both present and differ." },
  USER_REQUIRED: { status: 400, doc: "The function is stateful and the call names no user." },
  UNAUTHENTICATED: {
    status: 401,
    doc: "The call is not signed by UAP: missing, malformed, unknown-key, bad, stale or replayed signature, or signed before the replay fence of a restarted worker (sign it again).",
  },
  FORBIDDEN: { status: 403, doc: "The source address is outside `QDP_ALLOW_CIDRS`." },
  UNKNOWN_FUNCTION: { status: 404, doc: "No service is registered under that function number (or the path is unknown)." },
  PAYLOAD_TOO_LARGE: { status: 413, doc: "The body is larger than `QDP_MAX_BODY`." },
  UPSTREAM_ERROR: { status: 502, doc: "An upstream service the function called failed or answered badly." },
  OVERLOADED: {
    status: 503,
    doc: "The worker has `QDP_MAX_INFLIGHT` calls in flight (or a bounded queue is full, or the call's nonce cannot be vouched for: replay cache full, shared replay store unreachable); the call did not run. Retry after `Retry-After` (a signed retry with a new nonce).",
  },
  OWNER_UNAVAILABLE: { status: 503, doc: "The user's owner worker stayed down for `QDP_OWNER_WAIT_MS`; retry after `Retry-After`." },
  SESSION_UNAVAILABLE: {
    status: 503,
    doc: "The session store could not be read or written in time; the call's session change was not stored. Retry after `Retry-After`.",
  },
  SESSION_CONFLICT: {
    status: 503,
    doc: "The user's stored session changed since this owner loaded it (another host served the user); the change was not stored and a retry runs on fresh state.",
  },
  TIMEOUT: { status: 504, doc: "The call (or an upstream call) ran past its deadline (`QDP_TIMEOUT_MS`); its work was aborted." },
  INTERNAL: { status: 500, doc: "An unexpected failure inside the server; details are in the log under the request id, never in the body." },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_CATALOGUE, value);
}

/** Seconds a client should wait before retrying a 503. */
export const DEFAULT_RETRY_AFTER_S = 1;

/**
 * A domain error: services and core code throw it; the HTTP edge maps it to the contract's body.
 * `details` must be safe to show to the caller (no secrets, no stack).
 */
export class QdpError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  /** Seconds for `Retry-After` (503s). */
  readonly retryAfter: number | undefined;
  /** Set once the failure was logged with its cause, so it is logged once per call. */
  logged = false;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; retryAfter?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "QdpError";
    this.code = code;
    this.details = options.details;
    this.retryAfter = options.retryAfter ?? (ERROR_CATALOGUE[code].status === 503 ? DEFAULT_RETRY_AFTER_S : undefined);
  }

  get status(): number {
    return ERROR_CATALOGUE[this.code].status;
  }
}

export interface ErrorBody {
  ok: false;
  error: { code: ErrorCode; message: string; details?: unknown };
}

/** The contract's error body. */
export function errorBody(code: ErrorCode, message: string, details?: unknown): ErrorBody {
  return details === undefined ? { ok: false, error: { code, message } } : { ok: false, error: { code, message, details } };
}

/**
 * Turns anything thrown into a QdpError. Unknown errors become INTERNAL with a generic message:
 * their text may hold internals, so it goes to the log, never to the caller.
 */
export function toQdpError(err: unknown): QdpError {
  if (err instanceof QdpError) return err;
  return new QdpError("INTERNAL", "internal error", { cause: err });
}
