/**
 * How much RAM a worker's garbage collector is told the host has (`QDP_GC_RAM_MB`, passed as
 * Bun's `BUN_JSC_forceRAMSize`). JavaScriptCore paces its collections by the RAM it sees: on a
 * large host a worker holding thousands of slow calls let its garbage grow to about its live
 * heap again before collecting (bench B at 10,000 callers: 778–819 MiB peak RSS for both
 * workers; told 512 MiB … 12 GiB: 492–533 MiB; 16 GiB and above: as before). See docs/tuning.md.
 */
import { totalmem } from "node:os";

/** The cap of "auto": well below the 12–16 GiB where the collector went back to piling up. */
export const AUTO_GC_RAM_CAP_MB = 4096;
const MIB = 1024 * 1024;

/**
 * The MiB to pass, or null to leave the runtime's own reading.
 * @param setting the config's `gcRamMb` ("auto", 0 = the runtime's reading, or MiB)
 * @param hostBytes the host's RAM (os.totalmem())
 */
export function resolveGcRamMb(setting: number | "auto", workers: number, hostBytes: number): number | null {
  if (setting === 0) return null;
  if (setting !== "auto") return setting;
  return Math.max(64, Math.min(AUTO_GC_RAM_CAP_MB, Math.floor(hostBytes / MIB / Math.max(1, workers))));
}

/** What the workers get: the MiB their collectors see (null: the runtime's own reading) and the environment that says so. */
export interface WorkerGcRam {
  mb: number | null;
  env: Record<string, string>;
}

/**
 * The workers' setting, decided once by the supervisor. A `BUN_JSC_forceRAMSize` already in the
 * supervisor's environment is the operator's and wins: the workers inherit it, nothing is added.
 */
export function workerGcRam(setting: number | "auto", workers: number, env: Record<string, string | undefined>): WorkerGcRam {
  const own = env.BUN_JSC_forceRAMSize;
  if (own) {
    const bytes = Number(own);
    return { mb: Number.isFinite(bytes) ? Math.round(bytes / MIB) : null, env: {} };
  }
  const mb = resolveGcRamMb(setting, workers, totalmem());
  return { mb, env: mb === null ? {} : { BUN_JSC_forceRAMSize: String(mb * MIB) } };
}
