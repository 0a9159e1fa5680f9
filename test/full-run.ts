/**
 * `npm test`'s test step: `bun test` over everything, then every failure's message again at the
 * very end. Bun prints a failure's diff where the test ran and only its name in the closing
 * summary; a CI log that keeps just its tail (ours does) would otherwise say which test failed
 * but never why. The JUnit report Bun writes beside its console output holds the messages.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { junitFailures } from "./support/junit.ts";

const ROOT = join(import.meta.dir, "..");
const REPORT = join(ROOT, ".cache", "test-report.xml");
/** Lines of each failure's message to repeat; diffs are short, stacks are not needed twice. */
const MAX_LINES = 40;

mkdirSync(join(ROOT, ".cache"), { recursive: true });
rmSync(REPORT, { force: true });
const proc = Bun.spawn([process.execPath, "test", "--timeout", "60000", "--reporter=junit", `--reporter-outfile=${REPORT}`, ...process.argv.slice(2)], {
  cwd: ROOT,
  stdout: "inherit",
  stderr: "inherit",
});
const code = await proc.exited;
if (code !== 0 && existsSync(REPORT)) {
  const failures = junitFailures(readFileSync(REPORT, "utf8"));
  if (failures.length > 0) {
    console.error(`\n${failures.length} failure(s), with their messages:`);
    for (const f of failures) {
      const lines = f.message.split("\n");
      const shown = lines.slice(0, MAX_LINES).join("\n");
      console.error(`\n(fail) ${f.file} > ${f.name}\n${shown}${lines.length > MAX_LINES ? `\n… ${lines.length - MAX_LINES} more lines` : ""}`);
    }
  }
}
process.exit(code);
