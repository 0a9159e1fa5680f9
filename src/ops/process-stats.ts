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

const TICK_MS = 200;
const WINDOW = 50; // samples: 10 s

/** Starts the lag sampler; `worstSeconds()` is the largest lag of the last 10 s. */
export function monitorEventLoopLag(): { worstSeconds(): number; stop(): void } {
  const samples = new Float64Array(WINDOW);
  let n = 0;
  let expected = performance.now() + TICK_MS;
  const timer = setInterval(() => {
    const now = performance.now();
    samples[n++ % WINDOW] = Math.max(0, now - expected) / 1000;
    expected = now + TICK_MS;
  }, TICK_MS);
  timer.unref();
  return {
    worstSeconds() {
      let worst = 0;
      for (let i = 0; i < Math.min(n, WINDOW); i++) worst = Math.max(worst, samples[i]!);
      return worst;
    },
    stop: () => clearInterval(timer),
  };
}
