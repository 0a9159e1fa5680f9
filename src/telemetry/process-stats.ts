/**
 * Process facts for /stats and /metrics: CPU time, open file descriptors and event-loop lag.
 * Lag is sampled by a timer that should fire every 200 ms; how late it fires is how long the
 * event loop was busy. The reported value is the worst of the last 10 s.
 */
import { readdirSync } from "node:fs";

/** User + system CPU seconds this process used. */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Open file descriptors (sockets included), or null where /proc is not there. */
export function openFds(): number | null {
  try {
    return readdirSync("/proc/self/fd").length - 1; // minus the one readdir itself holds
  } catch {
    return null;
  }
}
