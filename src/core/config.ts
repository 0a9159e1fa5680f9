/**
 * The configuration: one typed place, every option documented (CONTRACT.md §1–§5). Values come
 * from `QDP_*` environment variables, optionally from a JSON file named by `QDP_CONFIG` (keys are
 * the same variable names; the environment wins). Validation names the variable and the accepted
 * form, so a bad value stops start-up with a sentence instead of a stack trace.
 * Pure TypeScript: the caller passes the environment, the CPU count and the file's text.
 */
import { DEFAULT_STUCK_MS } from "./watchdog.ts";
import { closestName } from "./config-names.ts";
import { findJsonSyntaxError } from "./json-position.ts";

export interface Config {
  /** `QDP_HOST`: public bind address. Default `127.0.0.1`. */
  host: string;
  /** `QDP_PORT`: public port shared by all workers (SO_REUSEPORT). Default 8080; 0 = pick one (tests). */
  port: number;
  /** `QDP_WORKERS`: worker processes. Default: number of CPUs. */
  workers: number;
  /** `QDP_GRACE_MS`: how long a stop or a reload lets in-flight work finish. Default 10000. */
  graceMs: number;
  /** `QDP_OWNER_WAIT_MS`: how long a call waits for its owner worker to be up. Default 3000. */
  ownerWaitMs: number;
  /** `QDP_MAX_BODY`: largest request body in bytes (suffixes k, m accepted: `1m`). Default 1 MiB. */
  maxBody: number;
  /** `QDP_TIMEOUT_MS`: deadline of one call; past it 504 and the handler's signal aborts. Default 30000. */
  timeoutMs: number;
  /**
   * `QDP_BODY_TIMEOUT_MS`: a request (head and body) must arrive whole within this long of its
   * first byte, else `400 VALIDATION` and the connection is closed. Reading is not a call in
   * flight, so slow senders cannot use up `QDP_MAX_INFLIGHT`. Default 10000.
   */
  bodyTimeoutMs: number;
  /** `QDP_KEEPALIVE_MS`: an idle keep-alive connection is closed after this long. Default 75000. */
  keepAliveMs: number;
  /**
   * `QDP_DRAIN_IDLE_MS`: while a worker drains (stop, reload), a keep-alive connection idle this
   * long is closed; every other connection is closed after a response saying `Connection: close`.
   * Default 1000.
   */
  drainIdleMs: number;
  /** `QDP_MAX_INFLIGHT`: calls in flight per worker before 503 OVERLOADED. Default 20000. */
  maxInflight: number;
  /** `QDP_BACKLOG`: listen backlog of the public socket (the kernel caps it at net.core.somaxconn). Default 4096. */
  backlog: number;
  /** `QDP_STATS_PORT`: loopback port of the supervisor's /stats and /metrics. Default 9191; 0 = pick one. */
  statsPort: number;
  /**
   * `QDP_RUNTIME_DIR`: directory of the hop sockets. Default `$TMPDIR/qdp-<port>`. Must be owned by the
   * server's user with mode 0700 if it exists (start-up refuses otherwise); made 0700 if not.
   */
  runtimeDir: string;
  /**
   * `QDP_DATA_DIR`: directory of the embedded record store and of the replay marks
   * (`replay/w<index>`, core/replay-fence.ts) that keep replays refused across crashes and
   * restarts — keep the same directory across restarts. Default `./data`.
   */
  dataDir: string;
  /** `QDP_UAP_KEYS`: `keyId:secret,keyId2:secret2`. Empty = open development mode (loopback only). */
  uapKeys: string;
  /** `QDP_UAP_KEYS_FILE`: file of `keyId:secret` lines, re-read on SIGHUP. */
  uapKeysFile: string | undefined;
  /** `QDP_ALLOW_CIDRS`: comma-separated CIDRs allowed to call; others get 403. Empty = any. */
  allowCidrs: string;
  /** `QDP_INSECURE`: `1` allows a non-loopback `QDP_HOST` without keys. Default off. */
  insecure: boolean;
  /** `QDP_UPSTREAM_TIMEOUT_MS`: per upstream call cap (the call's deadline still applies). Default 10000. */
  upstreamTimeoutMs: number;
  /**
   * `QDP_UPSTREAM_MAX_CONNECTIONS`: open connections per upstream origin per worker; past it
   * upstream requests wait for one. Default: `QDP_MAX_INFLIGHT`, so every call in flight can
   * hold one (a slow upstream at C = 10,000 needs thousands); set it lower to shield an upstream.
   */
  upstreamMaxConnections: number;
  /** `QDP_MONGO_URL`: MongoDB URL for records; unset = embedded SQLite store. */
  mongoUrl: string | undefined;
  /** `QDP_MONGO_POOL`: MongoDB connection pool size per worker. Default 20. */
  mongoPool: number;
  /** `QDP_MONGO_W`: write concern (`majority`, `1`, `0`, ...). Default `majority`. */
  mongoWriteConcern: string;
  /** `QDP_SESSION_MAX`: user sessions kept per worker; least recently used evicted. Default 100000. */
  sessionMax: number;
  /**
   * `QDP_SESSION_TTL_S`: idle seconds before a session leaves the owner's memory; with
   * `QDP_SESSION_STORE=redis` also how long a stored session lives after its last change. Default 1800.
   */
  sessionTtlS: number;
  /**
   * `QDP_SESSION_STORE`: `memory` (sessions live only in the owner's memory) or `redis` (an
   * acknowledged change is stored in Redis before the reply; CONTRACT.md §7). Default `memory`.
   */
  sessionStore: "memory" | "redis";
  /**
   * `QDP_REPLAY_STORE`: `memory` (accepted nonces live in the owner's memory, behind the replay
   * fence: enough for one host) or `redis` (each accepted nonce is also claimed in Redis with
   * `SET NX EX`, so a replay to any host sharing that Redis is refused; Redis unreachable →
   * signed calls 503 OVERLOADED, never accepted unchecked). CONTRACT.md §7. Default `memory`.
   */
  replayStore: "memory" | "redis";
  /** `QDP_REDIS_URL`: `redis://[user:password@]host:port[/db]`; required with `QDP_SESSION_STORE=redis` or `QDP_REPLAY_STORE=redis`. */
  redisUrl: string | undefined;
  /** `QDP_REDIS_PREFIX`: prefix of every key qdp-server writes in Redis. Default `qdp:`. */
  redisPrefix: string;
  /**
   * `QDP_REDIS_TIMEOUT_MS`: longest wait for one Redis command (and a connection attempt); past
   * it the call answers 503 SESSION_UNAVAILABLE (a session operation) or 503 OVERLOADED (a nonce
   * claim of QDP_REPLAY_STORE=redis). Default 1000.
   */
  redisTimeoutMs: number;
  /**
   * `QDP_SESSION_FRESH_MS`: with `redis`, a session copy whose stored version was not confirmed
   * within this many ms is re-checked before a call uses it (the read rule). 0 = check before
   * every call. Default 1000.
   */
  sessionFreshMs: number;
  /** `QDP_DIRECT_PORT_BASE`: if set, worker i also listens on base+i (zero-hop front routing). */
  directPortBase: number | undefined;
  /** `QDP_HOP_MAX_PENDING`: calls in flight to one peer before 503 OVERLOADED. Default 20000. */
  hopMaxPending: number;
  /** `QDP_NONCE_MAX`: remembered nonces per worker (replay protection); past it 503. Default 2000000. */
  nonceMax: number;
  /** `QDP_DEMO_SERVICES`: `0` disables the reference services 1000–1002. Default on. */
  demoServices: boolean;
  /** `QDP_LOG_LEVEL`: `debug`, `info`, `warn`, `error`. Default `info`. */
  logLevel: LogLevel;
  /** `QDP_TUNE_SYSCTL`: `1` lets the supervisor turn on net.ipv4.tcp_migrate_req when it may. Default 1. */
  tuneSysctl: boolean;
  /**
   * `QDP_FORWARD_FILE`: JSON file of function-number ranges forwarded to existing HTTP services
   * (the migration bridge, CONTRACT.md §8; format in `core/forward-file.ts`). Checked at start
   * (a bad file or a conflict stops start-up) and re-read on SIGHUP; unset = nothing forwarded.
   */
  forwardFile: string | undefined;
  /** `QDP_WORKER_BUN_ARGS`: extra Bun runtime flags for workers, space-separated (e.g. `--smol`, `--cpu-prof-md`). */
  workerBunArgs: string[];
  /**
   * `QDP_MALLOC_PURGE_MS`: how long memory freed inside a worker stays with it before Bun's
   * allocator (mimalloc) returns it to the OS; `-1` = kept for reuse (default). Passed to the
   * workers as `MIMALLOC_PURGE_DELAY`. Measured (bench/profile.ts, echo at -c100): returning it
   * (mimalloc's own default, 10 ms; 100 and 1000 ms alike) costs ~25–35% more worker CPU per call,
   * because every burst of garbage is unmapped and faulted back in; keeping it holds RSS at its
   * peak (275 vs 232 MiB loaded, 151 MiB idle for the echo).
   */
  mallocPurgeMs: number;
  /**
   * `QDP_GC_RAM_MB`: the memory (MiB) each worker's garbage collector paces itself against,
   * passed as Bun's `BUN_JSC_forceRAMSize`; `"auto"` (default) = the host's RAM divided by
   * QDP_WORKERS, at most 4096 (resolved by the supervisor); `0` = JavaScriptCore's own reading
   * of the host's RAM. Why: JSC lets garbage pile up in proportion to the RAM it sees, and on a
   * 24 GiB host it let a worker under 5,000 slow calls carry ~2× its live heap in garbage.
   * Measured (bench/b-stages.ts, C = 10,000, both workers): peak RSS 778–819 MiB with JSC's
   * reading, 492–533 MiB with any value from 512 MiB to 12 GiB (16 GiB and above: as before),
   * throughput and CPU per call within the run-to-run noise.
   */
  gcRamMb: number | "auto";
  /**
   * `QDP_MAX_REQUESTS`: a worker that has handled this many calls (answered at its edge or run
   * for another edge) is replaced through the rolling-reload path — sessions and nonces handed
   * over, one worker at a time, never during a reload. 0 = never. Default 0.
   */
  maxRequests: number;
  /** `QDP_MAX_REQUESTS_JITTER`: each process adds a random 0..jitter to `QDP_MAX_REQUESTS`, so workers are not due together. Default 0. */
  maxRequestsJitter: number;
  /**
   * `QDP_MAX_RSS`: a worker whose resident memory exceeds this (bytes, or `512m`, `2g`), checked
   * with every heartbeat, is replaced like `QDP_MAX_REQUESTS`. 0 = never. Default 0.
   */
  maxRssBytes: number;
  /**
   * `QDP_STUCK_MS`: a worker whose heartbeat has not arrived for this long (its event loop is
   * blocked) is killed (SIGTERM, SIGKILL 1 s later) and respawned at its index. 0 = no watchdog
   * (e.g. while a debugger holds a worker). Default 10000; at least 500 when set.
   */
  stuckMs: number;
  /**
   * `QDP_ACCESS_LOG`: the share of calls written to the access log at `info`, one JSON line per
   * call. `1` (default) every call, `0` none, a fraction like `0.1` a random sample of that share.
   */
  accessLog: number;
  /**
   * `QDP_STATS_HOST`: address of the stats server (/stats, /metrics). Default `127.0.0.1`.
   * Anything but loopback requires `QDP_STATS_TOKEN`.
   */
  statsHost: string;
  /**
   * `QDP_STATS_TOKEN`: when set, /stats and /metrics answer only requests carrying
   * `Authorization: Bearer <token>`. Required with a non-loopback `QDP_STATS_HOST`.
   */
  statsToken: string | undefined;
  /** `QDP_TLS_CERT`: PEM certificate (chain) file; with `QDP_TLS_KEY` the public port speaks HTTPS. */
  tlsCert: string | undefined;
  /** `QDP_TLS_KEY`: PEM private key file of `QDP_TLS_CERT`. */
  tlsKey: string | undefined;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

type Source = Record<string, string | undefined>;

interface Reader {
  str(name: string, fallback: string): string;
  optStr(name: string): string | undefined;
  int(name: string, fallback: number, min: number, max: number): number;
  bytes(name: string, fallback: number, max?: number, zeroOk?: boolean): number;
  bool(name: string, fallback: boolean): boolean;
  problems: string[];
}

function reader(src: Source): Reader {
  const problems: string[] = [];
  const raw = (name: string) => {
    const v = src[name];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  return {
    problems,
    str: (name, fallback) => raw(name) ?? fallback,
    optStr: (name) => raw(name),
    int(name, fallback, min, max) {
      const v = raw(name);
      if (v === undefined) return fallback;
      if (!/^-?\d+$/.test(v) || Number(v) < min || Number(v) > max) {
        problems.push(`${name}=${JSON.stringify(v)}: expected a whole number from ${min} to ${max}`);
        return fallback;
      }
      return Number(v);
    },
    bytes(name, fallback, max = 1024 ** 3, zeroOk = false) {
      const v = raw(name);
      if (v === undefined) return fallback;
      const m = /^(\d+)\s*([kmgt]?)i?b?$/i.exec(v);
      const n = m ? Number(m[1]) * { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g" | "t"] : NaN;
      if (zeroOk && n === 0) return 0;
      if (!m || !(n >= 1) || n > max) {
        const top = max >= 1024 ** 4 ? `${max / 1024 ** 4}t` : `${max / 1024 ** 3}g`;
        problems.push(`${name}=${JSON.stringify(v)}: expected a size in bytes from ${zeroOk ? 0 : 1} to ${top}, like 1048576, 512k or 1m`);
        return fallback;
      }
      return n;
    },
    bool(name, fallback) {
      const v = raw(name);
      if (v === undefined) return fallback;
      if (/^(1|true|yes|on)$/i.test(v)) return true;
      if (/^(0|false|no|off)$/i.test(v)) return false;
      problems.push(`${name}=${JSON.stringify(v)}: expected 1 or 0 (true/false)`);
      return fallback;
    },
  };
}

function checkUrl(r: Reader, name: string, value: string | undefined, protocols: string[]): void {
  if (value === undefined) return;
  let ok = false;
  try {
    ok = protocols.includes(new URL(value).protocol);
  } catch {}
  if (!ok) r.problems.push(`${name}: expected a ${protocols.join(" or ")} URL, got ${JSON.stringify(redactUrl(value))}`);
}

/** A URL with its password replaced, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@]*@/i, "$1***@");
}

/**
 * Parses the whole configuration.
 * @param env the process environment
 * @param cpus CPU count, the default of QDP_WORKERS
 * @param fileText text of the QDP_CONFIG file, when there is one
 * @throws ConfigError listing every bad value
 */
export function loadConfig(env: Source, cpus: number, fileText?: string, serviceKeys: readonly string[] = [], fileName?: string): Config {
  return readConfig(configSource(env, fileText, serviceKeys, fileName), env, cpus);
}

/**
 * The values the server reads: the QDP_CONFIG file's keys overlaid by the environment.
 * @param serviceKeys variables the services declare (services/settings.ts): accepted in the file too
 * @param fileName the file's path, for messages
 * @throws ConfigError for a file that is not JSON (with line and column) or not an object, or
 *   that holds unknown keys (all of them, each with the closest known name)
 */
export function configSource(env: Source, fileText?: string, serviceKeys: readonly string[] = [], fileName?: string): Source {
  let src: Source = env;
  if (fileText !== undefined) {
    const where = fileName === undefined ? "QDP_CONFIG" : `QDP_CONFIG (${fileName})`;
    let file: unknown;
    try {
      file = JSON.parse(fileText);
    } catch (err) {
      const at = findJsonSyntaxError(fileText);
      throw new ConfigError([
        at === null
          ? `${where}: the file is not valid JSON (${(err as Error).message})`
          : `${where}: not valid JSON at line ${at.line}, column ${at.column}: ${at.message}`,
      ]);
    }
    if (typeof file !== "object" || file === null || Array.isArray(file)) {
      throw new ConfigError([`${where}: expected a JSON object of QDP_* keys`]);
    }
    const merged: Source = {};
    const unknown: string[] = [];
    const known: string[] = [...CONFIG_VARIABLES.filter((v) => v !== "QDP_CONFIG"), ...serviceKeys];
    for (const [k, v] of Object.entries(file)) {
      // Only the variables we read: a typo (QDP_PROT) must stop start-up, not be silently ignored.
      if (!known.includes(k)) {
        const closest = closestName(k, known);
        unknown.push(
          `${where}: unknown key ${JSON.stringify(k)}${closest ? ` (did you mean ${closest}?)` : ""}; keys are the QDP_* variable names and the services' settings in the README`,
        );
        continue;
      }
      merged[k] = typeof v === "string" ? v : JSON.stringify(v);
    }
    if (unknown.length > 0) throw new ConfigError(unknown);
    src = { ...merged, ...Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== "")) };
  }
  return src;
}

function readConfig(src: Source, env: Source, cpus: number): Config {
  const r = reader(src);
  const port = r.int("QDP_PORT", 8080, 0, 65535);
  const maxInflight = r.int("QDP_MAX_INFLIGHT", 20_000, 1, 10_000_000);
  const config: Config = {
    host: r.str("QDP_HOST", "127.0.0.1"),
    port,
    workers: r.int("QDP_WORKERS", Math.max(1, cpus), 1, 256),
    graceMs: r.int("QDP_GRACE_MS", 10_000, 0, 3_600_000),
    ownerWaitMs: r.int("QDP_OWNER_WAIT_MS", 3_000, 0, 600_000),
    maxBody: r.bytes("QDP_MAX_BODY", 1024 * 1024),
    timeoutMs: r.int("QDP_TIMEOUT_MS", 30_000, 1, 3_600_000),
    bodyTimeoutMs: r.int("QDP_BODY_TIMEOUT_MS", 10_000, 100, 3_600_000),
    keepAliveMs: r.int("QDP_KEEPALIVE_MS", 75_000, 100, 3_600_000),
    drainIdleMs: r.int("QDP_DRAIN_IDLE_MS", 1_000, 10, 600_000),
    maxInflight,
    backlog: r.int("QDP_BACKLOG", 4096, 1, 1_000_000),
    statsPort: r.int("QDP_STATS_PORT", 9191, 0, 65535),
    runtimeDir: r.str("QDP_RUNTIME_DIR", defaultRuntimeDir(env.TMPDIR, port)),
    dataDir: r.str("QDP_DATA_DIR", "./data"),
    uapKeys: r.str("QDP_UAP_KEYS", ""),
    uapKeysFile: r.optStr("QDP_UAP_KEYS_FILE"),
    allowCidrs: r.str("QDP_ALLOW_CIDRS", ""),
    insecure: r.bool("QDP_INSECURE", false),
    upstreamTimeoutMs: r.int("QDP_UPSTREAM_TIMEOUT_MS", 10_000, 1, 3_600_000),
    upstreamMaxConnections: r.int("QDP_UPSTREAM_MAX_CONNECTIONS", maxInflight, 1, 10_000_000),
    mongoUrl: r.optStr("QDP_MONGO_URL"),
    mongoPool: r.int("QDP_MONGO_POOL", 20, 1, 10_000),
    mongoWriteConcern: r.str("QDP_MONGO_W", "majority"),
    sessionMax: r.int("QDP_SESSION_MAX", 100_000, 1, 100_000_000),
    sessionTtlS: r.int("QDP_SESSION_TTL_S", 1800, 1, 365 * 86400),
    sessionStore: "memory",
    replayStore: "memory",
    redisUrl: r.optStr("QDP_REDIS_URL"),
    redisPrefix: r.str("QDP_REDIS_PREFIX", "qdp:"),
    redisTimeoutMs: r.int("QDP_REDIS_TIMEOUT_MS", 1000, 1, 600_000),
    sessionFreshMs: r.int("QDP_SESSION_FRESH_MS", 1000, 0, 3_600_000),
    directPortBase: r.optStr("QDP_DIRECT_PORT_BASE") === undefined ? undefined : r.int("QDP_DIRECT_PORT_BASE", 0, 1, 65535),
    hopMaxPending: r.int("QDP_HOP_MAX_PENDING", 20_000, 1, 10_000_000),
    nonceMax: r.int("QDP_NONCE_MAX", 2_000_000, 1, 100_000_000),
    demoServices: r.bool("QDP_DEMO_SERVICES", true),
    logLevel: "info",
    tuneSysctl: r.bool("QDP_TUNE_SYSCTL", true),
    forwardFile: r.optStr("QDP_FORWARD_FILE"),
    workerBunArgs: r.str("QDP_WORKER_BUN_ARGS", "").split(/\s+/).filter(Boolean),
    mallocPurgeMs: r.int("QDP_MALLOC_PURGE_MS", -1, -1, 3_600_000),
    gcRamMb: "auto",
    maxRequests: r.int("QDP_MAX_REQUESTS", 0, 0, 1_000_000_000),
    maxRequestsJitter: r.int("QDP_MAX_REQUESTS_JITTER", 0, 0, 1_000_000_000),
    maxRssBytes: r.bytes("QDP_MAX_RSS", 0, 1024 ** 4, true),
    stuckMs: r.int("QDP_STUCK_MS", DEFAULT_STUCK_MS, 0, 3_600_000),
    accessLog: 1,
    statsHost: r.str("QDP_STATS_HOST", "127.0.0.1"),
    statsToken: r.optStr("QDP_STATS_TOKEN"),
    tlsCert: r.optStr("QDP_TLS_CERT"),
    tlsKey: r.optStr("QDP_TLS_KEY"),
  };
  if (config.stuckMs > 0 && config.stuckMs < 500) {
    r.problems.push(`QDP_STUCK_MS=${config.stuckMs}: expected 0 (no watchdog) or at least 500 (heartbeats come every 100 ms at best)`);
  }
  if (config.maxRequestsJitter > 0 && config.maxRequests === 0) {
    r.problems.push("QDP_MAX_REQUESTS_JITTER: only means something with QDP_MAX_REQUESTS set");
  }
  const gcRam = r.str("QDP_GC_RAM_MB", "auto").trim();
  if (/^auto$/i.test(gcRam)) config.gcRamMb = "auto";
  else if (/^(0|[1-9][0-9]{0,6})$/.test(gcRam) && (Number(gcRam) === 0 || (Number(gcRam) >= 64 && Number(gcRam) <= 1_048_576))) config.gcRamMb = Number(gcRam);
  else r.problems.push(`QDP_GC_RAM_MB=${JSON.stringify(gcRam)}: expected auto, 0 (the runtime's own reading of the host's RAM) or MiB from 64 to 1048576`);
  const access = r.str("QDP_ACCESS_LOG", "1");
  if (/^(1|on|true|yes|all)$/i.test(access)) config.accessLog = 1;
  else if (/^(0|off|false|no|none)$/i.test(access)) config.accessLog = 0;
  else if (/^0?\.\d+$/.test(access) && Number(access) > 0 && Number(access) < 1) config.accessLog = Number(access);
  else r.problems.push(`QDP_ACCESS_LOG=${JSON.stringify(access)}: expected 1 (every call), 0 (off) or a sampling fraction like 0.1`);
  if (!/^[A-Za-z0-9.:_-]+$/.test(config.statsHost)) {
    r.problems.push(`QDP_STATS_HOST=${JSON.stringify(config.statsHost)}: expected an IP address or host name`);
  } else if (!isLoopbackHost(config.statsHost) && config.statsToken === undefined) {
    r.problems.push(
      `QDP_STATS_HOST=${config.statsHost}: a non-loopback stats server needs QDP_STATS_TOKEN (a bearer token Prometheus and qdp send), else anyone who reaches it reads the cluster's stats`,
    );
  }
  if (config.statsToken !== undefined && !/^[\x21-\x7e]{16,256}$/.test(config.statsToken)) {
    r.problems.push("QDP_STATS_TOKEN: expected 16 to 256 printable ASCII characters without spaces (the value is not shown)");
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    r.problems.push(
      `${config.tlsCert === undefined ? "QDP_TLS_CERT" : "QDP_TLS_KEY"}: required with ${config.tlsCert === undefined ? "QDP_TLS_KEY" : "QDP_TLS_CERT"} (HTTPS needs both the certificate and its key)`,
    );
  }
  for (const a of config.workerBunArgs) {
    if (!a.startsWith("-")) r.problems.push(`QDP_WORKER_BUN_ARGS: ${JSON.stringify(a)} is not a flag (expected Bun runtime flags like --smol)`);
  }
  const level = r.str("QDP_LOG_LEVEL", "info");
  if (level === "debug" || level === "info" || level === "warn" || level === "error") config.logLevel = level;
  else r.problems.push(`QDP_LOG_LEVEL=${JSON.stringify(level)}: expected debug, info, warn or error`);
  if (!/^[A-Za-z0-9.:_-]+$/.test(config.host) && config.host !== "::") {
    r.problems.push(`QDP_HOST=${JSON.stringify(config.host)}: expected an IP address or host name`);
  }
  if (config.directPortBase !== undefined && config.directPortBase + config.workers - 1 > 65535) {
    r.problems.push(`QDP_DIRECT_PORT_BASE=${config.directPortBase}: base + QDP_WORKERS - 1 must be at most 65535`);
  }
  if (!/^(majority|\d+)$/.test(config.mongoWriteConcern)) {
    r.problems.push(`QDP_MONGO_W=${JSON.stringify(config.mongoWriteConcern)}: expected majority or a whole number`);
  }
  checkUrl(r, "QDP_MONGO_URL", config.mongoUrl, ["mongodb:", "mongodb+srv:"]);
  const sessionStore = r.str("QDP_SESSION_STORE", "memory");
  if (sessionStore === "memory" || sessionStore === "redis") config.sessionStore = sessionStore;
  else r.problems.push(`QDP_SESSION_STORE=${JSON.stringify(sessionStore)}: expected memory or redis`);
  const replayStore = r.str("QDP_REPLAY_STORE", "memory");
  if (replayStore === "memory" || replayStore === "redis") config.replayStore = replayStore;
  else r.problems.push(`QDP_REPLAY_STORE=${JSON.stringify(replayStore)}: expected memory or redis`);
  checkUrl(r, "QDP_REDIS_URL", config.redisUrl, ["redis:"]);
  if (config.sessionStore === "redis" && config.redisUrl === undefined) {
    r.problems.push("QDP_REDIS_URL: required with QDP_SESSION_STORE=redis (e.g. redis://127.0.0.1:6379/0)");
  }
  if (config.replayStore === "redis" && config.redisUrl === undefined) {
    r.problems.push("QDP_REDIS_URL: required with QDP_REPLAY_STORE=redis (e.g. redis://127.0.0.1:6379/0)");
  }
  if (!/^[\x21-\x7e]{0,64}$/.test(config.redisPrefix)) {
    r.problems.push(`QDP_REDIS_PREFIX=${JSON.stringify(config.redisPrefix)}: expected up to 64 printable ASCII characters without spaces`);
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** Whether a bind address reaches this machine only. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * QDP_RUNTIME_DIR when it is not set: one directory per public port. With QDP_PORT=0 the
 * entry point picks the port first and uses that port's directory, so clusters started with
 * port 0 do not share one.
 */
export function defaultRuntimeDir(tmpdir: string | undefined, port: number): string {
  return `${tmpdir || "/tmp"}/qdp-${port}`;
}

/** Every variable the server reads, for the README test that keeps the docs complete. */
export const CONFIG_VARIABLES = [
  "QDP_CONFIG",
  "QDP_HOST",
  "QDP_PORT",
  "QDP_WORKERS",
  "QDP_GRACE_MS",
  "QDP_OWNER_WAIT_MS",
  "QDP_MAX_BODY",
  "QDP_TIMEOUT_MS",
  "QDP_BODY_TIMEOUT_MS",
  "QDP_KEEPALIVE_MS",
  "QDP_DRAIN_IDLE_MS",
  "QDP_MAX_INFLIGHT",
  "QDP_BACKLOG",
  "QDP_STATS_PORT",
  "QDP_RUNTIME_DIR",
  "QDP_DATA_DIR",
  "QDP_UAP_KEYS",
  "QDP_UAP_KEYS_FILE",
  "QDP_ALLOW_CIDRS",
  "QDP_INSECURE",
  "QDP_UPSTREAM_TIMEOUT_MS",
  "QDP_UPSTREAM_MAX_CONNECTIONS",
  "QDP_MONGO_URL",
  "QDP_MONGO_POOL",
  "QDP_MONGO_W",
  "QDP_SESSION_MAX",
  "QDP_SESSION_TTL_S",
  "QDP_DIRECT_PORT_BASE",
  "QDP_HOP_MAX_PENDING",
  "QDP_NONCE_MAX",
  "QDP_DEMO_SERVICES",
  "QDP_LOG_LEVEL",
  "QDP_TUNE_SYSCTL",
  "QDP_WORKER_BUN_ARGS",
  "QDP_MALLOC_PURGE_MS",
  "QDP_GC_RAM_MB",
  "QDP_SESSION_STORE",
  "QDP_REDIS_URL",
  "QDP_REDIS_PREFIX",
  "QDP_REDIS_TIMEOUT_MS",
  "QDP_SESSION_FRESH_MS",
  "QDP_FORWARD_FILE",
  "QDP_MAX_REQUESTS",
  "QDP_MAX_REQUESTS_JITTER",
  "QDP_MAX_RSS",
  "QDP_STUCK_MS",
  "QDP_ACCESS_LOG",
  "QDP_STATS_HOST",
  "QDP_STATS_TOKEN",
  "QDP_TLS_CERT",
  "QDP_TLS_KEY",
  "QDP_REPLAY_STORE",
] as const;
