/**
 * The edge's work for one call, in the order that makes forged or bad traffic cheapest:
 * in-flight limit → source address → size → body → signature → JSON → user → function →
 * validation → replay → route. A call that fails any step never runs.
 */
import { isValidTraceparent } from "../core/trace.ts";
import type { AllowList } from "../core/cidr.ts";
import type { Config } from "../core/config.ts";
import { QdpError, toQdpError } from "../core/errors.ts";
import type { KeyRing } from "../core/keys.ts";
import { userFromHeader } from "../core/ownership.ts";
import { readCall, type CallRoute } from "../core/read-call.ts";
import { decodeHeaderUtf8, verifyRequest, type VerifiedCall } from "../core/signing.ts";
import { requestTarget, signatureInputOf, type SignedRequest } from "./signature-input.ts";
import type { Call } from "../affinity/executor.ts";
import type { Router } from "../affinity/router.ts";
import type { Registry } from "../services/registry.ts";
import type { Logger } from "../services/types.ts";
import type { CallDurations } from "../telemetry/call-durations.ts";
import type { LogLimiter } from "../telemetry/log-limiter.ts";
import type { AccessEntry } from "../telemetry/logger.ts";
import { authFailureOf } from "../core/signing.ts";
import { errorReply, okReply, requestIdOf, type Reply, type ResponseMeta } from "./responses.ts";

export interface EdgeCounters {
  /** HTTP requests finished by this edge (calls, health checks excluded). */
  requests: number;
  /** Calls in progress at this edge. */
  inflight: number;
  /** Error responses by code. */
  errors: Record<string, number>;
  /** Clients that closed their connection before their answer (mid-request or while it ran). */
  clientAborts: number;
}

export interface CallHandlerDeps {
  index: number;
  config: Pick<Config, "maxBody" | "timeoutMs" | "maxInflight">;
  registry: Registry;
  router: Router;
  /** The UAP key ring; null = open development mode (no signing). */
  keys: () => KeyRing | null;
  allow: AllowList | null;
  counters: EdgeCounters;
  draining: () => boolean;
  log: Logger;
  /**
   * The access log (QDP_ACCESS_LOG): `share` of the calls (0 = none, 1 = every call, between = a
   * random sample) is written at info by `write`, one JSON line each. Absent here = none (the
   * worker passes QDP_ACCESS_LOG, whose default is every call).
   */
  accessLog?: { share: number; write: (e: AccessEntry) => void };
  /** Call durations by function and outcome, for `qdp_request_duration_seconds`. */
  durations?: CallDurations;
  /** Limits repeated warn lines (401s, upstream errors, timeouts); without one they are not written. */
  warnLimiter?: LogLimiter;
}

/** What the access log and the warn lines say about one call; filled in as the call is checked. */
interface CallRecord {
  route: "api" | "qdp";
  funcNo: number | null;
  name: string | null;
  user: string | null;
  keyId: string | null;
  ip: string | null;
  /** The worker the call was routed to (its user's owner, or this edge); null if it never got that far. */
  owner: number | null;
  /** The trace id of the caller's `traceparent`, when it sent a valid one (the trace UAP started). */
  traceId: string | null;
}

/** Codes that say something went wrong that an operator should see even without the access log. */
const WARN_CODES = new Set(["UNAUTHENTICATED", "UPSTREAM_ERROR", "TIMEOUT"]);

const EMPTY = new Uint8Array(0);
const SIGNING_HEADER_NAMES = ["x-qdp-key-id", "x-qdp-timestamp", "x-qdp-nonce", "x-qdp-signature"] as const;

export type { CallRoute };

/**
 * One call as a transport hands it over, body already read: the public HTTP/1.1 transport
 * (edge/public-server.ts) and the Elysia routes (in-process use) both build it.
 */
export interface CallInput extends SignedRequest {
  /** Whether a header came more than once (a Fetch `Request` cannot tell, and answers false). */
  repeated(name: string): boolean;
  clientIp: string | null;
}

export function createCallHandler(d: CallHandlerDeps) {
  const { counters } = d;

  /**
   * Runs one call and answers it; never throws. A call whose handler answers synchronously at
   * this worker is answered without a promise (the transport writes it in the same tick).
   */
  function handleCall(input: CallInput, route: CallRoute): Reply | Promise<Reply> {
    const meta: ResponseMeta = {
      edge: d.index,
      worker: d.index,
      requestId: requestIdOf(input.header("x-request-id"), d.index),
      close: d.draining(),
    };
    const rec: CallRecord = {
      route: route.kind === "api" ? "api" : "qdp",
      funcNo: null,
      name: null,
      user: null,
      keyId: null,
      ip: input.clientIp,
      owner: null,
      traceId: null,
    };
    const started = performance.now();
    if (counters.inflight >= d.config.maxInflight) {
      counters.requests++;
      return done(fail(new QdpError("OVERLOADED", `worker ${d.index} has ${counters.inflight} calls in flight`), meta, rec), rec, meta, started, "OVERLOADED");
    }
    counters.inflight++;
    let out: string | Promise<string>;
    try {
      out = run(input, route, meta, rec);
    } catch (err) {
      return failed(err, meta, rec, started);
    }
    if (out instanceof Promise) {
      return out.then(
        (o) => answered(o, meta, rec, started),
        (err) => failed(err, meta, rec, started),
      );
    }
    return answered(out, meta, rec, started);
  }

  /** `output` is the handler's output as JSON text, from the worker `rec.owner`. */
  function answered(output: string, meta: ResponseMeta, rec: CallRecord, started: number): Reply {
    counters.inflight--;
    counters.requests++;
    meta.worker = rec.owner!;
    return done(okReply(rec.funcNo!, output, meta), rec, meta, started, "OK");
  }

  function failed(err: unknown, meta: ResponseMeta, rec: CallRecord, started: number): Reply {
    counters.inflight--;
    counters.requests++;
    const e = toQdpError(err);
    return done(fail(e, meta, rec), rec, meta, started, e.code);
  }

  /** Records the call's duration and writes its access line (when sampled). */
  function done(res: Reply, rec: CallRecord, meta: ResponseMeta, started: number, code: string): Reply {
    const seconds = (performance.now() - started) / 1000;
    d.durations?.observe(rec.funcNo === null ? "unknown" : String(rec.funcNo), code, seconds);
    const access = d.accessLog;
    if (access !== undefined && access.share > 0 && (access.share >= 1 || Math.random() < access.share)) {
      const e: AccessEntry = {
        requestId: meta.requestId,
        func: rec.funcNo,
        name: rec.name,
        user: rec.user,
        status: res.status,
        code: code === "OK" ? null : code,
        ms: Math.round(seconds * 1e6) / 1000,
        edge: meta.edge,
        owner: rec.owner,
        ip: rec.ip,
        keyId: rec.keyId,
        traceId: rec.traceId,
        route: rec.route,
      };
      if (access.share < 1) e.sample = access.share;
      access.write(e);
    }
    return res;
  }

  /**
   * The same for a Fetch `Request` (the Elysia routes): reads the body within QDP_MAX_BODY first.
   */
  async function handleRequest(request: Request, route: CallRoute, clientIp: () => string | null): Promise<Reply> {
    const declared = request.headers.get("content-length");
    let body = EMPTY;
    try {
      if (declared !== null && Number(declared) > d.config.maxBody) throw tooLarge(d.config.maxBody);
      if (request.body !== null) body = new Uint8Array(await request.arrayBuffer());
      if (body.length > d.config.maxBody) throw tooLarge(d.config.maxBody);
    } catch (err) {
      counters.requests++;
      const meta: ResponseMeta = { edge: d.index, worker: d.index, requestId: requestIdOf(request.headers.get("x-request-id"), d.index), close: d.draining() };
      return fail(toQdpError(err), meta);
    }
    const h = request.headers;
    return handleCall(
      { method: request.method, target: requestTarget(request), header: (n) => h.get(n), repeated: () => false, body, clientIp: clientIp() },
      route,
    );
  }

  function fail(e: QdpError, meta: ResponseMeta, rec?: CallRecord): Reply {
    counters.errors[e.code] = (counters.errors[e.code] ?? 0) + 1;
    if (e.code === "INTERNAL" && !e.logged) d.log.error("call failed", { requestId: meta.requestId, err: e.cause ?? e });
    else if (rec !== undefined && d.warnLimiter !== undefined && WARN_CODES.has(e.code)) warn(e, meta, rec, d.warnLimiter);
    return errorReply(e, meta);
  }

  /**
   * One warn line for a 401 (with its reason), an upstream error or a timeout (with its cause),
   * rate-limited per reason so a flood of bad calls stays a few lines (log-limiter.ts).
   */
  function warn(e: QdpError, meta: ResponseMeta, rec: CallRecord, limiter: LogLimiter): void {
    const reason = e.code === "UNAUTHENTICATED" ? authFailureOf(e.message) : undefined;
    const key = `${e.code}|${reason ?? rec.funcNo ?? ""}`;
    const { ok, suppressed } = limiter.take(key, Date.now());
    if (!ok) return;
    const what = e.code === "UNAUTHENTICATED" ? "call refused: not signed by UAP" : e.code === "TIMEOUT" ? "call timed out" : "upstream error";
    d.log.warn(what, {
      requestId: meta.requestId,
      code: e.code,
      ...(reason === undefined ? {} : { reason }),
      cause: e.message,
      func: rec.funcNo,
      user: rec.user,
      keyId: rec.keyId,
      ip: rec.ip,
      edge: meta.edge,
      ...(suppressed > 0 ? { suppressedBefore: suppressed } : {}),
    });
  }

  /** The call's checks in order, then its route; synchronous until something must wait. */
  function run(input: CallInput, route: CallRoute, meta: ResponseMeta, rec: CallRecord): string | Promise<string> {
    const started = Date.now();
    let deadline = started + d.config.timeoutMs;
    if (d.allow) {
      const ip = input.clientIp;
      if (ip === null || !d.allow.allows(ip)) throw new QdpError("FORBIDDEN", "source address not allowed");
    }
    const body = input.body;
    if (body.length > d.config.maxBody) throw tooLarge(d.config.maxBody);

    // A repeated user would be one user here ("a, b") and another at a front proxy that takes
    // the first value: refuse it, and repeated signing headers likewise.
    if (input.repeated("x-qdp-user")) throw new QdpError("BAD_USER", "X-QDP-User sent more than once");
    const rawUser = input.header("x-qdp-user");
    // Decoded once: the signature covers the text, and the user rules check the same text.
    const headerUser = rawUser === null ? null : decodeHeaderUtf8(rawUser);
    const keys = d.keys();
    let verified: VerifiedCall | null = null;
    if (keys !== null) {
      for (const name of SIGNING_HEADER_NAMES) if (input.repeated(name)) throw new QdpError("UNAUTHENTICATED", `${name} sent more than once`);
      // The key id is logged only once it names a configured key (an attacker's text is not).
      verified = verifyRequest(signatureInputOf(input, headerUser), keys, Math.floor(started / 1000));
      rec.keyId = verified.keyId;
    }

    const { funcNo, data, user, inputBytes } = readCall(route, body, rawUser === null ? null : userFromHeader(rawUser, headerUser));
    rec.user = user;
    const service = d.registry.require(funcNo);
    rec.funcNo = funcNo;
    rec.name = service.def.name;
    // A function's own timeout shortens the deadline; QDP_TIMEOUT_MS stays the cap.
    if (service.def.timeoutMs !== undefined) deadline = Math.min(deadline, started + service.def.timeoutMs);
    d.registry.validate(service, data);
    if (service.def.stateful && user === null) throw new QdpError("USER_REQUIRED", `${service.def.name} is stateful: name a user in X-QDP-User or userId`);

    // Replays: a call with a user is checked at its owner (before it runs there); one without
    // a user at the owner of its nonce. Either way every worker consults the same place.
    const dispatch = (): string | Promise<string> => {
      const owner = d.router.ownerIndex(user);
      rec.owner = owner;
      const traceparent = validTraceparent(input.header("traceparent"));
      if (traceparent !== undefined) rec.traceId = traceparent.slice(3, 35);
      const call: Call = {
        service,
        user,
        requestId: meta.requestId,
        traceparent,
        input: data,
        deadline,
        replay: verified !== null && user !== null ? [verified.nonce, verified.timestamp] : undefined,
      };
      // One promise at most: a hopped or asynchronous call's own, answered by handleCall.
      return d.router.call(call, inputBytes, owner);
    };
    if (verified !== null && user === null) return d.router.checkNonce(verified.nonce, verified.timestamp, deadline).then(dispatch);
    return dispatch();
  }

  return { handleCall, handleRequest };
}

function tooLarge(max: number): QdpError {
  return new QdpError("PAYLOAD_TOO_LARGE", `body larger than ${max} bytes`);
}

/** The caller's traceparent if it is one to continue (it then travels through the hop as is). */
function validTraceparent(header: string | null): string | undefined {
  if (header === null) return undefined;
  const h = header.trim();
  return isValidTraceparent(h) ? h : undefined;
}
