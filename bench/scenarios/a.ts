/**
 * Scenario A, the study's own: the JSON echo (and the HTML hello) at -c500 and -c5000.
 * Every contender gets the same POST /api/1000 echo; qdp runs it three ways (no user = no hop,
 * 1,000 rotating users = about half the calls hop, and the same with every request signed).
 */
import { caseTable, find, writeScenario } from "../lib/report.ts";
import type { Case, Contender, ScenarioPlan, ScenarioResult } from "../lib/runner.ts";
import { BENCH_KEY, echo, ECHO_BODY, hello, rotatingUsers, signedUsers } from "../lib/workloads.ts";
import { bunBareServer, nodeClusterServer, qdpServer, studyServer } from "../lib/servers.ts";

export interface ScenarioOptions {
  durationSec: number;
  quick: boolean;
  tmp: string;
  log: (line: string) => void;
}

export function planA(o: ScenarioOptions): ScenarioPlan {
  const timeoutSec = 5;
  const cases: Case[] = [
    { id: "c500", title: "-c500", connections: 500, threads: 2, durationSec: o.durationSec, timeoutSec },
    { id: "c5000", title: "-c5000", connections: 5000, threads: 2, durationSec: o.durationSec, timeoutSec },
  ];
  const contenders: Contender[] = [
    { id: "study", label: "study: nginx→2 uWSGI+gevent→Flask", server: "study", workload: echo, studyRef: "study" },
    { id: "study-iphash", label: "study + ip_hash", server: "study-iphash", workload: echo, studyRef: "study" },
    { id: "node", label: "node cluster ×2", server: "node", workload: echo, studyRef: "study" },
    { id: "bun", label: "Bun.serve ×2 reusePort (ceiling)", server: "bun", workload: echo, studyRef: "study" },
    { id: "qdp-nohop", label: "qdp (a) no user, no hop", server: "qdp", workload: echo, studyRef: "study", noHopRef: "qdp-nohop", accent: true },
    {
      id: "qdp-users",
      label: "qdp (b) 1,000 users (affinity)",
      server: "qdp",
      workload: rotatingUsers("/api/1000", ECHO_BODY),
      studyRef: "study",
      noHopRef: "qdp-nohop",
      accent: true,
    },
    {
      id: "qdp-signed",
      label: "qdp (c) 1,000 users, signed",
      server: "qdp-signed",
      workload: signedUsers(o.tmp, o.log),
      studyRef: "study",
      noHopRef: "qdp-nohop",
      accent: true,
    },
    {
      // The same pre-signed requests (same headers, same wrk Lua work) to a server without keys:
      // (c) ÷ (d) is the price of verification alone.
      id: "qdp-signed-off",
      label: "qdp (d) = (c)'s requests, signing off",
      server: "qdp",
      workload: signedUsers(o.tmp, o.log),
      studyRef: "study",
      noHopRef: "qdp-nohop",
      accent: true,
    },
    { id: "study-hello", label: "hello: study (GET /uwsgi/)", server: "study", workload: hello, studyRef: "study-hello" },
    { id: "node-hello", label: "hello: node cluster", server: "node", workload: hello, studyRef: "study-hello" },
    { id: "bun-hello", label: "hello: Bun.serve ×2", server: "bun", workload: hello, studyRef: "study-hello" },
  ];
  return {
    id: "A",
    title: "the study's hello/echo at -c500 and -c5000",
    cases,
    contenders,
    servers: [
      studyServer("study", "study stack", false),
      studyServer("study-iphash", "study stack + ip_hash", true),
      nodeClusterServer(),
      bunBareServer(),
      qdpServer("qdp", "qdp-server (open)", () => ({})),
      qdpServer("qdp-signed", "qdp-server (signing on)", () => ({ QDP_UAP_KEYS: `${BENCH_KEY.keyId}:${BENCH_KEY.secret}` })),
    ],
  };
}

export function reportA(r: ScenarioResult): void {
  const tables = r.plan.cases.map((c) => caseTable(r, c, [], { rss: true }));
  const c5000 = r.plan.cases.find((c) => c.id === "c5000");
  if (c5000) {
    const qdpErrors = ["qdp-nohop", "qdp-users", "qdp-signed"]
      .map((id) => find(r, c5000.id, id))
      .filter((a) => a !== undefined)
      .map((a) => `${a.contenderId}: ${a.errors.total}`);
    if (qdpErrors.length) tables[tables.length - 1]!.notes = [`qdp errors at -c5000 (must be 0): ${qdpErrors.join(", ")}`];
  }
  writeScenario(r, tables, [
    "Every contender answers the same two routes as the study's test app: `POST /api/1000` (small JSON echo,",
    `body \`${ECHO_BODY}\`) and \`GET /uwsgi/\` (HTML hello). "× study" divides by the study stack's median on the`,
    'same route; "× qdp no-hop" divides qdp variants by qdp (a). Errors are wrk\'s socket errors (connect/read/',
    "write/timeout) plus responses ≥ 400, summed over all rounds. Peak RSS: the whole process tree (qdp: its workers,",
    "from `/stats`).",
  ]);
}
