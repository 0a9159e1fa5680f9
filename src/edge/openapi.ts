/**
 * The OpenAPI document behind `/swagger/json`: OpenAPI 3.1 (its schemas are JSON Schema 2020-12,
 * so TypeBox's `const` and literals are valid as they are), one operation per function, each with
 * its own error codes, and request signing described as a security scheme with the string to
 * sign. `test/swagger.test.ts` validates it with `@apidevtools/swagger-parser`.
 */
import { ERROR_CATALOGUE, type ErrorCode } from "../core/errors.ts";
import { NONCE_PATTERN, SIGNATURE_WINDOW_SEC, SIGNING_HEADERS } from "../core/signing.ts";
import type { Registry } from "../services/registry.ts";
import type { AnyService } from "../services/types.ts";

export interface OpenApiOptions {
  /** Keys are configured: the signing headers are required and the security scheme applies. */
  signing: boolean;
  /** QDP_ALLOW_CIDRS is set: 403 FORBIDDEN is possible. */
  allowList: boolean;
  /** Sessions are stored in Redis: stateful functions may answer SESSION_UNAVAILABLE / SESSION_CONFLICT. */
  durableSessions: boolean;
  /** `info.version`: the server's version. */
  version: string;
}

type Json = Record<string, unknown>;

/** Codes any call can get, whatever the function: framing, input, limits, deadline, bugs. */
const EVERY_CALL: readonly ErrorCode[] = ["BAD_JSON", "VALIDATION", "BAD_USER", "PAYLOAD_TOO_LARGE", "OVERLOADED", "OWNER_UNAVAILABLE", "TIMEOUT", "INTERNAL"];

/**
 * The error codes one function can answer with, in catalogue order: the edge's checks (signing
 * and the source address only when configured), the user rules of a stateful function, the
 * session store's when sessions are durable, and what the service declares (`def.errors`).
 * For the envelope route (`def` null) a mismatched user and an unknown function number too.
 */
export function errorCodesOf(def: AnyService | null, o: Pick<OpenApiOptions, "signing" | "allowList" | "durableSessions">): ErrorCode[] {
  const codes = new Set<ErrorCode>(EVERY_CALL);
  if (o.signing) codes.add("UNAUTHENTICATED");
  if (o.allowList) codes.add("FORBIDDEN");
  if (def === null || def.stateful) {
    codes.add("USER_REQUIRED");
    if (o.durableSessions) {
      codes.add("SESSION_UNAVAILABLE");
      codes.add("SESSION_CONFLICT");
    }
  }
  if (def === null) {
    codes.add("USER_MISMATCH");
    codes.add("UNKNOWN_FUNCTION");
    codes.add("UPSTREAM_ERROR");
  } else {
    for (const c of def.errors ?? []) codes.add(c);
    // A forwarded function's backend may fail, answer badly or not at all (CONTRACT.md §8).
    if (def.forward) codes.add("UPSTREAM_ERROR");
  }
  return (Object.keys(ERROR_CATALOGUE) as ErrorCode[]).filter((c) => codes.has(c));
}

/** The string to sign, as the security scheme's description shows it (CONTRACT.md §4). */
export const SIGNING_DESCRIPTION = [
  "Only calls signed by UAP run. Send four headers:",
  "",
  `- \`${SIGNING_HEADERS.keyId}\`: the key id (\`QDP_UAP_KEYS\` holds \`keyId:secret\` pairs; several at once for rotation)`,
  `- \`${SIGNING_HEADERS.timestamp}\`: unix seconds, within ±${SIGNATURE_WINDOW_SEC} s of server time`,
  `- \`${SIGNING_HEADERS.nonce}\`: 16..64 characters of \`[A-Za-z0-9_-]\`, never reused by the same user within ${SIGNATURE_WINDOW_SEC} s`,
  `- \`${SIGNING_HEADERS.signature}\`: \`v1=\` + lowercase hex HMAC-SHA256(secret, S)`,
  "",
  "S is these seven lines joined by `\\n` (no trailing newline):",
  "",
  "```",
  "v1",
  "<METHOD>                 e.g. POST",
  "<request target>         path plus ?query exactly as sent, e.g. /api/1000",
  `<${SIGNING_HEADERS.timestamp}>`,
  `<${SIGNING_HEADERS.nonce}>`,
  "<X-QDP-User>             empty string when the header is absent",
  "<sha256(body)>           lowercase hex SHA-256 of the raw body bytes",
  "```",
  "",
  "Anything else — a missing or malformed header, an unknown key, a bad signature, a stale timestamp, a replayed nonce — is `401 UNAUTHENTICATED`. `qdp sign` prints signed headers for a request.",
].join("\n");

/** JSON Schema of the error body restricted to `codes`. */
function errorSchema(codes: ErrorCode[]): Json {
  return {
    type: "object",
    required: ["ok", "error"],
    properties: {
      ok: { const: false },
      error: {
        type: "object",
        required: ["code", "message"],
        properties: {
          code: { type: "string", enum: codes },
          message: { type: "string" },
          details: { description: "optional; for VALIDATION a list of {path, message}" },
        },
      },
    },
  };
}

const RESPONSE_HEADERS = {
  "X-QDP-Worker": { $ref: "#/components/headers/X-QDP-Worker" },
  "X-QDP-Edge": { $ref: "#/components/headers/X-QDP-Edge" },
  "X-Request-Id": { $ref: "#/components/headers/X-Request-Id" },
};

/** One response per status, each listing its codes with what they mean. */
function errorResponses(codes: ErrorCode[]): Json {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const c of codes) {
    const s = ERROR_CATALOGUE[c].status;
    byStatus.set(s, [...(byStatus.get(s) ?? []), c]);
  }
  const out: Json = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(status)] = {
      description: list.map((c) => `\`${c}\`: ${ERROR_CATALOGUE[c].doc}`).join("\n\n"),
      headers: status === 503 ? { ...RESPONSE_HEADERS, "Retry-After": { $ref: "#/components/headers/Retry-After" } } : RESPONSE_HEADERS,
      content: { "application/json": { schema: errorSchema(list) } },
    };
  }
  return out;
}

/** A TypeBox schema as plain JSON Schema (its symbol-keyed metadata dropped). */
function plain(schema: unknown): Json {
  return JSON.parse(JSON.stringify(schema ?? {})) as Json;
}

/** Builds the whole document. */
export function buildOpenApi(registry: Registry, o: OpenApiOptions): Json {
  const signingParams = [
    { name: SIGNING_HEADERS.keyId, description: "UAP key id", schema: { type: "string", pattern: "^[A-Za-z0-9_.-]{1,64}$" } },
    {
      name: SIGNING_HEADERS.timestamp,
      description: `Unix seconds; within ±${SIGNATURE_WINDOW_SEC} s of server time`,
      schema: { type: "string", pattern: "^\\d{1,15}$" },
    },
    { name: SIGNING_HEADERS.nonce, description: "Fresh per call", schema: { type: "string", pattern: NONCE_PATTERN.source } },
    {
      name: SIGNING_HEADERS.signature,
      description: "`v1=` + lowercase hex HMAC-SHA256(secret, S); S is in the `uapSignature` security scheme",
      schema: { type: "string", pattern: "^v1=[0-9a-f]{64}$" },
    },
  ].map((p) => ({ in: "header", required: o.signing, ...p }));
  const userParam = (required: boolean) => ({
    in: "header",
    name: "X-QDP-User",
    required,
    description: "User id set by UAP: 1..128 bytes of UTF-8 without control characters. Every call of a user runs in its owner worker.",
    schema: { type: "string", minLength: 1, maxLength: 128 },
  });
  const requestIdParam = {
    in: "header",
    name: "X-Request-Id",
    required: false,
    description: "Echoed in the response; generated when absent",
    schema: { type: "string", maxLength: 128 },
  };

  const paths: Json = {};
  const tags = new Map<string, string>();
  for (const { def } of registry.list()) {
    // A forwarded range shares one name over many numbers: its functions are tagged with that
    // name, so Swagger UI lists them together under it.
    const fwd = def.forward;
    const tag = fwd ? def.name : def.name.split(".")[0]!;
    tags.set(
      tag,
      fwd ? `Forwarded to ${fwd.backends} backend${fwd.backends === 1 ? "" : "s"} (functions ${fwd.range}, QDP_FORWARD_FILE)` : `Functions ${tag}.*`,
    );
    paths[`/api/${def.funcNo}`] = {
      post: {
        operationId: fwd ? `${def.name}.${def.funcNo}` : def.name,
        summary: fwd
          ? `${def.funcNo} ${def.name} (forwarded: ${fwd.range} to ${fwd.backends} backend${fwd.backends === 1 ? "" : "s"})`
          : `${def.funcNo} ${def.name}${def.stateful ? " (stateful: X-QDP-User required)" : ""}`,
        description: def.description,
        tags: [tag],
        parameters: [userParam(def.stateful), requestIdParam, ...signingParams],
        requestBody: {
          required: true,
          description: "The function's input (`data`), as JSON",
          content: { "application/json": { schema: plain(def.input), ...(def.example === undefined ? {} : { example: def.example }) } },
        },
        responses: {
          "200": {
            description: "The function's result",
            headers: RESPONSE_HEADERS,
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  required: ["ok", "funcNo", "data"],
                  properties: { ok: { const: true }, funcNo: { const: def.funcNo }, data: plain(def.output) },
                },
              },
            },
          },
          ...errorResponses(errorCodesOf(def, o)),
        },
      },
    };
  }
  const first = registry.list()[0]?.def;
  paths["/qdp"] = {
    post: {
      operationId: "envelope",
      summary: "Call any function by number in an envelope",
      description:
        "The same call as `POST /api/<funcNo>`, with the function number and user in the body. `userId` is used when `X-QDP-User` is absent; both present and different is `400 USER_MISMATCH`.",
      tags: ["envelope"],
      parameters: [userParam(false), requestIdParam, ...signingParams],
      requestBody: {
        required: true,
        content: {
          "application/json": {
            schema: {
              type: "object",
              required: ["funcNo"],
              properties: {
                funcNo: {
                  oneOf: [
                    { type: "integer", minimum: 1 },
                    { type: "string", pattern: "^\\d+$" },
                  ],
                },
                userId: { type: "string", minLength: 1, maxLength: 128 },
                data: { description: "The function's input" },
              },
            },
            example: { funcNo: first?.funcNo ?? 1000, userId: "u1", data: first?.example ?? {} },
          },
        },
      },
      responses: {
        "200": {
          description: "The function's result; `data` follows the schema of `POST /api/<funcNo>`",
          headers: RESPONSE_HEADERS,
          content: {
            "application/json": {
              schema: { type: "object", required: ["ok", "funcNo", "data"], properties: { ok: { const: true }, funcNo: { type: "integer" }, data: {} } },
            },
          },
        },
        ...errorResponses(errorCodesOf(null, o)),
      },
    },
  };
  tags.set("envelope", "POST /qdp: any function by number");

  return {
    openapi: "3.1.0",
    info: {
      title: "QDP services",
      version: o.version,
      description:
        "Functions by number: `POST /api/<funcNo>` with the input as the body, or `POST /qdp` with an envelope. Success is `200 {ok: true, funcNo, data}`; " +
        "an error is `{ok: false, error: {code, message, details?}}` with the status of its code; each operation lists the codes it can answer with." +
        (o.signing
          ? " Only UAP-signed calls run (see the `uapSignature` security scheme)."
          : " This server runs without UAP keys (open development mode): calls need no signature."),
    },
    tags: [...tags].map(([name, description]) => ({ name, description })),
    paths,
    components: {
      securitySchemes: {
        uapSignature: { type: "apiKey", in: "header", name: SIGNING_HEADERS.signature, description: SIGNING_DESCRIPTION },
      },
      headers: {
        "X-QDP-Worker": { description: "Index of the worker that ran the handler (the user's owner)", schema: { type: "integer" } },
        "X-QDP-Edge": { description: "Index of the worker that accepted the connection", schema: { type: "integer" } },
        "X-Request-Id": { description: "The request's id: echoed from the request, else generated", schema: { type: "string" } },
        "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "integer" } },
      },
    },
    security: o.signing ? [{ uapSignature: [] }] : [],
  };
}
