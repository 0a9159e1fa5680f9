/**
 * QDP_RUNTIME_DIR, where the hop sockets live. Whoever can write that directory can replace a
 * worker's socket with a listener of their own, so it is trusted only when it is this user's
 * and nobody else's: a directory (not a symbolic link) owned by the server's uid with mode 0700.
 * A directory the server makes itself is set to exactly that; one that was already there and
 * is anything else stops start-up with a sentence saying what was found and what is required.
 *
 * A directory the server made carries a marker file, so that whichever run of the server stops
 * last removes it (when nothing else is left in it), even after a crash in between.
 */
import { chmodSync, lstatSync, mkdirSync, type Stats, readdirSync, rmdirSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HOP_SOCKET_NAME } from "../affinity/hop-server.ts";
import { CALL_BOARD_NAME } from "../worker/call-board.ts";

/** The runtime directory cannot be trusted or made; the message is one line for the operator. */
export class RuntimeDirError extends Error {}

/** Marks a runtime directory the server created (see the file comment). */
const MARKER = ".qdp-server-created";

export interface RuntimeDir {
  path: string;
  /** The device and inode of the directory, which name its lock whatever path reaches it. */
  id: string;
  /** This run created it. */
  created: boolean;
}

function uid(): number {
  return process.getuid?.() ?? 0;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * Makes the directory (mode 0700) or checks the one that is there; throws RuntimeDirError.
 * Nothing else is touched: leftovers are removed only once the directory's lock is held
 * (removeStaleSockets).
 */
export function prepareRuntimeDir(path: string): RuntimeDir {
  const where = `QDP_RUNTIME_DIR=${path}`;
  let created = false;
  let st = lstatOrNull(path, where);
  if (!st) {
    try {
      mkdirSync(path, { recursive: true, mode: 0o700 });
      // mkdir's mode passes through the umask, and a directory made a moment ago by someone
      // else must not pass for ours: write the marker only into a directory we made.
      st = lstatSync(path);
      if (st.isDirectory() && st.uid === uid()) {
        chmodSync(path, 0o700);
        writeFileSync(join(path, MARKER), "", { mode: 0o600, flag: "wx" });
        created = true;
        st = lstatSync(path);
      }
    } catch (err) {
      throw new RuntimeDirError(
        `${where}: cannot create it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); choose a directory this user can create`,
      );
    }
  }
  const mine = uid();
  if (st.isSymbolicLink()) {
    throw new RuntimeDirError(
      `${where}: is a symbolic link; required: a directory owned by uid ${mine} with mode 0700 (point QDP_RUNTIME_DIR at the directory itself)`,
    );
  }
  if (!st.isDirectory()) {
    throw new RuntimeDirError(`${where}: is not a directory; required: a directory owned by uid ${mine} with mode 0700`);
  }
  if (st.uid !== mine || (st.mode & 0o7777) !== 0o700) {
    throw new RuntimeDirError(
      `${where}: owned by uid ${st.uid} with mode ${octal(st.mode)}; required: owned by uid ${mine} (the server's user) with mode 0700, since whoever can write it can take over the hop sockets. Remove it or fix it (chown ${mine}, chmod 0700)`,
    );
  }
  return { path, id: `${st.dev}:${st.ino}`, created };
}

function lstatOrNull(path: string, where: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    throw new RuntimeDirError(`${where}: cannot inspect it (${code ?? (err as Error).message})`);
  }
}

/**
 * Removes hop sockets (and workers' call boards) of a cluster that is gone (a kill -9 leaves
 * them). Only for a caller holding the directory's lock, which proves no live cluster uses them.
 * Returns their names.
 */
export function removeStaleSockets(path: string): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(path)) {
    if (!HOP_SOCKET_NAME.test(name) && !CALL_BOARD_NAME.test(name)) continue;
    try {
      unlinkSync(join(path, name));
      removed.push(name);
    } catch {}
  }
  return removed;
}

/**
 * After a stop: removes what is left of this cluster's sockets, then the directory if the
 * server made it (see removeRuntimeDirIfUnused). Only for the holder of the directory's lock.
 */
export function cleanUpRuntimeDir(path: string): void {
  try {
    removeStaleSockets(path);
  } catch {}
  removeRuntimeDirIfUnused(path);
}

/** Removes the directory if the server made it (now or in an earlier run) and nothing but the marker is in it. */
export function removeRuntimeDirIfUnused(path: string): void {
  try {
    const rest = readdirSync(path);
    if (rest.length === 1 && rest[0] === MARKER) {
      unlinkSync(join(path, MARKER));
      rmdirSync(path);
    }
  } catch {}
}
