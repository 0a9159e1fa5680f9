/**
 * Process management for the benchmark: every process we start is registered here, runs in
 * its own session/process group (via `setsid`) with a raised fd limit (via `prlimit`), and is
 * stopped by pid -- never by name -- at the end, on Ctrl-C, or on an exception.
 */
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

/**
 * File-descriptor limit given to every spawned process (wrk at -c10000 needs > 10k): 200,000,
 * or the hard limit when we may not raise it (no CAP_SYS_RESOURCE, e.g. in a container).
 */
export const NOFILE = desiredNofile(200_000);

function desiredNofile(want: number): number {
  if (process.getuid?.() === 0) {
    // root may raise its hard limit unless the sandbox forbids it: try it on a throwaway child.
    const probe = Bun.spawnSync(["prlimit", `--nofile=${want}:${want}`, "--", "true"]);
    if (probe.exitCode === 0) return want;
  }
  const hard = Bun.spawnSync(["sh", "-c", "ulimit -Hn"]).stdout.toString().trim();
  return hard === "unlimited" ? want : Math.min(want, Number(hard) || 1024);
}

export interface Managed {
  name: string;
  pid: number;
  proc: Subprocess;
  /** stdout+stderr go here; shown when a start fails. */
  logPath: string;
}

const running = new Set<Managed>();
/** Short-lived helpers (wrk runs): killed first at cleanup. */
const transient = new Set<Subprocess>();

/** Register a short-lived child (e.g. wrk) so Ctrl-C also ends it; call the result when it exits. */
export function trackTransient(proc: Subprocess): () => void {
  transient.add(proc);
  return () => transient.delete(proc);
}
const cleanups: Array<() => Promise<void> | void> = [];

export interface SpawnOptions {
  name: string;
  cmd: string[];
  env?: Record<string, string | undefined>;
  cwd?: string;
  logDir: string;
}

/**
 * Start `cmd` as the leader of a new process group. `setsid` and `prlimit` both exec, so the
 * pid we get back is the pid of the program itself, and `-pid` addresses all its children.
 */
export function spawnManaged(opts: SpawnOptions): Managed {
  const logPath = join(opts.logDir, `${opts.name}.log`);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
  const fd = openSync(logPath, "a");
  const proc = Bun.spawn(["setsid", "prlimit", `--nofile=${NOFILE}:${NOFILE}`, "--", ...opts.cmd], {
    cwd: opts.cwd,
    env,
    stdin: "ignore",
    stdout: fd,
    stderr: fd,
  });
  closeSync(fd);
  const m: Managed = { name: opts.name, pid: proc.pid, proc, logPath };
  running.add(m);
  return m;
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // group already gone
  }
}

/**
 * Stop one managed process: `signal` to the pid (the program's own graceful stop), wait up to
 * `graceMs`, then SIGKILL to its whole process group so no worker or child outlives it.
 */
export async function stopManaged(m: Managed, signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000): Promise<void> {
  if (!running.has(m)) return;
  try {
    process.kill(m.pid, signal);
  } catch {
    // already exited
  }
  const exited = await Promise.race([m.proc.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
  if (!exited) {
    console.error(`  ! ${m.name} (pid ${m.pid}) did not exit within ${graceMs} ms of ${signal}; SIGKILL to its group`);
  }
  // Children (uWSGI/node workers, qdp workers) may linger after the leader: clear the group.
  signalGroup(m.pid, "SIGKILL");
  if (!exited) await Promise.race([m.proc.exited, Bun.sleep(2000)]);
  running.delete(m);
}

/** Run `fn` at final cleanup (after every managed process has been stopped). */
export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

let cleaning: Promise<void> | undefined;

/** Stop everything still running (newest first) and run registered cleanups. Idempotent. */
export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    for (const p of transient) p.kill("SIGKILL");
    for (const m of [...running].reverse()) await stopManaged(m, "SIGTERM", 5000);
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error("  ! cleanup failed:", err);
      }
    }
  })();
  return cleaning;
}

/** Ctrl-C / SIGTERM / uncaught errors: stop what we started, then exit. */
export function installSignalHandlers(): void {
  const bail = (code: number) => () => {
    console.error(`\nstopping everything this benchmark started ...`);
    void cleanupAll().finally(() => process.exit(code));
  };
  process.on("SIGINT", bail(130));
  process.on("SIGTERM", bail(143));
  process.on("uncaughtException", (err) => {
    console.error(err);
    bail(1)();
  });
}

/** A fresh temp dir, removed at cleanup. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Last `lines` lines of a managed process's log (for error messages). */
export function tailLog(m: Managed, lines = 20): string {
  try {
    return readFileSync(m.logPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Is the process still alive? */
export function isAlive(m: Managed): boolean {
  return running.has(m) && m.proc.exitCode === null && m.proc.signalCode === null;
}

/** All pids in the process trees rooted at `roots` (from /proc/<pid>/stat ppid links). */
export function processTree(roots: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Field 4 is the ppid; the command (field 2) may contain spaces, so split after ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // raced with an exit
    }
  }
  const out: number[] = [];
  const stack = [...roots];
  while (stack.length) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Sum of VmRSS (bytes) over the process trees rooted at `roots`. */
export function treeRssBytes(roots: number[]): number {
  let total = 0;
  for (const pid of processTree(roots)) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // exited
    }
  }
  return total;
}

/** CPU seconds (user + system) used so far by processes; ones that exited count 0. */
export function cpuSeconds(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      // exited
    }
  }
  return total;
}

/** The whole box's CPU jiffies: [busy (user, nice, system, irq, softirq, steal), all]. */
export function boxJiffies(): [number, number] {
  const f = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  const busy = user + nice + system + irq + softirq + steal;
  return [busy, busy + idle + iowait];
}

/**
 * Waits until the box is quiet: the share of all cores busy over `windowMs` below `threshold`,
 * at most `maxMs`. A contender stopped by wrk may still be working off what it had queued (the
 * study's uWSGI holds ~2,000 slow calls after a C = 10,000 round of B), and the next contender
 * must not run beside that. Returns the milliseconds waited and whether the box got quiet.
 */
export async function quietBox(o: { threshold?: number; windowMs?: number; maxMs?: number } = {}): Promise<{ waitedMs: number; quiet: boolean }> {
  const threshold = o.threshold ?? 0.15;
  const windowMs = o.windowMs ?? 500;
  const maxMs = o.maxMs ?? 30_000;
  const started = Date.now();
  for (;;) {
    const [b0, t0] = boxJiffies();
    await Bun.sleep(windowMs);
    const [b1, t1] = boxJiffies();
    const share = t1 > t0 ? (b1 - b0) / (t1 - t0) : 0;
    if (share < threshold) return { waitedMs: Date.now() - started, quiet: true };
    if (Date.now() - started >= maxMs) return { waitedMs: Date.now() - started, quiet: false };
  }
}
