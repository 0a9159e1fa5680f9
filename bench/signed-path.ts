/**
 * What a signed call costs the edge beyond the same call unsigned, end to end in one process:
 * `bun bench/signed-path.ts [--rounds 20] [--calls 20000]`.
 *
 * Builds one worker as a worker process does (create-worker.ts) and two call handlers over it,
 * one verifying with a key ring and one in open mode, then feeds both bench A (c)'s requests as
 * the public port does: each head parsed from its bytes (so the signing headers are fresh
 * substrings, as in a worker, not the flat strings of bench/verify-cost.ts), its call run by
 * demo.echo, its access line encoded. Every signed request carries its own nonce (a replay would
 * be refused), so the replay check works as in production. The two handlers run in alternated
 * rounds; it prints the median per-round difference in ns per call and in how many rounds the
 * signed one cost more. Prints only; no assertions.
 */
import { Buffer } from "node:buffer";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SessionStore } from "../src/affinity/sessions.ts";
import { parseHead } from "../src/core/http1.ts";
import { parseKeyList } from "../src/core/keys.ts";
import { createReplayCache } from "../src/core/replay-cache.ts";
import { createReplayFence, guardReplay } from "../src/core/replay-fence.ts";
import { sha256Hex, sign } from "../src/core/signing.ts";
import { createCallHandler, type EdgeCounters } from "../src/edge/call-handler.ts";
import { callInput } from "../src/edge/public-server.ts";
import { buildRegistry } from "../src/services/index.ts";
import { createSqliteStore } from "../src/stores/sqlite-store.ts";
import { createAccessWriter, createLogger } from "../src/telemetry/logger.ts";
import { createWorker } from "../src/worker/create-worker.ts";
import { paired } from "./lib/stats.ts";
import { ECHO_BODY, USERS } from "./lib/workloads.ts";

// The access log writes to this process's stdout: the measuring process runs with its stdout on
// /dev/null (the lines cost their encoding and write in both handlers) and reports on stderr.
if (process.env.QDP_SIGNED_PATH_CHILD !== "1") {
  const child = Bun.spawn([process.execPath, import.meta.path, ...Bun.argv.slice(2)], {
    env: { ...process.env, QDP_SIGNED_PATH_CHILD: "1" },
    stdout: "ignore",
    stderr: "inherit",
  });
  process.exit(await child.exited);
}

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { rounds: { type: "string", default: "20" }, calls: { type: "string", default: "20000" } },
});
const rounds = Number(values.rounds);
const calls = Number(values.calls);

const dir = mkdtempSync(join(tmpdir(), "qdp-signed-path-"));
const log = createLogger("warn");
const registry = buildRegistry({ demo: true });
const records = createSqliteStore({ dataDir: dir });
const limits = { workers: 1, maxInflight: 1e9, upstreamTimeoutMs: 1000, upstreamMaxConnections: 64, ownerWaitMs: 3000, hopMaxPending: 1e6, timeoutMs: 30_000 };
const { router } = createWorker(
  limits,
  { index: 0, gen: 1, secret: "bench" },
  {
    log,
    records,
    registry,
    settings: new Map(),
    sessions: new SessionStore(100_000, 600_000),
    replay: guardReplay(createReplayCache({ maxEntries: 50_000_000 }), createReplayFence({ persistedSec: 0, persist: (sec) => sec })),
  },
);
const secret = "bench-path-secret-0123456789abcdef";
const ring = parseKeyList(`bench:${secret}`).ring;
const access = { share: 1, write: createAccessWriter("info", { worker: 0, pid: process.pid }) };
const handler = (keys: typeof ring | null) => {
  const counters: EdgeCounters = { requests: 0, inflight: 0, errors: {}, clientAborts: 0 };
  const h = createCallHandler({
    index: 0,
    config: { maxBody: 1 << 20, timeoutMs: 30_000, maxInflight: 1e9 },
    registry,
    router,
    keys: () => keys,
    allow: null,
    counters,
    draining: () => false,
    log,
    accessLog: access,
  });
  return { h, counters };
};
const signedHandler = handler(ring);
const openHandler = handler(null);

const body = Buffer.from(ECHO_BODY);
const bodyHex = sha256Hex(body);
const now = Math.floor(Date.now() / 1000);
let nonces = 0;
/** One signed request as wrk sends it in bench A (c): a fresh nonce, one of 1,000 users. */
function request(): Buffer {
  const n = nonces++;
  const user = `u${n % USERS}`;
  const nonce = `bench-${n.toString(36).padStart(12, "0")}`;
  const signature = sign(secret, { method: "POST", target: "/api/1000", timestamp: now, nonce, user, bodySha256Hex: bodyHex });
  return Buffer.from(
    `POST /api/1000 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nX-QDP-Key-Id: bench\r\nX-QDP-Timestamp: ${now}\r\n` +
      `X-QDP-Nonce: ${nonce}\r\nX-QDP-Signature: ${signature}\r\nX-QDP-User: ${user}\r\nContent-Length: ${body.length}\r\n\r\n${ECHO_BODY}`,
  );
}

/** The public port's work for one request: parse its head, build the call's input as the port does, run it. */
function serve(h: ReturnType<typeof handler>["h"], buf: Buffer): void {
  const { head, bodyAt } = parseHead(buf, 0)!;
  const input = callInput({ head, body: buf.subarray(bodyAt, bodyAt + head.contentLength), clientIp: "127.0.0.1" });
  const reply = h.handleCall(input, { kind: "api", funcNo: "1000" });
  if (reply instanceof Promise || reply.status !== 200) throw new Error(`demo.echo answered ${reply instanceof Promise ? "later" : reply.status}`);
}

function run(h: ReturnType<typeof handler>["h"], batch: Buffer[]): number {
  const t0 = performance.now();
  for (const buf of batch) serve(h, buf);
  return ((performance.now() - t0) * 1e6) / batch.length;
}

const fresh = (n: number) => Array.from({ length: n }, request);
// Warm-up: both paths compiled before anything counts.
for (let i = 0; i < 5; i++) {
  run(signedHandler.h, fresh(calls / 4));
  run(openHandler.h, fresh(calls / 4));
}
const signedNs: number[] = [];
const openNs: number[] = [];
for (let r = 0; r < rounds; r++) {
  const a = fresh(calls);
  const b = fresh(calls);
  // Alternate which goes first: a slower half of the round must not land on one side.
  if (r % 2 === 0) {
    signedNs.push(run(signedHandler.h, a));
    openNs.push(run(openHandler.h, b));
  } else {
    openNs.push(run(openHandler.h, b));
    signedNs.push(run(signedHandler.h, a));
  }
}
const d = paired(signedNs, openNs);
console.error(`Bun ${Bun.version}: bench A (c)'s request, parsed, checked, run by demo.echo and logged, one process, ${rounds} rounds of ${calls} calls`);
console.error(`  unsigned (open mode)   ${Math.round(openNs.toSorted((x, y) => x - y)[rounds >> 1]!)} ns per call (median round)`);
console.error(`  signed                 ${Math.round(signedNs.toSorted((x, y) => x - y)[rounds >> 1]!)} ns per call (median round)`);
console.error(
  `  signed - unsigned      ${Math.round(d.median)} ns per call (median of per-round differences; signed higher in ${d.higher} of ${rounds} rounds)`,
);
if (signedHandler.counters.errors && Object.keys(signedHandler.counters.errors).length > 0)
  console.error(`  errors: ${JSON.stringify(signedHandler.counters.errors)}`);
rmSync(dir, { recursive: true, force: true });
process.exit(0);
