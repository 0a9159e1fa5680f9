/**
 * Real tools a test needs (chromium, openssl, systemd-analyze): found on the PATH, or installed
 * from Debian's packages with apt-get when missing. Without apt (or root) the caller skips with
 * the reason — except in CI (process.env.CI), where a missing tool must fail the run.
 */
const SBIN = "/usr/sbin:/usr/local/sbin:/sbin";

function find(binary: string): string | null {
  return Bun.which(binary) ?? Bun.which(binary, { PATH: SBIN });
}

export interface Tool {
  path: string | null;
  /** Why it is missing (empty when found). */
  why: string;
}

/** `binary`, installing Debian package `pkg` when it is missing. */
export function ensureTool(binary: string, pkg: string): Tool {
  const found = find(binary);
  if (found) return { path: found, why: "" };
  if (!Bun.which("apt-get")) return { path: null, why: `${binary} is not installed and apt-get is not available` };
  const sudo = process.getuid?.() === 0 ? [] : Bun.which("sudo") ? ["sudo", "-n"] : null;
  if (sudo === null) return { path: null, why: `${binary} is not installed and installing it needs root` };
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const run = (args: string[]) => Bun.spawnSync([...sudo, ...args], { env, stdout: "ignore", stderr: "pipe" });
  let r = run(["apt-get", "install", "-y", "--no-install-recommends", pkg]);
  if (r.exitCode !== 0) {
    run(["apt-get", "update"]);
    r = run(["apt-get", "install", "-y", "--no-install-recommends", pkg]);
  }
  const path = find(binary);
  return path ? { path, why: "" } : { path: null, why: `apt-get install ${pkg} failed: ${r.stderr.toString().slice(-500)}` };
}
