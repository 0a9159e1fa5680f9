/**
 * A tool from Debian's packages for tests: found on the PATH, or installed with apt-get when
 * missing (as root, or with password-less sudo). Callers skip when it cannot be had, except in
 * CI (process.env.CI), where a missing tool fails.
 */

function find(command: string): string | null {
  return Bun.which(command) ?? Bun.which(command, { PATH: "/usr/bin:/usr/sbin:/usr/local/bin:/usr/local/sbin" });
}

/** The command's path, installing `pkg` when missing; null (with the reason) when impossible. */
export function ensureDebianTool(command: string, pkg: string): { path: string | null; why: string } {
  const found = find(command);
  if (found) return { path: found, why: "" };
  if (!Bun.which("apt-get")) return { path: null, why: `${command} is not installed and apt-get is not available` };
  const sudo = process.getuid?.() === 0 ? [] : Bun.which("sudo") ? ["sudo", "-n"] : null;
  if (sudo === null) return { path: null, why: `${command} is not installed and installing it needs root` };
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const run = (args: string[]) => Bun.spawnSync([...sudo, ...args], { env, stdout: "ignore", stderr: "pipe" });
  let r = run(["apt-get", "install", "-y", "--no-install-recommends", pkg]);
  if (r.exitCode !== 0) {
    // A fresh machine has no package lists: update once, only when the first try fails.
    run(["apt-get", "update"]);
    r = run(["apt-get", "install", "-y", "--no-install-recommends", pkg]);
  }
  const path = find(command);
  return path ? { path, why: "" } : { path: null, why: `apt-get install ${pkg} failed: ${r.stderr.toString().slice(-500)}` };
}
