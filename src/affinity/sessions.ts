/**
 * Per-user sessions in the owner's memory — the passivation Akka and Orleans give entities:
 * bounded (least recently used evicted past `max`) and expired after `ttlMs` idle. A Map keeps
 * insertion order, so re-inserting on use makes its first key the least recently used one.
 * Sessions must stay JSON-serialisable: a rolling reload hands them to the replacement as JSON.
 */

interface Entry {
  state: unknown;
  used: number;
}

export interface SessionSnapshot {
  user: string;
  state: unknown;
  idleMs: number;
}

export class SessionStore {
  private map = new Map<string, Entry>();
  evicted = 0;
  expired = 0;

  constructor(private readonly max: number, private readonly ttlMs: number, private readonly now: () => number = Date.now) {}

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
    for (const [user, e] of this.map) if (now - e.used <= this.ttlMs) out.push({ user, state: e.state, idleMs: now - e.used });
    return out;
  }

  /** Takes sessions handed over by the previous worker of this index. */
  restore(items: SessionSnapshot[]): void {
    const now = this.now();
    for (const s of items) {
      this.map.delete(s.user);
      while (this.map.size >= this.max) this.evictOldest();
      this.map.set(s.user, { state: s.state, used: now - s.idleMs });
    }
  }

  clear(): void {
    this.map.clear();
  }
}
