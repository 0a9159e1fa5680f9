/**
 * What a service is and what it sees. A service is a function number, a dotted name, TypeBox
 * schemas and an async handler that receives a context — never Elysia, a Request or a socket,
 * so it runs the same whether its call arrived locally or through the hop.
 */
import type { Static, TSchema } from "@sinclair/typebox";
import type { Logger } from "../types.ts";

export type { Logger };
import type { SettingSpecs, SettingsOf } from "./settings.ts";
import type { ErrorCode } from "../core/errors.ts";
import type { RecordStore } from "../stores/record-store.ts";

export interface UpstreamRequest {
  /** Query parameters appended to the URL. */
  query?: Record<string, string>;
  /** Aborts the upstream call (the context's signal is always combined in). */
  signal?: AbortSignal;
  /** Per-call timeout in ms (default: the call's remaining deadline). */
  timeoutMs?: number;
  /** Label for metrics (default: the URL's host). */
  name?: string;
  /**
   * Extra request headers (API keys, authorisation). `x-request-id` and `traceparent` are set
   * from the call unless given here.
   */
  headers?: Record<string, string>;
}

/** The HTTP client services use: pooled keep-alive, deadline-bound, errors mapped to 502/504. */
export interface UpstreamClient {
  /** GET a JSON document. Idempotent, so it is the only verb ever retried (never automatically). */
  getJson(url: string, req?: UpstreamRequest): Promise<unknown>;
  /** POST JSON and read JSON back; never retried. */
  postJson(url: string, body: unknown, req?: UpstreamRequest): Promise<unknown>;
}

/** A service's settings as the executor holds them (typed per service through `settings`). */
export type ServiceSettings = Readonly<Record<string, unknown>>;

export interface ServiceContext<I = unknown, S = unknown, Set = ServiceSettings> {
  /** The validated input (`data`). */
  readonly input: I;
  /** The caller's user id, or null for a call without a user (stateless functions only). */
  readonly user: string | null;
  readonly requestId: string;
  /** The W3C trace id of the call (continued from UAP's `traceparent`, or started here). */
  readonly traceId: string;
  /** The `traceparent` to send onward (this call's span as the parent); the upstream client does. */
  readonly traceparent: string;
  /** Index of the worker running the handler. */
  readonly worker: number;
  readonly log: Logger;
  /** Aborted when the call's deadline (QDP_TIMEOUT_MS) passes or the worker shuts down hard. */
  readonly signal: AbortSignal;
  readonly records: RecordStore;
  readonly upstream: UpstreamClient;
  /** The service's own settings (declared in its definition), validated at start. */
  readonly settings: Set;
  /**
   * The user's session in the owner's memory (stateful services only; `undefined` otherwise).
   * Mutate it in place. It must stay JSON-serialisable: a rolling reload hands it to the
   * replacement worker as JSON.
   */
  readonly session: S;
}

export interface ServiceDefinition<In extends TSchema = TSchema, Out extends TSchema = TSchema, S = any, Set extends SettingSpecs = {}> {
  /** Function number UAP calls (positive integer, unique, never reused). */
  readonly funcNo: number;
  /** Dotted name, e.g. `demo.echo` (unique). */
  readonly name: string;
  readonly description: string;
  readonly input: In;
  readonly output: Out;
  /** Stateful functions need a user and get `ctx.session`. */
  readonly stateful: boolean;
  /** Example input for Swagger. */
  readonly example?: Static<In>;
  /**
   * Error codes the handler itself may answer with beyond the edge's own (e.g. `UPSTREAM_ERROR`
   * for a function that calls upstreams), so Swagger lists each function's real codes.
   */
  readonly errors?: readonly ErrorCode[];
  /** Fresh session for a user's first stateful call. */
  readonly initSession?: () => S;
  /**
   * Settings the service reads as `ctx.settings.<key>`: each from an environment variable or
   * the QDP_CONFIG file, validated at start (see services/settings.ts and the README).
   */
  readonly settings?: Set;
  /** The call's deadline for this function, capped by QDP_TIMEOUT_MS. Default: QDP_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  readonly handler: (ctx: ServiceContext<Static<In>, S, SettingsOf<Set>>) => Promise<Static<Out>> | Static<Out>;
  /** Set on functions of a forwarded range (QDP_FORWARD_FILE): the handler posts the call to a backend. */
  readonly forward?: { readonly range: string; readonly backends: number };
}

/**
 * Output that is already JSON text, passed on without parsing and serialising it again (the
 * bridge returns a backend's answer this way). The text must be valid JSON: whoever builds one
 * has checked it.
 */
export class RawJson {
  constructor(readonly text: string) {}
}

/** Identity helper that keeps the handler's types tied to the schemas and settings. */
export function defineService<In extends TSchema, Out extends TSchema, S = Record<string, unknown>, const Set extends SettingSpecs = {}>(
  def: ServiceDefinition<In, Out, S, Set>,
): ServiceDefinition<In, Out, S, Set> {
  return def;
}

/** A service of any schema, as the registry holds it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyService = ServiceDefinition<any, any, any, any>;
