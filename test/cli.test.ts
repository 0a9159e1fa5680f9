/**
 * `bun run qdp ...` as an operator runs it: spawned processes against a real cluster, plus the
 * doctor's judgement on made-up facts (pure, no kernel needed).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { loadConfig } from "../src/core/config.ts";
import { evaluate, type Facts } from "../src/commands/doctor.ts";
import { renderNginxConf } from "../src/commands/nginx-conf.ts";
import { parseHosts } from "../src/commands/nginx-multihost.ts";
import { alive, BUN, type Cluster, freePort, ROOT, startCluster } from "./support/cluster.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function qdp(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const proc = Bun.spawn([BUN, "src/cli.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, QDP_STATS_PORT: "", QDP_DIRECT_PORT_BASE: "", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

describe("against a running cluster", () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ workers: 2 });
  });
  afterAll(async () => {
    await cluster.stop();
  });

  test("status prints a table with both workers and a supervisor line", async () => {
    const stats = await cluster.stats();
    const r = await qdp(["status", "--interval", "0.3"], { QDP_STATS_PORT: String(cluster.statsPort) });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toContain(`supervisor pid ${stats.supervisor.pid}`);
    expect(lines[0]).toContain("reloads 0");
    expect(lines[1]).toMatch(/^IDX\s+PID\s+STATE\s+UPTIME\s+REQUESTS\s+REQ\/S\s+INFLIGHT\s+HOPS IN\/OUT\s+RSS\s+RESTARTS\s+RECYCLED\s+STUCK\s+LAG$/);
    expect(lines[0]).toContain("recycled max-requests 0, max-rss 0");
    expect(lines[0]).toContain("stuck killed 0");
    for (const w of stats.workers) {
      const row = lines.find((l) => l.trimStart().startsWith(`${w.index} `));
      expect(row).toBeDefined();
      expect(row).toContain(String(w.pid));
      expect(row).toContain("ready");
      expect(row).toMatch(/\d+(\.\d)? (MiB|KiB|GiB)/);
    }
    expect(lines.at(-1)).toMatch(/^all\s+2\/2 ready/);
  });

  test("--stats-port wins over the environment, and --json prints /stats unchanged", async () => {
    const r = await qdp(["status", "--json", "--stats-port", String(cluster.statsPort)], { QDP_STATS_PORT: "1" });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.supervisor.pid).toBe(cluster.proc.pid);
    expect(doc.workers.map((w: { index: number }) => w.index)).toEqual([0, 1]);
  });

  test("reload --wait replaces every worker's pid", async () => {
    const before = await cluster.stats();
    const oldPids = before.workers.map((w) => w.pid!);
    const r = await qdp(["reload", "--wait", "--timeout", "45"], { QDP_STATS_PORT: String(cluster.statsPort) });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const after = await cluster.stats();
    expect(after.supervisor.reloads).toBe(before.supervisor.reloads + 1);
    for (const w of after.workers) {
      expect(oldPids).not.toContain(w.pid);
      expect(r.stdout).toContain(`worker ${w.index}: pid ${oldPids[w.index]} -> ${w.pid}`);
    }
  });

  test("doctor reads the running workers' open-file limits", async () => {
    const r = await qdp(["doctor", "--json"], { QDP_STATS_PORT: String(cluster.statsPort) });
    const doc = JSON.parse(r.stdout);
    const nofile = doc.checks.find((c: { id: string }) => c.id === "ulimit -n");
    expect(nofile.value).toContain("running workers: #0");
  });
});

test("stop --wait stops the supervisor and exits 0", async () => {
  const cluster = await startCluster({ workers: 2 });
  try {
    const pid = cluster.proc.pid;
    const r = await qdp(["stop", "--wait"], { QDP_STATS_PORT: String(cluster.statsPort) });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`supervisor pid ${pid} exited`);
    expect(await cluster.proc.exited).toBe(0);
    expect(alive(pid)).toBe(false);
  } finally {
    await cluster.stop();
  }
});

test("nothing on the stats port: a clear error and exit 1", async () => {
  const port = freePort();
  for (const cmd of ["status", "reload", "stop"]) {
    const r = await qdp([cmd], { QDP_STATS_PORT: String(port) });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no qdp-server supervisor answers on 127.0.0.1:${port} — is it running? (set QDP_STATS_PORT`);
  }
});

test("help prints the usage and exits 0; no command or an unknown one exits 2", async () => {
  for (const args of [["help"], ["--help"]]) {
    const r = await qdp(args);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: qdp <command>");
    expect(r.stdout).toContain("npm run qdp -- <command>");
  }
  for (const args of [[], ["frobnicate"]]) {
    const r = await qdp(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Usage: qdp <command>");
  }
  const bad = await qdp(["status", "--bogus"]);
  expect(bad.code).toBe(2);
});

test("sign is delegated and keeps its exit codes", async () => {
  const ok = await qdp(["sign", "--key-id", "k1", "--secret", "s3cret", "--target", "/api/1000", "--timestamp", "1700000000", "--nonce", "abcdefghijklmnop"]);
  expect(ok.code).toBe(0);
  expect(ok.stdout).toContain("X-QDP-Signature: v1=");
  expect((await qdp(["sign"])).code).toBe(2);
});

describe("doctor", () => {
  test("prints every check with OK or WARN and exits 0 (all OK) or 1 (a WARN)", async () => {
    const r = await qdp(["doctor"], { QDP_STATS_PORT: String(freePort()) });
    expect([0, 1]).toContain(r.code);
    for (const id of [
      "kernel",
      "net.core.somaxconn",
      "net.ipv4.tcp_max_syn_backlog",
      "net.ipv4.tcp_migrate_req",
      "ulimit -n",
      "net.ipv4.ip_local_port_range",
      "net.ipv4.tcp_tw_reuse",
      "TIME_WAIT sockets",
      "net.ipv4.tcp_fin_timeout",
      "CPUs vs QDP_WORKERS",
      "QDP_HOST and keys",
    ]) {
      expect(r.stdout).toMatch(new RegExp(`^(OK|WARN)\\s+${id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s`, "m"));
    }
    expect(r.code === 1).toBe(/^WARN /m.test(r.stdout));
    const json = await qdp(["doctor", "--json"], { QDP_STATS_PORT: String(freePort()) });
    expect(json.code).toBe(r.code);
    expect(JSON.parse(json.stdout).ok).toBe(r.code === 0);
  });

  const good: Facts = {
    kernel: "6.1.0",
    sysctl: {
      "net.core.somaxconn": "4096",
      "net.ipv4.tcp_max_syn_backlog": "4096",
      "net.ipv4.tcp_migrate_req": "1",
      "net.ipv4.ip_local_port_range": "32768\t60999",
      "net.ipv4.tcp_tw_reuse": "1",
      "net.ipv4.tcp_fin_timeout": "30",
    },
    nofile: { soft: 65536, hard: 65536 },
    workerNofile: [],
    timeWait: 10,
    cpus: 2,
    cpuQuota: null,
    root: false,
    config: loadConfig({ QDP_WORKERS: "2" }, 2),
    configProblems: [],
    settings: [],
    settingProblems: [],
    tls: null,
    now: new Date("2026-11-27T00:00:00Z"),
  };

  test("a tuned box is all OK", () => {
    expect(evaluate(good, { connections: 10_000 }).filter((c) => c.status !== "OK")).toEqual([]);
  });

  test("each problem is a WARN that names its fix", () => {
    const bad: Facts = {
      ...good,
      kernel: "5.10.0",
      sysctl: { ...good.sysctl, "net.core.somaxconn": "128", "net.ipv4.tcp_migrate_req": null, "net.ipv4.tcp_tw_reuse": "0" },
      nofile: { soft: 1024, hard: 4096 },
      cpus: 1,
      config: loadConfig({ QDP_WORKERS: "2", QDP_HOST: "0.0.0.0", QDP_INSECURE: "1" }, 2),
    };
    const checks = new Map(evaluate(bad, { connections: 10_000 }).map((c) => [c.id, c]));
    expect(checks.get("kernel")!.status).toBe("WARN");
    expect(checks.get("net.core.somaxconn")!.fix.sysctl).toEqual(["net.core.somaxconn=4096"]);
    expect(checks.get("net.ipv4.tcp_migrate_req")!.status).toBe("WARN");
    expect(checks.get("net.ipv4.tcp_tw_reuse")!.fix.sysctl).toEqual(["net.ipv4.tcp_tw_reuse=1"]);
    expect(checks.get("ulimit -n")!.fix.other).toContain("systemd unit, [Service]: LimitNOFILE=65536");
    expect(checks.get("CPUs vs QDP_WORKERS")!.status).toBe("WARN");
    expect(checks.get("QDP_HOST and keys")!.status).toBe("WARN");
  });

  test("a TLS certificate close to expiry, expired or unreadable is a WARN; a fresh one is OK", () => {
    const check = (tls: Facts["tls"]) => evaluate({ ...good, tls }, { connections: 10_000 }).find((c) => c.id === "TLS certificate")!;
    const cert = (days: number) => ({ path: "/etc/qdp/cert.pem", subject: "CN=qdp", error: null, notAfter: new Date(good.now.getTime() + days * 86_400_000) });
    expect(check(cert(90)).status).toBe("OK");
    expect(check(cert(10))).toMatchObject({ status: "WARN", message: expect.stringContaining("expires in 10 days") });
    expect(check(cert(-1))).toMatchObject({ status: "WARN", message: expect.stringContaining("EXPIRED") });
    expect(check({ path: "/x.pem", subject: "", error: "bad PEM", notAfter: null })).toMatchObject({ status: "WARN", value: "/x.pem: unreadable" });
    expect(evaluate(good, { connections: 10_000 }).find((c) => c.id === "TLS certificate")).toBeUndefined();
  });

  test("listen ports inside the ephemeral range are flagged", () => {
    const facts: Facts = { ...good, config: loadConfig({ QDP_WORKERS: "2", QDP_DIRECT_PORT_BASE: "40000" }, 2) };
    const c = evaluate(facts, { connections: 10_000 }).find((x) => x.id === "listen ports vs ephemeral range")!;
    expect(c.status).toBe("WARN");
    expect(c.fix.sysctl).toEqual(["net.ipv4.ip_local_reserved_ports=40000,40001"]);
  });
});

describe("nginx-conf", () => {
  test("lists the direct ports in index order under hash $http_x_qdp_user", async () => {
    const r = await qdp(["nginx-conf", "--workers", "3", "--direct-port-base", "7100", "--listen", "8088"]);
    expect(r.code).toBe(0);
    const upstream = /upstream qdp_owners \{([\s\S]*?)\n\}/.exec(r.stdout)![1]!;
    expect(upstream).toMatch(/^\s+hash \$http_x_qdp_user;$/m);
    expect(upstream).not.toContain("consistent");
    expect([...upstream.matchAll(/^\s+server (\S+?)[ ;]/gm)].map((m) => m[1])).toEqual(["127.0.0.1:7100", "127.0.0.1:7101", "127.0.0.1:7102"]);
    expect(r.stdout).toContain("listen 8088;");
    expect(r.stdout).toContain("proxy_pass http://qdp_owners;");
    expect(r.stdout).toContain("proxy_http_version 1.1;");
    expect(r.stdout).toContain('proxy_set_header Connection "";');
  });

  test("takes its defaults from QDP_* and refuses without a direct port base", async () => {
    const r = await qdp(["nginx-conf"], { QDP_WORKERS: "2", QDP_DIRECT_PORT_BASE: "9300", QDP_HOST: "0.0.0.0", QDP_UAP_KEYS: "k:s" });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("server 127.0.0.1:9300 ");
    expect(r.stdout).toContain("server 127.0.0.1:9301 ");
    expect(r.stdout).not.toContain(":9302");
    const refused = await qdp(["nginx-conf", "--workers", "2"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("QDP_DIRECT_PORT_BASE is not set");
  });

  test("brackets IPv6 hosts", () => {
    const text = renderNginxConf({
      listen: "80",
      serverName: "_",
      host: "::",
      directPortBase: 7000,
      workers: 1,
      port: 8080,
      maxBody: 1024,
      timeoutMs: 30_000,
      keepalive: 8,
      keepAliveMs: 75_000,
    });
    expect(text).toContain("server [::1]:7000 ");
    expect(text).toMatch(/^\s+keepalive_timeout 55s;/m);
  });

  test("--hosts prints a consistent-hash front over the hosts with passive health and keep-alive", async () => {
    const r = await qdp(["nginx-conf", "--hosts", "10.0.0.1:8080,10.0.0.2:8080,[fd00::3]:8081", "--listen", "8088", "--fail-timeout", "4"], {
      QDP_TIMEOUT_MS: "20000",
      QDP_KEEPALIVE_MS: "30000",
    });
    expect(r.code).toBe(0);
    const upstream = /upstream qdp_hosts \{([\s\S]*?)\n\}/.exec(r.stdout)![1]!;
    expect(upstream).toMatch(/^\s+hash \$http_x_qdp_user consistent;$/m);
    expect([...upstream.matchAll(/^\s+server (\S+) max_fails=3 fail_timeout=4s;$/gm)].map((m) => m[1])).toEqual([
      "10.0.0.1:8080",
      "10.0.0.2:8080",
      "[fd00::3]:8081",
    ]);
    expect(upstream).toMatch(/^\s+zone qdp_hosts 64k;$/m);
    expect(upstream).toMatch(/^\s+keepalive 64;$/m);
    // Below the hosts' 30 s idle timeout.
    expect(upstream).toMatch(/^\s+keepalive_timeout 25s;/m);
    expect(r.stdout).toContain("listen 8088;");
    expect(r.stdout).toContain("proxy_pass http://qdp_hosts;");
    expect(r.stdout).toContain("proxy_http_version 1.1;");
    expect(r.stdout).toContain('proxy_set_header Connection "";');
    expect(r.stdout).toMatch(/^\s+proxy_next_upstream error timeout;$/m);
    expect(r.stdout).toContain("proxy_next_upstream_tries 3;");
    // A call that reached a host is never re-sent: nginx's non_idempotent stays off.
    expect(r.stdout).not.toMatch(/^\s*proxy_next_upstream[^_].*non_idempotent/m);
    expect(r.stdout).toContain("proxy_read_timeout 25s;");
    expect(r.stdout).toContain("proxy_connect_timeout 2s;");
    // Nothing rewrites the target or the signed headers.
    expect(r.stdout).not.toMatch(/proxy_set_header X-QDP|proxy_set_header X-Request-Id|rewrite /i);
  });

  test("--hosts refuses bad lists and single-host flags", async () => {
    expect(() => parseHosts("a:1,,b:2")).toThrow("no empty item");
    expect(() => parseHosts("a")).toThrow("is not HOST:PORT");
    expect(() => parseHosts("::1:80")).toThrow("in brackets");
    expect(() => parseHosts("a:70000")).toThrow("is not HOST:PORT");
    expect(() => parseHosts("A:1,a:1")).toThrow("listed twice");
    expect(parseHosts("h1.example:80,[::1]:81")).toEqual([
      { host: "h1.example", port: 80 },
      { host: "::1", port: 81 },
    ]);
    const both = await qdp(["nginx-conf", "--hosts", "a:1", "--direct-port-base", "7000"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("cannot be combined with --hosts");
    const orphan = await qdp(["nginx-conf", "--direct-port-base", "7000", "--max-fails", "2"]);
    expect(orphan.code).toBe(2);
    expect(orphan.stderr).toContain("only with --hosts");
  });
});
