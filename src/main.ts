/**
 * Entry of `bun run start`: load and check the configuration, claim the runtime directory and
 * the port, then run the supervisor. A bad setting, an untrusted runtime directory or a port
 * another cluster serves stops here with a sentence (exit 2) — never a stack trace — and
 * before anything binds the public or stats port.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { CONFIG_VARIABLES, ConfigError, configSource, defaultRuntimeDir, isLoopbackHost, loadConfig, type Config } from "./core/config.ts";
import { describeUnknown, unknownVariables } from "./core/config-names.ts";
import { ALL_SERVICES, buildRegistry } from "./services/index.ts";
import { loadServiceSettings, settingNames } from "./services/settings.ts";
import { describeKeys, loadKeyRing } from "./core/keys.ts";
import { createAllowList } from "./core/cidr.ts";
import { createLogger, flushLogs } from "./telemetry/logger.ts";
import { acquireClusterLocks, ClusterLockError, probePort, type ClusterLocks } from "./supervisor/cluster-lock.ts";
import { ensureMigrateReq } from "./supervisor/kernel.ts";
import {
  cleanUpRuntimeDir,
  prepareRuntimeDir,
  removeRuntimeDirIfUnused,
  removeStaleSockets,
  RuntimeDirError,
  type RuntimeDir,
} from "./supervisor/runtime-dir.ts";
import { readForwardFile, removeSnapshot } from "./supervisor/forward-table.ts";
import { runSupervisor } from "./supervisor/supervisor.ts";

function fail(message: string): never {
  process.stderr.write(`qdp-server: ${message}\n`);
  process.exit(2);
}

export const isLoopback = isLoopbackHost;

/** Port 0 means "any free port"; all workers must share one, so pick it here. */
function freePort(host: string): number {
  const s = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

let config: Config;
const serviceKeys = settingNames(ALL_SERVICES);
try {
  const file = process.env.QDP_CONFIG;
  let text: string | undefined;
  if (file) {
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      fail(`QDP_CONFIG: cannot read ${file}: ${(err as Error).message}`);
    }
  }
  config = loadConfig(process.env, availableParallelism(), text, serviceKeys, file || undefined);
  // The services' own settings are checked here too, so a bad one stops start-up (exit 2)
  // instead of leaving every worker failing to start.
  const services = buildRegistry({ demo: config.demoServices })
    .list()
    .map((s) => s.def);
  const { problems } = loadServiceSettings(services, configSource(process.env, text, serviceKeys));
  if (problems.length > 0) throw new ConfigError(problems);
} catch (err) {
  if (err instanceof ConfigError) fail(err.message);
  throw err;
}

const log = createLogger(config.logLevel, { role: "supervisor", pid: process.pid });
// A typo in a variable name (QDP_PROT) would otherwise be silently ignored, as would a variable
// from .env that this version no longer reads.
const unknown = unknownVariables(process.env, [...CONFIG_VARIABLES, ...serviceKeys]);
if (unknown.length > 0) {
  log.warn(`unknown QDP_* environment variable${unknown.length > 1 ? "s" : ""} ignored: ${unknown.map(describeUnknown).join(", ")}`, {
    unknown: unknown.map((u) => u.name),
  });
}
let keyIds: string[];
try {
  keyIds = describeKeys(loadKeyRing({ QDP_UAP_KEYS: config.uapKeys, QDP_UAP_KEYS_FILE: config.uapKeysFile }, (p) => readFileSync(p, "utf8")).ring);
  if (config.allowCidrs.trim() !== "") createAllowList(config.allowCidrs);
} catch (err) {
  fail((err as Error).message);
}
if (keyIds.length === 0) {
  if (!isLoopback(config.host) && !config.insecure) {
    fail(
      `refusing to bind ${config.host} without UAP keys: anyone could call the services. Set QDP_UAP_KEYS (or QDP_UAP_KEYS_FILE), bind a loopback QDP_HOST, or set QDP_INSECURE=1 to accept the risk.`,
    );
  }
  log.warn(
    isLoopback(config.host)
      ? "no UAP keys configured: open development mode (unsigned calls accepted, loopback only)"
      : "no UAP keys and QDP_INSECURE=1: unsigned calls accepted on a non-loopback address — INSECURE",
    { host: config.host },
  );
} else {
  log.info("request signing on", { keyIds });
}

// The forward file is checked here, with the local services, so a conflict stops start-up
// with exit code 2 like any other bad setting, before a worker is spawned.
let forwardText: string | undefined;
if (config.forwardFile !== undefined) {
  try {
    const table = readForwardFile(config.forwardFile, config.demoServices);
    forwardText = table.text;
    log.info("forwarding to existing services", { file: config.forwardFile, functions: table.functions });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
}

// With QDP_PORT=0 the port is picked here, before the locks: the lock then guards the picked
// port like any other (a later start naming that port is refused while this cluster runs).
if (config.port === 0) {
  const picked = freePort(config.host);
  if (config.runtimeDir === defaultRuntimeDir(process.env.TMPDIR, 0)) config.runtimeDir = defaultRuntimeDir(process.env.TMPDIR, picked);
  config.port = picked;
}

// The runtime directory must be trusted before any socket is made in it (runtime-dir.ts).
let dir: RuntimeDir;
try {
  dir = prepareRuntimeDir(config.runtimeDir);
} catch (err) {
  if (err instanceof RuntimeDirError) fail(err.message);
  throw err;
}
const cfg = config;
const refuse = (message: string, locks?: ClusterLocks): never => {
  locks?.release();
  if (dir.created) removeRuntimeDirIfUnused(dir.path);
  fail(message);
};

// One port is one cluster, one runtime directory is one cluster (cluster-lock.ts).
let locks: ClusterLocks;
try {
  locks = await acquireClusterLocks({
    port: config.port,
    runtimeDir: config.runtimeDir,
    dirId: dir.id,
    info: () => ({ pid: process.pid, host: cfg.host, port: cfg.port, statsPort: cfg.statsPort, runtimeDir: cfg.runtimeDir }),
  });
} catch (err) {
  if (err instanceof ClusterLockError) refuse(err.message);
  throw err;
}
if (!(await probePort(config.host, config.port, 3000))) {
  refuse(
    `port ${config.host}:${config.port} is already in use by a process that holds no qdp-server lock (another program, or a qdp-server too old to take one); stop it or choose another QDP_PORT`,
    locks,
  );
}
// The lock proves no live cluster uses the directory: what a killed one left behind goes.
const stale = removeStaleSockets(config.runtimeDir);
if (stale.length > 0) log.info("removed hop sockets left by a cluster that is gone", { runtimeDir: config.runtimeDir, sockets: stale });

ensureMigrateReq(config.tuneSysctl, log);
let code = 0;
try {
  await runSupervisor(config, log, { forwardText });
} catch (err) {
  log.error("supervisor failed", { err });
  code = 1;
}
// Every worker has exited: nothing of this cluster stays behind (sockets, the directory it
// made, the locks).
removeSnapshot(config.runtimeDir);
cleanUpRuntimeDir(config.runtimeDir);
locks.release();
await flushLogs();
process.exit(code);
