/**
 * Installs the study's stack and wrk from Debian's packages when they are missing.
 * `uwsgi-core` is Debian's uWSGI binary without the init-script wrapper package (`uwsgi`),
 * so installing it starts no system service.
 */
import { existsSync } from "node:fs";

export const DEBIAN_PACKAGES = [
  "wrk",
  "nginx",
  "redis-server",
  "uwsgi-core",
  "uwsgi-plugin-python3",
  "uwsgi-plugin-gevent-python3",
  "python3-flask",
  "python3-gevent",
  "python3-requests",
  "python3-pymongo",
];

function has(cmd: string): boolean {
  return Bun.spawnSync(["sh", "-c", `command -v ${cmd}`]).exitCode === 0;
}

/** What is missing (empty = ready). */
export function missingDeps(): string[] {
  const missing: string[] = [];
  for (const cmd of ["wrk", "nginx", "redis-server", "uwsgi", "setsid", "prlimit", "node"]) if (!has(cmd)) missing.push(cmd);
  for (const so of ["python3_plugin.so", "gevent_python3_plugin.so"]) {
    if (!existsSync(`/usr/lib/uwsgi/plugins/${so}`)) missing.push(so);
  }
  // uWSGI embeds Debian's Python, so the modules must be importable by /usr/bin/python3.
  const py = Bun.spawnSync(["/usr/bin/python3", "-c", "import flask, gevent, requests, pymongo"], { env: { PATH: "/usr/bin:/bin" } });
  if (py.exitCode !== 0) missing.push("python3 modules flask/gevent/requests/pymongo");
  return missing;
}

function apt(args: string[]): boolean {
  console.log(`  $ apt-get ${args.join(" ")}`);
  const r = Bun.spawnSync(["apt-get", ...args], {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    stdout: "inherit",
    stderr: "inherit",
  });
  return r.exitCode === 0;
}

/** Install what is missing; throws with the manual command if that is impossible. */
export function ensureDeps(): void {
  const missing = missingDeps();
  if (!missing.length) return;
  console.log(`missing: ${missing.join(", ")} — installing from Debian's packages`);
  const install = ["install", "-y", "--no-install-recommends", ...DEBIAN_PACKAGES];
  if (process.getuid?.() !== 0) {
    throw new Error(`not root; run: sudo apt-get update && sudo apt-get ${install.join(" ")}`);
  }
  // A fresh machine has no package lists: update once, only when the first try fails.
  if (!apt(install)) {
    if (!apt(["update"]) || !apt(install)) throw new Error("apt-get install failed");
  }
  const still = missingDeps();
  if (still.length) throw new Error(`still missing after install: ${still.join(", ")}`);
}
