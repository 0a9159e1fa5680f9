/**
 * Reading a call from its route and body (CONTRACT.md §2–§3): which function, which input, and
 * whose call it is — the envelope (`POST /qdp`) or the path (`POST /api/<funcNo>`). Pure: the
 * edge runs it after the signature check, and the tests run it alone.
 */
import { QdpError } from "./errors.ts";
import { parseJsonBody } from "./json-input.ts";
import { checkUser } from "./ownership.ts";

/** Where the call came from: the envelope route or /api/<funcNo>. */
export type CallRoute = { kind: "envelope" } | { kind: "api"; funcNo: string };

export interface CallRead {
  funcNo: number;
  /** The function's input (`data`): null when absent. */
  data: unknown;
  /** The user: the header's, or for the envelope its `userId` when the header is absent. */
  user: string | null;
  /** For /api, the body's bytes: the input exactly as received, passed through the hop untouched. */
  inputBytes?: Uint8Array;
}

/** Parses a function number: an integer, or a string of digits. */
export function parseFuncNo(value: unknown): number | null {
  if (typeof value === "number") return Number.isSafeInteger(value) && value > 0 ? value : null;
  if (typeof value === "string" && /^\d{1,15}$/.test(value)) {
    const n = Number(value);
    return n > 0 ? n : null;
  }
  return null;
}

/**
 * @param headerUser the X-QDP-User value, already checked (null when absent)
 * @throws QdpError UNKNOWN_FUNCTION, BAD_JSON, VALIDATION, BAD_USER or USER_MISMATCH
 */
export function readCall(route: CallRoute, body: Uint8Array, headerUser: string | null): CallRead {
  if (route.kind === "api") {
    const funcNo = parseFuncNo(route.funcNo);
    if (funcNo === null) throw new QdpError("UNKNOWN_FUNCTION", `no function ${JSON.stringify(route.funcNo)}`);
    if (body.length === 0) return { funcNo, data: null, user: headerUser };
    return { funcNo, data: parseJsonBody(body), user: headerUser, inputBytes: body };
  }
  const env = parseJsonBody(body);
  if (typeof env !== "object" || env === null || Array.isArray(env)) throw new QdpError("BAD_JSON", "the envelope must be a JSON object");
  const e = env as { funcNo?: unknown; userId?: unknown; data?: unknown };
  const funcNo = parseFuncNo(e.funcNo);
  if (funcNo === null) {
    throw new QdpError("VALIDATION", "funcNo must be a positive integer or a string of digits", {
      details: [{ path: "/funcNo", message: e.funcNo === undefined ? "required" : "expected an integer" }],
    });
  }
  let user = headerUser;
  if (e.userId !== undefined && e.userId !== null) {
    const envUser = checkUser(e.userId);
    if (user !== null && user !== envUser) throw new QdpError("USER_MISMATCH", "X-QDP-User and the envelope's userId differ");
    user = envUser;
  }
  return { funcNo, data: e.data === undefined ? null : e.data, user };
}
