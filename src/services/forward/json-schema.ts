/**
 * A forwarded range's input schema is plain JSON Schema (the forward file is JSON, written by
 * people who know the Python service, not TypeBox). To validate it exactly like a local
 * function's input — the same compiled checker, the same `VALIDATION` details — it is turned
 * into the equivalent TypeBox schema here. The supported subset is what describing a JSON call
 * needs; anything else stops start-up with the keyword's path rather than being silently
 * ignored (an ignored `"pattern"` would let bad input through to the backend).
 */
import { Type as t, type TSchema } from "@sinclair/typebox";

/** The schema could not be converted; `path` is a JSON pointer into the entry's `input`. */
export class SchemaError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path || "/"}: ${message}`);
    this.name = "SchemaError";
  }
}

type Json = Record<string, unknown>;

const ANNOTATIONS = new Set(["title", "description", "default", "examples", "$schema", "$comment", "$id", "deprecated"]);
const BY_TYPE: Record<string, readonly string[]> = {
  object: ["properties", "required", "additionalProperties", "minProperties", "maxProperties"],
  array: ["items", "minItems", "maxItems", "uniqueItems"],
  string: ["minLength", "maxLength", "pattern"],
  number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"],
  integer: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"],
  boolean: [],
  null: [],
};
const TYPED_KEYWORDS = new Set(Object.values(BY_TYPE).flat());
const SUPPORTED = [...new Set([...Object.keys(BY_TYPE).map((k) => `type:${k}`), ...TYPED_KEYWORDS, "enum", "const", "anyOf", ...ANNOTATIONS])];

/**
 * Converts a JSON Schema (the supported subset) to a TypeBox schema.
 * @throws SchemaError naming the unsupported or malformed keyword
 */
export function fromJsonSchema(schema: unknown, path = ""): TSchema {
  if (schema === true) return t.Unknown();
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) throw new SchemaError(path, "a schema must be an object (or true)");
  const s = schema as Json;
  const notes = annotations(s);
  for (const k of Object.keys(s)) {
    if (k !== "type" && k !== "enum" && k !== "const" && k !== "anyOf" && !ANNOTATIONS.has(k) && !TYPED_KEYWORDS.has(k)) {
      throw new SchemaError(`${path}/${k}`, `keyword not supported by the forward file (supported: ${SUPPORTED.join(", ")})`);
    }
  }
  if (s.enum !== undefined) {
    only(s, path, ["enum"]);
    if (!Array.isArray(s.enum) || s.enum.length === 0) throw new SchemaError(`${path}/enum`, "must be a non-empty array");
    return t.Union(
      s.enum.map((v, i) => literal(v, `${path}/enum/${i}`)),
      notes,
    );
  }
  if (s.const !== undefined) {
    only(s, path, ["const"]);
    return literal(s.const, `${path}/const`, notes);
  }
  if (s.anyOf !== undefined) {
    only(s, path, ["anyOf"]);
    if (!Array.isArray(s.anyOf) || s.anyOf.length === 0) throw new SchemaError(`${path}/anyOf`, "must be a non-empty array of schemas");
    return t.Union(
      s.anyOf.map((sub, i) => fromJsonSchema(sub, `${path}/anyOf/${i}`)),
      notes,
    );
  }
  if (s.type === undefined) {
    const typed = Object.keys(s).find((k) => TYPED_KEYWORDS.has(k));
    if (typed) throw new SchemaError(`${path}/${typed}`, `needs a "type" beside it`);
    return t.Unknown(notes);
  }
  const types = Array.isArray(s.type) ? s.type : [s.type];
  if (types.length === 0) throw new SchemaError(`${path}/type`, "must name at least one type");
  for (const ty of types) {
    if (typeof ty !== "string" || !(ty in BY_TYPE))
      throw new SchemaError(`${path}/type`, `unknown type ${JSON.stringify(ty)} (one of ${Object.keys(BY_TYPE).join(", ")})`);
  }
  const used = new Set((types as string[]).flatMap((ty) => BY_TYPE[ty]!));
  for (const k of Object.keys(s)) {
    if (TYPED_KEYWORDS.has(k) && !used.has(k)) throw new SchemaError(`${path}/${k}`, `does not apply to type ${types.join("/")}`);
  }
  const variants = (types as string[]).map((ty) => typed(ty, s, path, types.length === 1 ? notes : {}));
  return variants.length === 1 ? variants[0]! : t.Union(variants, notes);
}

function typed(type: string, s: Json, path: string, notes: Json): TSchema {
  switch (type) {
    case "object":
      return object(s, path, notes);
    case "array": {
      const items = s.items === undefined ? t.Unknown() : fromJsonSchema(s.items, `${path}/items`);
      return t.Array(items, { ...notes, ...counts(s, path, ["minItems", "maxItems"]), ...flag(s, path, "uniqueItems") });
    }
    case "string": {
      const opts: Json = { ...notes, ...counts(s, path, ["minLength", "maxLength"]) };
      if (s.pattern !== undefined) {
        if (typeof s.pattern !== "string") throw new SchemaError(`${path}/pattern`, "must be a string");
        try {
          new RegExp(s.pattern, "u");
        } catch (err) {
          throw new SchemaError(`${path}/pattern`, `not a valid regular expression (${(err as Error).message})`);
        }
        opts.pattern = s.pattern;
      }
      return t.String(opts);
    }
    case "number":
    case "integer": {
      const opts: Json = { ...notes };
      for (const k of ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"]) {
        if (s[k] === undefined) continue;
        if (typeof s[k] !== "number" || !Number.isFinite(s[k]) || (k === "multipleOf" && (s[k] as number) <= 0)) {
          throw new SchemaError(`${path}/${k}`, k === "multipleOf" ? "must be a number above 0" : "must be a number");
        }
        opts[k] = s[k];
      }
      return type === "integer" ? t.Integer(opts) : t.Number(opts);
    }
    case "boolean":
      return t.Boolean(notes);
    default:
      return t.Null(notes);
  }
}

function object(s: Json, path: string, notes: Json): TSchema {
  const props = s.properties ?? {};
  if (typeof props !== "object" || props === null || Array.isArray(props)) throw new SchemaError(`${path}/properties`, "must be an object of schemas");
  const required = s.required ?? [];
  if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) throw new SchemaError(`${path}/required`, "must be an array of property names");
  const out: Record<string, TSchema> = {};
  for (const [k, sub] of Object.entries(props as Json)) {
    const p = fromJsonSchema(sub, `${path}/properties/${k.replace(/~/g, "~0").replace(/\//g, "~1")}`);
    out[k] = required.includes(k) ? p : t.Optional(p);
  }
  // A required name without a property schema: any value, but present.
  for (const r of required as string[]) if (!(r in out)) out[r] = t.Unknown();
  const opts: Json = { ...notes, ...counts(s, path, ["minProperties", "maxProperties"]) };
  if (s.additionalProperties !== undefined) {
    opts.additionalProperties =
      typeof s.additionalProperties === "boolean" ? s.additionalProperties : fromJsonSchema(s.additionalProperties, `${path}/additionalProperties`);
  }
  return t.Object(out, opts);
}

function literal(v: unknown, path: string, notes: Json = {}): TSchema {
  if (v === null) return t.Null(notes);
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return t.Literal(v, notes);
  throw new SchemaError(path, "only strings, numbers, booleans and null are supported here");
}

function counts(s: Json, path: string, keys: string[]): Json {
  const out: Json = {};
  for (const k of keys) {
    if (s[k] === undefined) continue;
    if (typeof s[k] !== "number" || !Number.isInteger(s[k]) || (s[k] as number) < 0) throw new SchemaError(`${path}/${k}`, "must be a whole number ≥ 0");
    out[k] = s[k];
  }
  return out;
}

function flag(s: Json, path: string, key: string): Json {
  if (s[key] === undefined) return {};
  if (typeof s[key] !== "boolean") throw new SchemaError(`${path}/${key}`, "must be true or false");
  return { [key]: s[key] };
}

function annotations(s: Json): Json {
  const out: Json = {};
  for (const k of ANNOTATIONS) if (s[k] !== undefined && !k.startsWith("$")) out[k] = s[k];
  return out;
}

/** `enum`, `const` and `anyOf` stand alone (with annotations): mixing them with a type is not supported. */
function only(s: Json, path: string, allowed: string[]): void {
  for (const k of Object.keys(s)) {
    if (!allowed.includes(k) && !ANNOTATIONS.has(k)) throw new SchemaError(`${path}/${k}`, `cannot be combined with ${allowed.join("/")} here`);
  }
}
