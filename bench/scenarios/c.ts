/**
 * Scenario C, the price of the internal hop at low load: 10 connections, qdp with no user
 * (never hops) vs 1,000 rotating users (about half the calls hop to the other worker).
 * Bare Bun.serve is the floor.
 */
import { fmt } from "../lib/render.ts";
import { caseTable, find, writeScenario } from "../lib/report.ts";
import type { Case, Contender, ScenarioPlan, ScenarioResult } from "../lib/runner.ts";
import { bunBareServer, qdpServer } from "../lib/servers.ts";
import { echo, ECHO_BODY, rotatingUsers } from "../lib/workloads.ts";
import type { ScenarioOptions } from "./a.ts";

export function planC(o: ScenarioOptions): ScenarioPlan {
  const cases: Case[] = [
    { id: "c10", title: "-c10 (wrk still saturates both cores)", connections: 10, threads: 2, durationSec: o.durationSec, timeoutSec: 5 },
    { id: "c1", title: "-c1 (one connection: an idle-ish server)", connections: 1, threads: 1, durationSec: o.durationSec, timeoutSec: 5 },
  ];
  const contenders: Contender[] = [
    { id: "bun", label: "Bun.serve ×2 (floor)", server: "bun", workload: echo },
    { id: "qdp-nohop", label: "qdp no user, no hop", server: "qdp", workload: echo, noHopRef: "qdp-nohop", accent: true },
    { id: "qdp-users", label: "qdp 1,000 users (≈½ hop)", server: "qdp", workload: rotatingUsers("/api/1000", ECHO_BODY), noHopRef: "qdp-nohop", accent: true },
  ];
  return { id: "C", title: "per-hop latency at low load", cases, contenders, servers: [bunBareServer(), qdpServer("qdp", "qdp-server (open)", () => ({}))] };
}

export function reportC(r: ScenarioResult): void {
  const tables = r.plan.cases.map((c) =>
    caseTable(r, c, [
      { header: "p90 ms", value: (a) => fmt.ms(medianP(r, c, a.contenderId, "p90")) },
      { header: "Δp50 vs no-hop", value: (a) => delta(r, c, a.contenderId, "p50") },
      { header: "Δp99 vs no-hop", value: (a) => delta(r, c, a.contenderId, "p99") },
    ]),
  );
  writeScenario(r, tables, [
    "`wrk -t2 -c10 --latency` and `wrk -t1 -c1 --latency` against `POST /api/1000`. With 1,000 rotating users",
    "about half of the calls are accepted by the worker that does not own the user and cross the internal hop,",
    "so Δ ≈ ½ × the hop's cost. At -c10 wrk still keeps both cores busy, so a hopped call also queues behind the",
    "owner's own HTTP work; -c1 shows the hop itself. The server's own hop round-trip histogram is",
    "`qdp_hop_latency_seconds` in /metrics.",
    "Latency percentiles are wrk's (µs resolution, from the Lua `done()` hook), medians over rounds.",
  ]);
}

function medianP(r: ScenarioResult, c: Case, id: string, p: "p50" | "p90" | "p99"): number {
  const v = r.records.filter((x) => x.caseId === c.id && x.contenderId === id).map((x) => x.result.latency[p]);
  v.sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)]! : Number.NaN;
}

function delta(r: ScenarioResult, c: Case, id: string, p: "p50" | "p99"): string {
  const base = find(r, c.id, "qdp-nohop");
  if (!base || id === "bun") return "–";
  const d = medianP(r, c, id, p) - medianP(r, c, "qdp-nohop", p);
  if (!Number.isFinite(d)) return "–";
  const sign = d >= 0 ? "+" : "−";
  return Math.abs(d) >= 1 ? `${sign}${Math.abs(d).toFixed(2)} ms` : `${sign}${Math.abs(d * 1000).toFixed(0)} µs`;
}
