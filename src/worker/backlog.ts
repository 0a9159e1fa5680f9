/**
 * Sets the listen backlog of this process's public socket. Bun.serve has no backlog option and
 * listens with 512; under a burst of thousands of new connections (wrk -c5000, a UAP restart)
 * that queue overflows and the kernel drops SYNs, which clients see as 1–3 s stalls. Linux lets
 * a process call listen() again on a listening socket to change its backlog, so we find our
 * socket's descriptor through /proc (the LISTEN entry on our port whose inode is among our
 * open fds) and call libc's listen(fd, backlog). The kernel caps it at net.core.somaxconn
 * (`bun run qdp doctor` checks that). Linux only; elsewhere it logs and does nothing.
 */
import { dlopen, FFIType } from "bun:ffi";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Logger } from "../services/types.ts";

function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      if (cols[3] === "0A" && cols[1]!.endsWith(`:${hexPort}`)) inodes.add(cols[9]!);
    }
  }
  return inodes;
}

/** Descriptors of this process's listening sockets on `port`. */
export function listeningFds(port: number): number[] {
  const inodes = listeningInodes(port);
  const fds: number[] = [];
  for (const name of readdirSync("/proc/self/fd")) {
    let target = "";
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && inodes.has(m[1]!)) fds.push(Number(name));
  }
  return fds;
}

let libc: { symbols: { listen: (fd: number, backlog: number) => number } } | null = null;

export function setListenBacklog(port: number, backlog: number, log: Logger): boolean {
  if (process.platform !== "linux") {
    log.warn("QDP_BACKLOG is applied on Linux only");
    return false;
  }
  try {
    libc ??= dlopen("libc.so.6", { listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } });
    const fds = listeningFds(port);
    if (fds.length === 0) {
      log.warn("could not find the listening socket to set QDP_BACKLOG", { port });
      return false;
    }
    for (const fd of fds) {
      if (libc.symbols.listen(fd, backlog) !== 0) {
        log.warn("listen() refused the new backlog", { fd, backlog });
        return false;
      }
    }
    return true;
  } catch (err) {
    log.warn("could not set QDP_BACKLOG", { err: String(err) });
    return false;
  }
}
