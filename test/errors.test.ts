/**
 * The two catalogues clients depend on: error codes (CONTRACT.md §3) and function numbers.
 * Both must be unique, documented and in step with the contract.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Type as t } from "@sinclair/typebox";
import { DEFAULT_RETRY_AFTER_S, ERROR_CATALOGUE, ERROR_CODES, QdpError, errorBody, isErrorCode, toQdpError, type ErrorCode } from "../src/core/errors.ts";
import { DEMO_SERVICES, SERVICES, buildRegistry } from "../src/services/index.ts";
import { Registry } from "../src/services/registry.ts";
import { defineService, type AnyService } from "../src/services/types.ts";

const ROOT = join(import.meta.dir, "..");

/** CONTRACT.md §3's codes, as written on the day these tests were written. */
const CONTRACT_CODES_FALLBACK: Record<string, number> = {
  BAD_JSON: 400,
  VALIDATION: 400,
  BAD_USER: 400,
  USER_MISMATCH: 400,
  USER_REQUIRED: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  UNKNOWN_FUNCTION: 404,
  PAYLOAD_TOO_LARGE: 413,
  UPSTREAM_ERROR: 502,
  OVERLOADED: 503,
  OWNER_UNAVAILABLE: 503,
  SESSION_UNAVAILABLE: 503,
  SESSION_CONFLICT: 503,
  TIMEOUT: 504,
  INTERNAL: 500,
};

/**
 * The contract's codes: parsed from the shared CONTRACT.md (`../shared/CONTRACT.md` next to the
 * repository) when it is there, so a contract change shows up here; else the list above.
 */
function contractCodes(): { codes: Record<string, number>; source: string } {
  const path = join(ROOT, "..", "shared", "CONTRACT.md");
  if (!existsSync(path)) return { codes: CONTRACT_CODES_FALLBACK, source: "hard-coded list" };
  const text = readFileSync(path, "utf8");
  const start = text.search(/^## 3\./m);
  const end = text.search(/^## 4\./m);
  expect(start).toBeGreaterThanOrEqual(0);
  const section = text.slice(start, end > start ? end : undefined);
  const codes: Record<string, number> = {};
  for (const m of section.matchAll(/`([A-Z][A-Z_]+)`\s+(\d{3})\b/g)) codes[m[1]!] = Number(m[2]);
  return { codes, source: path };
}

function readme(): string {
  const path = join(ROOT, "README.md");
  if (!existsSync(path)) throw new Error(`README.md is missing at ${path}`);
  return readFileSync(path, "utf8");
}

describe("error catalogue", () => {
  test("codes are unique upper-case identifiers", () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const code of ERROR_CODES) expect(code).toMatch(/^[A-Z][A-Z_]*[A-Z]$/);
  });

  test("the contract's parsed list is the one we expect to be reading", () => {
    const { codes } = contractCodes();
    // A parse that silently found nothing would make the next tests pass vacuously.
    expect(Object.keys(codes).length).toBeGreaterThanOrEqual(Object.keys(CONTRACT_CODES_FALLBACK).length);
  });

  test("every code of the contract is in the catalogue with the contract's status", () => {
    const { codes } = contractCodes();
    for (const [code, status] of Object.entries(codes)) {
      expect({ code, known: isErrorCode(code) }).toEqual({ code, known: true });
      const actual: number = ERROR_CATALOGUE[code as ErrorCode].status;
      expect({ code, status: actual }).toEqual({ code, status });
    }
  });

  test("the catalogue has no code the contract lacks", () => {
    const { codes } = contractCodes();
    const extra = ERROR_CODES.filter((c) => !Object.hasOwn(codes, c));
    expect(extra).toEqual([]);
  });

  test("every code has a non-empty doc", () => {
    for (const code of ERROR_CODES) {
      const doc = ERROR_CATALOGUE[code].doc;
      expect({ code, doc: doc.trim().length > 10 }).toEqual({ code, doc: true });
    }
  });

  test("every code is documented in README.md", () => {
    const text = readme();
    const missing = ERROR_CODES.filter((c) => !new RegExp(`\\b${c}\\b`).test(text));
    expect(missing).toEqual([]);
  });

  test("statuses are 4xx or 5xx", () => {
    for (const code of ERROR_CODES) {
      const s = ERROR_CATALOGUE[code].status;
      expect(s >= 400 && s <= 599).toBe(true);
    }
  });

  test("isErrorCode accepts catalogue codes only", () => {
    expect(isErrorCode("TIMEOUT")).toBe(true);
    expect(isErrorCode("timeout")).toBe(false);
    expect(isErrorCode("toString")).toBe(false);
    expect(isErrorCode("__proto__")).toBe(false);
    expect(isErrorCode(504)).toBe(false);
  });
});

describe("error body", () => {
  test("without details it is exactly {ok:false, error:{code, message}}", () => {
    const body = errorBody("BAD_JSON", "body is not JSON");
    expect(body).toEqual({ ok: false, error: { code: "BAD_JSON", message: "body is not JSON" } });
    expect(Object.keys(body.error)).toEqual(["code", "message"]);
    expect(JSON.parse(JSON.stringify(body))).toEqual(body);
  });

  test("details follow code and message when given", () => {
    const details = [{ path: "/symbol", message: "Expected string" }];
    const body = errorBody("VALIDATION", "input is invalid", details);
    expect(body).toEqual({ ok: false, error: { code: "VALIDATION", message: "input is invalid", details } });
    expect(Object.keys(body.error)).toEqual(["code", "message", "details"]);
  });
});

describe("QdpError", () => {
  test("carries its code's status", () => {
    for (const code of ERROR_CODES) expect(new QdpError(code, "x").status).toBe(ERROR_CATALOGUE[code].status);
  });

  test("503 codes get Retry-After 1 by default, other codes none", () => {
    expect(DEFAULT_RETRY_AFTER_S).toBe(1);
    const unavailable = ERROR_CODES.filter((c) => ERROR_CATALOGUE[c].status === 503);
    expect(unavailable.sort()).toEqual(["OVERLOADED", "OWNER_UNAVAILABLE", "SESSION_CONFLICT", "SESSION_UNAVAILABLE"]);
    for (const code of ERROR_CODES) {
      const expected = ERROR_CATALOGUE[code].status === 503 ? 1 : undefined;
      expect({ code, retryAfter: new QdpError(code, "x").retryAfter }).toEqual({ code, retryAfter: expected });
    }
  });

  test("an explicit retryAfter wins", () => {
    expect(new QdpError("OWNER_UNAVAILABLE", "down", { retryAfter: 5 }).retryAfter).toBe(5);
  });

  test("is an Error with its message, name and cause", () => {
    const cause = new Error("root");
    const e = new QdpError("UPSTREAM_ERROR", "upstream A failed", { cause, details: { upstream: "a" } });
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toBe("upstream A failed");
    expect(e.name).toBe("QdpError");
    expect(e.cause).toBe(cause);
    expect(e.details).toEqual({ upstream: "a" });
  });
});

describe("toQdpError", () => {
  test("passes a QdpError through unchanged", () => {
    const e = new QdpError("FORBIDDEN", "not from here");
    expect(toQdpError(e)).toBe(e);
  });

  test("hides an unknown error's message behind INTERNAL", () => {
    const secret = "connect ECONNREFUSED mongodb://admin:hunter2@10.0.0.5";
    for (const thrown of [new Error(secret), new TypeError(secret), secret, { message: secret }, null, undefined]) {
      const e = toQdpError(thrown);
      expect(e.code).toBe("INTERNAL");
      expect(e.status).toBe(500);
      expect(e.message).not.toContain("hunter2");
      expect(e.message.length).toBeGreaterThan(0);
      const body = JSON.stringify(errorBody(e.code, e.message));
      expect(body).not.toContain("hunter2");
      expect(body).not.toContain("ECONNREFUSED");
    }
  });

  test("keeps the unknown error as the cause, for the log", () => {
    const original = new Error("boom");
    expect(toQdpError(original).cause).toBe(original);
  });
});

describe("function-number catalogue", () => {
  const all: AnyService[] = [...DEMO_SERVICES, ...SERVICES];
  const registry = buildRegistry({ demo: true });

  test("the registry holds every shipped service", () => {
    expect(registry.list().length).toBe(all.length);
    expect(registry.list().map((s) => s.def.funcNo)).toEqual(all.map((s) => s.funcNo).sort((a, b) => a - b));
  });

  test("the reference services are 1000 demo.echo, 1001 demo.counter, 1002 demo.quote", () => {
    const listed = registry.list().map((s) => [s.def.funcNo, s.def.name, s.def.stateful]);
    expect(listed).toEqual(
      expect.arrayContaining([
        [1000, "demo.echo", false],
        [1001, "demo.counter", true],
        [1002, "demo.quote", expect.any(Boolean)],
      ]),
    );
  });

  test("numbers are unique positive integers", () => {
    const numbers = all.map((s) => s.funcNo);
    expect(new Set(numbers).size).toBe(numbers.length);
    for (const n of numbers) expect(Number.isSafeInteger(n) && n > 0).toBe(true);
  });

  test("names are unique and dotted lower-case", () => {
    const names = all.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/);
  });

  test("each service has a description", () => {
    for (const s of all) expect({ name: s.name, described: s.description.trim().length > 0 }).toEqual({ name: s.name, described: true });
  });

  test("without demo services the registry holds only the project's own", () => {
    expect(buildRegistry({ demo: false }).list().length).toBe(SERVICES.length);
  });

  const svc = (funcNo: number, name: string) =>
    defineService({
      funcNo,
      name,
      description: `test service ${name}`,
      stateful: false,
      input: t.Unknown(),
      output: t.Unknown(),
      handler: ({ input }) => input,
    });

  test("a duplicate number is refused with a message naming both services", () => {
    expect(() => new Registry([svc(2000, "a.first"), svc(2000, "b.second")])).toThrow(/2000.*a\.first.*b\.second/);
  });

  test("a duplicate name is refused with a message naming both services", () => {
    let message = "";
    try {
      new Registry([svc(2000, "a.same"), svc(2001, "a.same")]);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain("a.same");
    expect(message).toContain("2000");
    expect(message).toContain("2001");
  });

  test("a demo number cannot be taken again", () => {
    const r = buildRegistry({ demo: true });
    expect(() => r.add(svc(1000, "mine.echo"))).toThrow(/1000.*demo\.echo.*mine\.echo/);
  });

  test("bad numbers and undotted names are refused", () => {
    expect(() => new Registry([svc(0, "a.zero")])).toThrow(/positive integer/);
    expect(() => new Registry([svc(1.5, "a.frac")])).toThrow(/positive integer/);
    expect(() => new Registry([svc(3000, "nodot")])).toThrow(/dotted/);
    expect(() => new Registry([svc(3000, "Upper.Case")])).toThrow(/dotted/);
  });
});
