/**
 * Building the contract's responses. Every response carries X-QDP-Worker, X-QDP-Edge and
 * X-Request-Id (CONTRACT.md §3).
 */
import { errorBody, type QdpError } from "../core/errors.ts";

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

/** 200 with the handler's output, spliced in as JSON text (it is never parsed here). */
export function okResponse(funcNo: number, outputJson: string, meta: ResponseMeta): Response {
  return new Response(`{"ok":true,"funcNo":${funcNo},"data":${outputJson}}`, { status: 200, headers: headers(meta) });
}

export function errorResponse(err: QdpError, meta: ResponseMeta): Response {
  const h = headers(meta);
  if (err.retryAfter !== undefined) h["retry-after"] = String(err.retryAfter);
  return new Response(JSON.stringify(errorBody(err.code, err.message, err.details)), { status: err.status, headers: h });
}

export function jsonResponse(status: number, body: unknown, meta: ResponseMeta): Response {
  return new Response(JSON.stringify(body), { status, headers: headers(meta) });
}

let counter = 0;
const bootId = Math.random().toString(36).slice(2, 8);

/** The request's id: the caller's X-Request-Id when sane, else a new one. */
export function requestIdOf(given: string | null, worker: number): string {
  if (given !== null && given.length > 0 && given.length <= 128 && /^[\x21-\x7e]+$/.test(given)) return given;
  counter = (counter + 1) % 0x7fffffff;
  return `${bootId}-${worker}-${counter.toString(36)}`;
}
