/**
 * The Redis client: the RESP codec byte by byte, then a real redis-server (test/support/redis.ts)
 * for pipelining, error replies, scripts, bounded failure while the server is down or hung, and
 * the property Bun's built-in client has been reported to break (oven-sh/bun #27861): after a
 * reconnect under load, no reply ever reaches the wrong command.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRedisClient, defineScript, RedisUnavailableError, RespError, type RedisClient } from "../src/stores/redis-client.ts";
import { encodeCommand, RespParser, type RespValue } from "../src/stores/resp.ts";
import { ensureRedis, startRedis, type TestRedis } from "./support/redis.ts";

describe("RESP codec", () => {
  test("encodes a command as an array of bulk strings, counting bytes not characters", () => {
    expect(encodeCommand(["SET", "k", "é", 12])).toBe("*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n$2\r\n12\r\n");
  });

  test("parses every reply type, whatever the chunking", () => {
    const wire = Buffer.from("+OK\r\n-ERR bad\r\n:42\r\n$4\r\nhé!\r\n$-1\r\n*3\r\n:1\r\n*1\r\n$0\r\n\r\n$-1\r\n*-1\r\n");
    const expected: RespValue[] = ["OK", new RespError("ERR bad"), 42, "hé!", null, [1, [""], null], null];
    for (const size of [1, 2, 3, 7, wire.length]) {
      const p = new RespParser();
      const got: RespValue[] = [];
      for (let i = 0; i < wire.length; i += size) got.push(...p.push(wire.subarray(i, i + size)));
      expect(got).toEqual(expected);
    }
  });
});

const redisBin = ensureRedis();
if (!redisBin.path) console.warn(`redis-client: server tests skipped — ${redisBin.why}`);
test.if(!redisBin.path && !!process.env.CI)("redis-server is available in CI", () => {
  throw new Error(`redis-server is required in CI: ${redisBin.why}`);
});

describe.if(!!redisBin.path)("client against a real redis-server", () => {
  let redis: TestRedis;
  let client: RedisClient;

  beforeAll(async () => {
    redis = await startRedis(redisBin.path!);
    client = createRedisClient({ url: redis.url, timeoutMs: 500 });
    await client.waitConnected(5000);
  });
  afterAll(async () => {
    client?.close();
    await redis?.dispose();
  });

  test("pipelines commands issued together and keeps their order", async () => {
    const n = 2000;
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => client.send(["ECHO", `m${i}`])));
    expect(replies).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
  });

  test("an error reply fails its own command only", async () => {
    const [a, b, c] = await Promise.allSettled([client.send(["SET", "k1", "v"]), client.send(["INCR", "k1"]), client.send(["GET", "k1"])]);
    expect(a).toEqual({ status: "fulfilled", value: "OK" });
    expect(b.status).toBe("rejected");
    expect((b as PromiseRejectedResult).reason).toBeInstanceOf(RespError);
    expect(c).toEqual({ status: "fulfilled", value: "v" });
  });

  test("a script runs by hash and is loaded again after SCRIPT FLUSH", async () => {
    const script = defineScript("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    expect(await client.evalScript(script, ["cnt"], [2])).toBe(2);
    await client.send(["SCRIPT", "FLUSH"]);
    expect(await client.evalScript(script, ["cnt"], [3])).toBe(5);
  });

  test("a hung server (SIGSTOP) fails commands within the timeout; they work again after it resumes", async () => {
    redis.pause();
    try {
      const t0 = Date.now();
      const r = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => client.send(["ECHO", `h${i}`])));
      const took = Date.now() - t0;
      expect(r.every((x) => x.status === "rejected" && x.reason instanceof RedisUnavailableError)).toBe(true);
      expect(took).toBeLessThan(500 + 400);
      // While it reconnects (or waits for a hung server), commands fail at once: no queue.
      const t1 = Date.now();
      await client.send(["PING"]).catch(() => {});
      expect(Date.now() - t1).toBeLessThan(600);
    } finally {
      redis.resume();
    }
    await client.waitConnected(5000);
    await eventually(async () => expect(await client.send(["ECHO", "back"])).toBe("back"));
    expect(client.timeouts).toBeGreaterThan(0);
  });

  test("past maxPending, commands fail at once instead of queueing", async () => {
    const small = createRedisClient({ url: redis.url, timeoutMs: 2000, maxPending: 10 });
    try {
      await small.waitConnected(5000);
      const r = await Promise.allSettled(Array.from({ length: 25 }, (_, i) => small.send(["ECHO", `p${i}`])));
      expect(r.filter((x) => x.status === "fulfilled").length).toBe(10);
      expect(r.filter((x) => x.status === "rejected").every((x) => (x as PromiseRejectedResult).reason instanceof RedisUnavailableError)).toBe(true);
    } finally {
      small.close();
    }
  });

  test("a restart under load: every reply belongs to its command, and calls succeed again without a new client", async () => {
    const c = createRedisClient({ url: redis.url, timeoutMs: 500 });
    await c.waitConnected(5000);
    let stop = false;
    let ok = 0;
    let failed = 0;
    const wrong: string[] = [];
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const id = `w${w}-${i}`;
        try {
          // Alternate commands of different reply types, so a shifted reply cannot look right.
          const v = i % 2 === 0 ? await c.send(["ECHO", id]) : await c.send(["SET", `key:${id}`, id, "EX", 60, "GET"]);
          const want = i % 2 === 0 ? id : null;
          if (v !== want) wrong.push(`${id}: got ${JSON.stringify(v)}`);
          else ok++;
        } catch (err) {
          if (!(err instanceof RedisUnavailableError)) wrong.push(`${id}: ${(err as Error).message}`);
          failed++;
          await Bun.sleep(5);
        }
      }
    };
    const loops = Array.from({ length: 200 }, (_, w) => worker(w));
    await eventually(() => expect(ok).toBeGreaterThan(2000));
    await redis.stop();
    await eventually(() => expect(failed).toBeGreaterThan(0));
    await Bun.sleep(300); // a few reconnect attempts against a closed port
    await redis.start();
    const before = ok;
    await eventually(() => expect(ok).toBeGreaterThan(before + 2000), 10_000);
    stop = true;
    await Promise.all(loops);
    c.close();
    expect(wrong).toEqual([]);
    expect(c.reconnects).toBeGreaterThan(0);
  });

  test("a closed client refuses commands", async () => {
    const c = createRedisClient({ url: redis.url });
    await c.waitConnected(5000);
    c.close();
    expect(c.send(["PING"])).rejects.toBeInstanceOf(RedisUnavailableError);
  });
});

/** Retries an assertion until it passes or `ms` elapse (waiting for an event, not a fixed sleep). */
export async function eventually(check: () => unknown | Promise<unknown>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      await Bun.sleep(20);
    }
  }
}
