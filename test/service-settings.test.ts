/**
 * Service settings (services/settings.ts): declared in the service's own file, read from the
 * environment or the QDP_CONFIG file, converted and validated at start, secrets never shown.
 */
import { describe, expect, test } from "bun:test";
import { Type as t } from "@sinclair/typebox";
import { ConfigError, configSource } from "../src/core/config.ts";
import { describeSettings, loadServiceSettings, setting, settingNames, settingSchemas } from "../src/services/settings.ts";
import { defineService } from "../src/services/types.ts";
import { startCluster } from "./support/cluster.ts";

const fx = defineService({
  funcNo: 9101,
  name: "pricing.fx_rate",
  description: "test service with settings",
  stateful: false,
  input: t.Object({}),
  output: t.Object({ url: t.String(), retries: t.Integer(), live: t.Boolean(), key: t.String(), region: t.Optional(t.String()) }),
  settings: {
    url: setting(settingSchemas.url(), { env: "PRICING_URL", description: "rates service" }),
    retries: setting(t.Integer({ minimum: 0, maximum: 5 }), { env: "PRICING_RETRIES", default: 1, description: "retries" }),
    live: setting(t.Boolean(), { env: "PRICING_LIVE", default: false, description: "use live rates" }),
    key: setting(t.String({ minLength: 8 }), { env: "PRICING_API_KEY", secret: true, description: "API key" }),
    region: setting(t.String(), { env: "PRICING_REGION", optional: true, description: "region" }),
  },
  // The handler sees typed values: this would not compile if `retries` were a string.
  handler: ({ settings }) => ({ url: settings.url, retries: settings.retries + 0, live: settings.live, key: settings.key, region: settings.region }),
});

describe("loading", () => {
  test("values are converted to their declared types; defaults and optional ones fill in", () => {
    const { byService, problems } = loadServiceSettings([fx], {
      PRICING_URL: "https://rates.internal/fx",
      PRICING_RETRIES: "3",
      PRICING_LIVE: "yes",
      PRICING_API_KEY: "s3cret-key",
    });
    expect(problems).toEqual([]);
    expect(byService.get("pricing.fx_rate")).toEqual({ url: "https://rates.internal/fx", retries: 3, live: true, key: "s3cret-key", region: undefined });
    const d = loadServiceSettings([fx], { PRICING_URL: "http://x", PRICING_API_KEY: "12345678" }).byService.get("pricing.fx_rate");
    expect(d).toMatchObject({ retries: 1, live: false });
  });

  test("every bad or missing value is reported at once, naming the variable; a secret's value never appears", () => {
    const { problems } = loadServiceSettings([fx], { PRICING_URL: "ftp://nope", PRICING_RETRIES: "9", PRICING_LIVE: "perhaps", PRICING_API_KEY: "short" });
    expect(problems.length).toBe(4);
    expect(problems[0]).toStartWith('PRICING_URL="ftp://nope"');
    expect(problems[1]).toStartWith('PRICING_RETRIES="9"');
    expect(problems[2]).toStartWith('PRICING_LIVE="perhaps"');
    expect(problems[3]).toStartWith("PRICING_API_KEY=(secret value hidden)");
    expect(problems.join("\n")).not.toContain("short");
    expect(loadServiceSettings([fx], {}).problems).toEqual([
      "PRICING_URL: required by pricing.fx_rate (rates service)",
      "PRICING_API_KEY: required by pricing.fx_rate (API key)",
    ]);
  });

  test("the QDP_CONFIG file may hold declared settings; the environment wins; unknown keys still stop start-up", () => {
    const keys = settingNames([fx]);
    const src = configSource(
      { PRICING_RETRIES: "2" },
      JSON.stringify({ PRICING_URL: "http://file.local", PRICING_RETRIES: 4, PRICING_API_KEY: "from-the-file" }),
      keys,
    );
    const { byService, problems } = loadServiceSettings([fx], src);
    expect(problems).toEqual([]);
    expect(byService.get("pricing.fx_rate")).toMatchObject({ url: "http://file.local", retries: 2, key: "from-the-file" });
    expect(() => configSource({}, JSON.stringify({ PRICING_URLL: "x" }), keys)).toThrow(ConfigError);
  });

  test("qdp doctor's view shows values, defaults, and secrets only as set / not set", () => {
    const rows = describeSettings([fx], { PRICING_URL: "http://a", PRICING_API_KEY: "s3cret-key" });
    expect(rows.map((r) => [r.env, r.value])).toEqual([
      ["PRICING_URL", "http://a"],
      ["PRICING_RETRIES", "1 (default)"],
      ["PRICING_LIVE", "false (default)"],
      ["PRICING_API_KEY", "set (secret)"],
      ["PRICING_REGION", "not set"],
    ]);
  });
});

test("a bad service setting stops start-up with exit code 2 and a message naming the variable", async () => {
  const c = await startCluster({ workers: 1, noWait: true, env: { QDP_UPSTREAM_A: "ftp://wrong" } });
  const code = await c.proc.exited;
  expect(code).toBe(2);
  expect(c.output()).toContain('QDP_UPSTREAM_A="ftp://wrong"');
  expect(c.output()).toContain("demo.quote");
  await c.stop();
});
