/**
 * The forward file's checks (CONTRACT.md §8): what a good file becomes, and every kind of bad
 * file stopping start-up with a message that names the entry — both entries for an overlap,
 * both sides for a number that is also a local service. Pure: no server, no backend.
 */
import { describe, expect, test } from "bun:test";
import { Type as t } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { ConfigError } from "../src/core/config.ts";
import { backendAddress, FORWARD_MAX_RANGE, parseForwardFile } from "../src/core/forward-file.ts";
import { fromJsonSchema } from "../src/services/forward/json-schema.ts";
import { buildRegistry } from "../src/services/index.ts";
import { defineService } from "../src/services/types.ts";

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

const entry = (o: Record<string, unknown> = {}) => ({
  funcNos: "2000-2099",
  name: "legacy.pricing",
  backends: ["http://127.0.0.1:9001", "http://127.0.0.1:9002/"],
  ...o,
});

describe("parseForwardFile", () => {
  test("the contract's example, with defaults", () => {
    const [e] = parseForwardFile(JSON.stringify([entry({ path: "/qdp" })]));
    expect(e).toEqual({
      index: 0,
      from: 2000,
      to: 2099,
      name: "legacy.pricing",
      // A trailing slash is dropped so `path` joins cleanly.
      backends: ["http://127.0.0.1:9001", "http://127.0.0.1:9002"],
      path: "/qdp",
      maxInflight: 256,
      keepAlive: true,
      input: undefined,
      description: undefined,
      example: undefined,
    });
  });

  test("one number, as a number or a string; a base path on the backend is kept", () => {
    const es = parseForwardFile(
      JSON.stringify([entry({ funcNos: 3000, name: "a.b" }), entry({ funcNos: " 3001 ", name: "a.c", backends: ["https://legacy.internal:8443/svc/"] })]),
    );
    expect(es.map((e) => [e.from, e.to])).toEqual([
      [3000, 3000],
      [3001, 3001],
    ]);
    expect(es[1]!.backends).toEqual(["https://legacy.internal:8443/svc"]);
  });

  test("bad JSON and a non-array stop with a sentence", () => {
    expect(problems(() => parseForwardFile("{oops"))[0]).toMatch(/^QDP_FORWARD_FILE: not valid JSON/);
    expect(problems(() => parseForwardFile('{"funcNos": "1-2"}'))[0]).toMatch(/expected a JSON array/);
  });

  test("every problem of every entry is reported at once", () => {
    const p = problems(() =>
      parseForwardFile(
        JSON.stringify([
          entry({ funcNos: "2099-2000" }),
          entry({ name: "Legacy Pricing" }),
          entry({ name: "x.y", backends: [] }),
          entry({ name: "x.z", backends: ["ftp://127.0.0.1:21", "not a url", "http://u:p@127.0.0.1:1", "http://127.0.0.1:1/?a=1", 7] }),
          entry({ name: "x.w", path: "qdp", maxInflight: 0, keepAlive: "no", backend: ["http://127.0.0.1:1"] }),
          entry({ name: "x.v", funcNos: `1-${FORWARD_MAX_RANGE + 1}` }),
          entry({ name: "x.u", backends: ["http://127.0.0.1:9001", "http://127.0.0.1:9001/"] }),
          "nope",
        ]),
      ),
    );
    const all = p.join("\n");
    expect(all).toContain('QDP_FORWARD_FILE entry 0 (legacy.pricing): "funcNos" "2099-2000": the last number is below the first');
    expect(all).toContain('QDP_FORWARD_FILE entry 1: "name" must be dotted lower-case');
    expect(all).toContain('entry 2 (x.y): "backends" must be a non-empty array');
    expect(all).toContain('entry 3 (x.z): backends[0] "ftp://127.0.0.1:21": expected an http://, https:// or uwsgi:// URL');
    expect(all).toContain('entry 3 (x.z): backends[1] "not a url": not a URL');
    expect(all).toContain('entry 3 (x.z): backends[2] "http://u:p@127.0.0.1:1": credentials in the URL are not supported');
    expect(all).toContain("entry 3 (x.z): backends[3]");
    expect(all).toContain("entry 3 (x.z): backends[4] 7: expected a URL string");
    expect(all).toContain('entry 4 (x.w): unknown key "backend"');
    expect(all).toContain('entry 4 (x.w): "path" must start with /');
    expect(all).toContain('entry 4 (x.w): "maxInflight" must be a whole number');
    expect(all).toContain('entry 4 (x.w): "keepAlive" must be true or false');
    expect(all).toContain(`entry 5 (x.v): "funcNos" "1-${FORWARD_MAX_RANGE + 1}" holds ${FORWARD_MAX_RANGE + 1} numbers`);
    expect(all).toContain("entry 6 (x.u): backends[0] and backends[1] are the same URL http://127.0.0.1:9001");
    expect(all).toContain("entry 7: expected an object");
  });

  test("uwsgi backends (beyond the contract): a Unix socket by absolute path or host:port, normalised", () => {
    const [e] = parseForwardFile(
      JSON.stringify([entry({ backends: ["uwsgi:///run/legacy/app-0.sock", "uwsgi://LEGACY.internal:3031", "uwsgi://[::1]:3032/", "http://127.0.0.1:9001"] })]),
    );
    expect(e!.backends).toEqual(["uwsgi:///run/legacy/app-0.sock", "uwsgi://legacy.internal:3031", "uwsgi://[::1]:3032", "http://127.0.0.1:9001"]);
    expect(e!.backends.map(backendAddress)).toEqual([
      { protocol: "uwsgi", unix: "/run/legacy/app-0.sock" },
      { protocol: "uwsgi", hostname: "legacy.internal", port: 3031 },
      { protocol: "uwsgi", hostname: "::1", port: 3032 },
      { protocol: "http", url: "http://127.0.0.1:9001" },
    ]);
  });

  test("a bad uwsgi URL stops start-up with a sentence saying what is wrong", () => {
    const long = `/${"s".repeat(120)}.sock`;
    const bad = [
      "uwsgi:app.sock",
      "uwsgi://app.sock",
      "uwsgi://127.0.0.1",
      "uwsgi://127.0.0.1:0",
      "uwsgi://127.0.0.1:70000",
      "uwsgi://127.0.0.1:3031/app",
      "uwsgi:///run/app.sock?x=1",
      "uwsgi://127.0.0.1:3031#frag",
      "uwsgi://u:p@127.0.0.1:3031",
      "uwsgi:///run/",
      `uwsgi://${long}`,
      "uwsgi:///run/a.sock",
      "uwsgi:///run/a.sock",
    ];
    const p = problems(() => parseForwardFile(JSON.stringify([entry({ backends: bad })]))).join("\n");
    const at = (i: number) => `entry 0 (legacy.pricing): backends[${i}] ${JSON.stringify(bad[i])}: `;
    expect(p).toContain(`${at(0)}a Unix socket needs an absolute path: expected uwsgi://host:port or uwsgi:///absolute/path.sock`);
    expect(p).toContain(`${at(1)}a TCP address needs a port and a Unix socket an absolute path`);
    expect(p).toContain(`${at(2)}a TCP address needs a port`);
    expect(p).toContain(`${at(3)}port 0 is out of range (1-65535)`);
    expect(p).toContain(`${at(4)}port 70000 is out of range (1-65535)`);
    expect(p).toContain(`${at(5)}no path after host:port in a uwsgi URL: the entry's "path" is the request's REQUEST_URI`);
    expect(p).toContain(`${at(6)}no query or fragment in a uwsgi URL`);
    expect(p).toContain(`${at(7)}no query or fragment in a uwsgi URL`);
    expect(p).toContain(`${at(8)}credentials in the URL are not supported`);
    expect(p).toContain(`${at(9)}a Unix socket path cannot end with /`);
    expect(p).toContain(`${at(10)}the socket path has ${long.length} bytes; Unix sockets allow at most 107`);
    expect(p).toContain("backends[11] and backends[12] are the same URL uwsgi:///run/a.sock");
  });

  test("overlapping ranges name both entries and the shared numbers; so do duplicate names", () => {
    const p = problems(() =>
      parseForwardFile(
        JSON.stringify([
          entry(),
          entry({ name: "legacy.fx", funcNos: "2050-2150" }),
          entry({ name: "legacy.one", funcNos: 2099 }),
          entry({ name: "legacy.fx", funcNos: "5000" }),
        ]),
      ),
    );
    expect(p).toContain("QDP_FORWARD_FILE: entries 0 (legacy.pricing, 2000-2099) and 1 (legacy.fx, 2050-2150) overlap at 2050-2099");
    expect(p).toContain("QDP_FORWARD_FILE: entries 0 (legacy.pricing, 2000-2099) and 2 (legacy.one, 2099) overlap at 2099");
    expect(p).toContain("QDP_FORWARD_FILE: entries 1 (legacy.fx, 2050-2150) and 2 (legacy.one, 2099) overlap at 2099");
    expect(p).toContain("QDP_FORWARD_FILE: entries 1 (legacy.fx, 2050-2150) and 3 (legacy.fx, 5000) have the same name legacy.fx");
  });
});

describe("the forward table beside the local services", () => {
  test("a forwarded number that is also a local service stops start-up naming both", () => {
    const p = problems(() => buildRegistry({ demo: true, forwardText: JSON.stringify([entry({ funcNos: "990-1000", name: "legacy.low" })]) }));
    expect(p).toEqual(["QDP_FORWARD_FILE entry 0 (legacy.low, 990-1000) forwards 1000, which is also the local service demo.echo"]);
    const fx = defineService({
      funcNo: 2001,
      name: "pricing.fx_rate",
      description: "",
      stateful: false,
      input: t.Object({}),
      output: t.Object({}),
      handler: () => ({}),
    });
    const q = problems(() => buildRegistry({ demo: false, services: [fx], forwardText: JSON.stringify([entry()]) }));
    expect(q).toEqual(["QDP_FORWARD_FILE entry 0 (legacy.pricing, 2000-2099) forwards 2001, which is also the local service pricing.fx_rate"]);
  });

  test("a forwarded name that is a local service's name is refused", () => {
    const p = problems(() => buildRegistry({ demo: true, forwardText: JSON.stringify([entry({ name: "demo.echo" })]) }));
    expect(p[0]).toMatch(/entry 0 \(demo\.echo, 2000-2099\) has the name of the service at function 1000/);
  });

  test("with QDP_DEMO_SERVICES=0 the demo numbers may be forwarded", () => {
    const r = buildRegistry({ demo: false, forwardText: JSON.stringify([entry({ funcNos: "1000-1002", name: "legacy.demo" })]) });
    expect(r.list().map((s) => [s.def.funcNo, s.def.name, s.def.forward])).toEqual([
      [1000, "legacy.demo", { range: "1000-1002", backends: 2 }],
      [1001, "legacy.demo", { range: "1000-1002", backends: 2 }],
      [1002, "legacy.demo", { range: "1000-1002", backends: 2 }],
    ]);
  });

  test("an input schema the bridge cannot honour stops start-up with the keyword's path", () => {
    const p = problems(() =>
      buildRegistry({ demo: true, forwardText: JSON.stringify([entry({ input: { type: "object", properties: { d: { type: "string", format: "date" } } } })]) }),
    );
    expect(p[0]).toMatch(/^QDP_FORWARD_FILE entry 0 \(legacy\.pricing, 2000-2099\): "input" \/properties\/d\/format: keyword not supported/);
  });
});

describe("JSON Schema → TypeBox", () => {
  const check = (schema: unknown, value: unknown) => {
    return TypeCompiler.Compile(fromJsonSchema(schema)).Check(value);
  };

  test("objects, required and optional properties, additionalProperties", () => {
    const s = {
      type: "object",
      properties: { a: { type: "string", pattern: "^[A-Z]+$" }, b: { type: "integer", minimum: 1, maximum: 9 } },
      required: ["a"],
      additionalProperties: false,
    };
    expect(check(s, { a: "X" })).toBe(true);
    expect(check(s, { a: "X", b: 3 })).toBe(true);
    expect(check(s, { b: 3 })).toBe(false);
    expect(check(s, { a: "x" })).toBe(false);
    expect(check(s, { a: "X", b: 3.5 })).toBe(false);
    expect(check(s, { a: "X", c: 1 })).toBe(false);
    expect(check({ type: "object", additionalProperties: { type: "number" } }, { x: 1, y: "2" })).toBe(false);
  });

  test("arrays, enums, const, anyOf, nullable types and the empty schema", () => {
    expect(check({ type: "array", items: { type: "number" }, minItems: 1, maxItems: 2 }, [1, 2])).toBe(true);
    expect(check({ type: "array", items: { type: "number" }, minItems: 1 }, [])).toBe(false);
    expect(check({ enum: ["buy", "sell", null] }, "sell")).toBe(true);
    expect(check({ enum: ["buy", "sell"] }, "hold")).toBe(false);
    expect(check({ const: 3 }, 3)).toBe(true);
    expect(check({ anyOf: [{ type: "string" }, { type: "number" }] }, true)).toBe(false);
    expect(check({ type: ["string", "null"], maxLength: 2 }, null)).toBe(true);
    expect(check({ type: ["string", "null"], maxLength: 2 }, "abc")).toBe(false);
    expect(check({}, { anything: [1] })).toBe(true);
    expect(check(true, 5)).toBe(true);
  });

  test("unsupported or malformed keywords are errors, not silently ignored", () => {
    expect(() => fromJsonSchema({ type: "object", properties: { a: { $ref: "#/x" } } })).toThrow(/\/properties\/a\/\$ref: keyword not supported/);
    expect(() => fromJsonSchema({ type: "string", minimum: 3 })).toThrow(/\/minimum: does not apply to type string/);
    expect(() => fromJsonSchema({ minLength: 3 })).toThrow(/\/minLength: needs a "type"/);
    expect(() => fromJsonSchema({ type: "date" })).toThrow(/unknown type "date"/);
    expect(() => fromJsonSchema({ type: "string", pattern: "([" })).toThrow(/\/pattern: not a valid regular expression/);
    expect(() => fromJsonSchema({ enum: [{ a: 1 }] })).toThrow(/\/enum\/0: only strings/);
    expect(() => fromJsonSchema({ type: "string", enum: ["a"] })).toThrow(/cannot be combined/);
  });
});
