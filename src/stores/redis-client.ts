/**
 * A small Redis client over one `Bun.connect` socket per process, written for what the session
 * store (and the replay store of the multi-host issue) need: pipelining, bounded waiting and a
 * reconnect that can never pair a reply with the wrong command. docs/stores.md says why it is
 * ours and not Bun's `RedisClient` or node-redis (measured there).
 *
 * The rules that make it safe:
 * - Replies are matched to commands by position in a FIFO that belongs to one connection
 *   object. When that connection closes or times out, every command still in its FIFO is
 *   rejected (`RedisUnavailableError`, outcome unknown) and the FIFO dies with it; the next
 *   connection starts with an empty FIFO. Nothing is ever re-sent by the client.
 * - While no connection is up, commands fail at once instead of queueing: a caller learns of an
 *   outage in microseconds, and memory cannot grow while Redis is away.
 * - A command unanswered after `timeoutMs` fails, and so does its connection (a hung or
 *   partitioned server would otherwise hold every later command too): bounded time, always.
 * - At most `maxPending` commands wait on the socket; past it, commands fail at once.
 * - Commands issued in one run of the event loop go out in one socket write (pipelining).
 */
import type { Socket } from "bun";
import { encodeCommand, RespError, RespParser, type RespValue } from "./resp.ts";

export { RespError, type RespValue } from "./resp.ts";

/** Redis could not answer: not connected, timed out, connection lost, or too many waiting. */
export class RedisUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisUnavailableError";
  }
}

export interface RedisClientOptions {
  /** `redis://[user:password@]host:port[/db]` (QDP_REDIS_URL). */
  url: string;
  /** How long a command (and a connection attempt) may take before it fails. Default 1000 ms. */
  timeoutMs?: number;
  /** Commands waiting for a reply at most; past it new commands fail at once. Default 10000. */
  maxPending?: number;
  /** Called with one line when the connection goes down or comes back. */
  onEvent?: (event: "up" | "down", detail: string) => void;
}

/** A Lua script run with EVALSHA, loaded again by EVAL when the server forgot it (NOSCRIPT). */
export interface RedisScript {
  readonly source: string;
  readonly sha1: string;
}

export function defineScript(source: string): RedisScript {
  return { source, sha1: new Bun.CryptoHasher("sha1").update(source).digest("hex") };
}

export interface RedisClient {
  /** Sends one command; resolves with its reply, rejects with RespError or RedisUnavailableError. */
  send(args: ReadonlyArray<string | number>): Promise<RespValue>;
  /** Runs a script (EVALSHA, falling back to EVAL once if the server has not cached it). */
  evalScript(script: RedisScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<RespValue>;
  readonly connected: boolean;
  /** Connections made after the first, and commands failed for a timeout. */
  readonly reconnects: number;
  readonly timeouts: number;
  /** Resolves once connected, or rejects after `ms` (start-up checks and tests). */
  waitConnected(ms: number): Promise<void>;
  close(): void;
}

interface Pending {
  resolve: (v: RespValue) => void;
  reject: (e: Error) => void;
  deadline: number;
}

interface Endpoint {
  hostname: string;
  port: number;
  /** Commands sent before any other on a new connection (AUTH, SELECT). */
  preamble: Array<Array<string>>;
}

export function parseRedisUrl(url: string): Endpoint {
  const u = new URL(url);
  if (u.protocol !== "redis:") throw new Error(`expected a redis:// URL, got ${u.protocol}`);
  const preamble: string[][] = [];
  if (u.password)
    preamble.push(u.username ? ["AUTH", decodeURIComponent(u.username), decodeURIComponent(u.password)] : ["AUTH", decodeURIComponent(u.password)]);
  const db = u.pathname.replace(/^\//, "");
  if (db !== "" && db !== "0") preamble.push(["SELECT", db]);
  return { hostname: u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1", port: Number(u.port || 6379), preamble };
}

/**
 * Creates the client and starts connecting in the background. A server that is down at start
 * is not an error: commands fail until it is reachable, and the client keeps trying.
 */
export function createRedisClient(opts: RedisClientOptions): RedisClient {
  const timeoutMs = opts.timeoutMs ?? 1000;
  const maxPending = opts.maxPending ?? 10_000;
  const ep = parseRedisUrl(opts.url);

  /** One TCP connection with its own reply FIFO; a closed one is never reused. */
  class Conn {
    readonly fifo: Pending[] = [];
    head = 0;
    readonly parser = new RespParser();
    socket: Socket<undefined> | null = null;
    out: string[] = [];
    backlog: Buffer | null = null;
    flushQueued = false;
    dead = false;

    get waiting(): number {
      return this.fifo.length - this.head;
    }

    push(args: ReadonlyArray<string | number>, p: Pending): void {
      this.fifo.push(p);
      this.out.push(encodeCommand(args));
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => this.flush());
      }
    }

    flush(): void {
      this.flushQueued = false;
      if (this.dead || this.socket === null || this.out.length === 0) return;
      const chunk = Buffer.from(this.out.length === 1 ? this.out[0]! : this.out.join(""));
      this.out = [];
      if (this.backlog !== null) {
        this.backlog = Buffer.concat([this.backlog, chunk]);
        return;
      }
      this.write(chunk);
    }

    write(chunk: Buffer): void {
      const n = this.socket!.write(chunk);
      this.backlog = n < chunk.length ? chunk.subarray(Math.max(0, n)) : null;
    }

    onData(data: Buffer): void {
      let replies: RespValue[];
      try {
        replies = this.parser.push(data);
      } catch (err) {
        this.fail(`protocol error: ${(err as Error).message}`);
        return;
      }
      for (const r of replies) {
        const p = this.fifo[this.head];
        if (p === undefined) {
          // A reply with no command waiting means the stream is out of step: never guess.
          this.fail("reply without a command");
          return;
        }
        this.fifo[this.head++] = undefined as unknown as Pending;
        if (r instanceof RespError) p.reject(r);
        else p.resolve(r);
      }
      if (this.head > 1024 && this.head * 2 > this.fifo.length) {
        this.fifo.splice(0, this.head);
        this.head = 0;
      }
    }

    /** Ends this connection for good: everything it still owes fails; a new one is made later. */
    fail(why: string): void {
      if (this.dead) return;
      this.dead = true;
      this.socket?.terminate();
      const owed = this.fifo.slice(this.head);
      this.fifo.length = 0;
      this.head = 0;
      const err = new RedisUnavailableError(`redis ${why}; the outcome of commands in flight is unknown`);
      for (const p of owed) p.reject(err);
      if (conn === this) {
        conn = null;
        if (wasUp) opts.onEvent?.("down", why);
        wasUp = false;
        scheduleReconnect();
      }
    }
  }

  let conn: Conn | null = null;
  let ready = false;
  let wasUp = false;
  let closed = false;
  let connects = 0;
  let timeouts = 0;
  let backoff = 20;
  let reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  const connectedWaiters = new Set<() => void>();

  function scheduleReconnect(): void {
    ready = false;
    if (closed || reconnectTimer !== null) return;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      connect();
    }, backoff);
    backoff = Math.min(1000, backoff * 2);
  }

  function connect(): void {
    if (closed || conn !== null) return;
    const c = new Conn();
    conn = c;
    // A connection attempt that neither opens nor fails (a filtered port) is bounded too.
    const connectTimer = setTimeout(() => c.fail("connect timed out"), timeoutMs);
    Bun.connect({
      hostname: ep.hostname,
      port: ep.port,
      socket: {
        open(socket) {
          clearTimeout(connectTimer);
          if (c.dead) {
            socket.terminate();
            return;
          }
          c.socket = socket;
          // Small pipelined writes must leave at once, not wait for the previous one's ACK.
          socket.setNoDelay(true);
          for (const cmd of ep.preamble) {
            c.push(cmd, {
              resolve() {},
              reject: (e) => c.fail(`refused ${cmd[0]}: ${e.message}`),
              deadline: Date.now() + timeoutMs,
            });
          }
          c.flush();
          connects++;
          ready = true;
          wasUp = true;
          backoff = 20;
          opts.onEvent?.("up", `${ep.hostname}:${ep.port}`);
          for (const w of connectedWaiters) w();
        },
        data(_socket, data) {
          c.onData(data);
        },
        drain() {
          if (c.backlog !== null && !c.dead) c.write(c.backlog);
        },
        close() {
          c.fail("connection closed");
        },
        error(_socket, err) {
          c.fail(`connection error: ${err.message}`);
        },
        connectError(_socket, err) {
          clearTimeout(connectTimer);
          c.fail(`connect failed: ${err.message}`);
        },
      },
    }).catch((err: Error) => {
      clearTimeout(connectTimer);
      c.fail(`connect failed: ${err.message}`);
    });
  }

  // One timer checks the oldest command of the connection: FIFO order means it is the one
  // whose deadline comes first.
  const watchdog = setInterval(
    () => {
      const c = conn;
      if (c === null || c.waiting === 0) return;
      if (c.fifo[c.head]!.deadline <= Date.now()) {
        timeouts += c.waiting;
        c.fail(`did not answer within ${timeoutMs} ms`);
      }
    },
    Math.max(5, Math.min(100, Math.floor(timeoutMs / 4))),
  );
  watchdog.unref?.();

  function send(args: ReadonlyArray<string | number>): Promise<RespValue> {
    const c = conn;
    if (closed) return Promise.reject(new RedisUnavailableError("redis client is closed"));
    if (!ready || c === null || c.dead) return Promise.reject(new RedisUnavailableError("redis is not connected"));
    if (c.waiting >= maxPending) return Promise.reject(new RedisUnavailableError(`${maxPending} redis commands already waiting`));
    return new Promise<RespValue>((resolve, reject) => c.push(args, { resolve, reject, deadline: Date.now() + timeoutMs }));
  }

  connect();

  return {
    send,
    evalScript(script, keys, args) {
      return send(["EVALSHA", script.sha1, keys.length, ...keys, ...args]).catch((err: Error) => {
        // After a server restart (or SCRIPT FLUSH) the script cache is empty; EVAL loads it.
        if (err instanceof RespError && err.message.startsWith("NOSCRIPT")) return send(["EVAL", script.source, keys.length, ...keys, ...args]);
        throw err;
      });
    },
    get connected() {
      return ready;
    },
    get reconnects() {
      return Math.max(0, connects - 1);
    },
    get timeouts() {
      return timeouts;
    },
    waitConnected(ms) {
      if (ready) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const done = () => {
          clearTimeout(t);
          connectedWaiters.delete(done);
          resolve();
        };
        const t = setTimeout(() => {
          connectedWaiters.delete(done);
          reject(new RedisUnavailableError(`redis at ${ep.hostname}:${ep.port} not reachable within ${ms} ms`));
        }, ms);
        connectedWaiters.add(done);
      });
    },
    close() {
      closed = true;
      ready = false;
      clearInterval(watchdog);
      if (reconnectTimer) clearTimeout(reconnectTimer);
      conn?.fail("client closed");
      conn = null;
    },
  };
}
