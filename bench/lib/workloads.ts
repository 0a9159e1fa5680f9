/** The request mixes shared by the scenarios (bench/wrk/*.lua plus their arguments). */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Workload } from "./runner.ts";
import { loadSigner, writeSignedFiles } from "./sign.ts";

/** The small JSON body of the echo calls. */
export const ECHO_BODY = '{"symbol":"ACME","qty":1,"note":"bench"}';
export const QUOTE_BODY = '{"symbol":"X"}';
export const USERS = 1000;

/** The study's HTML hello. */
export const hello: Workload = { method: "GET", path: "/uwsgi/", script: "get.lua", args: () => [] };

/** JSON echo, no user (qdp: no hop). */
export const echo: Workload = { method: "POST", path: "/api/1000", script: "post-json.lua", args: () => [ECHO_BODY] };

/** `POST path` as one of 1,000 rotating users, drawn per request. */
export function rotatingUsers(path: string, body: string, countStatuses = false): Workload {
  return { method: "POST", path, script: countStatuses ? "users-status.lua" : "users.lua", args: () => [body, String(USERS), "u"] };
}

/** One signing key for the signed qdp server, fresh per benchmark run. */
export const BENCH_KEY = { keyId: "bench", secret: randomBytes(24).toString("base64url") };

/**
 * Signed calls (default: echo) as 1,000 rotating users. Right before each run it writes enough signed header
 * sets for 1.5 × duration × a rate of twice this contender's fastest so far (60k/s before its
 * first run, at least 30k/s), split per wrk thread, in a temp dir that `tmpRoot` cleans up.
 */
export function signedUsers(tmpRoot: string, log: (line: string) => void, target = "/api/1000", body = ECHO_BODY): Workload {
  let previous: string | undefined;
  return {
    method: "POST",
    path: target,
    script: "signed.lua",
    async args({ c, estRps }) {
      if (c.durationSec > 240) throw new Error("signed runs must fit the server's 300 s timestamp window: use --duration <= 240");
      const { sign, source } = await loadSigner();
      const rate = estRps > 0 ? Math.max(30_000, 2 * estRps) : 60_000;
      const perThread = Math.ceil((rate * c.durationSec * 1.5) / c.threads);
      // The previous run's files are spent (their nonces were accepted): free the disk.
      if (previous) rmSync(previous, { recursive: true, force: true });
      const dir = mkdtempSync(join(tmpRoot, "signed-"));
      previous = dir;
      const t0 = performance.now();
      const prefix = await writeSignedFiles(
        { dir, threads: c.threads, perThread, keyId: BENCH_KEY.keyId, secret: BENCH_KEY.secret, target, body, users: USERS },
        sign,
      );
      log(`signed ${perThread * c.threads} header sets in ${Math.round(performance.now() - t0)} ms with ${source}`);
      return [body, prefix, BENCH_KEY.keyId];
    },
  };
}
