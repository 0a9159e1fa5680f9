/**
 * Entry of `bun run start`: load and check the configuration, then run the supervisor.
 * A bad setting stops here with a sentence naming the variable — never a stack trace.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { ConfigError, loadConfig, type Config } from "./core/config.ts";
import { describeKeys, loadKeyRing } from "./core/keys.ts";
import { createAllowList } from "./core/cidr.ts";
import { createLogger, flushLogs } from "./ops/logger.ts";
import { ensureMigrateReq } from "./supervisor/kernel.ts";
import { runSupervisor } from "./supervisor/supervisor.ts";

function fail(message: string): never {
  process.stderr.write(`qdp-server: ${message}\n`);
  process.exit(2);
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Port 0 means "any free port"; all workers must share one, so pick it here. */
function freePort(host: string): number {
  const s = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

let config: Config;
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
  config = loadConfig(process.env, availableParallelism(), text);
} catch (err) {
  if (err instanceof ConfigError) fail(err.message);
  throw err;
}

const log = createLogger(config.logLevel, { role: "supervisor", pid: process.pid });
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

if (config.port === 0) config.port = freePort(config.host);
ensureMigrateReq(config.tuneSysctl, log);
try {
  await runSupervisor(config, log);
} catch (err) {
  log.error("supervisor failed", { err });
  await flushLogs();
  process.exit(1);
}
await flushLogs();
process.exit(0);
