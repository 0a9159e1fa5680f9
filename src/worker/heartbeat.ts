/**
 * The worker's heartbeat to the supervisor, and its event-loop lag. Both come from timers, so
 * both stop when the loop stops: that silence is what the supervisor's watchdog looks for
 * (core/watchdog.ts). The beat also carries what recycling needs (calls handled, RSS), so the
 * supervisor checks QDP_MAX_REQUESTS and QDP_MAX_RSS without asking.
 */
import { heartbeatIntervalMs, LAG_SAMPLE_MS } from "../core/watchdog.ts";
import { Histogram } from "../telemetry/histogram.ts";

/** One heartbeat (worker → supervisor). */
export interface Beat {
  /** Calls handled since start: answered at this edge plus run for other edges. */
  handled: number;
  requests: number;
  hopsIn: number;
  hopsOut: number;
  rssBytes: number;
  /** Largest event-loop lag seen since the previous beat, ms. */
  lagMs: number;
}

export interface Heartbeat {
  /** Every lag sample since start (seconds). */
  readonly lag: Histogram;
  /** Largest lag since start, ms. */
  readonly lagMaxMs: number;
  /** Largest lag in the last beat interval, ms. */
  readonly lagRecentMs: number;
  stop(): void;
}

/**
 * Starts sampling the lag every LAG_SAMPLE_MS and beating every heartbeatIntervalMs(stuckMs).
 * @param counts the worker's counters at the time of a beat
 */
export function startHeartbeat(o: { stuckMs: number; send: (b: Beat) => void; counts: () => Omit<Beat, "rssBytes" | "lagMs"> }): Heartbeat {
  const lag = new Histogram();
  let windowMax = 0;
  let recent = 0;
  let max = 0;
  let expected = performance.now() + LAG_SAMPLE_MS;
  const sampler = setInterval(() => {
    const now = performance.now();
    const late = Math.max(0, now - expected);
    expected = now + LAG_SAMPLE_MS;
    lag.observe(late / 1000);
    if (late > windowMax) windowMax = late;
    if (late > max) max = late;
  }, LAG_SAMPLE_MS);
  const beat = () => {
    recent = windowMax;
    windowMax = 0;
    o.send({ ...o.counts(), rssBytes: process.memoryUsage.rss(), lagMs: Math.round(recent * 10) / 10 });
  };
  const beater = setInterval(beat, heartbeatIntervalMs(o.stuckMs));
  sampler.unref();
  beater.unref();
  // The first beat at once: the supervisor starts watching a worker from its first beat.
  beat();
  return {
    lag,
    get lagMaxMs() {
      return max;
    },
    get lagRecentMs() {
      return Math.max(recent, windowMax);
    },
    stop() {
      clearInterval(sampler);
      clearInterval(beater);
    },
  };
}
