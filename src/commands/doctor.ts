/**
 * `qdp doctor`: reads the live kernel settings and limits that decide how qdp-server behaves
 * under many connections, and says for each what to change and why (docs/tuning.md explains
 * every line). Facts are gathered in one place (`gatherFacts`, the only I/O) and judged by a
 * pure function (`evaluate`), so the judgement is testable with made-up facts.
 *
 * Exit status: 0 when every check is OK, 1 when any check is WARN, 2 on bad arguments.
 */
import { X509Certificate } from "node:crypto";
import { buildRegistry } from "../services/index.ts";
import { describeSettings, loadServiceSettings } from "../services/settings.ts";
import { readFileSync } from "node:fs";
import { availableParallelism, release } from "node:os";
import { parseArgs } from "node:util";
import { type Config, ConfigError, loadConfig } from "../core/config.ts";
import { type CommandIo, fetchStats, resolveStatsTarget, type StatsTarget, UsageError } from "./control.ts";

export const SYSCTLS = [
  "net.core.somaxconn",
  "net.ipv4.tcp_max_syn_backlog",
  "net.ipv4.tcp_migrate_req",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.tcp_tw_reuse",
  "net.ipv4.tcp_fin_timeout",
] as const;
export type SysctlName = (typeof SYSCTLS)[number];

export interface Limits {
  soft: number;
  hard: number;
}

/** Everything the checks look at; `null` = could not be read. */
export interface Facts {
  kernel: string;
  sysctl: Record<SysctlName, string | null>;
  /** RLIMIT_NOFILE of this process (Bun has already raised its soft limit to the hard one). */
  nofile: Limits | null;
  /** RLIMIT_NOFILE of the running workers, when a server answers on the stats port. */
  workerNofile: Array<{ index: number; pid: number; limits: Limits }>;
  /** Sockets in TIME_WAIT (/proc/net/sockstat "tw"). */
  timeWait: number | null;
  /** CPUs this process may run on, and the cgroup CPU quota if there is one. */
  cpus: number;
  cpuQuota: number | null;
  root: boolean;
  /** The server's configuration from QDP_* (defaults where unset), or why it is invalid. */
  config: Config;
  configProblems: string[];
  /** The enabled services' declared settings as `describeSettings` shows them (secrets hidden). */
  settings: Array<{ service: string; env: string; value: string; description: string }>;
  settingProblems: string[];
  /** The certificate of QDP_TLS_CERT (null without TLS): when it expires, or why it cannot be read. */
  tls: { path: string; notAfter: Date | null; subject: string; error: string | null } | null;
  /** When the facts were read (for the certificate's days left). */
  now: Date;
}

/** A certificate expiring sooner than this is a WARN: time to renew and reload. */
export const CERT_WARN_DAYS = 21;

export type Status = "OK" | "WARN";

export interface Check {
  id: string;
  status: Status;
  /** The live value, as read. */
  value: string;
  /** One line: what it means here, what to change. */
  message: string;
  /** Commands/lines that fix it, when WARN. */
  fix: { sysctl?: string[]; limits?: string[]; other?: string[] };
}

export interface DoctorOptions {
  /** Concurrent client connections the box should hold (e.g. slow calls in flight). */
  connections: number;
}

const NOFILE_HEADROOM = 1024;

function num(v: string | null): number | null {
  return v === null || !/^\d+$/.test(v.trim()) ? null : Number(v.trim());
}

function kernelAtLeast(rel: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return !!m && (Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor));
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** Judges the facts. Pure: no I/O. */
export function evaluate(f: Facts, opts: DoctorOptions): Check[] {
  const c = f.config;
  const checks: Check[] = [];
  const add = (id: string, ok: boolean, value: string, message: string, fix: Check["fix"] = {}) =>
    checks.push({ id, status: ok ? "OK" : "WARN", value, message, fix: ok ? {} : fix });

  if (f.configProblems.length > 0) {
    add("config", false, "invalid", `the server would refuse to start: ${f.configProblems.join("; ")} (checks below use defaults for those)`, {
      other: ["fix the QDP_* variables named above"],
    });
  }

  add(
    "service-settings",
    f.settingProblems.length === 0,
    f.settingProblems.length === 0 ? `${f.settings.length} declared, all valid` : "invalid",
    f.settingProblems.length === 0
      ? "every setting the enabled services declare is present or has a default, and is valid"
      : `the server would refuse to start: ${f.settingProblems.join("; ")}`,
    { other: ["set the service settings named above (environment or QDP_CONFIG file)"] },
  );

  const migrateOk = kernelAtLeast(f.kernel, 5, 14);
  add(
    "kernel",
    migrateOk,
    f.kernel,
    migrateOk
      ? "Linux >= 5.14: net.ipv4.tcp_migrate_req is available"
      : "Linux < 5.14 has no net.ipv4.tcp_migrate_req: each rolling reload may reset connections queued on the closing listener; upgrade the kernel",
    {
      other: ["upgrade to Linux >= 5.14"],
    },
  );

  const somax = num(f.sysctl["net.core.somaxconn"]);
  add(
    "net.core.somaxconn",
    somax !== null && somax >= c.backlog,
    String(somax ?? "unreadable"),
    `caps every listen backlog; qdp-server asks for QDP_BACKLOG=${c.backlog} (Bun alone uses 512). Below it, bursts of new connections overflow the accept queue and clients stall 1-3 s on SYN retries`,
    { sysctl: [`net.core.somaxconn=${Math.max(c.backlog, 4096)}`] },
  );

  const syn = num(f.sysctl["net.ipv4.tcp_max_syn_backlog"]);
  add(
    "net.ipv4.tcp_max_syn_backlog",
    syn !== null && syn >= c.backlog,
    String(syn ?? "unreadable"),
    `queue of half-open connections (SYN received); keep it >= QDP_BACKLOG=${c.backlog} so a connection burst is not answered with SYN cookies or drops`,
    { sysctl: [`net.ipv4.tcp_max_syn_backlog=${Math.max(c.backlog, 4096)}`] },
  );

  const migrate = num(f.sysctl["net.ipv4.tcp_migrate_req"]);
  const self =
    f.root && c.tuneSysctl
      ? "the supervisor sets it at start (it runs as root and QDP_TUNE_SYSCTL is not 0), but make it permanent"
      : c.tuneSysctl
        ? "the supervisor can set it only as root"
        : "QDP_TUNE_SYSCTL=0 keeps the supervisor from setting it";
  add(
    "net.ipv4.tcp_migrate_req",
    migrate === 1,
    migrate === null ? "missing" : String(migrate),
    migrate === 1
      ? "a closing SO_REUSEPORT listener hands its queued connections to the other workers: rolling reloads lose nothing"
      : `must be 1 for loss-free rolling reloads: closing one SO_REUSEPORT listener otherwise resets the connections in its accept queue; ${self}`,
    migrate === null ? { other: ["needs Linux >= 5.14"] } : { sysctl: ["net.ipv4.tcp_migrate_req=1"] },
  );

  // Each slow call holds its client connection and often one upstream/Mongo connection, and the
  // kernel's spread over workers is uneven, so one worker may hold most of them.
  const wantFds = 2 * opts.connections + NOFILE_HEADROOM;
  const recommended = Math.max(65536, 2 ** Math.ceil(Math.log2(wantFds)));
  const nofileFix = {
    limits: [`* soft nofile ${recommended}`, `* hard nofile ${recommended}`],
    other: [
      `systemd unit, [Service]: LimitNOFILE=${recommended}`,
      `shell, before starting: ulimit -n ${recommended}`,
      `docker run --ulimit nofile=${recommended}:${recommended} (compose: ulimits: nofile: ${recommended})`,
    ],
  };
  if (f.nofile) {
    const live = f.workerNofile.length > 0 ? `; running workers: ${f.workerNofile.map((w) => `#${w.index} ${w.limits.soft}/${w.limits.hard}`).join(", ")}` : "";
    const effective = Math.min(f.nofile.hard, ...f.workerNofile.map((w) => w.limits.soft));
    add(
      "ulimit -n",
      effective >= wantFds,
      `soft ${f.nofile.soft} / hard ${f.nofile.hard}${live}`,
      `open files per process; Bun raises its soft limit to the hard one at start, so the hard limit is what counts. ${opts.connections} connections (--connections) need >= ${wantFds} per worker: a client socket plus an upstream/Mongo socket per slow call, one worker may get most of them`,
      nofileFix,
    );
  } else {
    add("ulimit -n", false, "unreadable", "could not read /proc/self/limits", nofileFix);
  }

  const range = (f.sysctl["net.ipv4.ip_local_port_range"] ?? "").trim().split(/\s+/).map(Number);
  const [lo, hi] = range.length === 2 && range.every(Number.isFinite) ? (range as [number, number]) : [NaN, NaN];
  const width = hi - lo + 1;
  add(
    "net.ipv4.ip_local_port_range",
    width >= opts.connections,
    Number.isFinite(width) ? `${lo}-${hi} (${width} ports)` : "unreadable",
    `ephemeral ports for outgoing connections (upstreams A/B, MongoDB, nginx to workers): one per open connection to the same address plus those in TIME_WAIT; want >= ${opts.connections}`,
    { sysctl: ['net.ipv4.ip_local_port_range="10240 65000"'] },
  );

  const listenPorts = [
    c.port,
    c.statsPort,
    ...(c.directPortBase === undefined ? [] : Array.from({ length: c.workers }, (_, i) => c.directPortBase! + i)),
  ].filter((p) => p > 0);
  const inside = listenPorts.filter((p) => p >= lo && p <= hi);
  if (Number.isFinite(width)) {
    add(
      "listen ports vs ephemeral range",
      inside.length === 0,
      listenPorts.join(","),
      inside.length === 0
        ? "no listen port of qdp-server is in the ephemeral range"
        : `ports ${inside.join(",")} are inside ${lo}-${hi}: an outgoing connection may take one while a worker restarts and its bind fails`,
      { sysctl: [`net.ipv4.ip_local_reserved_ports=${inside.join(",")}`] },
    );
  }

  const tw = f.timeWait;
  const twHigh = tw !== null && Number.isFinite(width) && tw > width / 2;
  add(
    "TIME_WAIT sockets",
    !twHigh,
    tw === null ? "unreadable" : String(tw),
    twHigh
      ? `over half the ${width} ephemeral ports sit in TIME_WAIT (60 s each): outgoing connects will start failing; use keep-alive to upstreams and net.ipv4.tcp_tw_reuse=1`
      : "the side that closes first keeps each socket 60 s in TIME_WAIT; keep-alive to upstreams keeps this low",
    { sysctl: ["net.ipv4.tcp_tw_reuse=1"], other: ["keep-alive to upstreams and from nginx (see docs/tuning.md)"] },
  );

  const reuse = num(f.sysctl["net.ipv4.tcp_tw_reuse"]);
  const reuseOk = reuse === 1 || (reuse === 2 && !(tw !== null && Number.isFinite(width) && tw > width / 10));
  add(
    "net.ipv4.tcp_tw_reuse",
    reuseOk,
    String(reuse ?? "unreadable"),
    reuse === 1
      ? "outgoing connections may reuse ports in TIME_WAIT (safe with TCP timestamps)"
      : reuse === 2
        ? reuseOk
          ? "2 = reuse for loopback only; set 1 when upstreams or MongoDB are remote and TIME_WAIT grows"
          : `2 = loopback only, and ${tw} sockets are in TIME_WAIT: set 1 so connects to remote upstreams can reuse them`
        : "0 = outgoing connections never reuse a TIME_WAIT port; set 1",
    { sysctl: ["net.ipv4.tcp_tw_reuse=1"] },
  );

  const fin = num(f.sysctl["net.ipv4.tcp_fin_timeout"]);
  add(
    "net.ipv4.tcp_fin_timeout",
    fin !== null && fin <= 60,
    String(fin ?? "unreadable"),
    "how long an orphaned connection waits in FIN_WAIT_2 for the peer's FIN (not TIME_WAIT, which is always 60 s); <= 60 is fine, 15-30 frees sockets of vanished clients sooner",
    { sysctl: ["net.ipv4.tcp_fin_timeout=30"] },
  );

  const cpus = f.cpuQuota !== null ? Math.min(f.cpus, Math.max(1, Math.floor(f.cpuQuota))) : f.cpus;
  add(
    "CPUs vs QDP_WORKERS",
    c.workers <= cpus,
    `${cpus} CPU${cpus === 1 ? "" : "s"}${f.cpuQuota !== null ? ` (cgroup quota ${f.cpuQuota.toFixed(1)})` : ""}, QDP_WORKERS=${c.workers}`,
    c.workers <= cpus
      ? c.workers < cpus
        ? `${cpus - c.workers} CPU(s) left for nginx, MongoDB or the kernel's network work`
        : "one worker per CPU: each worker runs one JavaScript thread"
      : "more workers than CPUs: they compete for CPU time and latency grows; each worker runs one JavaScript thread",
    { other: [`QDP_WORKERS=${cpus}`] },
  );

  const keys = c.uapKeys !== "" || c.uapKeysFile !== undefined;
  const exposed = !isLoopback(c.host);
  add(
    "QDP_HOST and keys",
    !exposed || keys,
    `QDP_HOST=${c.host}, keys ${keys ? "set" : "none"}${c.insecure ? ", QDP_INSECURE=1" : ""}`,
    !exposed
      ? "loopback: only this machine can call"
      : keys
        ? "non-loopback with UAP keys: only signed calls run"
        : c.insecure
          ? "non-loopback without keys and QDP_INSECURE=1: anyone who reaches the port can call"
          : "non-loopback without keys: the server refuses to start (set QDP_UAP_KEYS or QDP_UAP_KEYS_FILE)",
    { other: ["QDP_UAP_KEYS=keyId:secret (or QDP_UAP_KEYS_FILE), see docs/signing.md"] },
  );
  if (f.tls !== null) {
    const t = f.tls;
    const days = t.notAfter === null ? null : Math.floor((t.notAfter.getTime() - f.now.getTime()) / 86_400_000);
    add(
      "TLS certificate",
      days !== null && days >= CERT_WARN_DAYS,
      t.notAfter === null ? `${t.path}: unreadable` : `${t.subject}, expires ${t.notAfter.toISOString().slice(0, 10)} (${days} days)`,
      t.notAfter === null
        ? `QDP_TLS_CERT cannot be read as a PEM certificate (${t.error}): workers would refuse to start`
        : days! < 0
          ? "the certificate has EXPIRED: clients refuse the connection"
          : days! < CERT_WARN_DAYS
            ? `expires in ${days} days (< ${CERT_WARN_DAYS}): renew it, replace the files and run a rolling reload (qdp reload) — new workers read them anew`
            : "the public port's certificate is valid for a while",
      { other: ["renew the certificate, write it to QDP_TLS_CERT / QDP_TLS_KEY, then `npm run reload -- --wait` (or systemctl reload qdp-server)"] },
    );
  }
  return checks;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

function readLimits(pid: number | "self"): Limits | null {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readText(`/proc/${pid}/limits`) ?? "");
  if (!m) return null;
  const n = (s: string) => (s === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(s));
  return { soft: n(m[1]!), hard: n(m[2]!) };
}

function readCertificate(path: string): NonNullable<Facts["tls"]> {
  try {
    const cert = new X509Certificate(readFileSync(path));
    return { path, notAfter: new Date(cert.validTo), subject: cert.subject.replace(/\n/g, ", "), error: null };
  } catch (err) {
    return { path, notAfter: null, subject: "", error: (err as Error).message };
  }
}

/** Reads the facts from /proc, the environment and (if one answers) the running server. */
export async function gatherFacts(env: Record<string, string | undefined>, stats: StatsTarget): Promise<Facts> {
  const sysctl = {} as Record<SysctlName, string | null>;
  for (const name of SYSCTLS) sysctl[name] = readText(`/proc/sys/${name.replaceAll(".", "/")}`)?.trim() ?? null;
  const tw = /^TCP:.*\btw (\d+)/m.exec(readText("/proc/net/sockstat") ?? "");
  const quota = (readText("/sys/fs/cgroup/cpu.max") ?? "").trim().split(/\s+/);
  let config: Config;
  let configProblems: string[] = [];
  try {
    config = loadConfig(env, availableParallelism());
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    configProblems = err.problems;
    config = loadConfig({}, availableParallelism());
  }
  const services = buildRegistry({ demo: config.demoServices })
    .list()
    .map((s) => s.def);
  const settings = describeSettings(services, env);
  const settingProblems = loadServiceSettings(services, env).problems;
  const workerNofile: Facts["workerNofile"] = [];
  try {
    const doc = await fetchStats(stats, 1500);
    for (const w of doc.workers) {
      const limits = w.pid === null ? null : readLimits(w.pid);
      if (w.pid !== null && limits) workerNofile.push({ index: w.index, pid: w.pid, limits });
    }
  } catch {
    // no server running: the checks use this process's limits only
  }
  return {
    kernel: release(),
    sysctl,
    nofile: readLimits("self"),
    workerNofile,
    timeWait: tw ? Number(tw[1]) : null,
    cpus: availableParallelism(),
    cpuQuota: quota.length === 2 && quota[0] !== "max" ? Number(quota[0]) / Number(quota[1]) : null,
    root: process.getuid?.() === 0,
    config,
    configProblems,
    settings,
    settingProblems,
    tls: config.tlsCert === undefined ? null : readCertificate(config.tlsCert),
    now: new Date(),
  };
}

/** The report text: one OK/WARN line per check, then the lines to apply. */
export function renderDoctor(checks: Check[], opts: DoctorOptions, config: Config, settings: Facts["settings"] = []): string {
  const idWidth = Math.max(...checks.map((c) => c.id.length));
  const lines: string[] = [
    `qdp doctor — kernel and limits for qdp-server (QDP_WORKERS=${config.workers}, QDP_BACKLOG=${config.backlog}, ${opts.connections} concurrent connections expected)`,
    "",
  ];
  for (const c of checks) {
    lines.push(`${c.status.padEnd(4)}  ${c.id.padEnd(idWidth)}  ${c.value}`);
    lines.push(`${" ".repeat(idWidth + 8)}${c.message}`);
  }
  if (settings.length > 0) {
    lines.push("", "Service settings (secrets are shown only as set / not set):");
    for (const s of settings) lines.push(`  ${s.env.padEnd(24)} ${s.value.padEnd(28)} ${s.service}: ${s.description}`);
  }
  const warns = checks.filter((c) => c.status === "WARN");
  const sysctls = [...new Set(warns.flatMap((c) => c.fix.sysctl ?? []))];
  const limits = [...new Set(warns.flatMap((c) => c.fix.limits ?? []))];
  const other = [...new Set(warns.flatMap((c) => c.fix.other ?? []))];
  if (sysctls.length > 0) {
    lines.push("", "Apply now (as root):", ...sysctls.map((s) => `  sysctl -w ${s}`));
    lines.push(
      "Keep across reboots: /etc/sysctl.d/90-qdp-server.conf, then `sysctl --system`:",
      ...sysctls.map((s) => `  ${s.replace("=", " = ").replaceAll('"', "")}`),
    );
  }
  if (limits.length > 0) lines.push("", "Open files for login sessions: /etc/security/limits.conf (or limits.d/qdp.conf):", ...limits.map((l) => `  ${l}`));
  if (other.length > 0) lines.push("", "Also:", ...other.map((o) => `  ${o}`));
  lines.push("", `${warns.length} WARN, ${checks.length - warns.length} OK — exit ${warns.length > 0 ? 1 : 0}. docs/tuning.md explains each line.`);
  return `${lines.join("\n")}\n`;
}

export const DOCTOR_USAGE = `Usage: bun run qdp doctor [--connections N] [--json] [--stats-port N]

Checks kernel settings and limits for qdp-server and prints what to change and why.
  --connections N   concurrent client connections to plan for (default 10000)
  --json            machine-readable result
Exit status: 0 all OK, 1 any WARN, 2 bad arguments.`;

/** `qdp doctor`. */
export async function doctorCommand(argv: string[], io: CommandIo): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: { json: { type: "boolean" }, connections: { type: "string" }, "stats-port": { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) {
    io.out(`${DOCTOR_USAGE}\n`);
    return 0;
  }
  const connections = values.connections === undefined ? 10_000 : Number(values.connections);
  if (!Number.isInteger(connections) || connections < 1 || connections > 10_000_000)
    throw new UsageError(`--connections ${JSON.stringify(values.connections)}: expected a whole number from 1 to 10000000`);
  const facts = await gatherFacts(io.env, resolveStatsTarget(values["stats-port"], io.env));
  const opts = { connections };
  const checks = evaluate(facts, opts);
  const warn = checks.some((c) => c.status === "WARN");
  if (values.json) io.out(`${JSON.stringify({ ok: !warn, connections, checks, settings: facts.settings }, null, 2)}\n`);
  else io.out(renderDoctor(checks, opts, facts.config, facts.settings));
  return warn ? 1 : 0;
}
