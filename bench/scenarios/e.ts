/**
 * Scenario E, the migration bridge: the same two uWSGI + Flask processes (an "existing
 * service") behind qdp's bridge and behind nginx with `hash $http_x_qdp_user`, 1,000 rotating
 * users, one run. nginx gets the envelope straight from the client (`POST /qdp`); qdp gets
 * `POST /api/2000` with `data`, checks it (signature, user, schema), builds the envelope and
 * forwards it to `backends[owner(user, 2)]` — the backend nginx's hash picks too — over HTTP
 * (the backends' --http-socket ports, nginx's HTTP row's transport) or over the uwsgi protocol
 * (the same Unix sockets as nginx's uwsgi row).
 * The target: the bridge ≥ 0.9× nginx while adding signing, dispatch and validation.
 */
import { fmt } from "../lib/render.ts";
import { caseTable, find, ratio, writeScenario } from "../lib/report.ts";
import { nginxHashServer, startLegacyBackends, writeBridgeFile } from "../lib/legacy.ts";
import type { Case, Contender, ScenarioPlan, ScenarioResult } from "../lib/runner.ts";
import { qdpServer } from "../lib/servers.ts";
import { BENCH_KEY, ECHO_BODY, rotatingUsers, signedUsers } from "../lib/workloads.ts";
import type { ScenarioOptions } from "./a.ts";

/** What nginx's clients send: the envelope the bridge would build (userId is the header's user, rotated by wrk). */
const ENVELOPE_BODY = `{"funcNo":2000,"userId":"u","data":${ECHO_BODY}}`;

export function planE(o: ScenarioOptions): ScenarioPlan {
  const cases: Case[] = [{ id: "c100", title: "-c100, 1,000 users", connections: 100, threads: 2, durationSec: o.durationSec, timeoutSec: 5 }];
  const contenders: Contender[] = [
    { id: "nginx-uwsgi", label: "nginx hash → uwsgi protocol", server: "nginx-uwsgi", workload: rotatingUsers("/qdp", ENVELOPE_BODY), studyRef: "nginx-uwsgi" },
    { id: "nginx-http", label: "nginx hash → HTTP", server: "nginx-http", workload: rotatingUsers("/qdp", ENVELOPE_BODY), studyRef: "nginx-uwsgi" },
    {
      id: "qdp-bridge",
      label: "qdp bridge (open)",
      server: "qdp-bridge",
      workload: rotatingUsers("/api/2000", ECHO_BODY),
      studyRef: "nginx-uwsgi",
      accent: true,
    },
    {
      id: "qdp-bridge-signed",
      label: "qdp bridge, every call signed",
      server: "qdp-bridge-signed",
      workload: signedUsers(o.tmp, o.log, "/api/2000"),
      studyRef: "nginx-uwsgi",
      accent: true,
    },
    {
      id: "qdp-bridge-uwsgi",
      label: "qdp bridge → uwsgi protocol (open)",
      server: "qdp-bridge-uwsgi",
      workload: rotatingUsers("/api/2000", ECHO_BODY),
      studyRef: "nginx-uwsgi",
      accent: true,
    },
    {
      id: "qdp-bridge-uwsgi-signed",
      label: "qdp bridge → uwsgi protocol, every call signed",
      server: "qdp-bridge-uwsgi-signed",
      workload: signedUsers(o.tmp, o.log, "/api/2000"),
      studyRef: "nginx-uwsgi",
      accent: true,
    },
  ];
  return {
    id: "E",
    title: "the migration bridge vs nginx in front of the same uWSGI + Flask processes",
    cases,
    contenders,
    servers: [
      nginxHashServer("nginx-uwsgi", "nginx hash → uwsgi", "uwsgi"),
      nginxHashServer("nginx-http", "nginx hash → HTTP", "http"),
      qdpServer("qdp-bridge", "qdp-server bridge (open)", (ctx) => ({ QDP_FORWARD_FILE: writeBridgeFile(ctx, "open") })),
      qdpServer("qdp-bridge-signed", "qdp-server bridge (signed)", (ctx) => ({
        QDP_FORWARD_FILE: writeBridgeFile(ctx, "signed"),
        QDP_UAP_KEYS: `${BENCH_KEY.keyId}:${BENCH_KEY.secret}`,
      })),
      // The same Unix sockets as nginx's uwsgi row: the same transport on both sides.
      qdpServer("qdp-bridge-uwsgi", "qdp-server bridge → uwsgi (open)", (ctx) => ({ QDP_FORWARD_FILE: writeBridgeFile(ctx, "uwsgi-open", "uwsgi") })),
      qdpServer("qdp-bridge-uwsgi-signed", "qdp-server bridge → uwsgi (signed)", (ctx) => ({
        QDP_FORWARD_FILE: writeBridgeFile(ctx, "uwsgi-signed", "uwsgi"),
        QDP_UAP_KEYS: `${BENCH_KEY.keyId}:${BENCH_KEY.secret}`,
      })),
    ],
    async setup(ctx) {
      const legacy = await startLegacyBackends(ctx);
      return { notes: [legacy.note], stop: legacy.stop };
    },
  };
}

export function reportE(r: ScenarioResult): void {
  const tables = r.plan.cases.map((c) => caseTable(r, c, [{ header: "× nginx HTTP", value: (a) => fmt.ratio(ratio(a, find(r, c.id, "nginx-http"))) }]));
  // "× study" is relative to nginx → uwsgi here (the study's own transport).
  for (const t of tables) t.headers[3] = "× nginx uwsgi";
  writeScenario(r, tables, [
    "Two uWSGI + Flask processes (the study's settings: 1 process, gevent 1000 each) stand for an existing",
    "Python service. Each listens on a Unix socket (uwsgi protocol) and on a loopback HTTP port (`--http-socket`:",
    "uWSGI 2.0.21's gevent loop aborts on kept-alive `--http11-socket` connections, so every HTTP call opens a",
    "connection — for nginx's HTTP row as for qdp). nginx pins",
    "users with `hash $http_x_qdp_user` (the backend qdp's bridge picks too) and passes `POST /qdp` with the",
    "envelope; qdp takes `POST /api/2000` with `data`, checks the user, the JSON Schema of the input (and, in the",
    "signed rows, the UAP signature and replay), builds the envelope and forwards it — over HTTP, or in the",
    "`→ uwsgi protocol` rows over the same Unix sockets as nginx's uwsgi row (one connection per call, like nginx).",
    "Flask answers `data`. Target: the bridge ≥ 0.9× nginx. wrk, nginx or qdp and both uWSGI",
    "processes share the machine's cores, so the front's CPU per call is taken from Flask's: that is what the",
    "ratio measures.",
  ]);
}
