/**
 * Sessions backed by a durable store (QDP_SESSION_STORE=redis): the owner keeps serving from
 * its in-memory cache (what affinity buys), and the store makes an acknowledged change outlive
 * the process. The executor asks `acquire` before a stateful handler and `release` after it.
 *
 * - Miss (first call after a start, a crash, a resize, a move between hosts): the session is
 *   loaded before the handler runs; calls of that user arriving meanwhile wait for the same load.
 * - Freshness: a copy whose stored version was not confirmed for `freshMs` is re-checked (one
 *   small read) before a call uses it; if the store moved on, the copy is loaded again. So no
 *   call — reading or writing — runs on a copy older than `freshMs` plus one store round trip.
 * - Change detection is a snapshot compare: after the handler the session is serialised and
 *   compared with the JSON last stored. Handlers just mutate `ctx.session` as before; there is
 *   no dirty flag to forget, and a handler that changed nothing costs no write.
 * - Persist before reply: a changed session is written with the version this copy holds; the
 *   call's reply waits for the answer. Writes of one event-loop tick go out together, and several
 *   changes of one user in the same tick become one write (the last JSON includes the others).
 * - A refused write (another owner stored a newer version: SESSION_CONFLICT) or a failed one
 *   (SESSION_UNAVAILABLE) drops the copy: calls still holding it fail the same way and the next
 *   call loads what is really stored. A refused change is thus never kept or served.
 * - A call that changed nothing still waits for writes of its copy that are in flight, so a
 *   reply never shows a state that may not have been stored.
 */
import { QdpError } from "../core/errors.ts";
import { Histogram } from "../telemetry/histogram.ts";
import type { SessionBackend } from "../stores/session-store.ts";
import type { DurableMeta, Entry, SessionStore } from "./sessions.ts";

export interface DurableSessionsOptions {
  cache: SessionStore;
  backend: SessionBackend;
  /** QDP_SESSION_FRESH_MS: how long a copy may be used without re-checking the stored version. */
  freshMs: number;
  now?: () => number;
}

/** Counters for /stats and /metrics. */
export interface DurableSessionStats {
  loads: number;
  checks: number;
  stores: number;
  conflicts: number;
  errors: number;
}

/** A session held by one call: release it after the handler with the same object. */
export interface Held {
  user: string;
  entry: Entry & { durable: DurableMeta };
}

interface Write {
  held: Held;
  text: string;
  expected: number;
  waiters: Array<{ resolve: () => void; reject: (e: Error) => void }>;
}

export class DurableSessions {
  readonly stats: DurableSessionStats = { loads: 0, checks: 0, stores: 0, conflicts: 0, errors: 0 };
  /** Latency of every store operation (load, check, write). */
  readonly latency = new Histogram();
  /** Loads and checks in progress, by user: later calls of the user wait for the same one. */
  private fetching = new Map<string, Promise<Held>>();
  /** Writes of this tick, one per copy (later changes of the same copy replace the text). */
  private batch = new Map<Entry, Write>();
  private readonly now: () => number;

  constructor(private readonly o: DurableSessionsOptions) {
    this.now = o.now ?? Date.now;
  }

  get kind(): string {
    return this.o.backend.kind;
  }

  /** The user's session: at once when the copy in memory is fresh, else after a load or check. */
  acquire(user: string, init: () => unknown): Held | Promise<Held> {
    const pending = this.fetching.get(user);
    if (pending !== undefined) return pending;
    const e = this.o.cache.peek(user);
    if (e !== undefined && e.durable !== undefined && e.durable.failed === null) {
      const held = { user, entry: e as Held["entry"] };
      if (e.durable.writing > 0 || this.now() - e.durable.confirmed <= this.o.freshMs) return held;
      return this.track(user, this.check(held, init));
    }
    return this.track(user, this.load(user, init));
  }

  /**
   * After the handler (whether it returned or threw — as with the in-memory store, a handler's
   * changes stay): nothing to wait for when the session is unchanged and no write is in flight,
   * else a promise that settles when the change is stored, rejecting with SESSION_CONFLICT or
   * SESSION_UNAVAILABLE when it could not be.
   */
  release(held: Held): void | Promise<void> {
    const d = held.entry.durable;
    if (d.failed !== null) throw d.failed;
    const text = JSON.stringify(held.entry.state);
    if (text === d.text) {
      if (d.writing === 0) return;
      return d.lastWrite!.then(() => {
        if (d.failed !== null) throw d.failed;
      });
    }
    d.text = text;
    let w = this.batch.get(held.entry);
    if (w === undefined) {
      w = { held, text, expected: d.queued, waiters: [] };
      d.queued++;
      d.writing++;
      if (this.batch.size === 0) setImmediate(() => this.flush());
      this.batch.set(held.entry, w);
    } else {
      w.text = text;
    }
    const write = w;
    const p = new Promise<void>((resolve, reject) => write.waiters.push({ resolve, reject }));
    d.lastWrite = p.catch(() => {});
    return p;
  }

  /** Sends this tick's writes together; each settles its own waiters. */
  private flush(): void {
    const writes = [...this.batch.values()];
    this.batch.clear();
    for (const w of writes) {
      const d = w.held.entry.durable;
      if (d.failed !== null) {
        d.writing--;
        for (const x of w.waiters) x.reject(d.failed);
        continue;
      }
      const t0 = performance.now();
      this.o.backend.save(w.held.user, w.text, w.expected).then(
        (r) => {
          this.latency.observe((performance.now() - t0) / 1000);
          d.writing--;
          if (r.ok) {
            this.stats.stores++;
            d.version = r.version;
            d.confirmed = this.now();
            for (const x of w.waiters) x.resolve();
          } else {
            if (d.failed === null) this.stats.conflicts++;
            this.fail(
              w.held,
              new QdpError("SESSION_CONFLICT", `the stored session of this user is at version ${r.stored}, this copy at ${w.expected}; it was reloaded, retry`),
            );
            for (const x of w.waiters) x.reject(d.failed!);
          }
        },
        (err: Error) => {
          this.latency.observe((performance.now() - t0) / 1000);
          d.writing--;
          if (d.failed === null) this.stats.errors++;
          this.fail(w.held, unavailable("write", err));
          for (const x of w.waiters) x.reject(d.failed!);
        },
      );
    }
  }

  private fail(held: Held, err: Error): void {
    const d = held.entry.durable;
    if (d.failed === null) d.failed = err;
    this.o.cache.drop(held.user, held.entry);
  }

  private track(user: string, p: Promise<Held>): Promise<Held> {
    this.fetching.set(user, p);
    const done = () => {
      if (this.fetching.get(user) === p) this.fetching.delete(user);
    };
    p.then(done, done);
    return p;
  }

  private async load(user: string, init: () => unknown): Promise<Held> {
    const t0 = performance.now();
    let stored;
    try {
      stored = await this.o.backend.load(user);
    } catch (err) {
      this.stats.errors++;
      throw unavailable("load", err as Error);
    } finally {
      this.latency.observe((performance.now() - t0) / 1000);
    }
    this.stats.loads++;
    const state = stored === null ? init() : JSON.parse(stored.text);
    const version = stored?.version ?? 0;
    const text = stored?.text ?? JSON.stringify(state);
    const durable: DurableMeta = { version, queued: version, text, confirmed: this.now(), writing: 0, lastWrite: null, failed: null };
    return { user, entry: this.o.cache.put(user, state, durable) as Held["entry"] };
  }

  private async check(held: Held, init: () => unknown): Promise<Held> {
    const t0 = performance.now();
    let version: number;
    try {
      version = await this.o.backend.version(held.user);
    } catch (err) {
      this.stats.errors++;
      throw unavailable("check", err as Error);
    } finally {
      this.latency.observe((performance.now() - t0) / 1000);
    }
    this.stats.checks++;
    const d = held.entry.durable;
    if (version === d.version && d.failed === null && d.writing === 0) {
      d.confirmed = this.now();
      return held;
    }
    // The store moved on (another owner wrote, or the stored session expired): take what is there.
    this.o.cache.drop(held.user, held.entry);
    return this.load(held.user, init);
  }
}

function unavailable(what: string, err: Error): QdpError {
  return new QdpError("SESSION_UNAVAILABLE", `session ${what} failed: ${err.message}`, { cause: err });
}
