/**
 * Where the replay marks live (`core/replay-fence.ts`): one small text file per worker index,
 * `<QDP_DATA_DIR>/replay/w<index>`, holding the largest signed timestamp (unix seconds) that
 * index has accepted.
 *
 * A mark is written to a temporary file of this process and renamed over the old one, so a
 * reader sees the old value or the new one, never half of one. The write is synchronous and
 * returns once the kernel has it: that survives kill -9 of any process (the page cache belongs
 * to the kernel), not the loss of the host before the kernel wrote it back (docs/signing.md).
 * No fsync: it would put a disk flush on the request path once a second.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatMark, parseMark, type MarkReading } from "../core/replay-fence.ts";

export interface ReplayMarksOptions {
  /** `QDP_DATA_DIR`; the marks go to its `replay/` subdirectory, created if missing. */
  dataDir: string;
  /** This worker's index: the one mark it writes. */
  index: number;
}

export interface ReplayMarks {
  /** The directory of the marks. */
  readonly dir: string;
  /** This index's mark; `null` when there is none yet. */
  readOwn(): MarkReading | null;
  /** Every index's mark in the directory (of any earlier worker count too). */
  readAll(): MarkReading[];
  /**
   * Makes this index's mark at least `sec`: reads it, and writes `sec` unless it is already
   * that high (another process of this index — the old worker during a reload — may have written
   * more; a mark is never lowered). An unreadable mark is overwritten. Throws when it cannot write.
   * @returns the mark now on file.
   */
  write(sec: number): number;
  /** Removes this index's temporary files left by a process killed between write and rename. */
  removeStaleTemp(): void;
}

const MARK_NAME = /^w([0-9]{1,6})$/;

/** Opens the mark directory of one worker index (creating the directory; throws if it cannot). */
export function createReplayMarks(o: ReplayMarksOptions): ReplayMarks {
  const dir = join(o.dataDir, "replay");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const own = `w${o.index}`;
  const tmp = join(dir, `${own}.${process.pid}.tmp`);

  const read = (name: string): MarkReading | null => {
    let text: string;
    try {
      text = readFileSync(join(dir, name), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      return { name, error: (err as Error).message };
    }
    const sec = parseMark(text);
    return sec === null ? { name, error: `not a mark: ${JSON.stringify(text.slice(0, 40))}` } : { name, sec };
  };

  return {
    dir,
    readOwn: () => read(own),
    readAll() {
      const out: MarkReading[] = [];
      for (const name of readdirSync(dir)) {
        if (!MARK_NAME.test(name)) continue;
        const m = read(name);
        if (m !== null) out.push(m);
      }
      return out;
    },
    write(sec) {
      const current = read(own);
      if (current !== null && "sec" in current && current.sec >= sec) return current.sec;
      writeFileSync(tmp, formatMark(sec), { mode: 0o600 });
      renameSync(tmp, join(dir, own));
      return sec;
    },
    removeStaleTemp() {
      for (const name of readdirSync(dir)) {
        if (name.startsWith(`${own}.`) && name.endsWith(".tmp") && name !== `${own}.${process.pid}.tmp`) rmSync(join(dir, name), { force: true });
      }
    },
  };
}
