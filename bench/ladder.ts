/**
 * Where the gap to bare `Bun.serve` lives: `bun bench/ladder.ts [--rounds 3] [--seconds 6]
 * [--connections 100] [--levels bare,qdp,…]`.
 * The same echo (`POST /api/1000`, bench A's body, wrk -c100) against servers that each add one
 * layer, two processes sharing the port with SO_REUSEPORT like the real cluster:
 *
 *   bare       Bun.serve, req.json(), Response.json (bench A's ceiling)
 *   listen     Bun.listen, find the end of the request, write a fixed answer (no parsing at all)
 *   transport  our HTTP/1.1 transport (edge/http1-server.ts: strict parser, ordering, timeouts),
 *              JSON.parse of the body and a JSON answer — no call pipeline
 *   qdp        the real cluster, no user (bench A (a)): signing off, access log at its default
 *   qdp-nolog  the same with QDP_ACCESS_LOG=0
 *   qdp-users  qdp with 1,000 rotating users (bench A (b)): about half the calls hop to their owner
 *   qdp-signed the same calls signed by UAP's key, checked by a cluster that has it (bench A (c))
 *
 * The two last rows send other requests (wrk scripts users.lua and signed.lua, which cost wrk
 * more than the echo's), so compare their server CPU per request with the rows above, not
 * their req/s.
 *
 * Prints req/s (median of rounds, rounds alternated) and the servers' CPU per request. Prints
 * only; no assertions. The box is shared with wrk: compare rows of one run.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { serveHttp1 } from "../src/edge/http1-server.ts";
import { cleanupAll, cpuSeconds, installSignalHandlers, makeTempDir, processTree, spawnManaged, stopManaged } from "./lib/procs.ts";
import { freePort, waitForHttp } from "./lib/net.ts";
import { qdpServer, type RunningServer } from "./lib/servers.ts";
import { runWorkload, type Workload } from "./lib/runner.ts";
import { BENCH_KEY, echo, ECHO_BODY, rotatingUsers, signedUsers } from "./lib/workloads.ts";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    serve: { type: "string" },
    port: { type: "string" },
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "6" },
    connections: { type: "string", default: "100" },
    // Some of the levels only, e.g. `bare,qdp,qdp-nolog` for bench A (a)'s question at -c500.
    levels: { type: "string", default: "bare,listen,transport,qdp,qdp-nolog,qdp-users,qdp-signed" },
  },
});

const ANSWER = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${ECHO_BODY.length}\r\n\r\n${ECHO_BODY}`);

/** One server process of a level (run as `bun bench/ladder.ts --serve <level> --port N`). */
function serve(level: string, port: number): void {
  if (level === "bare") {
    Bun.serve({ hostname: "127.0.0.1", port, reusePort: true, fetch: async (req) => Response.json({ ok: true, funcNo: 1000, data: await req.json() }) });
  } else if (level === "listen") {
    // reusePort is honoured by Bun.listen but missing from bun-types' TCP listen options.
    Bun.listen({
      hostname: "127.0.0.1",
      port,
      ...({ reusePort: true } as object),
      socket: {
        // wrk sends one request per connection at a time: one answer per request head seen.
        data(socket, chunk) {
          for (let at = chunk.indexOf("\r\n\r\n"); at >= 0; at = chunk.indexOf("\r\n\r\n", at + 4)) socket.write(ANSWER);
        },
      },
    });
  } else if (level === "transport") {
    serveHttp1({
      hostname: "127.0.0.1",
      port,
      maxBody: 1 << 20,
      bodyTimeoutMs: 10_000,
      idleTimeoutMs: 75_000,
      handle: (req) => ({
        status: 200,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ok: true, funcNo: 1000, data: JSON.parse(new TextDecoder().decode(req.body)) }),
      }),
      refuse: (status, message) => ({ status, headers: {}, body: message }),
      crashed: () => ({ status: 500, headers: {}, body: "crashed" }),
    });
  } else throw new Error(`unknown level ${level}`);
}

if (values.serve !== undefined) {
  serve(values.serve, Number(values.port));
} else {
  installSignalHandlers();
  const tmp = makeTempDir("qdp-ladder-");
  const rounds = Number(values.rounds);
  const connections = Number(values.connections);
  const levels = new Set(values.levels.split(","));
  const seconds = Number(values.seconds);

  async function pair(level: string): Promise<RunningServer> {
    const port = await freePort();
    mkdirSync(join(tmp, level), { recursive: true });
    const procs = [0, 1].map((i) =>
      spawnManaged({ name: `${level}-${i}`, logDir: join(tmp, level), cmd: [process.execPath, import.meta.path, "--serve", level, "--port", String(port)] }),
    );
    await waitForHttp(`http://127.0.0.1:${port}/api/1000`, { init: { method: "POST", body: ECHO_BODY }, timeoutMs: 30_000 });
    return {
      id: level,
      baseUrl: `http://127.0.0.1:${port}`,
      roots: procs.map((p) => p.pid),
      alive: () => true,
      stop: async () => Promise.all(procs.map((p) => stopManaged(p))).then(() => {}),
    };
  }

  const ctx = { tmp, nginxWorkers: "auto" };
  const starts: Record<string, () => Promise<RunningServer>> = {
    bare: () => pair("bare"),
    listen: () => pair("listen"),
    transport: () => pair("transport"),
    qdp: () => qdpServer("qdp", "qdp", () => ({})).start(ctx),
    "qdp-nolog": () => qdpServer("qdp-nolog", "qdp-nolog", () => ({ QDP_ACCESS_LOG: "0" })).start(ctx),
    "qdp-users": () => qdpServer("qdp-users", "qdp-users", () => ({})).start(ctx),
    "qdp-signed": () => qdpServer("qdp-signed", "qdp-signed", () => ({ QDP_UAP_KEYS: `${BENCH_KEY.keyId}:${BENCH_KEY.secret}` })).start(ctx),
  };
  for (const l of levels) if (!(l in starts)) throw new Error(`unknown level ${l} (levels: ${Object.keys(starts).join(", ")})`);
  const servers: RunningServer[] = [];
  for (const [level, start] of Object.entries(starts)) if (levels.has(level)) servers.push(await start());
  const workloads: Record<string, Workload> = {
    "qdp-users": rotatingUsers("/api/1000", ECHO_BODY),
    "qdp-signed": signedUsers(tmp, (line) => console.log(line)),
  };
  const results = new Map<string, { rps: number[]; us: number[] }>(servers.map((s) => [s.id, { rps: [], us: [] }]));
  try {
    for (let round = 0; round < rounds; round++) {
      for (const s of [...servers.slice(round % servers.length), ...servers.slice(0, round % servers.length)]) {
        const tree = processTree(s.roots);
        const cpu0 = cpuSeconds(tree);
        const result = await runWorkload(s.baseUrl, workloads[s.id] ?? echo, { id: "ladder", connections, seconds });
        const r = results.get(s.id)!;
        r.rps.push(result.rps);
        r.us.push(((cpuSeconds(tree) - cpu0) / result.requests) * 1e6);
        console.log(
          `round ${round + 1}: ${s.id.padEnd(10)} ${Math.round(result.rps).toLocaleString("en-US").padStart(8)} req/s  ${r.us.at(-1)!.toFixed(1)} µs/req`,
        );
      }
    }
  } finally {
    for (const s of servers) await s.stop();
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  const bareRps = results.get("bare")?.rps;
  const bare = bareRps === undefined ? Number.NaN : median(bareRps);
  console.log(`\n-c${connections}, ${rounds} rounds of ${seconds} s\n\n| server | req/s (median) | × bare | server CPU µs/req |\n| --- | ---: | ---: | ---: |`);
  for (const [id, r] of results) {
    const ratio = Number.isNaN(bare) ? "–" : `${(median(r.rps) / bare).toFixed(2)}×`;
    console.log(`| ${id} | ${Math.round(median(r.rps)).toLocaleString("en-US")} | ${ratio} | ${median(r.us).toFixed(1)} |`);
  }
  await cleanupAll();
}
