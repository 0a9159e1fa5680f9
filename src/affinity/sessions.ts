/**
 * Per-user sessions in the owner's memory — the passivation Akka and Orleans give entities:
 * bounded (least recently used evicted past `max`) and expired after `ttlMs` idle. A Map keeps
 * insertion order, so re-inserting on use makes its first key the least recently used one.
 * Sessions must stay JSON-serialisable: a rolling reload hands them to the replacement as JSON.
 * With a durable store (QDP_SESSION_STORE=redis) this map is the cache in front of it: entries
 * then carry `DurableMeta`, and a copy that was lost here is loaded again from the store.
 */

/**
 * What an owner knows about the stored copy of a session (QDP_SESSION_STORE=redis only; see
 * durable-sessions.ts, which alone reads and writes it).
 */
export interface DurableMeta {
  /** Stored version this copy was loaded at or last written as (0: nothing stored). */
  version: number;
  /** Version the next write must name: `version` plus the writes sent and not yet answered. */
  queued: number;
  /** JSON of the state as last stored or queued: a handler changed the session iff it differs. */
  text: string;
  /** When the stored version was last seen equal to this copy's (load, write or check). */
  confirmed: number;
  /** Writes of this copy not answered yet, and the promise of the latest one. */
  writing: number;
  lastWrite: Promise<void> | null;
  /** Set when a write failed: the copy is dropped and calls still holding it fail with this. */
  failed: Error | null;
}

export interface Entry {
  state: unknown;
  used: number;
  durable?: DurableMeta;
}

export interface SessionSnapshot {
  user: string;
  state: unknown;
  idleMs: number;
  /** With a durable store: the stored version of this copy and how long ago it was confirmed. */
  version?: number;
  confirmedAgeMs?: number;
}

export class SessionStore {
  private map = new Map<string, Entry>();
  evicted = 0;
  expired = 0;

  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.map.size;
  }

  /** The user's session, created by `init` on first use; marks it most recently used. */
  get<S>(user: string, init: () => S): S {
    const now = this.now();
    let e = this.map.get(user);
    if (e !== undefined) {
      this.map.delete(user);
      if (now - e.used > this.ttlMs) {
        this.expired++;
        e = undefined;
      }
    }
    if (e === undefined) {
      e = { state: init(), used: now };
      while (this.map.size >= this.max) this.evictOldest();
    }
    e.used = now;
    this.map.set(user, e);
    return e.state as S;
  }

  /** The user's entry if held and not expired (marked most recently used), else undefined. */
  peek(user: string): Entry | undefined {
    const e = this.map.get(user);
    if (e === undefined) return undefined;
    const now = this.now();
    this.map.delete(user);
    if (now - e.used > this.ttlMs) {
      this.expired++;
      return undefined;
    }
    e.used = now;
    this.map.set(user, e);
    return e;
  }

  /** Holds `state` for the user (replacing any entry); returns the new entry. */
  put(user: string, state: unknown, durable?: DurableMeta): Entry {
    this.map.delete(user);
    while (this.map.size >= this.max) this.evictOldest();
    const e: Entry = { state, used: this.now(), durable };
    this.map.set(user, e);
    return e;
  }

  /** Forgets the user's entry, but only if it is still `entry` (a newer one stays). */
  drop(user: string, entry: Entry): void {
    if (this.map.get(user) === entry) this.map.delete(user);
  }

  private evictOldest(): void {
    const first = this.map.keys().next();
    if (first.done) return;
    this.map.delete(first.value);
    this.evicted++;
  }

  /** Drops sessions idle longer than the TTL; call it periodically. */
  sweep(): number {
    const cutoff = this.now() - this.ttlMs;
    let n = 0;
    // Oldest first: stop at the first one still fresh.
    for (const [user, e] of this.map) {
      if (e.used >= cutoff) break;
      this.map.delete(user);
      n++;
    }
    this.expired += n;
    return n;
  }

  /** All live sessions, least recently used first (for the hand-off). */
  snapshot(): SessionSnapshot[] {
    const now = this.now();
    const out: SessionSnapshot[] = [];
    for (const [user, e] of this.map) {
      if (now - e.used > this.ttlMs) continue;
      const d = e.durable;
      if (d === undefined) out.push({ user, state: e.state, idleMs: now - e.used });
      else if (d.failed === null && d.writing === 0)
        out.push({ user, state: e.state, idleMs: now - e.used, version: d.version, confirmedAgeMs: now - d.confirmed });
    }
    return out;
  }

  /** Takes sessions handed over by the previous worker of this index. */
  restore(items: SessionSnapshot[]): void {
    const now = this.now();
    for (const s of items) {
      this.map.delete(s.user);
      while (this.map.size >= this.max) this.evictOldest();
      const durable: DurableMeta | undefined =
        s.version === undefined
          ? undefined
          : {
              version: s.version,
              queued: s.version,
              text: JSON.stringify(s.state),
              confirmed: now - (s.confirmedAgeMs ?? Infinity),
              writing: 0,
              lastWrite: null,
              failed: null,
            };
      this.map.set(s.user, { state: s.state, used: now - s.idleMs, durable });
    }
  }

  clear(): void {
    this.map.clear();
  }
}
