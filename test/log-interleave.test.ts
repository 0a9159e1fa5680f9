/**
 * Workers and the supervisor share one stdout (a pipe to journald, docker or the test harness).
 * A write to a pipe is atomic only up to PIPE_BUF (4096 bytes): the logger hands lines over in
 * writes of whole lines no larger than that, so lines of processes writing at once never cut into
 * each other. Three real processes each write bursts of access lines into one pipe.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { BUN, ROOT } from "./support/cluster.ts";

async function burstsIntoOnePipe(reader: string): Promise<{ broken: string[]; lines: number }> {
  const fixture = join(ROOT, "test/fixtures/log-burst.ts");
  const one = `${JSON.stringify(BUN)} ${JSON.stringify(fixture)} 4000`;
  // One shell, one stdout pipe: the three writers share it as workers share the supervisor's.
  const proc = Bun.spawn(["sh", "-c", `{ ${one} & ${one} & ${one} & wait; } | ${reader}`], { stdout: "pipe", stderr: "inherit" });
  const text = await new Response(proc.stdout).text();
  expect(await proc.exited).toBe(0);
  const lines = text.split("\n").filter((l) => l !== "");
  const broken = lines.filter((l) => {
    try {
      JSON.parse(l);
      return false;
    } catch {
      return true;
    }
  });
  return { broken: broken.slice(0, 3), lines: lines.length };
}

test("three processes logging bursts into one pipe: every line arrives whole", async () => {
  expect(await burstsIntoOnePipe("cat")).toEqual({ broken: [], lines: 3 * 4001 });
}, 30_000);

test("the same with a reader that falls behind (the pipe fills and the writers wait): every line arrives whole", async () => {
  expect(await burstsIntoOnePipe("{ sleep 0.5; cat; }")).toEqual({ broken: [], lines: 3 * 4001 });
}, 30_000);

test("a process that exits while the pipe is full still writes every line, in order", async () => {
  // process.exit with ~600 KiB of lines waiting and a reader that takes 4 KiB every 20 ms: the pipe
  // is full when the exit hook writes its last line. Bun's stdout writer, which the logger used,
  // held one write then, tried it once more at exit and dropped it (15 lines lost, 3 runs of 3).
  const fixture = join(ROOT, "test/fixtures/log-burst.ts");
  const reader = join(ROOT, "test/fixtures/slow-reader.ts");
  const proc = Bun.spawn(["sh", "-c", `${JSON.stringify(BUN)} ${JSON.stringify(fixture)} 2000 | ${JSON.stringify(BUN)} ${JSON.stringify(reader)}`], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const text = await new Response(proc.stdout).text();
  expect(await proc.exited).toBe(0);
  const ids = text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => (JSON.parse(l) as { requestId?: string; msg: string }).requestId ?? "last");
  expect(ids).toEqual([...Array.from({ length: 2000 }, (_, i) => `r${i}`), "last"]);
}, 30_000);
