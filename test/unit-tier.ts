/**
 * `npm run test:unit` — the fast tier for your own loop: every test file that starts no process
 * (no cluster, Redis, FerretDB, nginx or uWSGI), run in-process in well under 30 s. The full
 * `npm test` stays the gate. A file joins the slow tier by using one of the helpers below.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const STARTS_PROCESSES = /\b(startCluster|Bun\.spawn|startRedis|mongoTestUrl|ensureNginx|startLegacy|startNginx|runChaos)\b/;

const files = ["test", "bench/lib"]
  .flatMap((dir) =>
    readdirSync(join(ROOT, dir))
      .filter((f) => f.endsWith(".test.ts"))
      .map((f) => `${dir}/${f}`),
  )
  .filter((f) => !STARTS_PROCESSES.test(readFileSync(join(ROOT, f), "utf8")));

const proc = Bun.spawn([process.execPath, "test", "--timeout", "30000", ...files.map((f) => `./${f}`)], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
process.exit(await proc.exited);
