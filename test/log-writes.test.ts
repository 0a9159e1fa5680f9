/**
 * Log lines reach stdout in few write(2) calls: handed to Bun's stdout sink one by one, as they
 * once were, each line was one system call per call served (~8 µs each on the benchmark VM).
 * Lines are gathered in the logger and written per flush in writes of whole lines up to
 * PIPE_BUF; an info line left waiting when the process exits is still written. Counted with
 * strace, a real tool.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ATOMIC_WRITE_BYTES } from "../src/telemetry/logger.ts";
import { BUN, ROOT } from "./support/cluster.ts";
import { ensureTool } from "./support/tools.ts";

const strace = ensureTool("strace", "strace");
if (!strace.path) console.warn(`log-writes: skipped — ${strace.why}`);
test.if(!strace.path && !!process.env.CI)("strace is available in CI", () => {
  throw new Error(`strace is required in CI: ${strace.why}`);
});

test.if(!!strace.path)(
  "1,000 access lines of one tick go out in writes of whole lines up to PIPE_BUF, not one each; the last info line survives process.exit",
  () => {
    const dir = mkdtempSync(join(tmpdir(), "qdp-log-writes-"));
    const trace = join(dir, "trace");
    const out = join(dir, "out");
    const r = Bun.spawnSync(
      [strace.path!, "-f", "-y", "-e", "trace=write,writev,pwrite64,pwritev", "-o", trace, BUN, join(ROOT, "test/fixtures/log-burst.ts"), "1000"],
      {
        stdout: Bun.file(out),
        stderr: "pipe",
      },
    );
    expect(r.exitCode).toBe(0);
    const lines = readFileSync(out, "utf8").trim().split("\n");
    expect(lines.length).toBe(1001);
    expect(JSON.parse(lines[999]!).requestId).toBe("r999");
    expect(JSON.parse(lines[1000]!).msg).toBe("last line, left to the exit hook");
    // -y names each descriptor's file: Bun may write stdout through a duplicate of fd 1.
    const writes = readFileSync(trace, "utf8")
      .split("\n")
      .filter((l) => l.includes(`<${out}>`))
      .map((l) => Number(/= (\d+)$/.exec(l)?.[1] ?? Number.NaN));
    const bytes = readFileSync(out).length;
    expect(writes.length).toBeGreaterThan(0);
    // Whole lines of at most PIPE_BUF per write (so processes sharing stdout never cut into each
    // other's lines: test/log-interleave.test.ts), and as few writes as that allows — about 15
    // lines each here, where one write per line made 1,000.
    for (const n of writes) expect(n).toBeLessThanOrEqual(ATOMIC_WRITE_BYTES);
    expect(writes.reduce((a, n) => a + n, 0)).toBe(bytes);
    expect(writes.length).toBeLessThanOrEqual(Math.ceil(bytes / (ATOMIC_WRITE_BYTES - 300)) + 2);
  },
);

test.if(process.platform === "linux")("the logger puts stdout in non-blocking mode, so a reader that falls behind never stops the event loop", async () => {
  // The logger writes with writeSync and retries on EAGAIN: on a blocking pipe the same write
  // would wait for the reader. Creating Bun's stdout writer is what sets O_NONBLOCK (04000).
  const code = `await import(${JSON.stringify(join(ROOT, "src/telemetry/logger.ts"))}); console.error(require("node:fs").readFileSync("/proc/self/fdinfo/1", "utf8"))`;
  const proc = Bun.spawn([BUN, "-e", code], { stdout: "pipe", stderr: "pipe" });
  const [info] = await Promise.all([new Response(proc.stderr).text(), new Response(proc.stdout).text()]);
  expect(await proc.exited).toBe(0);
  const flags = Number.parseInt(/flags:\s*(\d+)/.exec(info)?.[1] ?? "", 8);
  expect(flags & 0o4000).toBe(0o4000);
});

test.if(!!strace.path)("lines with multi-byte text and lines longer than one write arrive whole and in order, each write cut after a line", () => {
  const dir = mkdtempSync(join(tmpdir(), "qdp-log-mixed-"));
  const trace = join(dir, "trace");
  const out = join(dir, "out");
  const r = Bun.spawnSync([strace.path!, "-f", "-y", "-e", "trace=write,writev,pwrite64,pwritev", "-o", trace, BUN, join(ROOT, "test/fixtures/log-mixed.ts")], {
    stdout: Bun.file(out),
    stderr: "pipe",
  });
  expect(r.exitCode).toBe(0);
  const text = readFileSync(out, "utf8");
  const lines = text
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { requestId?: string; msg: string; i?: number; blob?: string });
  expect(lines.map((l) => l.requestId ?? l.i)).toEqual(Array.from({ length: 600 }, (_, i) => (i % 50 === 7 || i % 100 === 13 ? i : `r${i}`)));
  expect(lines.filter((l) => l.msg === "价格 — quote ✓").length).toBe(12);
  expect(lines.filter((l) => l.blob?.length === 10_000).length).toBe(6);
  // Each write ends a line; only a line longer than one write is written alone past the bound.
  const bytes = readFileSync(out);
  const sizes = readFileSync(trace, "utf8")
    .split("\n")
    .filter((l) => l.includes(`<${out}>`))
    .map((l) => Number(/= (\d+)$/.exec(l)?.[1] ?? Number.NaN));
  let at = 0;
  for (const n of sizes) {
    const chunk = bytes.subarray(at, at + n);
    expect(chunk[chunk.length - 1]).toBe(0x0a);
    if (n > ATOMIC_WRITE_BYTES) expect(chunk.indexOf(0x0a)).toBe(n - 1);
    at += n;
  }
  expect(at).toBe(bytes.length);
});

test("more than 4 MiB of lines waiting: the rest are dropped and counted in one warn line, none lost unaccounted", () => {
  // 30,000 access lines (~8 MB) in one tick: nothing is written before the tick ends, so the
  // lines past the 4 MiB bound are dropped, and the next flush says how many.
  const dir = mkdtempSync(join(tmpdir(), "qdp-log-drop-"));
  const out = join(dir, "out");
  const r = Bun.spawnSync([BUN, join(ROOT, "test/fixtures/log-burst.ts"), "30000"], { stdout: Bun.file(out), stderr: "pipe" });
  expect(r.exitCode).toBe(0);
  const lines = readFileSync(out, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { msg: string; requestId?: string; dropped?: number });
  const calls = lines.filter((l) => l.msg === "call");
  const warns = lines.filter((l) => l.msg === "log lines dropped");
  expect(warns.length).toBe(1);
  expect(warns[0]!.dropped).toBeGreaterThan(0);
  expect(calls.length + warns[0]!.dropped!).toBe(30_000);
  // The lines kept are the first ones, in order, and fill the bound exactly: a line is queued
  // while less than 4 MiB waits, so the kept ones pass it by less than one line's length (each
  // line is counted by its bytes as it is written into the buffer).
  expect(calls.map((l) => l.requestId)).toEqual(Array.from({ length: calls.length }, (_, i) => `r${i}`));
  const lengths = calls.map((l) => JSON.stringify(l).length + 1);
  const over = lengths.reduce((a, n) => a + n, 0) - 4 * 1024 * 1024;
  expect(over).toBeGreaterThan(0);
  expect(over).toBeLessThanOrEqual(Math.max(...lengths));
});

test("an access line flushed later says when its call ended, and keeps its place among the lines around it", () => {
  const r = Bun.spawnSync([BUN, join(ROOT, "test/fixtures/log-deferred.ts")], { stdout: "pipe", stderr: "pipe" });
  expect(r.exitCode).toBe(0);
  const lines = r.stdout
    .toString()
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { t: string; msg: string; user?: string });
  expect(lines.map((l) => l.msg)).toEqual(["before", "call", "after"]);
  expect(lines[1]!.t).toBe("2026-01-02T03:04:05.678Z");
  expect(lines[1]!.user).toBe('quote"and\u00e9');
  expect(lines[2]!.t).toBe("2026-01-02T03:09:00.000Z");
});

test("an access line is the line log.info would write for its entry, to the byte, for plain, hostile and sampled entries", () => {
  const r = Bun.spawnSync([BUN, join(ROOT, "test/fixtures/log-same-line.ts")], { stdout: "pipe", stderr: "pipe" });
  expect(r.exitCode).toBe(0);
  const lines = r.stdout.toString().trim().split("\n");
  expect(lines.length).toBe(8);
  // Written in pairs: the access writer's line, then log.info's for the same entry.
  for (let i = 0; i < lines.length; i += 2) expect(lines[i]).toBe(lines[i + 1]!);
  expect(JSON.parse(lines[2]!)).toMatchObject({ user: 'quote"and\u00e9', requestId: "back\\slash", func: null, route: "qdp" });
  expect(JSON.parse(lines[4]!)).toMatchObject({ ms: 12.345, sample: 0.25, code: "UNAUTHENTICATED" });
});

test("lines queued while earlier writes wait for a reader that fell behind arrive whole and in order", async () => {
  // 4,000 lines (~1 MB) in 20 ticks while the reader sleeps: the pipe fills at once, so most
  // writes wait for it, and each later tick's lines are queued behind them.
  const fixture = join(ROOT, "test/fixtures/log-backlog.ts");
  const proc = Bun.spawn(["sh", "-c", `${JSON.stringify(BUN)} ${JSON.stringify(fixture)} 20 200 | { sleep 0.5; cat; }`], { stdout: "pipe", stderr: "inherit" });
  const text = await new Response(proc.stdout).text();
  expect(await proc.exited).toBe(0);
  const ids = text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => (JSON.parse(l) as { requestId: string }).requestId);
  expect(ids).toEqual(Array.from({ length: 4000 }, (_, i) => `r${i}`));
}, 30_000);

test("a steady stream of access lines that stdout keeps up with loses none, however many", () => {
  const dir = mkdtempSync(join(tmpdir(), "qdp-log-steady-"));
  const out = join(dir, "out");
  const r = Bun.spawnSync([BUN, join(ROOT, "test/fixtures/log-steady.ts"), "100000"], { stdout: Bun.file(out), stderr: "pipe" });
  expect(r.exitCode).toBe(0);
  const text = readFileSync(out, "utf8");
  expect(text).not.toContain("log lines dropped");
  expect(text.split("\n").length - 1).toBe(100_000);
});
