/**
 * Is a change worth it? `bun bench/compare.ts [--workload echo|users|signed] [--rounds 12]
 * [--seconds 4] [--connections 100] <name>=<rev>[:ENV=value,…] …`
 *
 * Starts one 2-worker qdp cluster per variant — `<rev>` is `.` for the working tree, or any git
 * revision, checked out into a temporary worktree that shares this checkout's node_modules —
 * then drives them in turns with the same wrk workload (bench A's echo, its 1,000 rotating users,
 * or those calls signed) for `--rounds` short rounds, the order reversed every other round. It
 * prints each round's req/s and the workers' CPU per request, then every variant against the
 * first: the median of the per-round differences and in how many rounds it was lower or higher.
 *
 * Why paired rounds: on this VM a run drifts by up to 40% within minutes (18 → 25 µs per request
 * midway through one run of identical servers), more than most single changes are worth. Each
 * variant's own median moves with the drift; a difference taken within one round does not.
 * "lower in 11 of 12 rounds" is a change; "lower in 6 of 12" is noise, whatever the medians say.
 * Prints only; no assertions.
 *
 * @example
 * ```sh
 * bun bench/compare.ts before=HEAD~1 after=.                       # the last commit
 * bun bench/compare.ts --workload users on=. off=.:QDP_ACCESS_LOG=0 # a setting
 * ```
 */
import { rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cleanupAll, cpuSeconds, installSignalHandlers, makeTempDir, onCleanup, processTree } from "./lib/procs.ts";
import { qdpServer, REPO_ROOT, type RunningServer } from "./lib/servers.ts";
import { runWorkload, type Workload } from "./lib/runner.ts";
import { paired, spread } from "./lib/stats.ts";
import { BENCH_KEY, echo, ECHO_BODY, rotatingUsers, signedUsers } from "./lib/workloads.ts";

const { values, positionals } = parseArgs({
  args: Bun.argv.slice(2),
  allowPositionals: true,
  options: {
    workload: { type: "string", default: "echo" },
    rounds: { type: "string", default: "12" },
    seconds: { type: "string", default: "4" },
    connections: { type: "string", default: "100" },
  },
});

interface Variant {
  name: string;
  rev: string;
  env: Record<string, string>;
}

/** `name=rev[:ENV=value,ENV=value]`. */
function parseVariant(spec: string): Variant {
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new Error(`variant "${spec}": expected name=rev[:ENV=value,…]`);
  const [rev = "", envText = ""] = splitOnce(spec.slice(eq + 1), ":");
  const env: Record<string, string> = {};
  for (const kv of envText.split(",").filter(Boolean)) {
    const [k, v] = splitOnce(kv, "=");
    if (!k || v === undefined) throw new Error(`variant "${spec}": "${kv}" is not ENV=value`);
    env[k] = v;
  }
  return { name: spec.slice(0, eq), rev: rev === "" ? "." : rev, env };
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const at = s.indexOf(sep);
  return at < 0 ? [s, undefined] : [s.slice(0, at), s.slice(at + sep.length)];
}

function git(args: string[]): void {
  const r = Bun.spawnSync(["git", ...args], { cwd: REPO_ROOT, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`git ${args.join(" ")}: ${r.stderr.toString().trim()}`);
}

/** The source tree of `rev`: this checkout for ".", else a temporary worktree removed at exit. */
function treeOf(rev: string, tmp: string, name: string): string {
  if (rev === ".") return REPO_ROOT;
  const dir = join(tmp, `tree-${name}`);
  git(["worktree", "add", "--detach", "--force", dir, rev]);
  // The worktree shares this checkout's installed packages; the link goes before the worktree
  // does, so removing the worktree cannot reach into node_modules.
  symlinkSync(join(REPO_ROOT, "node_modules"), join(dir, "node_modules"));
  onCleanup(() => {
    rmSync(join(dir, "node_modules"), { force: true });
    git(["worktree", "remove", "--force", dir]);
  });
  return dir;
}

const variants = positionals.map(parseVariant);
if (variants.length < 2) {
  console.error("usage: bun bench/compare.ts [--workload echo|users|signed] [--rounds N] [--seconds S] [--connections C] <name>=<rev>[:ENV=value,…] …");
  process.exit(2);
}
installSignalHandlers();
const tmp = makeTempDir("qdp-compare-");
const workloads: Record<string, () => Workload> = {
  echo: () => echo,
  users: () => rotatingUsers("/api/1000", ECHO_BODY),
  signed: () => signedUsers(tmp, () => {}),
};
const pick = workloads[values.workload];
if (pick === undefined) throw new Error(`unknown workload ${values.workload} (workloads: ${Object.keys(workloads).join(", ")})`);
const workload = pick();
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const connections = Number(values.connections);

/** One variant's cluster: bench A's qdp server (bench/lib/servers.ts) from the variant's source tree. */
function start(v: Variant): Promise<RunningServer> {
  const keys: Record<string, string> = values.workload === "signed" ? { QDP_UAP_KEYS: `${BENCH_KEY.keyId}:${BENCH_KEY.secret}` } : {};
  return qdpServer(v.name, v.name, () => ({ ...keys, ...v.env }), treeOf(v.rev, tmp, v.name)).start({ tmp, nginxWorkers: "auto" });
}

const servers: RunningServer[] = [];
const cpu = new Map<string, number[]>();
const rps = new Map<string, number[]>();
try {
  for (const v of variants) {
    servers.push(await start(v));
    cpu.set(v.name, []);
    rps.set(v.name, []);
  }
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? servers : [...servers].reverse();
    for (const s of order) {
      // The workers only: the supervisor's own CPU does not move with the load.
      const workers = processTree(s.roots).filter((pid) => !s.roots.includes(pid));
      const before = cpuSeconds(workers);
      const result = await runWorkload(s.baseUrl, workload, { id: "compare", connections, seconds });
      const us = ((cpuSeconds(workers) - before) / Math.max(1, result.requests)) * 1e6;
      cpu.get(s.id)!.push(us);
      rps.get(s.id)!.push(result.rps);
      const failed = result.errors.status + result.errors.timeout + result.errors.read + result.errors.connect;
      console.log(
        `round ${round + 1}: ${s.id.padEnd(12)} ${Math.round(result.rps).toLocaleString("en-US").padStart(8)} req/s  ${us.toFixed(2)} µs/req${failed > 0 ? `  ${failed} errors` : ""}`,
      );
    }
  }
} finally {
  for (const s of servers) await s.stop();
}

const ref = variants[0]!.name;
console.log(`\n${values.workload}, -c${connections}, ${rounds} rounds of ${seconds} s; differences against ${ref}, paired by round\n`);
console.log("| variant | rev | env | req/s (median) | workers' CPU µs/req (median) | CPU difference (median) | lower / higher rounds |");
console.log("| --- | --- | --- | ---: | ---: | ---: | ---: |");
for (const v of variants) {
  const p = paired(cpu.get(v.name)!, cpu.get(ref)!);
  const diff = v.name === ref ? "–" : `${p.median >= 0 ? "+" : ""}${p.median.toFixed(2)} µs`;
  const count = v.name === ref ? "–" : `${p.lower} / ${p.higher} of ${p.rounds}`;
  const env = Object.entries(v.env)
    .map(([k, val]) => `${k}=${val}`)
    .join(" ");
  console.log(
    `| ${v.name} | ${v.rev} | ${env || "–"} | ${Math.round(spread(rps.get(v.name)!).median).toLocaleString("en-US")} | ${spread(cpu.get(v.name)!).median.toFixed(2)} | ${diff} | ${count} |`,
  );
}
await cleanupAll();
