/**
 * "A signed call runs at most once, whatever happened to the processes meanwhile" (CONTRACT.md
 * §4), on the real cluster: 60 signed calls (40 with a user, 20 without) are recorded as raw
 * bytes, the processes crash or restart in every way an operator meets, and every byte-for-byte
 * re-send is refused with 401 without running — demo.counter (whose sessions start again from
 * zero) and the upstream hits of demo.quote prove it. A fresh signature then runs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signRequest } from "../src/client/sign.ts";
import { alive, startCluster, type Cluster } from "./support/cluster.ts";
import { startUpstream, type Upstream } from "./support/upstream.ts";

const SECRET = "durable-secret-0123456789abcdef0123456789ab";

/** One recorded request: its exact bytes, and what it was. */
interface Recorded {
  bytes: Uint8Array;
  user: string | null;
  timestamp: number;
}

interface RawAnswer {
  status: number;
  body: any;
}

const encoder = new TextEncoder();

/** A complete HTTP/1.1 request as bytes. The Host is fixed, so the bytes do not depend on the port. */
function rawRequest(target: string, body: string, headers: Record<string, string>): Uint8Array {
  const lines = [
    `POST ${target} HTTP/1.1`,
    "Host: qdp.test",
    "Content-Type: application/json",
    `Content-Length: ${encoder.encode(body).length}`,
    "Connection: close",
  ];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return encoder.encode(`${lines.join("\r\n")}\r\n\r\n${body}`);
}

/** Writes the bytes on a fresh connection and reads the response until the server closes it. */
async function sendRaw(port: number, bytes: Uint8Array): Promise<RawAnswer> {
  const chunks: Uint8Array[] = [];
  const text = await new Promise<string>((resolve, reject) => {
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(s) {
          s.write(bytes);
        },
        data(_s, chunk) {
          chunks.push(new Uint8Array(chunk));
        },
        close() {
          resolve(Buffer.concat(chunks).toString("utf8"));
        },
        error(_s, err) {
          reject(err);
        },
      },
    }).catch(reject);
  });
  const split = text.indexOf("\r\n\r\n");
  const head = text.slice(0, split);
  let body = text.slice(split + 4);
  if (/^transfer-encoding:\s*chunked/im.test(head)) {
    let out = "";
    for (let at = 0; ; ) {
      const eol = body.indexOf("\r\n", at);
      const size = parseInt(body.slice(at, eol), 16);
      if (!(size > 0)) break;
      out += body.slice(eol + 2, eol + 2 + size);
      at = eol + 2 + size + 2;
    }
    body = out;
  }
  return { status: Number(head.split(" ")[1]), body: JSON.parse(body) };
}

let seq = 0;

/** Signs and records one call; the timestamp is now, as UAP would stamp it. */
function record(target: string, body: string, user: string | null): Recorded {
  const headers = signRequest({ keyId: "uap", secret: SECRET, method: "POST", target, user, body });
  return { bytes: rawRequest(target, body, headers), user, timestamp: Number(headers["X-QDP-Timestamp"]) };
}

/**
 * The 60 calls: 40 demo.counter calls of 10 users (half with X-QDP-User, half with the user only
 * in the envelope) and 20 demo.quote calls without a user (half /api, half envelope).
 */
function workload(tag: string): { calls: Recorded[]; users: string[] } {
  const users = Array.from({ length: 10 }, (_, i) => `dur-${tag}-${process.pid}-${seq++}-${i}`);
  const calls: Recorded[] = [];
  for (let round = 0; round < 4; round++) {
    for (const u of users) {
      calls.push(round % 2 === 0 ? record("/api/1001", "{}", u) : record("/qdp", JSON.stringify({ funcNo: 1001, userId: u, data: {} }), null));
    }
  }
  for (let i = 0; i < 20; i++) {
    const symbol = `S${tag}${i}`;
    calls.push(i % 2 === 0 ? record("/api/1002", JSON.stringify({ symbol }), null) : record("/qdp", JSON.stringify({ funcNo: 1002, data: { symbol } }), null));
  }
  return { calls, users };
}

/** Sends the workload once: every call must run (counts 1..4 per user, two upstream hits per quote). */
async function runOnce(c: Cluster, w: { calls: Recorded[]; users: string[] }, up: Upstream, firstCount = 1): Promise<void> {
  const hitsBefore = up.received;
  const answers = [];
  for (const call of w.calls) answers.push(await sendRaw(c.port, call.bytes));
  expect(answers.map((a) => a.status)).toEqual(w.calls.map(() => 200));
  // The last counter call of each user (round 4) saw its fourth count.
  expect(answers.slice(30, 40).map((a) => a.body.data.count)).toEqual(w.users.map(() => firstCount + 3));
  expect(up.received - hitsBefore).toBe(40);
}

/** Re-sends every recorded call byte for byte: all 401, none ran (no upstream hit). */
async function replayAll(c: Cluster, calls: Recorded[], up: Upstream): Promise<RawAnswer[]> {
  const hitsBefore = up.received;
  const answers: RawAnswer[] = [];
  for (const call of calls) answers.push(await sendRaw(c.port, call.bytes));
  expect(answers.map((a) => a.status)).toEqual(calls.map(() => 401));
  for (const a of answers) expect(a.body.error.code).toBe("UNAUTHENTICATED");
  expect(up.received).toBe(hitsBefore);
  return answers;
}

/** Waits until the clock has passed `sec`, as a UAP signing afresh after the 401 would. */
async function afterSecond(sec: number): Promise<void> {
  while (Math.floor(Date.now() / 1000) <= sec) await Bun.sleep(20);
}

/**
 * Fresh signatures succeed, and the counters prove the replays did not run: sessions are kept
 * in memory, so after a restart each user's next count is `expected` (1 = nothing ran since).
 */
async function freshCallsRun(c: Cluster, w: { calls: Recorded[]; users: string[] }, up: Upstream, expected: number): Promise<void> {
  await afterSecond(Math.max(...w.calls.map((x) => x.timestamp)));
  const counts: number[] = [];
  for (const u of w.users) {
    const a = await sendRaw(c.port, record("/api/1001", "{}", u).bytes);
    expect(a.status).toBe(200);
    counts.push(a.body.data.count);
  }
  expect(counts).toEqual(w.users.map(() => expected));
  const hitsBefore = up.received;
  const q = await sendRaw(c.port, record("/api/1002", JSON.stringify({ symbol: "FRESH" }), null).bytes);
  expect(q.status).toBe(200);
  expect(up.received - hitsBefore).toBe(2);
}

/** Waits for a log line (logs are written asynchronously, after the response). */
async function logged(c: Cluster, text: string): Promise<void> {
  const until = Date.now() + 3000;
  while (!c.output().includes(text) && Date.now() < until) await Bun.sleep(20);
  expect(c.output()).toContain(text);
}

async function workerPids(c: Cluster): Promise<number[]> {
  return (await c.stats()).workers.map((w) => w.pid!);
}

async function waitGone(pids: number[]): Promise<void> {
  const until = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < until) await Bun.sleep(20);
  expect(pids.filter(alive)).toEqual([]);
}

describe("replays after a crash or a restart (same QDP_DATA_DIR)", () => {
  let up: Upstream;
  let data: string;
  const clusters: Cluster[] = [];
  const start = async (workers: number): Promise<Cluster> => {
    const c = await startCluster({
      workers,
      env: { QDP_UAP_KEYS: `uap:${SECRET}`, QDP_DATA_DIR: data, QDP_UPSTREAM_A: `${up.url}/a`, QDP_UPSTREAM_B: `${up.url}/b` },
    });
    clusters.push(c);
    return c;
  };

  /** Stops every cluster of the test, then removes its data directory. */
  const finish = async (): Promise<void> => {
    for (const c of clusters.splice(0)) await c.stop();
    rmSync(data, { recursive: true, force: true });
  };

  beforeAll(() => {
    up = startUpstream();
  });
  afterAll(async () => {
    await finish();
    up.stop();
  });

  test("kill -9 of every worker: the respawned workers refuse all 60 replays", async () => {
    data = mkdtempSync(join(tmpdir(), "qdp-durable-"));
    const c = await start(2);
    const w = workload("k9w");
    await runOnce(c, w, up);
    const pids = await workerPids(c);
    for (const pid of pids) process.kill(pid, "SIGKILL");
    await c.waitReady({ notPids: pids });
    const answers = await replayAll(c, w.calls, up);
    expect(answers.some((a) => /sign the call again/.test(a.body.error.message))).toBe(true);
    await freshCallsRun(c, w, up, 1);
    await finish();
  });

  test("kill -9 of the supervisor and every worker, then a new start: all 60 replays refused", async () => {
    data = mkdtempSync(join(tmpdir(), "qdp-durable-"));
    const c = await start(2);
    const w = workload("k9s");
    await runOnce(c, w, up);
    const pids = await workerPids(c);
    c.proc.kill("SIGKILL");
    for (const pid of pids) process.kill(pid, "SIGKILL");
    await c.proc.exited;
    await waitGone(pids);
    const c2 = await start(2);
    await replayAll(c2, w.calls, up);
    await freshCallsRun(c2, w, up, 1);
    await finish();
  });

  test("graceful stop and start: all 60 replays refused", async () => {
    data = mkdtempSync(join(tmpdir(), "qdp-durable-"));
    const c = await start(2);
    const w = workload("stop");
    await runOnce(c, w, up);
    expect(await c.stop()).toBe(0);
    const c2 = await start(2);
    await replayAll(c2, w.calls, up);
    await freshCallsRun(c2, w, up, 1);
    await finish();
  });

  test("restart with another worker count (2 → 3): all 60 replays refused wherever they are owned now", async () => {
    data = mkdtempSync(join(tmpdir(), "qdp-durable-"));
    const c = await start(2);
    const w = workload("n23");
    await runOnce(c, w, up);
    expect(await c.stop()).toBe(0);
    const c2 = await start(3);
    await replayAll(c2, w.calls, up);
    await freshCallsRun(c2, w, up, 1);
    await finish();
  });

  test("rolling reload after a crash: replays of calls from before the crash and before the reload refused; fresh calls are not", async () => {
    data = mkdtempSync(join(tmpdir(), "qdp-durable-"));
    const c = await start(2);
    const before = workload("rl-a");
    await runOnce(c, before, up);
    const crashed = await workerPids(c);
    for (const pid of crashed) process.kill(pid, "SIGKILL");
    await c.waitReady({ notPids: crashed });
    // The respawned workers are fenced at the crash: signatures newer than it run.
    await afterSecond(Math.max(...before.calls.map((x) => x.timestamp)));
    const after = workload("rl-b");
    await runOnce(c, after, up);
    const lastAccepted = Math.max(...after.calls.map((x) => x.timestamp));

    const old = await workerPids(c);
    c.proc.kill("SIGHUP");
    await c.waitReady({ notPids: old });
    // The replacements took the nonces (and the crash's fence) over from the old workers: a
    // fresh call stamped with the very last accepted second still runs — a worker fenced after
    // a restart would refuse it — and sessions carried on (count 5).
    const counts: number[] = [];
    for (const u of after.users) {
      const a = await sendRaw(
        c.port,
        rawRequest(
          "/api/1001",
          "{}",
          signRequest({ keyId: "uap", secret: SECRET, method: "POST", target: "/api/1001", user: u, body: "{}", timestamp: lastAccepted }),
        ),
      );
      expect(a.status).toBe(200);
      counts.push(a.body.data.count);
    }
    expect(counts).toEqual(after.users.map(() => 5));
    await replayAll(c, [...before.calls, ...after.calls], up);
    await finish();
  });
});

test("a mark that cannot be written refuses the call (500) and it never runs; the worker logs it", async () => {
  const data = mkdtempSync(join(tmpdir(), "qdp-durable-"));
  const c = await startCluster({ workers: 1, env: { QDP_UAP_KEYS: `uap:${SECRET}`, QDP_DATA_DIR: data } });
  try {
    const user = `dur-ro-${process.pid}`;
    const first = record("/api/1001", "{}", user);
    expect((await sendRaw(c.port, first.bytes)).body.data.count).toBe(1);
    // The replay directory replaced by a file: writing the next second's mark fails (even as root).
    rmSync(join(data, "replay"), { recursive: true, force: true });
    writeFileSync(join(data, "replay"), "");
    await afterSecond(first.timestamp);
    const refused = await sendRaw(c.port, record("/api/1001", "{}", user).bytes);
    expect(refused.status).toBe(500);
    expect(refused.body.error.code).toBe("INTERNAL");
    await logged(c, "cannot write the replay mark");
    rmSync(join(data, "replay"), { force: true });
    mkdirSync(join(data, "replay"));
    const next = await sendRaw(c.port, record("/api/1001", "{}", user).bytes);
    expect(next.status).toBe(200);
    expect(next.body.data.count).toBe(2);
  } finally {
    await c.stop();
    rmSync(data, { recursive: true, force: true });
  }
});

test("a damaged mark is taken as now + 300 s: signed calls are refused (sign again), the mark is rewritten", async () => {
  const data = mkdtempSync(join(tmpdir(), "qdp-durable-"));
  mkdirSync(join(data, "replay"));
  writeFileSync(join(data, "replay", "w0"), "\u0000garbage");
  const c = await startCluster({ workers: 1, env: { QDP_UAP_KEYS: `uap:${SECRET}`, QDP_DATA_DIR: data } });
  try {
    const now = Math.floor(Date.now() / 1000);
    const r = await sendRaw(c.port, record("/api/1001", "{}", `dur-garbage-${process.pid}`).bytes);
    expect(r.status).toBe(401);
    expect(r.body.error.message).toMatch(/sign the call again/);
    await logged(c, "unreadable replay marks");
    const mark = Number(readFileSync(join(data, "replay", "w0"), "utf8"));
    expect(mark).toBeGreaterThanOrEqual(now + 299);
    expect(mark).toBeLessThanOrEqual(now + 302);
    expect((await c.stats()).workers[0]!.replayFence).toBe(mark);
  } finally {
    await c.stop();
    rmSync(data, { recursive: true, force: true });
  }
});
