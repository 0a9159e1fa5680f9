/**
 * The supervisor's /metrics text (CONTRACT.md §5): valid Prometheus exposition with per-worker
 * labels, and the latency histogram it is built from.
 */
import { describe, expect, test } from "bun:test";
import { Histogram, LATENCY_BUCKETS, type HistogramData } from "../src/telemetry/histogram.ts";
import { renderMetrics } from "../src/telemetry/metrics.ts";
import type { ClusterStats } from "../src/types.ts";

function histogramOf(values: number[]): HistogramData {
  const h = new Histogram();
  for (const v of values) h.observe(v);
  return h.toJSON();
}

const hop0 = histogramOf([0.00005, 0.0003, 0.0003, 0.002, 0.02, 0.7, 45]); // 45 s: past the last bound
const upstreamA = histogramOf([0.004, 0.006, 0.012, 0.2]);

const STATS: ClusterStats = {
  supervisor: {
    pid: 100,
    uptimeSec: 3600,
    reloads: 2,
    reloadFailures: 1,
    lastReload: { seq: 3, state: "failed", startedAt: 1, finishedAt: 2, error: "bad config" },
    host: "127.0.0.1",
    port: 8080,
    statsPort: 9191,
    workers: 2,
    directPortBase: null,
    recycles: { "max-requests": 5, "max-rss": 1 },
    stuckKills: 1,
    recycleBackoffMs: 2000,
    version: "0.1.0",
    bun: "1.4.5",
    cpuSeconds: 12.5,
    rssBytes: 40_000_000,
  },
  workers: [
    {
      index: 0,
      pid: 101,
      state: "ready",
      requests: 1234,
      hopsIn: 56,
      hopsOut: 78,
      inflight: 3,
      rssBytes: 52_428_800,
      restarts: 0,
      recycles: { "max-requests": 5, "max-rss": 0 },
      stuckKills: 0,
      handled: 1290,
      requestLimit: 10_000,
      heartbeatAgeMs: 400,
      eventLoopLag: histogramOf([0.001, 0.002, 0.3]),
      eventLoopLagMs: 300,
      executing: 2,
      sessions: 900,
      ownerWaits: 4,
      ownerUnavailable: 1,
      waitingForOwner: 0,
      errors: { VALIDATION: 7, OWNER_UNAVAILABLE: 1 },
      hopLatency: hop0,
      upstream: { 'a.local"evil\\name': { calls: 4, errors: 1, timeouts: 2, latency: upstreamA } },
      cpuSeconds: 3.25,
      openFds: 42,
      durations: [
        { func: "1000", code: "OK", latency: histogramOf([0.0002, 0.0004]) },
        { func: "1002", code: "UPSTREAM_ERROR", latency: histogramOf([0.5]) },
      ],
    },
    {
      index: 1,
      pid: null,
      state: "restarting",
      requests: 10,
      hopsIn: 0,
      hopsOut: 0,
      inflight: 0,
      rssBytes: 0,
      restarts: 3,
      recycles: { "max-requests": 0, "max-rss": 1 },
      stuckKills: 1,
      handled: 0,
      requestLimit: 0,
      heartbeatAgeMs: null,
    },
  ],
};

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  type: string;
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/y;

/** A strict parser of the text format, enough to catch what Prometheus would reject. */
function parse(text: string): Map<string, Family> {
  expect(text.endsWith("\n")).toBe(true);
  const families = new Map<string, Family>();
  const lines = text.slice(0, -1).split("\n");
  let current: string | null = null;
  for (const line of lines) {
    expect(line).not.toBe("");
    if (line.startsWith("# HELP ")) {
      const [, name, ...help] = line.split(" ").slice(1);
      expect(name).toMatch(NAME);
      expect(families.has(name!)).toBe(false); // one HELP per family
      families.set(name!, { type: "", help: help.join(" "), samples: [] });
      current = name!;
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.split(" ").slice(2);
      expect(name).toBe(current!); // TYPE follows its HELP, before any sample
      expect(families.get(name!)!.type).toBe("");
      expect(["counter", "gauge", "histogram", "summary", "untyped"]).toContain(type!);
      families.get(name!)!.type = type!;
      continue;
    }
    expect(line.startsWith("#")).toBe(false);
    const m = SAMPLE.exec(line);
    expect({ line, valid: m !== null }).toEqual({ line, valid: true });
    const [, name, labelText, valueText] = m!;
    const labels: Record<string, string> = {};
    if (labelText !== undefined) {
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < labelText.length) {
        const l = LABEL.exec(labelText);
        expect({ line, label: l !== null }).toEqual({ line, label: true });
        labels[l![1]!] = l![2]!;
      }
    }
    const value = valueText === "+Inf" ? Infinity : Number(valueText);
    expect({ line, number: !Number.isNaN(value) }).toEqual({ line, number: true });
    // Samples belong to the family announced just before them (histograms add suffixes).
    const family = families.get(current!)!;
    const base = family.type === "histogram" ? name!.replace(/_(bucket|sum|count)$/, "") : name;
    expect({ line, family: base }).toEqual({ line, family: current! });
    family.samples.push({ name: name!, labels, value });
  }
  return families;
}

describe("metrics text", () => {
  const text = renderMetrics(STATS);
  const families = parse(text);

  test("is valid exposition: every family has HELP and TYPE", () => {
    expect(families.size).toBeGreaterThan(10);
    for (const [name, f] of families) {
      expect({ name, help: f.help.length > 0, type: f.type !== "" }).toEqual({ name, help: true, type: true });
    }
  });

  test("counters end in _total", () => {
    for (const [name, f] of families) if (f.type === "counter") expect(name).toMatch(/_total$/);
  });

  test("supervisor values are unlabelled", () => {
    expect(families.get("qdp_supervisor_uptime_seconds")!.samples).toEqual([{ name: "qdp_supervisor_uptime_seconds", labels: {}, value: 3600 }]);
    expect(families.get("qdp_supervisor_reloads_total")!.samples[0]!.value).toBe(2);
  });

  test("per-worker values carry a worker label", () => {
    const value = (family: string, worker: string) => families.get(family)!.samples.find((s) => s.labels.worker === worker)?.value;
    expect(value("qdp_requests_total", "0")).toBe(1234);
    expect(value("qdp_requests_total", "1")).toBe(10);
    expect(value("qdp_hops_in_total", "0")).toBe(56);
    expect(value("qdp_hops_out_total", "0")).toBe(78);
    expect(value("qdp_inflight", "0")).toBe(3);
    expect(value("qdp_rss_bytes", "0")).toBe(52_428_800);
    expect(value("qdp_restarts_total", "1")).toBe(3);
    expect(value("qdp_worker_up", "0")).toBe(1);
    expect(value("qdp_worker_up", "1")).toBe(0);
    // Missing optional stats are reported as 0, not left out or NaN.
    expect(value("qdp_sessions", "1")).toBe(0);
    for (const [name, f] of families) {
      if (name.startsWith("qdp_supervisor_") || name === "qdp_build_info") continue;
      for (const s of f.samples) expect({ name, worker: s.labels.worker }).toEqual({ name, worker: expect.stringMatching(/^[01]$/) });
    }
  });

  test("one sample per worker for each per-worker gauge and counter", () => {
    for (const name of ["qdp_worker_up", "qdp_requests_total", "qdp_inflight", "qdp_restarts_total", "qdp_owner_unavailable_total"]) {
      expect(families.get(name)!.samples.map((s) => s.labels.worker)).toEqual(["0", "1"]);
    }
  });

  test("recycles by worker and reason, watchdog kills, heartbeat age and event-loop lag", () => {
    const value = (family: string, labels: Record<string, string>) =>
      families.get(family)!.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    expect(value("qdp_recycles_total", { worker: "0", reason: "max-requests" })).toBe(5);
    expect(value("qdp_recycles_total", { worker: "1", reason: "max-rss" })).toBe(1);
    expect(value("qdp_stuck_kills_total", { worker: "1" })).toBe(1);
    expect(value("qdp_heartbeat_age_seconds", { worker: "0" })).toBe(0.4);
    expect(value("qdp_event_loop_lag_max_seconds", { worker: "0" })).toBe(0.3);
    const lag = families.get("qdp_event_loop_lag_seconds")!;
    expect(lag.type).toBe("histogram");
    expect(lag.samples.find((s) => s.name === "qdp_event_loop_lag_seconds_count" && s.labels.worker === "0")?.value).toBe(3);
    expect(value("qdp_supervisor_recycle_backoff_seconds", {})).toBe(2);
  });

  test("errors are counted by worker and code", () => {
    const samples = families.get("qdp_errors_total")!.samples;
    expect(samples).toContainEqual({ name: "qdp_errors_total", labels: { worker: "0", code: "VALIDATION" }, value: 7 });
    expect(samples).toContainEqual({ name: "qdp_errors_total", labels: { worker: "0", code: "OWNER_UNAVAILABLE" }, value: 1 });
  });

  test("histogram buckets are cumulative, ascending and end with +Inf equal to the count", () => {
    for (const family of ["qdp_hop_latency_seconds", "qdp_upstream_latency_seconds"]) {
      const f = families.get(family)!;
      expect(f.type).toBe("histogram");
      const series = new Map<string, Sample[]>();
      for (const s of f.samples) {
        const { le, ...rest } = s.labels;
        const key = JSON.stringify(rest);
        if (!series.has(key)) series.set(key, []);
        series.get(key)!.push(s);
      }
      expect(series.size).toBe(1);
      for (const samples of series.values()) {
        const buckets = samples.filter((s) => s.name.endsWith("_bucket"));
        const les = buckets.map((b) => (b.labels.le === "+Inf" ? Infinity : Number(b.labels.le)));
        expect(les).toEqual([...LATENCY_BUCKETS, Infinity]);
        for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
        const count = samples.find((s) => s.name.endsWith("_count"))!.value;
        const sum = samples.find((s) => s.name.endsWith("_sum"))!.value;
        expect(buckets.at(-1)!.value).toBe(count);
        expect(sum).toBeGreaterThan(0);
      }
    }
  });

  test("hop latency buckets hold the observed values", () => {
    const buckets = families.get("qdp_hop_latency_seconds")!.samples.filter((s) => s.name.endsWith("_bucket"));
    const at = (le: string) => buckets.find((b) => b.labels.le === le)!.value;
    expect(at("0.0001")).toBe(1);
    expect(at("0.0005")).toBe(3);
    expect(at("0.0025")).toBe(4);
    expect(at("1")).toBe(6);
    expect(at("30")).toBe(6); // 45 s is beyond every finite bound
    expect(at("+Inf")).toBe(7);
  });

  test("supervisor, build and process facts", () => {
    const one = (name: string) => families.get(name)!.samples;
    expect(one("qdp_build_info")).toEqual([{ name: "qdp_build_info", labels: { version: "0.1.0", bun: "1.4.5" }, value: 1 }]);
    expect(one("qdp_supervisor_reload_failures_total")[0]!.value).toBe(1);
    expect(one("qdp_supervisor_cpu_seconds_total")[0]!.value).toBe(12.5);
    expect(one("qdp_supervisor_rss_bytes")[0]!.value).toBe(40_000_000);
    expect(one("qdp_process_cpu_seconds_total").find((s) => s.labels.worker === "0")!.value).toBe(3.25);
    expect(one("qdp_process_open_fds").find((s) => s.labels.worker === "0")!.value).toBe(42);
    expect(one("qdp_event_loop_lag_max_seconds").find((s) => s.labels.worker === "0")!.value).toBe(0.3);
  });

  test("request durations are a histogram per worker, function and code", () => {
    const f = families.get("qdp_request_duration_seconds")!;
    expect(f.type).toBe("histogram");
    const counts = f.samples.filter((s) => s.name.endsWith("_count"));
    expect(counts).toEqual([
      { name: "qdp_request_duration_seconds_count", labels: { worker: "0", func: "1000", code: "OK" }, value: 2 },
      { name: "qdp_request_duration_seconds_count", labels: { worker: "0", func: "1002", code: "UPSTREAM_ERROR" }, value: 1 },
    ]);
  });

  test("upstream errors add timeouts, and a label value cannot break the line", () => {
    const samples = families.get("qdp_upstream_errors_total")!.samples;
    expect(samples.length).toBe(1);
    expect(samples[0]!.value).toBe(3);
    expect(samples[0]!.labels.upstream).not.toContain('"');
  });

  test("a cluster with no workers still renders valid text", () => {
    const empty = parse(renderMetrics({ supervisor: STATS.supervisor, workers: [] }));
    expect(empty.get("qdp_requests_total")!.samples).toEqual([]);
  });
});

describe("histogram", () => {
  test("a value equal to a bound counts in that bucket (le)", () => {
    const h = histogramOf([0.001]);
    expect(h.buckets[LATENCY_BUCKETS.indexOf(0.001)]).toBe(1);
  });

  test("keeps count, sum and one overflow bucket past the last bound", () => {
    const h = histogramOf([0.0002, 0.5, 100]);
    expect(h.count).toBe(3);
    expect(h.sum).toBeCloseTo(100.5002, 9);
    expect(h.buckets.length).toBe(LATENCY_BUCKETS.length + 1);
    expect(h.buckets.at(-1)).toBe(1);
  });

  test("quantile is the upper bound of the bucket holding it", () => {
    const values = [...Array(90).fill(0.0008), ...Array(9).fill(0.04), 3];
    const h = histogramOf(values);
    expect(Histogram.quantile(h, 0.5)).toBe(0.001);
    expect(Histogram.quantile(h, 0.9)).toBe(0.001);
    expect(Histogram.quantile(h, 0.91)).toBe(0.05);
    expect(Histogram.quantile(h, 0.99)).toBe(0.05);
    expect(Histogram.quantile(h, 1)).toBe(5);
  });

  test("quantile of an empty histogram is null", () => {
    expect(Histogram.quantile(histogramOf([]), 0.5)).toBeNull();
  });

  test("quantile past the last bound is Infinity", () => {
    const h = histogramOf([0.001, 60, 60, 60]);
    expect(Histogram.quantile(h, 0.25)).toBe(0.001);
    expect(Histogram.quantile(h, 0.5)).toBe(Infinity);
    expect(Histogram.quantile(h, 0.99)).toBe(Infinity);
  });
});
