/**
 * What the access log costs on the hot path: a 2-worker cluster answering `POST /api/1000` for
 * 1,000 rotating users under `wrk`, with QDP_ACCESS_LOG=0 (off), 0.1 (sampled) and 1 (every
 * call), rounds alternated so drift hits every setting alike. The log goes to a file, as it
 * would to the journal. Prints req/s per setting (median of rounds) and log bytes per call.
 *
 *   bun bench/access-log.ts [--rounds 3] [--seconds 8] [--connections 50]
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { rounds: { type: "string" }, seconds: { type: "string" }, connections: { type: "string" } } });
const ROUNDS = Number(values.rounds ?? 3);
const SECONDS = Number(values.seconds ?? 8);
const CONNS = Number(values.connections ?? 50);
const ROOT = new URL("../", import.meta.url).pathname;
const SETTINGS = ["0", "0.1", "1"];

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

async function once(setting: string): Promise<{ rps: number; bytesPerCall: number }> {
  const dir = mkdtempSync(join(tmpdir(), "qdp-bench-log-"));
  const port = freePort();
  const statsPort = freePort();
  const logFile = join(dir, "server.log");
  const proc = Bun.spawn([process.execPath, join(ROOT, "src/main.ts")], {
    cwd: ROOT,
    env: {
      ...process.env,
      QDP_PORT: String(port),
      QDP_STATS_PORT: String(statsPort),
      QDP_WORKERS: "2",
      QDP_RUNTIME_DIR: join(dir, "run"),
      QDP_DATA_DIR: join(dir, "data"),
      QDP_ACCESS_LOG: setting,
    },
    stdout: Bun.file(logFile),
    stderr: "inherit",
  });
  try {
    for (let i = 0; ; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/readyz/cluster`).catch(() => null);
      if (r?.status === 200) break;
      if (i > 300) throw new Error("cluster not ready");
      await Bun.sleep(50);
    }
    const before = statSync(logFile).size;
    const wrk = Bun.spawnSync(
      [
        "wrk",
        "-t1",
        `-c${CONNS}`,
        `-d${SECONDS}s`,
        "-s",
        join(ROOT, "bench/wrk/users.lua"),
        `http://127.0.0.1:${port}/api/1000`,
        "--",
        '{"hello":"world"}',
        "1000",
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const out = wrk.stdout.toString();
    const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
    await Bun.sleep(300); // let the last lines reach the file
    const bytes = statSync(logFile).size - before;
    return { rps, bytesPerCall: requests > 0 ? bytes / requests : 0 };
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = new Map<string, Array<{ rps: number; bytesPerCall: number }>>(SETTINGS.map((s) => [s, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const s of round % 2 === 0 ? SETTINGS : [...SETTINGS].reverse()) {
    const r = await once(s);
    results.get(s)!.push(r);
    console.log(`round ${round + 1} QDP_ACCESS_LOG=${s}: ${r.rps.toFixed(0)} req/s, ${r.bytesPerCall.toFixed(0)} log bytes/call`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = median(results.get("0")!.map((r) => r.rps));
console.log(`\n| QDP_ACCESS_LOG | req/s (median of ${ROUNDS}) | min–max | × off | log bytes/call |\n|---|---:|---:|---:|---:|`);
for (const [s, rs] of results) {
  const rps = rs.map((r) => r.rps);
  console.log(
    `| ${s} | ${median(rps).toFixed(0)} | ${Math.min(...rps).toFixed(0)}–${Math.max(...rps).toFixed(0)} | ${(median(rps) / base).toFixed(2)}× | ${median(rs.map((r) => r.bytesPerCall)).toFixed(0)} |`,
  );
}
