/**
 * What one access-log line costs the process that writes it, away from the HTTP path: 200 bursts
 * of 1,000 lines, each burst flushed, to /dev/null and to a pipe read by this process (as
 * journald or docker read a worker's stdout). Prints CPU µs per line (user + system) for each.
 *
 *   bun bench/log-lines.ts [--rounds 3]
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "3" }, child: { type: "boolean", default: false } } });
const BURSTS = 200;
const LINES = 1000;

if (values.child) {
  const { createAccessWriter, flushLogs } = await import("../src/telemetry/logger.ts");
  const access = createAccessWriter("info", { worker: 0, pid: process.pid });
  const { accessEntry } = await import("../test/fixtures/access-entry.ts");
  const e = accessEntry(0);
  const t0 = process.cpuUsage();
  for (let b = 0; b < BURSTS; b++) {
    for (let i = 0; i < LINES; i++) {
      e.requestId = `r${b}-${i}`;
      access(e);
    }
    await flushLogs();
  }
  const t = process.cpuUsage(t0);
  console.error(`${((t.user + t.system) / (BURSTS * LINES)).toFixed(3)}`);
} else {
  for (let round = 1; round <= Number(values.rounds); round++) {
    const out: string[] = [];
    for (const target of ["/dev/null", "pipe"] as const) {
      const proc = Bun.spawn([process.execPath, import.meta.path, "--child"], { stdout: target === "pipe" ? "pipe" : "ignore", stderr: "pipe" });
      if (target === "pipe") for await (const _ of proc.stdout as ReadableStream<Uint8Array>);
      const us = (await new Response(proc.stderr).text()).trim();
      await proc.exited;
      out.push(`${target} ${us} µs`);
    }
    console.log(`round ${round}: CPU per access line: ${out.join(", ")}`);
  }
}
