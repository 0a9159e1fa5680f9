/**
 * Configuration from QDP_* variables and the optional QDP_CONFIG file: the contract's defaults,
 * and a bad value stops start-up with a sentence naming the variable.
 */
import { ALL_SERVICES } from "../src/services/index.ts";
import { settingNames } from "../src/services/settings.ts";
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CONFIG_VARIABLES, ConfigError, loadConfig, redactUrl } from "../src/core/config.ts";
import { closestName, unknownVariables } from "../src/core/config-names.ts";
import { findJsonSyntaxError } from "../src/core/json-position.ts";

/** The problems a configuration is refused with ([] if it is accepted). */
function problems(env: Record<string, string | undefined>, fileText?: string): string[] {
  try {
    loadConfig(env, 4, fileText);
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
}

describe("defaults", () => {
  test("are the contract's", () => {
    const c = loadConfig({}, 6);
    expect(c.host).toBe("127.0.0.1");
    expect(c.port).toBe(8080);
    expect(c.workers).toBe(6);
    expect(c.graceMs).toBe(10_000);
    expect(c.ownerWaitMs).toBe(3_000);
    expect(c.maxBody).toBe(1024 * 1024);
    expect(c.timeoutMs).toBe(30_000);
    expect(c.statsPort).toBe(9191);
    expect(c.uapKeys).toBe("");
    expect(c.insecure).toBe(false);
    expect(c.mongoUrl).toBeUndefined();
    expect(c.demoServices).toBe(true);
    expect(c.logLevel).toBe("info");
    expect(c.workerBunArgs).toEqual([]);
  });

  test("workers follow the CPU count, at least one", () => {
    expect(loadConfig({}, 1).workers).toBe(1);
    expect(loadConfig({}, 32).workers).toBe(32);
    expect(loadConfig({}, 0).workers).toBe(1);
  });

  test("an empty or blank variable means the default", () => {
    const c = loadConfig({ QDP_PORT: "", QDP_WORKERS: "  ", QDP_HOST: "" }, 3);
    expect(c.port).toBe(8080);
    expect(c.workers).toBe(3);
    expect(c.host).toBe("127.0.0.1");
  });
});

describe("values", () => {
  test("numbers and flags are read", () => {
    const c = loadConfig(
      { QDP_HOST: "0.0.0.0", QDP_PORT: "0", QDP_WORKERS: "3", QDP_GRACE_MS: "500", QDP_INSECURE: "1", QDP_DEMO_SERVICES: "false", QDP_LOG_LEVEL: "debug" },
      8,
    );
    expect(c).toMatchObject({ host: "0.0.0.0", port: 0, workers: 3, graceMs: 500, insecure: true, demoServices: false, logLevel: "debug" });
  });

  test("sizes take k and m suffixes", () => {
    expect(loadConfig({ QDP_MAX_BODY: "512k" }, 1).maxBody).toBe(512 * 1024);
    expect(loadConfig({ QDP_MAX_BODY: "1m" }, 1).maxBody).toBe(1024 * 1024);
    expect(loadConfig({ QDP_MAX_BODY: "2M" }, 1).maxBody).toBe(2 * 1024 * 1024);
    expect(loadConfig({ QDP_MAX_BODY: "1000" }, 1).maxBody).toBe(1000);
  });

  test("bad sizes name the variable", () => {
    for (const v of ["0", "lots", "-1", "1.5m", "2g"]) {
      const p = problems({ QDP_MAX_BODY: v });
      expect(p.length).toBe(1);
      expect(p[0]).toContain("QDP_MAX_BODY");
    }
  });

  test("worker Bun args are split on spaces", () => {
    expect(loadConfig({ QDP_WORKER_BUN_ARGS: " --smol  --cpu-prof-md " }, 1).workerBunArgs).toEqual(["--smol", "--cpu-prof-md"]);
  });

  test("freed memory is kept by default; QDP_MALLOC_PURGE_MS gives it back after that many ms", () => {
    expect(loadConfig({}, 1).mallocPurgeMs).toBe(-1);
    expect(loadConfig({ QDP_MALLOC_PURGE_MS: "10" }, 1).mallocPurgeMs).toBe(10);
    // The documented "keep" value, written out, is the default, not an error.
    expect(loadConfig({ QDP_MALLOC_PURGE_MS: "-1" }, 1).mallocPurgeMs).toBe(-1);
  });

  test("the upstream pool allows a connection per call in flight unless QDP_UPSTREAM_MAX_CONNECTIONS says less", () => {
    expect(loadConfig({ QDP_MAX_INFLIGHT: "5000" }, 1).upstreamMaxConnections).toBe(5000);
    expect(loadConfig({ QDP_MAX_INFLIGHT: "5000", QDP_UPSTREAM_MAX_CONNECTIONS: "64" }, 1).upstreamMaxConnections).toBe(64);
  });

  test("a MongoDB URL is accepted with its protocol", () => {
    const c = loadConfig({ QDP_MONGO_URL: "mongodb://db:27017/qdp" }, 1);
    expect(c).toMatchObject({ mongoUrl: "mongodb://db:27017/qdp" });
  });
});

describe("bad values", () => {
  const cases: Array<[string, string]> = [
    ["QDP_WORKERS", "abc"],
    ["QDP_WORKERS", "0"],
    ["QDP_PORT", "70000"],
    ["QDP_PORT", "-1"],
    ["QDP_PORT", "80.5"],
    ["QDP_LOG_LEVEL", "loud"],
    ["QDP_MONGO_URL", "http://x"],
    ["QDP_INSECURE", "maybe"],
    ["QDP_WORKER_BUN_ARGS", "oops"],
    ["QDP_MALLOC_PURGE_MS", "-2"],
    ["QDP_MALLOC_PURGE_MS", "--1"],
    ["QDP_MAX_INFLIGHT", "-5"],
    ["QDP_UPSTREAM_MAX_CONNECTIONS", "0"],
    ["QDP_TIMEOUT_MS", "0"],
    ["QDP_MONGO_W", "most"],
    ["QDP_HOST", "bad host!"],
  ];
  for (const [name, value] of cases) {
    test(`${name}=${value} is refused with a message naming ${name}`, () => {
      const p = problems({ [name]: value });
      expect(p.length).toBe(1);
      expect(p[0]).toContain(name);
      expect(p[0]!.length).toBeGreaterThan(name.length + 10); // says what is expected, not only the name
    });
  }

  test("several problems are reported together", () => {
    let err: unknown;
    try {
      loadConfig({ QDP_WORKERS: "abc", QDP_PORT: "70000", QDP_LOG_LEVEL: "loud", QDP_INSECURE: "maybe" }, 4);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const { problems: p, message } = err as ConfigError;
    expect(p.length).toBe(4);
    for (const name of ["QDP_WORKERS", "QDP_PORT", "QDP_LOG_LEVEL", "QDP_INSECURE"]) {
      expect(p.some((line) => line.includes(name))).toBe(true);
      expect(message).toContain(name);
    }
  });

  test("a MongoDB password never appears in the message", () => {
    const p = problems({ QDP_MONGO_URL: "http://admin:hunter2@db:27017" });
    expect(p.length).toBe(1);
    expect(p[0]).not.toContain("hunter2");
    expect(redactUrl("mongodb://admin:hunter2@db/x")).toBe("mongodb://admin:***@db/x");
  });

  test("direct ports past 65535 are refused", () => {
    const p = problems({ QDP_DIRECT_PORT_BASE: "65530", QDP_WORKERS: "8" });
    expect(p.length).toBe(1);
    expect(p[0]).toContain("QDP_DIRECT_PORT_BASE");
    expect(loadConfig({ QDP_DIRECT_PORT_BASE: "65528", QDP_WORKERS: "8" }, 1).directPortBase).toBe(65528);
  });
});

describe("session store settings", () => {
  test("default to memory, with the contract's prefix", () => {
    const c = loadConfig({}, 2);
    expect(c.sessionStore).toBe("memory");
    expect(c.redisUrl).toBeUndefined();
    expect(c.redisPrefix).toBe("qdp:");
    expect(c.redisTimeoutMs).toBe(1000);
    expect(c.sessionFreshMs).toBe(1000);
  });

  test("redis is read with its URL, prefix, timeout and freshness bound", () => {
    const c = loadConfig(
      {
        QDP_SESSION_STORE: "redis",
        QDP_REDIS_URL: "redis://:pw@10.0.0.5:6380/2",
        QDP_REDIS_PREFIX: "app1:",
        QDP_REDIS_TIMEOUT_MS: "250",
        QDP_SESSION_FRESH_MS: "0",
      },
      2,
    );
    expect([c.sessionStore, c.redisUrl, c.redisPrefix, c.redisTimeoutMs, c.sessionFreshMs]).toEqual(["redis", "redis://:pw@10.0.0.5:6380/2", "app1:", 250, 0]);
  });

  test("redis without a URL, another store, a non-redis URL or a prefix with spaces are refused by name", () => {
    expect(problems({ QDP_SESSION_STORE: "redis" })).toEqual([expect.stringContaining("QDP_REDIS_URL: required with QDP_SESSION_STORE=redis")]);
    expect(problems({ QDP_SESSION_STORE: "mongo" })).toEqual([expect.stringContaining('QDP_SESSION_STORE="mongo": expected memory or redis')]);
    const bad = problems({ QDP_REDIS_URL: "http://u:secret@h/", QDP_REDIS_PREFIX: "a b" });
    expect(bad).toHaveLength(2);
    expect(bad.join()).toContain("QDP_REDIS_URL");
    expect(bad.join()).not.toContain("secret");
    expect(bad.join()).toContain("QDP_REDIS_PREFIX");
  });

  test("QDP_REPLAY_STORE: memory by default, redis with the shared URL, anything else refused", () => {
    expect(loadConfig({}, 2).replayStore).toBe("memory");
    const c = loadConfig({ QDP_REPLAY_STORE: "redis", QDP_REDIS_URL: "redis://10.0.0.5:6379/0" }, 2);
    expect([c.replayStore, c.sessionStore]).toEqual(["redis", "memory"]);
    expect(problems({ QDP_REPLAY_STORE: "redis" })).toEqual([expect.stringContaining("QDP_REDIS_URL: required with QDP_REPLAY_STORE=redis")]);
    expect(problems({ QDP_REPLAY_STORE: "disk" })).toEqual([expect.stringContaining('QDP_REPLAY_STORE="disk": expected memory or redis')]);
  });
});

describe("QDP_CONFIG file", () => {
  test("supplies values as a JSON object of QDP_* keys, numbers and booleans included", () => {
    const c = loadConfig({}, 2, JSON.stringify({ QDP_PORT: 9000, QDP_WORKERS: "5", QDP_INSECURE: true, QDP_MAX_BODY: "512k" }));
    expect(c).toMatchObject({ port: 9000, workers: 5, insecure: true, maxBody: 512 * 1024 });
  });

  test("the environment wins over the file", () => {
    const c = loadConfig({ QDP_PORT: "7000" }, 2, JSON.stringify({ QDP_PORT: 9000, QDP_GRACE_MS: 1234 }));
    expect(c.port).toBe(7000);
    expect(c.graceMs).toBe(1234);
  });

  test("an empty environment variable does not hide the file's value", () => {
    expect(loadConfig({ QDP_PORT: "" }, 2, JSON.stringify({ QDP_PORT: 9000 })).port).toBe(9000);
  });

  test("a bad value in the file names its variable", () => {
    const p = problems({}, JSON.stringify({ QDP_PORT: 70000 }));
    expect(p.length).toBe(1);
    expect(p[0]).toContain("QDP_PORT");
  });

  test("an unknown key is refused", () => {
    for (const key of ["port", "HOST", "QDP_PROT"]) {
      const p = problems({}, JSON.stringify({ QDP_PORT: 9000, [key]: "1" }));
      expect({ key, refused: p.length === 1 && p[0]!.includes("QDP_CONFIG") && p[0]!.includes(key) }).toEqual({ key, refused: true });
    }
  });

  test("invalid JSON and non-objects are refused naming QDP_CONFIG", () => {
    for (const text of ["{ QDP_PORT: 9000 }", "", "[]", '"QDP_PORT=1"', "null", "42"]) {
      const p = problems({}, text);
      expect({ text, refused: p.length === 1 && p[0]!.startsWith("QDP_CONFIG") }).toEqual({ text, refused: true });
    }
  });
});

describe("documentation", () => {
  test("the variable list has no duplicates and covers what the file accepts", () => {
    expect(new Set(CONFIG_VARIABLES).size).toBe(CONFIG_VARIABLES.length);
    for (const v of CONFIG_VARIABLES) expect(v).toMatch(/^QDP_[A-Z0-9_]+$/);
    // Every variable except QDP_CONFIG itself can be given in the file.
    const file = Object.fromEntries(CONFIG_VARIABLES.filter((v) => v !== "QDP_CONFIG").map((v) => [v, ""]));
    expect(problems({}, JSON.stringify(file))).toEqual([]);
  });

  test("every variable, and every shipped service's setting, is documented in README.md", () => {
    const path = join(import.meta.dir, "..", "README.md");
    if (!existsSync(path)) throw new Error(`README.md is missing at ${path}`);
    const text = readFileSync(path, "utf8");
    const missing = [...CONFIG_VARIABLES, ...settingNames(ALL_SERVICES)].filter((v) => !new RegExp(`\\b${v}\\b`).test(text));
    expect(missing).toEqual([]);
  });
});

describe("operator settings", () => {
  test("QDP_ACCESS_LOG is every call by default, 0 for none, or a sampling fraction", () => {
    expect(loadConfig({}, 1).accessLog).toBe(1);
    expect(loadConfig({ QDP_ACCESS_LOG: "0" }, 1).accessLog).toBe(0);
    expect(loadConfig({ QDP_ACCESS_LOG: "off" }, 1).accessLog).toBe(0);
    expect(loadConfig({ QDP_ACCESS_LOG: "0.05" }, 1).accessLog).toBe(0.05);
    for (const v of ["2", "-0.1", "half", "1.5"]) expect(problems({ QDP_ACCESS_LOG: v })).toEqual([expect.stringContaining("QDP_ACCESS_LOG")]);
  });

  test("a non-loopback stats host needs a token, and the token is never shown", () => {
    expect(loadConfig({}, 1)).toMatchObject({ statsHost: "127.0.0.1", statsToken: undefined });
    expect(problems({ QDP_STATS_HOST: "0.0.0.0" })).toEqual([expect.stringContaining("needs QDP_STATS_TOKEN")]);
    expect(loadConfig({ QDP_STATS_HOST: "0.0.0.0", QDP_STATS_TOKEN: "a-long-enough-token-123" }, 1).statsHost).toBe("0.0.0.0");
    const short = problems({ QDP_STATS_TOKEN: "short secret" });
    expect(short).toEqual([expect.stringContaining("QDP_STATS_TOKEN")]);
    expect(short.join()).not.toContain("short secret");
  });

  test("TLS needs both the certificate and the key", () => {
    expect(problems({ QDP_TLS_CERT: "/etc/qdp/cert.pem" })).toEqual([expect.stringContaining("QDP_TLS_KEY: required with QDP_TLS_CERT")]);
    expect(problems({ QDP_TLS_KEY: "/etc/qdp/key.pem" })).toEqual([expect.stringContaining("QDP_TLS_CERT: required with QDP_TLS_KEY")]);
    expect(loadConfig({ QDP_TLS_CERT: "c.pem", QDP_TLS_KEY: "k.pem" }, 1)).toMatchObject({ tlsCert: "c.pem", tlsKey: "k.pem" });
  });
});

describe("names that are not ours", () => {
  test("unknown QDP_* variables are listed with the closest known one; internal and test variables are not", () => {
    const env = {
      QDP_PROT: "1",
      QDP_WORKRS: "2",
      QDP_PORT: "8080",
      QDP_COMPLETELY_DIFFERENT_THING: "x",
      QDP_WORKER_INDEX: "0",
      QDP_TEST_MONGO_URL: "m",
      PATH: "/bin",
    };
    expect(unknownVariables(env, CONFIG_VARIABLES)).toEqual([
      { name: "QDP_COMPLETELY_DIFFERENT_THING", closest: null },
      { name: "QDP_PROT", closest: "QDP_PORT" },
      { name: "QDP_WORKRS", closest: "QDP_WORKERS" },
    ]);
    expect(closestName("QDP_LOGLEVEL", CONFIG_VARIABLES)).toBe("QDP_LOG_LEVEL");
    expect(closestName("QDP_TLS_CRT", CONFIG_VARIABLES)).toBe("QDP_TLS_CERT");
  });

  test("every unknown key of the config file is reported at once, with the file name", () => {
    const p = problems({}, JSON.stringify({ QDP_PROT: 1, QDP_WORKERS: 2, QDP_GRACEMS: 3, nonsense: 4 }));
    expect(p).toHaveLength(3);
    expect(p[0]).toContain('unknown key "QDP_PROT" (did you mean QDP_PORT?)');
    expect(p[1]).toContain('unknown key "QDP_GRACEMS" (did you mean QDP_GRACE_MS?)');
    expect(p[2]).toContain('unknown key "nonsense"');
    let err: ConfigError | null = null;
    try {
      loadConfig({}, 1, JSON.stringify({ QDP_PROT: 1 }), [], "/etc/qdp/qdp.json");
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err!.problems[0]).toStartWith("QDP_CONFIG (/etc/qdp/qdp.json): unknown key");
  });

  test("a JSON syntax error names its line and column", () => {
    const at = (text: string) => problems({}, text)[0]!;
    expect(at('{\n  "QDP_PORT": 9000,\n}')).toContain("line 3, column 1");
    expect(at('{ "QDP_PORT": 9000 "QDP_WORKERS": 2 }')).toContain("line 1, column 20");
    expect(at("{ QDP_PORT: 9000 }")).toContain("line 1, column 3: expected a key in double quotes");
    expect(findJsonSyntaxError('{"a":[1,2,{"b":null}],"c":"\\u00e9"}')).toBeNull();
    expect(findJsonSyntaxError("")).toMatchObject({ line: 1, column: 1 });
    expect(findJsonSyntaxError('{"a":1} x')).toMatchObject({ line: 1, column: 9 });
  });
});
