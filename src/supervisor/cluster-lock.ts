/**
 * One port is one cluster (CONTRACT.md §1), and one runtime directory is one cluster.
 *
 * The supervisor holds two locks for its whole life, taken before anything binds: one named by
 * the public port, one by the runtime directory's device and inode (so two paths to the same
 * directory are one lock). Each lock is a listening Unix socket in Linux's abstract namespace
 * (`\0qdp-server/…`): binding a name that a live process holds fails, and the kernel frees the
 * name the moment the holder dies, so a kill -9 never leaves a stale lock and there is no file
 * to clean up — nor a file that a shared `$TMPDIR` or another user could pre-create. The name
 * is per network namespace, like the port itself, and independent of QDP_RUNTIME_DIR and
 * TMPDIR, so two starts with different runtime directories still meet on the port's lock.
 *
 * The holder answers whoever connects with its identity (pid, ports, runtime directory), which
 * is how a refused start names the cluster that is running. Any local user can read that (none
 * of it is secret) or take a free name first, which only stops a start — as binding the port
 * first would.
 *
 * A port served by something that holds no lock (another program, or a qdp-server from before
 * these locks) is found by binding the port once without SO_REUSEPORT (probePort).
 */
import type { UnixSocketListener } from "bun";

/** Who holds a lock: what a refused start prints. */
export interface LockHolder {
  pid: number;
  host: string;
  port: number;
  statsPort: number;
  runtimeDir: string;
}

/** Another cluster holds the lock or serves the port; the message names it. */
export class ClusterLockError extends Error {}

export interface ClusterLocks {
  release(): void;
}

export function portLockName(port: number): string {
  return `\0qdp-server/port/${port}`;
}

export function dirLockName(dirId: string): string {
  return `\0qdp-server/dir/${dirId}`;
}

/** Binds an abstract socket name that answers with `info()`; null if a live process holds it. */
function hold(name: string, info: () => LockHolder): UnixSocketListener<undefined> | null {
  try {
    return Bun.listen({
      unix: name,
      socket: {
        // Answer once asked: answering at once on open races Bun's own connect (the asker
        // sees ECONNRESET before the connection is reported open).
        data(socket) {
          socket.end(JSON.stringify(info()));
        },
        error() {},
      },
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") return null;
    throw err;
  }
}

/** Asks a lock's holder who it is; null if it does not answer sensibly within `timeoutMs`. */
export async function askHolder(name: string, timeoutMs = 1000): Promise<LockHolder | null> {
  let text = "";
  const done = new Promise<void>((resolve) => {
    Bun.connect({
      unix: name,
      socket: {
        open(s) {
          s.write("?");
        },
        data(s, chunk) {
          text += chunk.toString();
          if (text.length > 4096) s.end();
        },
        close() {
          resolve();
        },
        error() {
          resolve();
        },
      },
    }).catch(() => resolve());
  });
  await Promise.race([done, Bun.sleep(timeoutMs)]);
  try {
    const h = JSON.parse(text) as LockHolder;
    return typeof h.pid === "number" ? h : null;
  } catch {
    return null;
  }
}

function describe(h: LockHolder | null): string {
  if (!h) return "a process that did not say who it is";
  return `the qdp-server with supervisor pid ${h.pid}, port ${h.host}:${h.port}, stats port ${h.statsPort}, runtime dir ${h.runtimeDir}`;
}

/**
 * Takes a lock, or names its holder. A holder that does not answer may be a supervisor dying
 * this instant (killed: the kernel frees the name once its process has closed its files), so
 * the name is tried again for up to `waitMs` before the holder is reported as unknown.
 */
async function holdOrAsk(name: string, info: () => LockHolder, waitMs = 3000): Promise<[UnixSocketListener<undefined> | null, LockHolder | null]> {
  const until = Date.now() + waitMs;
  for (;;) {
    const lock = hold(name, info);
    if (lock) return [lock, null];
    const h = await askHolder(name);
    if (h !== null || Date.now() >= until) return [null, h];
    await Bun.sleep(100);
  }
}

/**
 * Takes the port's and the runtime directory's locks, or throws ClusterLockError naming the
 * holder. `info` is read each time someone asks, so a stats port picked later shows.
 */
export async function acquireClusterLocks(opts: { port: number; runtimeDir: string; dirId: string; info: () => LockHolder }): Promise<ClusterLocks> {
  if (process.platform !== "linux") return { release() {} };
  const held: Array<UnixSocketListener<undefined>> = [];
  const release = () => {
    for (const l of held.splice(0)) l.stop(true);
  };
  const portName = portLockName(opts.port);
  const [portLock, portHolder] = await holdOrAsk(portName, opts.info);
  if (!portLock) {
    const h = portHolder;
    throw new ClusterLockError(
      `port ${opts.port} is already served by ${describe(h)}; one port is one cluster, so this start stops here and the running one is untouched${h ? ` (stop it with: bun run qdp stop --stats-port ${h.statsPort})` : ""}`,
    );
  }
  held.push(portLock);
  const dirName = dirLockName(opts.dirId);
  const [dirLock, dirHolder] = await holdOrAsk(dirName, opts.info);
  if (!dirLock) {
    release();
    const h = dirHolder;
    throw new ClusterLockError(`QDP_RUNTIME_DIR=${opts.runtimeDir} is already used by ${describe(h)}; give each cluster its own runtime directory`);
  }
  held.push(dirLock);
  return { release };
}

/**
 * Whether `host:port` can be bound without SO_REUSEPORT, i.e. nothing listens there. Retried for
 * `waitMs`: the workers of a supervisor killed by SIGKILL leave within 2 s (worker.ts).
 */
export async function probePort(host: string, port: number, waitMs: number): Promise<boolean> {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      Bun.listen({ hostname: host, port, socket: { data() {} } }).stop(true);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    }
    if (Date.now() >= until) return false;
    await Bun.sleep(100);
  }
}
