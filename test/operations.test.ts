/**
 * What an operator sees of a running cluster: the access log and rate-limited warn lines at the
 * default level, the metrics and the token-guarded stats server, cluster readiness, `qdp top`,
 * the npm scripts with no bun on the PATH, a reload that fails on a bad config, unknown QDP_*
 * variables and `.env`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { signRequest } from "../src/client/sign.ts";
import { ownerOf } from "../src/core/ownership.ts";
import { BUN, type Cluster, freePort, ROOT, startCluster } from "./support/cluster.ts";

const SECRET = "operations-test-secret-0123456789";
const TOKEN = "stats-token-0123456789abcdef";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string[], env: Record<string, string | undefined>): Promise<Run> {
  const proc = Bun.spawn(cmd, { cwd: ROOT, env: env as Record<string, string>, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

const qdp = (args: string[], env: Record<string, string> = {}) =>
  run([BUN, "src/cli.ts", ...args], { ...process.env, QDP_STATS_PORT: "", QDP_STATS_TOKEN: "", ...env });

/** JSON log lines printed so far that match. */
function lines(c: Cluster, pred: (l: any) => boolean): any[] {
  const out: any[] = [];
  for (const text of c.output().split("\n")) {
    if (!text.startsWith("{")) continue;
    try {
      const l = JSON.parse(text);
      if (pred(l)) out.push(l);
    } catch {}
  }
  return out;
}

/** Waits until `pred` holds (log lines are written once per tick, asynchronously). */
async function until<T>(what: string, f: () => T | null | undefined | false, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

function signed(
  url: string,
  path: string,
  body: string,
  user: string | null,
  keyId = "k1",
  secret = SECRET,
  extra: Record<string, string> = {},
): Promise<Response> {
  const headers = signRequest({ keyId, secret, method: "POST", url: url + path, user, body });
  return fetch(url + path, { method: "POST", headers: { ...headers, "content-type": "application/json", connection: "close", ...extra }, body });
}

describe("a signed cluster with a stats token", () => {
  let cluster: Cluster;
  const deadUpstream = `http://127.0.0.1:${freePort()}/nothing-listens-here`;
  beforeAll(async () => {
    cluster = await startCluster({
      workers: 2,
      env: { QDP_UAP_KEYS: `k1:${SECRET}`, QDP_STATS_TOKEN: TOKEN, QDP_UPSTREAM_A: deadUpstream, QDP_UPSTREAM_B: deadUpstream, QDP_PROT: "9000" },
      // waitReady reads /stats: it needs the token too.
      noWait: true,
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      const r = await fetch(`http://127.0.0.1:${cluster.statsPort}/stats`, { headers: { authorization: `Bearer ${TOKEN}` } }).catch(() => null);
      const doc = r?.ok ? ((await r.json()) as { workers: Array<{ state: string }> }) : null;
      if (doc && doc.workers.every((w) => w.state === "ready") && (await fetch(`${cluster.url}/readyz/cluster`)).status === 200) break;
      if (Date.now() > deadline) throw new Error(`cluster not ready:\n${cluster.output()}`);
      await Bun.sleep(50);
    }
  });
  afterAll(async () => {
    await cluster.stop();
  });

  test("an unknown QDP_* variable is named in a warning with the closest known one", () => {
    const warn = lines(cluster, (l) => l.level === "warn" && String(l.msg).includes("unknown QDP_* environment variable"));
    expect(warn.length).toBe(1);
    expect(warn[0].msg).toContain("QDP_PROT (did you mean QDP_PORT?)");
    // Variables the services declare (QDP_UPSTREAM_A/B, set here) are known, not typos.
    expect(warn[0].unknown).toEqual(["QDP_PROT"]);
  });

  test("every call gets one access line at info: request id, function, user, status, code, ms, edge, owner, address, key id, trace id", async () => {
    const user = "access-user-1";
    const r = await signed(cluster.url, "/api/1000", '{"x":1}', user, "k1", SECRET, { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
    expect(r.status).toBe(200);
    const id = r.headers.get("x-request-id")!;
    const line = await until("the access line", () => lines(cluster, (l) => l.msg === "call" && l.requestId === id)[0]);
    expect(line).toMatchObject({
      level: "info",
      func: 1000,
      name: "demo.echo",
      user,
      status: 200,
      code: null,
      edge: Number(r.headers.get("x-qdp-edge")),
      owner: ownerOf(user, 2),
      ip: "127.0.0.1",
      keyId: "k1",
      traceId: "0af7651916cd43dd8448eb211c80319c",
      route: "api",
    });
    expect(typeof line.ms).toBe("number");
    expect(line.sample).toBeUndefined();
  });

  test("401s are warned with their reason, rate-limited, and never show the secret or the signature", async () => {
    const sent: string[] = [];
    for (let i = 0; i < 25; i++) {
      const headers = signRequest({ keyId: "k1", secret: "not-the-secret", method: "POST", url: `${cluster.url}/api/1000`, user: "mallory", body: "{}" });
      sent.push(headers["X-QDP-Signature"]!.slice(3));
      const r = await fetch(`${cluster.url}/api/1000`, { method: "POST", headers: { ...headers, connection: "close" }, body: "{}" });
      expect(r.status).toBe(401);
    }
    const unknown = await signed(cluster.url, "/api/1000", "{}", "mallory", "k9");
    expect(unknown.status).toBe(401);
    await until("25 access lines for 401s", () => lines(cluster, (l) => l.msg === "call" && l.status === 401 && l.user === null).length >= 26);
    const warns = lines(cluster, (l) => l.level === "warn" && l.code === "UNAUTHENTICATED");
    const bad = warns.filter((l) => l.reason === "bad_signature");
    // 10 per reason per 10 s per worker: 25 refused calls spread over 2 workers leave at most 20 lines.
    expect(bad.length).toBeGreaterThanOrEqual(10);
    expect(bad.length).toBeLessThanOrEqual(20);
    expect(bad[0]).toMatchObject({ msg: "call refused: not signed by UAP", ip: "127.0.0.1" });
    expect(bad[0].cause).toStartWith("bad signature");
    expect(warns.some((l) => l.reason === "unknown_key" && l.cause.includes("'k9'"))).toBe(true);
    const out = cluster.output();
    expect(out).not.toContain(SECRET);
    for (const sig of sent) expect(out).not.toContain(sig);
  });

  test("an upstream failure is warned with its cause", async () => {
    const r = await signed(cluster.url, "/api/1002", '{"symbol":"X"}', "quote-user");
    expect(r.status).toBe(502);
    const id = r.headers.get("x-request-id")!;
    const warn = await until("the upstream warn line", () => lines(cluster, (l) => l.level === "warn" && l.requestId === id)[0]);
    expect(warn).toMatchObject({ code: "UPSTREAM_ERROR", func: 1002, user: "quote-user" });
    expect(warn.cause).toContain("upstream_a");
    const access = await until("its access line", () => lines(cluster, (l) => l.msg === "call" && l.requestId === id)[0]);
    expect(access).toMatchObject({ status: 502, code: "UPSTREAM_ERROR", owner: ownerOf("quote-user", 2) });
  });

  test("the stats server wants the token; /metrics has durations by function and code, process facts and build info", async () => {
    const noToken = await fetch(`http://127.0.0.1:${cluster.statsPort}/metrics`);
    expect(noToken.status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${cluster.statsPort}/metrics`, { headers: { authorization: "Bearer wrong-token-0123456789abc" } })).status).toBe(401);
    const text = await (await fetch(`http://127.0.0.1:${cluster.statsPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(text).toMatch(/^qdp_request_duration_seconds_count\{worker="\d",func="1000",code="OK"\} [1-9]\d*$/m);
    expect(text).toMatch(/^qdp_request_duration_seconds_count\{worker="\d",func="1002",code="UPSTREAM_ERROR"\} 1$/m);
    expect(text).toMatch(/^qdp_request_duration_seconds_count\{worker="\d",func="unknown",code="UNAUTHENTICATED"\} [1-9]\d*$/m);
    expect(text).toMatch(/^qdp_build_info\{version="\d+\.\d+\.\d+",bun="\d+\.\d+\.\d+[^"]*"\} 1$/m);
    for (const w of ["0", "1"]) {
      expect(text).toMatch(new RegExp(`^qdp_process_cpu_seconds_total\\{worker="${w}"\\} [0-9.e-]+$`, "m"));
      expect(text).toMatch(new RegExp(`^qdp_process_open_fds\\{worker="${w}"\\} [1-9]\\d*$`, "m"));
      expect(text).toMatch(new RegExp(`^qdp_event_loop_lag_max_seconds\\{worker="${w}"\\} [0-9.e-]+$`, "m"));
    }
    expect(text).toMatch(/^qdp_supervisor_cpu_seconds_total [0-9.e-]+$/m);
    // The CLI sends the token from QDP_STATS_TOKEN, and says what is missing without it.
    const ok = await qdp(["status", "--json"], { QDP_STATS_PORT: String(cluster.statsPort), QDP_STATS_TOKEN: TOKEN });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).workers.length).toBe(2);
    const refused = await qdp(["status"], { QDP_STATS_PORT: String(cluster.statsPort) });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("set QDP_STATS_TOKEN");
    expect(lines(cluster, (l) => l.msg?.startsWith("stats server listening") && l.token === "required").length).toBe(1);
  });

  test("/readyz/cluster is 200 with every index up, next to the per-worker /readyz", async () => {
    const r = await fetch(`${cluster.url}/readyz/cluster`);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ ready: true, peersUp: 1, workers: 2 });
    expect((await fetch(`${cluster.url}/readyz`)).status).toBe(200);
  });

  test("qdp top prints frames with every worker and the functions called", async () => {
    // Calls keep coming for as long as top samples, so every frame sees some.
    let running = true;
    const load = (async () => {
      for (let i = 0; running; i++) await signed(cluster.url, "/api/1000", "{}", `top-${i}`);
    })();
    const r = await qdp(["top", "--interval", "0.3", "--count", "2"], { QDP_STATS_PORT: String(cluster.statsPort), QDP_STATS_TOKEN: TOKEN });
    running = false;
    await load;
    expect(r.code).toBe(0);
    const frames = r.stdout.split(/\n(?=qdp top — )/);
    expect(frames.length).toBe(2);
    for (const f of frames) {
      expect(f).toMatch(/^\s*IDX\s+PID\s+STATE\s+REQ\/S\s+ERR\/S\s+INFLIGHT/m);
      expect(f).toMatch(/^\s+0\s+\d+\s+ready/m);
      expect(f).toMatch(/^\s+1\s+\d+\s+ready/m);
    }
    expect(r.stdout).toMatch(/^\s*FUNC\s+REQ\/S\s+ERR\/S\s+P50\s+P99/m);
    expect(r.stdout).toMatch(/^\s*1000\s+\d+\.\d/m);
  });
});

describe("a cluster with a config file", () => {
  let cluster: Cluster;
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "qdp-ops-"));
    file = join(dir, "qdp.json");
    writeFileSync(file, JSON.stringify({ QDP_GRACE_MS: 2000, QDP_ACCESS_LOG: "0" }));
    cluster = await startCluster({ workers: 2, env: { QDP_CONFIG: file } });
  });
  afterAll(async () => {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("QDP_ACCESS_LOG=0 writes no access line", async () => {
    const r = await fetch(`${cluster.url}/api/1000`, { method: "POST", body: "{}", headers: { "x-request-id": "no-access-line-1" } });
    expect(r.status).toBe(200);
    await Bun.sleep(100); // a line would be written within a tick or two
    expect(lines(cluster, (l) => l.requestId === "no-access-line-1")).toEqual([]);
  });

  test("a reload with a broken config file fails at once: qdp reload --wait exits 1 naming the line and column; one JSON line, no stack", async () => {
    const env = { QDP_STATS_PORT: String(cluster.statsPort) };
    const before = await cluster.stats();
    writeFileSync(file, '{\n  "QDP_GRACE_MS": 2000,\n  "QDP_PROT": 1,\n}\n');
    const t0 = Date.now();
    const r = await qdp(["reload", "--wait", "--timeout", "60"], env);
    expect(r.code).toBe(1);
    expect(Date.now() - t0).toBeLessThan(15_000); // not the 60 s timeout
    expect(r.stderr).toContain("reload failed");
    expect(r.stderr).toContain("line 4, column 1");
    const fatal = lines(cluster, (l) => l.level === "error" && String(l.msg).startsWith("worker cannot start"));
    expect(fatal.length).toBe(1);
    expect(fatal[0].msg).toContain(`QDP_CONFIG (${file})`);
    expect(cluster.output()).not.toMatch(/^\s+at .*\.ts:\d+/m); // no stack trace
    // The old workers still serve.
    const after = await cluster.stats();
    expect(after.workers.map((w) => w.pid)).toEqual(before.workers.map((w) => w.pid));
    expect((await fetch(`${cluster.url}/api/1000`, { method: "POST", body: "{}" })).status).toBe(200);

    // Unknown keys: every one is named, with the closest known one.
    writeFileSync(file, JSON.stringify({ QDP_PROT: 1, QDP_WORKRS: 2 }));
    const r2 = await qdp(["reload", "--wait", "--timeout", "60"], env);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('unknown key "QDP_PROT" (did you mean QDP_PORT?)');
    expect(r2.stderr).toContain('unknown key "QDP_WORKRS" (did you mean QDP_WORKERS?)');

    writeFileSync(file, JSON.stringify({ QDP_GRACE_MS: 2000 }));
    const ok = await qdp(["reload", "--wait", "--timeout", "60"], env);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    const stats = await cluster.stats();
    expect(stats.supervisor).toMatchObject({ reloadFailures: 2, lastReload: { state: "done" } });
  }, 90_000);

  test("the npm scripts work with no bun on the PATH", async () => {
    const npmDir = dirname(Bun.which("npm")!);
    const nodeDir = dirname(Bun.which("node")!);
    const PATH = [...new Set([npmDir, nodeDir, "/usr/bin", "/bin"])].join(":");
    expect(Bun.which("bun", { PATH })).toBeNull();
    const env = { PATH, HOME: process.env.HOME, QDP_STATS_PORT: String(cluster.statsPort), npm_config_update_notifier: "false" };
    const status = await run(["npm", "run", "--silent", "status", "--", "--json"], env);
    expect(status.stderr).toBe("");
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).workers.length).toBe(2);
    const help = await run(["npm", "run", "--silent", "qdp", "--", "help"], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("npm run status");
  });
});

test(".env in the working directory is read; the real environment wins over it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "qdp-dotenv-"));
  writeFileSync(join(dir, ".env"), "QDP_WORKERS=1\nQDP_ACCESS_LOG=0\nQDP_DEMO_SERVCES=0\n");
  const cluster = await startCluster({ workers: 2, cwd: dir });
  try {
    const stats = await cluster.stats();
    expect(stats.workers.length).toBe(2); // QDP_WORKERS=2 from the environment beats .env's 1
    const r = await fetch(`${cluster.url}/api/1000`, { method: "POST", body: "{}", headers: { "x-request-id": "dotenv-1" } });
    expect(r.status).toBe(200);
    await Bun.sleep(100);
    expect(lines(cluster, (l) => l.requestId === "dotenv-1")).toEqual([]); // QDP_ACCESS_LOG=0 from .env
    expect(cluster.output()).toContain("QDP_DEMO_SERVCES (did you mean QDP_DEMO_SERVICES?)");
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
