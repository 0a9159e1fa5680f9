/**
 * The executor's durable path (src/affinity/durable-sessions.ts) in process, against the
 * in-process session store adapter with an injected clock: load on a miss with later calls
 * waiting for it, persist before reply, snapshot-compare change detection, per-tick writes,
 * the freshness bound, SESSION_CONFLICT and SESSION_UNAVAILABLE dropping the copy, and the
 * reload hand-off carrying versions. The same behaviour against real Redis and real processes
 * is in durable-cluster.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { Type as t } from "@sinclair/typebox";
import { DurableSessions } from "../src/affinity/durable-sessions.ts";
import { Executor } from "../src/affinity/executor.ts";
import { SessionStore, type SessionSnapshot } from "../src/affinity/sessions.ts";
import { QdpError } from "../src/core/errors.ts";
import { createReplayCache } from "../src/core/replay-cache.ts";
import { createReplayFence, guardReplay } from "../src/core/replay-fence.ts";
import { createLogger } from "../src/telemetry/logger.ts";
import { DEMO_SERVICES } from "../src/services/index.ts";
import { Registry } from "../src/services/registry.ts";
import { defineService } from "../src/services/types.ts";
import { createMemorySessionBackend, type MemorySessionBackend } from "../src/stores/session-memory.ts";
import type { RecordStore } from "../src/stores/record-store.ts";
import type { SaveOutcome } from "../src/stores/session-store.ts";

const peek = defineService({
  funcNo: 9001,
  name: "test.peek",
  description: "reads the counter without changing it",
  stateful: true,
  input: t.Unknown(),
  output: t.Unknown(),
  initSession: () => ({ count: 0 }),
  handler: ({ session }) => ({ count: session.count }),
});
const slowAdd = defineService({
  funcNo: 9002,
  name: "test.slow_add",
  description: "adds after a pause (calls of one user overlap)",
  stateful: true,
  input: t.Unknown(),
  output: t.Unknown(),
  initSession: () => ({ count: 0 }),
  handler: async ({ session }) => {
    await Bun.sleep(5);
    session.count++;
    return { count: session.count };
  },
});
const registry = new Registry([...DEMO_SERVICES, peek, slowAdd]);

function setup(o: { freshMs?: number; backend?: MemorySessionBackend } = {}) {
  const clock = { t: 1_000_000 };
  const now = () => clock.t;
  const backend = o.backend ?? createMemorySessionBackend({ ttlMs: 3_600_000 });
  const calls = { load: 0, version: 0, save: 0 };
  // Count what reaches the store, to prove what the cache saves.
  const counted = {
    ...backend,
    kind: backend.kind,
    load: (u: string) => (calls.load++, backend.load(u)),
    version: (u: string) => (calls.version++, backend.version(u)),
    save: (u: string, text: string, v: number): Promise<SaveOutcome> => (calls.save++, backend.save(u, text, v)),
  };
  const cache = new SessionStore(1000, 3_600_000, now);
  const durable = new DurableSessions({ cache, backend: counted, freshMs: o.freshMs ?? 1000, now });
  const executor = new Executor({
    worker: 0,
    log: createLogger("error"),
    records: {} as RecordStore,
    settings: new Map(),
    sessions: cache,
    durable,
    replay: guardReplay(createReplayCache({ maxEntries: 1000 }), createReplayFence({ persistedSec: 0, persist: (sec) => sec })),
    maxExecuting: 1000,
    upstreamTimeoutMs: 1000,
  });
  const run = async (funcNo: number, user: string): Promise<unknown> =>
    JSON.parse(await executor.run({ service: registry.require(funcNo), user, requestId: "r", input: {}, deadline: Date.now() + 5000 }));
  return { clock, backend, calls, cache, durable, executor, run };
}

const code = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return "ok";
  } catch (err) {
    return (err as QdpError).code;
  }
};

describe("durable sessions: load, persist before reply, change detection", () => {
  test("a miss loads once; calls of that user arriving meanwhile wait for the same load", async () => {
    const s = setup();
    await s.backend.save("u", JSON.stringify({ count: 41 }), 0);
    const replies = await Promise.all([s.run(1001, "u"), s.run(1001, "u"), s.run(9001, "u")]);
    expect(replies).toEqual([{ count: 42 }, { count: 43 }, { count: 43 }]);
    expect(s.calls.load).toBe(1);
    expect(s.durable.stats.loads).toBe(1);
  });

  test("the reply comes after the change is stored", async () => {
    const s = setup();
    const r = await s.run(1001, "u");
    expect(r).toEqual({ count: 1 });
    expect(await s.backend.load("u")).toEqual({ version: 1, text: '{"count":1}' });
  });

  test("a call that changes nothing writes nothing (snapshot compare)", async () => {
    const s = setup();
    await s.run(1001, "u");
    const saves = s.calls.save;
    for (let i = 0; i < 5; i++) expect(await s.run(9001, "u")).toEqual({ count: 1 });
    expect(s.calls.save).toBe(saves);
  });

  test("the changes of one tick to one user become one write", async () => {
    const s = setup();
    await s.run(1001, "u"); // loaded and stored once
    const before = s.calls.save;
    const r = await Promise.all(Array.from({ length: 10 }, () => s.run(1001, "u")));
    expect(r.map((x) => (x as { count: number }).count).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(s.calls.save - before).toBe(1);
    expect(await s.backend.load("u")).toEqual({ version: 2, text: '{"count":11}' });
  });

  test("overlapping async calls of one user chain their versions", async () => {
    const s = setup();
    const r = await Promise.all(Array.from({ length: 6 }, () => s.run(9002, "u")));
    expect(r.map((x) => (x as { count: number }).count).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(JSON.parse((await s.backend.load("u"))!.text)).toEqual({ count: 6 });
    expect(s.durable.stats.conflicts).toBe(0);
  });

  test("a handler that throws after changing the session keeps the change, as in memory", async () => {
    const boom = defineService({
      funcNo: 9003,
      name: "test.boom",
      description: "changes then throws",
      stateful: true,
      input: t.Unknown(),
      output: t.Unknown(),
      initSession: () => ({ count: 0 }),
      handler: ({ session }) => {
        session.count = 100;
        throw new QdpError("VALIDATION", "no");
      },
    });
    registry.add(boom);
    const s = setup();
    expect(await code(s.run(9003, "u"))).toBe("VALIDATION");
    expect(await s.backend.load("u")).toEqual({ version: 1, text: '{"count":100}' });
  });
});

describe("durable sessions: freshness bound", () => {
  test("within freshMs the copy is used as is; past it the stored version is checked first", async () => {
    const s = setup({ freshMs: 1000 });
    await s.run(1001, "u");
    s.clock.t += 1000;
    await s.run(9001, "u");
    expect(s.calls.version).toBe(0);
    s.clock.t += 1001 + 1000; // the write above did not confirm: nothing was written
    await s.run(9001, "u");
    expect(s.calls.version).toBe(1);
    expect(s.durable.stats.checks).toBe(1);
    await s.run(9001, "u"); // confirmed by the check
    expect(s.calls.version).toBe(1);
  });

  test("a copy the store moved past is replaced before a read is served", async () => {
    const s = setup({ freshMs: 1000 });
    await s.run(1001, "u"); // stored v1 count 1
    await s.backend.save("u", '{"count":50}', 1); // another host wrote v2
    expect(await s.run(9001, "u")).toEqual({ count: 1 }); // within the bound: the copy
    s.clock.t += 1001;
    expect(await s.run(9001, "u")).toEqual({ count: 50 });
    expect(await s.run(1001, "u")).toEqual({ count: 51 });
    expect(s.durable.stats.conflicts).toBe(0);
  });
});

describe("durable sessions: conflicts and outages", () => {
  test("a stale copy's write answers SESSION_CONFLICT once, stores nothing, and the retry runs on fresh state", async () => {
    const s = setup({ freshMs: 60_000 });
    await s.run(1001, "u"); // v1 {1}
    await s.backend.save("u", '{"count":10}', 1); // another owner: v2 {10}
    expect(await code(s.run(1001, "u"))).toBe("SESSION_CONFLICT");
    expect(await s.backend.load("u")).toEqual({ version: 2, text: '{"count":10}' });
    expect(s.durable.stats.conflicts).toBe(1);
    expect(await s.run(1001, "u")).toEqual({ count: 11 });
  });

  test("every call holding the refused copy fails with it; none is answered with unstored state", async () => {
    const s = setup({ freshMs: 60_000 });
    await s.run(1001, "u");
    await s.backend.save("u", '{"count":10}', 1);
    const r = await Promise.all([code(s.run(1001, "u")), code(s.run(1001, "u")), code(s.run(9001, "u"))]);
    expect(r).toEqual(["SESSION_CONFLICT", "SESSION_CONFLICT", "SESSION_CONFLICT"]);
    expect(await s.run(9001, "u")).toEqual({ count: 10 });
  });

  test("store down: stateful calls answer SESSION_UNAVAILABLE and keep nothing; back up, they succeed", async () => {
    const s = setup({ freshMs: 60_000 });
    await s.run(1001, "u"); // {1}
    s.backend.down = true;
    expect(await code(s.run(1001, "u"))).toBe("SESSION_UNAVAILABLE"); // write failed: copy dropped
    expect(await code(s.run(1001, "u"))).toBe("SESSION_UNAVAILABLE"); // load failed
    expect(await code(s.run(1001, "other"))).toBe("SESSION_UNAVAILABLE");
    // Stateless calls do not touch the store.
    expect(
      JSON.parse(await s.executor.run({ service: registry.require(1000), user: "u", requestId: "r", input: { x: 1 }, deadline: Date.now() + 5000 })),
    ).toEqual({ x: 1 });
    s.backend.down = false;
    expect(await s.run(1001, "u")).toEqual({ count: 2 });
    expect(s.durable.stats.errors).toBe(3);
    expect(s.executor.executing).toBe(0);
  });
});

describe("durable sessions: reload hand-off", () => {
  test("the copies go over with their versions: the replacement neither loads nor conflicts", async () => {
    const backend = createMemorySessionBackend({ ttlMs: 3_600_000 });
    const old = setup({ backend });
    for (let i = 0; i < 3; i++) await old.run(1001, "u");
    const snap = JSON.parse(JSON.stringify(old.cache.snapshot())) as SessionSnapshot[];
    expect(snap).toEqual([{ user: "u", state: { count: 3 }, idleMs: 0, version: 3, confirmedAgeMs: 0 }]);
    const next = setup({ backend });
    next.cache.restore(snap);
    expect(await next.run(1001, "u")).toEqual({ count: 4 });
    expect(next.calls.load).toBe(0);
    expect(next.calls.version).toBe(0);
    expect(await backend.load("u")).toEqual({ version: 4, text: '{"count":4}' });
  });
});
