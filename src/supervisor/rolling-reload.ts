/**
 * The rolling reload (SIGHUP, `qdp reload`): replace each index in turn through the hand-off, so
 * never fewer than N-1 workers serve and no session or call is lost; stop at the first
 * replacement that cannot start (the old worker keeps serving, the rest are not touched) and
 * report why — `qdp reload --wait` and /stats read the ledger.
 */
import type { Logger, ReloadReport } from "../types.ts";

/** What /stats says about reloads. */
export interface ReloadLedger {
  /** Reloads that finished. */
  reloads: number;
  /** Reloads that stopped because something could not be applied. */
  failures: number;
  /** The latest reload asked for, running or finished. */
  last: ReloadReport | null;
}

export interface RollingReloadDeps<S extends { index: number; proc: unknown; state: string }> {
  slots: readonly S[];
  /** True once the cluster is stopping: the reload ends where it is. */
  stopping(): boolean;
  /** Replaces one index through the hand-off; null when done, else why not. */
  replaceOne(slot: S): Promise<string | null>;
  /** Asks a worker to re-read its key file (SIGHUP applies key rotation without a restart). */
  reloadKeys(slot: S): void;
  /**
   * Re-reads what workers must not see half-edited (the forward file) before any worker is
   * replaced: null when fine (or nothing to re-read), else why the reload is refused.
   */
  refresh?(): string | null;
  log: Logger;
}

export function createRollingReload<S extends { index: number; proc: unknown; state: string }>(d: RollingReloadDeps<S>) {
  const ledger: ReloadLedger = { reloads: 0, failures: 0, last: null };
  let seq = 0;

  const finish = (report: ReloadReport, state: "done" | "failed", error: string | null = null) => {
    report.state = state;
    report.error = error;
    report.finishedAt = Date.now();
    if (state === "failed") ledger.failures++;
  };

  async function run(): Promise<void> {
    const report: ReloadReport = { seq: ++seq, state: "running", startedAt: Date.now(), finishedAt: null, error: null };
    ledger.last = report;
    const refused = d.refresh?.() ?? null;
    if (refused !== null) {
      finish(report, "failed", refused);
      return;
    }
    d.log.info("rolling reload started", { seq: report.seq });
    for (const s of d.slots) d.reloadKeys(s);
    for (const slot of d.slots) {
      if (d.stopping()) return;
      if (!slot.proc || slot.state !== "ready") {
        d.log.warn("skipping a worker that is not ready during reload", { index: slot.index });
        continue;
      }
      const why = await d.replaceOne(slot);
      if (why !== null) {
        d.log.error("reload failed: the replacement worker could not start; the old worker keeps serving and the remaining indices were not reloaded", {
          index: slot.index,
          seq: report.seq,
          reason: why,
        });
        finish(report, "failed", `worker ${slot.index}'s replacement could not start: ${why}`);
        return;
      }
    }
    ledger.reloads++;
    finish(report, "done");
    d.log.info("rolling reload finished", { reloads: ledger.reloads, seq: report.seq });
  }

  /** A reload that threw (a bug): recorded as failed rather than left "running". */
  function crashed(err: unknown): void {
    if (ledger.last?.state === "running") finish(ledger.last, "failed", (err as Error).message);
  }

  return { run, crashed, ledger };
}
