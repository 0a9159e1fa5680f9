/** The runner waits for the box to go quiet between rounds: busy is seen as busy, and the wait ends once it is not. */
import { expect, test } from "bun:test";
import { availableParallelism } from "node:os";
import { quietBox } from "./procs.ts";

test("quietBox: cores kept busy are not quiet; once they stop, it is quiet again", async () => {
  // One spinning process per core keeps the box's busy share near 1.
  const hogs = Array.from({ length: availableParallelism() }, () => Bun.spawn([process.execPath, "-e", "for (;;) {}"], { stdout: "ignore", stderr: "ignore" }));
  try {
    await Bun.sleep(300);
    const busy = await quietBox({ threshold: 0.8, windowMs: 300, maxMs: 1000 });
    expect(busy.quiet).toBe(false);
    expect(busy.waitedMs).toBeGreaterThanOrEqual(1000);
  } finally {
    for (const h of hogs) h.kill("SIGKILL");
    await Promise.all(hogs.map((h) => h.exited));
  }
  const idle = await quietBox({ threshold: 0.8, windowMs: 300, maxMs: 10_000 });
  expect(idle.quiet).toBe(true);
}, 20_000);
