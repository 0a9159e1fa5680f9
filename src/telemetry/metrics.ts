/**
 * Prometheus text exposition of the cluster's stats: one sample per worker, labelled by index.
 */
import { LATENCY_BUCKETS, type HistogramData } from "./histogram.ts";
import type { ClusterStats, ReplayStoreStats, SessionStoreStats } from "../types.ts";

function histogram(lines: string[], name: string, labels: string, h: HistogramData): void {
  let acc = 0;
  for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
    acc += h.buckets[i] ?? 0;
    lines.push(`${name}_bucket{${labels},le="${LATENCY_BUCKETS[i]}"} ${acc}`);
  }
  lines.push(`${name}_bucket{${labels},le="+Inf"} ${h.count}`);
  lines.push(`${name}_sum{${labels}} ${h.sum}`);
  lines.push(`${name}_count{${labels}} ${h.count}`);
}

/** A label value that cannot break the line. */
function label(v: string): string {
  return v.replace(/["\\\n]/g, "_");
}

export function renderMetrics(s: ClusterStats): string {
  const out: string[] = [];
  const meta = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  meta("qdp_supervisor_uptime_seconds", "gauge", "Seconds since the supervisor started.");
  out.push(`qdp_supervisor_uptime_seconds ${s.supervisor.uptimeSec}`);
  meta("qdp_supervisor_reloads_total", "counter", "Rolling reloads completed.");
  out.push(`qdp_supervisor_reloads_total ${s.supervisor.reloads}`);
  meta("qdp_supervisor_recycle_backoff_seconds", "gauge", "Seconds before the next recycle may start (0 when none is held back).");
  out.push(`qdp_supervisor_recycle_backoff_seconds ${(s.supervisor.recycleBackoffMs ?? 0) / 1000}`);
  meta("qdp_supervisor_reload_failures_total", "counter", "Rolling reloads stopped because a replacement worker could not start.");
  out.push(`qdp_supervisor_reload_failures_total ${s.supervisor.reloadFailures}`);
  meta("qdp_supervisor_cpu_seconds_total", "counter", "CPU time (user + system) used by the supervisor process.");
  out.push(`qdp_supervisor_cpu_seconds_total ${s.supervisor.cpuSeconds}`);
  meta("qdp_supervisor_rss_bytes", "gauge", "Resident memory of the supervisor process.");
  out.push(`qdp_supervisor_rss_bytes ${s.supervisor.rssBytes}`);
  meta("qdp_build_info", "gauge", "Always 1; the labels say which qdp-server and Bun versions run.");
  out.push(`qdp_build_info{version="${label(s.supervisor.version)}",bun="${label(s.supervisor.bun)}"} 1`);
  const perWorker: Array<[string, string, string, (w: ClusterStats["workers"][number]) => number]> = [
    ["qdp_worker_up", "gauge", "1 when the worker is ready.", (w) => (w.state === "ready" ? 1 : 0)],
    ["qdp_requests_total", "counter", "Calls answered by the worker's edge.", (w) => w.requests],
    ["qdp_hops_in_total", "counter", "Calls run for other workers' edges.", (w) => w.hopsIn],
    ["qdp_hops_out_total", "counter", "Calls sent to their owner worker.", (w) => w.hopsOut],
    ["qdp_inflight", "gauge", "Calls in progress at the worker's edge.", (w) => w.inflight],
    ["qdp_executing", "gauge", "Calls running in the worker.", (w) => w.executing ?? 0],
    ["qdp_rss_bytes", "gauge", "Resident memory of the worker.", (w) => w.rssBytes],
    ["qdp_restarts_total", "counter", "Times the worker's index was respawned after dying.", (w) => w.restarts],
    [
      "qdp_stuck_kills_total",
      "counter",
      "Times the watchdog killed the worker of this index for a blocked event loop (QDP_STUCK_MS).",
      (w) => w.stuckKills ?? 0,
    ],
    [
      "qdp_heartbeat_age_seconds",
      "gauge",
      "Seconds since the worker's last heartbeat (grows while its event loop is blocked).",
      (w) => (w.heartbeatAgeMs ?? 0) / 1000,
    ],
    ["qdp_event_loop_lag_max_seconds", "gauge", "Largest event-loop lag of the worker in its last heartbeat interval.", (w) => (w.eventLoopLagMs ?? 0) / 1000],
    ["qdp_sessions", "gauge", "User sessions held by the worker.", (w) => w.sessions ?? 0],
    ["qdp_owner_waits_total", "counter", "Calls that waited for their owner to come up.", (w) => w.ownerWaits ?? 0],
    ["qdp_owner_unavailable_total", "counter", "Calls answered 503 OWNER_UNAVAILABLE.", (w) => w.ownerUnavailable ?? 0],
    ["qdp_client_aborts_total", "counter", "Clients that closed their connection before their answer (not server errors).", (w) => w.clientAborts ?? 0],
    ["qdp_waiting_for_owner", "gauge", "Calls waiting for their owner now.", (w) => w.waitingForOwner ?? 0],
    ["qdp_process_cpu_seconds_total", "counter", "CPU time (user + system) used by the worker process.", (w) => w.cpuSeconds ?? 0],
    ["qdp_process_open_fds", "gauge", "Open file descriptors of the worker process, sockets included.", (w) => w.openFds ?? 0],
  ];
  for (const [name, type, help, get] of perWorker) {
    meta(name, type, help);
    for (const w of s.workers) out.push(`${name}{worker="${w.index}"} ${get(w)}`);
  }
  meta("qdp_recycles_total", "counter", "Workers of this index replaced by recycling, by reason (max-requests, max-rss).");
  for (const w of s.workers)
    for (const [reason, n] of Object.entries(w.recycles ?? {})) out.push(`qdp_recycles_total{worker="${w.index}",reason="${reason}"} ${n}`);
  meta("qdp_event_loop_lag_seconds", "histogram", "Event-loop lag of the worker, sampled every 100 ms.");
  for (const w of s.workers) if (w.eventLoopLag) histogram(out, "qdp_event_loop_lag_seconds", `worker="${w.index}"`, w.eventLoopLag);
  meta("qdp_errors_total", "counter", "Error responses by code.");
  for (const w of s.workers) for (const [code, n] of Object.entries(w.errors ?? {})) out.push(`qdp_errors_total{worker="${w.index}",code="${code}"} ${n}`);
  meta(
    "qdp_request_duration_seconds",
    "histogram",
    "Time from a call's arrival at the edge to its answer, by function number and outcome code (OK or the error code).",
  );
  for (const w of s.workers) {
    for (const d of w.durations ?? [])
      histogram(out, "qdp_request_duration_seconds", `worker="${w.index}",func="${label(d.func)}",code="${label(d.code)}"`, d.latency);
  }
  meta("qdp_hop_latency_seconds", "histogram", "Round-trip time of hopped calls, seen from the edge.");
  for (const w of s.workers) if (w.hopLatency) histogram(out, "qdp_hop_latency_seconds", `worker="${w.index}"`, w.hopLatency);
  const withStore = s.workers.filter((w) => w.sessionStore !== undefined);
  if (withStore.length > 0) {
    const counters: Array<[string, string, keyof SessionStoreStats]> = [
      ["qdp_session_loads_total", "Sessions loaded from the durable store (misses).", "loads"],
      ["qdp_session_checks_total", "Freshness re-checks of a session copy older than QDP_SESSION_FRESH_MS.", "checks"],
      ["qdp_session_stores_total", "Session changes written to the durable store.", "stores"],
      ["qdp_session_conflicts_total", "Session writes refused for a newer stored version (503 SESSION_CONFLICT).", "conflicts"],
      ["qdp_session_store_errors_total", "Session store operations that failed or timed out (503 SESSION_UNAVAILABLE).", "errors"],
    ];
    for (const [name, help, key] of counters) {
      meta(name, "counter", help);
      for (const w of withStore) out.push(`${name}{worker="${w.index}"} ${w.sessionStore![key] as number}`);
    }
    meta("qdp_session_store_latency_seconds", "histogram", "Latency of session store operations (load, check, write).");
    for (const w of withStore) histogram(out, "qdp_session_store_latency_seconds", `worker="${w.index}"`, w.sessionStore!.latency);
  }
  const withReplay = s.workers.filter((w) => w.replayStore !== undefined);
  if (withReplay.length > 0) {
    const counters: Array<[string, string, keyof ReplayStoreStats]> = [
      ["qdp_replay_claims_total", "Nonces claimed in the shared replay store (QDP_REPLAY_STORE=redis).", "claims"],
      ["qdp_replay_store_replays_total", "Replays caught by the shared replay store (already claimed by a host; 401).", "replays"],
      ["qdp_replay_store_errors_total", "Nonce claims without an answer in time (503 OVERLOADED, fail closed).", "errors"],
    ];
    for (const [name, help, key] of counters) {
      meta(name, "counter", help);
      for (const w of withReplay) out.push(`${name}{worker="${w.index}"} ${w.replayStore![key] as number}`);
    }
    meta("qdp_replay_store_latency_seconds", "histogram", "Latency of nonce claims in the shared replay store.");
    for (const w of withReplay) histogram(out, "qdp_replay_store_latency_seconds", `worker="${w.index}"`, w.replayStore!.latency);
  }
  meta("qdp_upstream_latency_seconds", "histogram", "Latency of upstream HTTP calls made by services.");
  for (const w of s.workers) {
    for (const [name, u] of Object.entries(w.upstream ?? {}))
      histogram(out, "qdp_upstream_latency_seconds", `worker="${w.index}",upstream="${name.replace(/["\\\n]/g, "_")}"`, u.latency);
  }
  meta("qdp_upstream_errors_total", "counter", "Upstream calls that failed or timed out.");
  for (const w of s.workers) {
    for (const [name, u] of Object.entries(w.upstream ?? {}))
      out.push(`qdp_upstream_errors_total{worker="${w.index}",upstream="${name.replace(/["\\\n]/g, "_")}"} ${u.errors + u.timeouts}`);
  }
  meta("qdp_record_store_latency_seconds", "histogram", "Latency of record store operations (insert, get, find), failed ones included.");
  for (const w of s.workers) {
    for (const [op, r] of Object.entries(w.records ?? {})) histogram(out, "qdp_record_store_latency_seconds", `worker="${w.index}",op="${op}"`, r!.latency);
  }
  meta("qdp_record_store_errors_total", "counter", "Record store operations that failed, by operation.");
  for (const w of s.workers) {
    for (const [op, r] of Object.entries(w.records ?? {})) out.push(`qdp_record_store_errors_total{worker="${w.index}",op="${op}"} ${r!.errors}`);
  }
  return out.join("\n") + "\n";
}
