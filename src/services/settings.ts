/**
 * Service settings: what a service declares in its own file (`settings: { key: setting(...) }`)
 * and reads as `ctx.settings.key`. Values come from the environment or the `QDP_CONFIG` file
 * (the environment wins), are converted to the declared schema's type and validated when the
 * server starts — a bad or missing value stops start-up with a message naming the variable,
 * like every `QDP_*` value. Workers read them when they start, so a rolling reload (SIGHUP)
 * picks up a changed config file. Secret values are never printed: `qdp doctor` says "set".
 */
import { Type as t, type Static, type TSchema } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";

/** One setting a service declares. */
export interface SettingSpec<T extends TSchema = TSchema> {
  /** Variable name in the environment / config file: upper-case letters, digits, `_`. */
  readonly env: string;
  /** Schema of the value; numbers, integers and booleans are converted from the text. */
  readonly schema: T;
  /** Used when the variable is absent. */
  readonly default?: Static<T>;
  /** Absent and no default: `undefined` instead of a start-up error. */
  readonly optional?: boolean;
  /** Never shown in logs, `qdp doctor` or errors. */
  readonly secret?: boolean;
  /** One line for the docs and `qdp doctor`. */
  readonly description: string;
}

export type SettingSpecs = Readonly<Record<string, SettingSpec>>;

/** The values a handler sees for a declaration. */
export type SettingsOf<S extends SettingSpecs> = {
  readonly [K in keyof S]: S[K] extends { optional: true } ? Static<S[K]["schema"]> | undefined : Static<S[K]["schema"]>;
};

/** Declares a setting with its type kept for `ctx.settings`. */
export function setting<T extends TSchema, const O extends Omit<SettingSpec<T>, "schema">>(schema: T, spec: O): O & { schema: T } {
  return { ...spec, schema };
}

/** Schemas for the common kinds. */
export const settingSchemas = {
  url: () => t.String({ pattern: "^https?://[^\\s]+$", description: "an http:// or https:// URL" }),
};

interface Declarer {
  readonly name: string;
  readonly settings?: SettingSpecs;
}

/** Every variable the services declare (the config file accepts these keys too). */
export function settingNames(services: readonly Declarer[]): string[] {
  const names = new Set<string>();
  for (const s of services) for (const spec of Object.values(s.settings ?? {})) names.add(spec.env);
  return [...names];
}

export interface LoadedSettings {
  /** Service name → its settings' values. */
  byService: Map<string, Readonly<Record<string, unknown>>>;
  /** One sentence per bad or missing value. */
  problems: string[];
}

/** Reads and validates every declared setting from `source` (environment merged with the file). */
export function loadServiceSettings(services: readonly Declarer[], source: Readonly<Record<string, string | undefined>>): LoadedSettings {
  const byService = new Map<string, Readonly<Record<string, unknown>>>();
  const problems: string[] = [];
  for (const s of services) {
    const values: Record<string, unknown> = {};
    for (const [key, spec] of Object.entries(s.settings ?? {})) {
      if (!/^[A-Z][A-Z0-9_]*$/.test(spec.env)) {
        problems.push(`${s.name}: setting ${key} has variable name ${JSON.stringify(spec.env)}; use upper-case letters, digits and _`);
        continue;
      }
      const raw = source[spec.env]?.trim();
      if (raw === undefined || raw === "") {
        if (spec.default !== undefined) values[key] = spec.default;
        else if (spec.optional) values[key] = undefined;
        else problems.push(`${spec.env}: required by ${s.name} (${spec.description})`);
        continue;
      }
      const value = convert(spec.schema, raw);
      const check = TypeCompiler.Compile(spec.schema);
      if (value === INVALID || !check.Check(value)) {
        const why = value === INVALID ? "cannot be read as the declared type" : (check.Errors(value).First()?.message ?? "invalid");
        const shown = spec.secret ? "(secret value hidden)" : JSON.stringify(raw);
        problems.push(`${spec.env}=${shown}: ${why} (${s.name}: ${spec.description}${spec.schema.description ? `; expected ${spec.schema.description}` : ""})`);
        continue;
      }
      values[key] = value;
    }
    byService.set(s.name, Object.freeze(values));
  }
  return { byService, problems };
}

const INVALID = Symbol("invalid");

/** Text → the schema's type: numbers and booleans parsed, objects and arrays as JSON. */
function convert(schema: TSchema, raw: string): unknown {
  switch (schema.type) {
    case "number":
    case "integer": {
      const n = Number(raw);
      return raw !== "" && Number.isFinite(n) ? n : INVALID;
    }
    case "boolean":
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      return INVALID;
    case "object":
    case "array":
      try {
        return JSON.parse(raw);
      } catch {
        return INVALID;
      }
    default:
      return raw;
  }
}

/** The declared settings as `qdp doctor` and the docs show them; secrets only as set / not set. */
export function describeSettings(
  services: readonly Declarer[],
  source: Readonly<Record<string, string | undefined>>,
): Array<{ service: string; env: string; value: string; description: string }> {
  const rows: Array<{ service: string; env: string; value: string; description: string }> = [];
  for (const s of services) {
    for (const spec of Object.values(s.settings ?? {})) {
      const raw = source[spec.env]?.trim();
      const has = raw !== undefined && raw !== "";
      const value = spec.secret
        ? has
          ? "set (secret)"
          : "not set"
        : has
          ? raw
          : spec.default !== undefined
            ? `${JSON.stringify(spec.default)} (default)`
            : "not set";
      rows.push({ service: s.name, env: spec.env, value, description: spec.description });
    }
  }
  return rows;
}
