/**
 * The one kernel setting the rolling reload depends on. Closing one SO_REUSEPORT listener
 * resets the connections still waiting in its accept queue — under load, a few failed requests
 * per reload. Since Linux 5.14, `net.ipv4.tcp_migrate_req=1` makes the kernel move them to
 * another listener of the same port instead. The supervisor turns it on when it may (root, or
 * CAP_NET_ADMIN in the network namespace) unless QDP_TUNE_SYSCTL=0, and says so in its log.
 */
import { readFileSync, writeFileSync } from "node:fs";
import type { Logger } from "../services/types.ts";

const MIGRATE = "/proc/sys/net/ipv4/tcp_migrate_req";

export function readMigrateReq(): number | null {
  try {
    return Number(readFileSync(MIGRATE, "utf8").trim());
  } catch {
    return null;
  }
}

export function ensureMigrateReq(tune: boolean, log: Logger): void {
  const now = readMigrateReq();
  if (now === null) {
    log.warn("net.ipv4.tcp_migrate_req is not available (Linux < 5.14?): a rolling reload may reset connections queued on the closing listener");
    return;
  }
  if (now === 1) return;
  if (!tune) {
    log.warn("net.ipv4.tcp_migrate_req=0 and QDP_TUNE_SYSCTL=0: a rolling reload may reset a few queued connections; see docs/tuning.md");
    return;
  }
  try {
    writeFileSync(MIGRATE, "1");
    log.info("set net.ipv4.tcp_migrate_req=1 so a rolling reload hands queued connections to the other workers");
  } catch (err) {
    log.warn(
      "could not set net.ipv4.tcp_migrate_req=1 (needs root); a rolling reload may reset a few queued connections. Run: sysctl -w net.ipv4.tcp_migrate_req=1",
      {
        err: (err as Error).message,
      },
    );
  }
}
