/**
 * Which forward file the workers run, and when it changes. "Re-read on SIGHUP" means exactly:
 *
 * - the file (QDP_FORWARD_FILE; the variable itself is read once, at start) is read and checked
 *   at start and on each SIGHUP — by the supervisor, with the same code the workers use;
 * - an accepted text is written to a snapshot in QDP_RUNTIME_DIR, and every worker started
 *   after that (a reload's replacements, a crashed worker's respawn) builds its table from the
 *   snapshot, never from the file on disk — so editing the file does nothing until SIGHUP, and
 *   a half-edited file cannot reach a worker that happens to restart;
 * - a file that does not pass (unreadable, bad JSON, overlaps, bad URLs, a number that is also a
 *   local service) refuses the whole reload: it is logged with every problem, no worker is
 *   replaced, keys are not reloaded, and the cluster keeps serving the previous table;
 * - during the rolling reload each index switches when its replacement is ready; a call runs
 *   with the table of the worker that runs it (the user's owner).
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../core/config.ts";
import { buildRegistry } from "../services/index.ts";

/** Environment variable through which the supervisor tells workers where the snapshot is. */
export const SNAPSHOT_ENV = "QDP_FORWARD_SNAPSHOT";

/**
 * Reads and checks the forward file against the local services.
 * @returns the text and the number of forwarded functions
 * @throws ConfigError with every problem
 */
export function readForwardFile(path: string, demo: boolean): { text: string; functions: number } {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError([`QDP_FORWARD_FILE: cannot read ${path}: ${(err as Error).message}`]);
  }
  const registry = buildRegistry({ demo, forwardText: text });
  return { text, functions: registry.list().filter((s) => s.def.forward).length };
}

const SNAPSHOT_NAME = "forward.json";

/** Writes the accepted text where workers read it (atomically: a starting worker never sees half). */
export function writeSnapshot(runtimeDir: string, text: string): string {
  const path = join(runtimeDir, SNAPSHOT_NAME);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
  return path;
}

/** Removes the snapshot after a stop, so the runtime directory can go (main.ts cleans it up). */
export function removeSnapshot(runtimeDir: string): void {
  try {
    unlinkSync(join(runtimeDir, SNAPSHOT_NAME));
  } catch {}
}
