/**
 * Building the contract's responses. Every response carries X-QDP-Worker, X-QDP-Edge and
 * X-Request-Id (CONTRACT.md §3). They are built as transport-neutral replies: the public
 * HTTP/1.1 transport writes them as they are, the Elysia routes wrap them in a `Response`.
 */
import { errorBody, type QdpError } from "../core/errors.ts";
import type { Reply } from "./http1-server.ts";

export type { Reply };

export interface ResponseMeta {
  edge: number;
  worker: number;
  requestId: string;
  /** Ask the client to close its connection (draining worker). */
  close: boolean;
}

function headers(meta: ResponseMeta): Record<string, string> {
  const h: Record<string, string> = {
    "content-type": "application/json",
    "x-qdp-worker": String(meta.worker),
    "x-qdp-edge": String(meta.edge),
    "x-request-id": meta.requestId,
  };
  if (meta.close) h.connection = "close";
  return h;
}

/**
 * {@link headers} as the HTTP/1.1 transport writes them (Reply.headLines), in one template
 * instead of a walk over the object per response; test/responses.test.ts holds the two equal.
 */
function headLines(meta: ResponseMeta, retryAfter?: number): string {
  const retry = retryAfter === undefined ? "" : `retry-after: ${retryAfter}\r\n`;
  return `content-type: application/json\r\nx-qdp-worker: ${meta.worker}\r\nx-qdp-edge: ${meta.edge}\r\nx-request-id: ${meta.requestId}\r\n${retry}`;
}

/** 200 with the handler's output, spliced in as JSON text (it is never parsed here). */
export function okReply(funcNo: number, outputJson: string, meta: ResponseMeta): Reply {
  return { status: 200, headers: headers(meta), body: `{"ok":true,"funcNo":${funcNo},"data":${outputJson}}`, headLines: headLines(meta) };
}

export function errorReply(err: QdpError, meta: ResponseMeta): Reply {
  const h = headers(meta);
  if (err.retryAfter !== undefined) h["retry-after"] = String(err.retryAfter);
  return { status: err.status, headers: h, body: JSON.stringify(errorBody(err.code, err.message, err.details)), headLines: headLines(meta, err.retryAfter) };
}

export function jsonReply(status: number, body: unknown, meta: ResponseMeta): Reply {
  return { status, headers: headers(meta), body: JSON.stringify(body) };
}

/** A reply as a Fetch `Response` (Elysia routes, in-process tests). */
export function toResponse(reply: Reply): Response {
  return new Response(reply.body, { status: reply.status, headers: reply.headers });
}

export const errorResponse = (err: QdpError, meta: ResponseMeta): Response => toResponse(errorReply(err, meta));
export const jsonResponse = (status: number, body: unknown, meta: ResponseMeta): Response => toResponse(jsonReply(status, body, meta));

let counter = 0;
const bootId = Math.random().toString(36).slice(2, 8);

/** The request's id: the caller's X-Request-Id when sane, else a new one. */
export function requestIdOf(given: string | null, worker: number): string {
  if (given !== null && given.length > 0 && given.length <= 128 && /^[\x21-\x7e]+$/.test(given)) return given;
  counter = (counter + 1) % 0x7fffffff;
  return `${bootId}-${worker}-${counter.toString(36)}`;
}
