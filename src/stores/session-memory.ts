/**
 * The session store port in one process's memory, with the same versions and expiry as Redis.
 * The `memory` setting does not use it (the owner's cache is then the only copy, as before
 * durable sessions existed); it exists so the contract suite has a reference and the in-process
 * tests can drive the executor's durable path (loads, conflicts, outages) without a server.
 */
import type { SaveOutcome, SessionBackend, StoredSession } from "./session-store.ts";
import { SessionStoreUnavailable } from "./session-store.ts";

export interface MemorySessionBackend extends SessionBackend {
  /** While set, every operation fails as an unreachable store would. */
  down: boolean;
}

export function createMemorySessionBackend(opts: { ttlMs: number; now?: () => number }): MemorySessionBackend {
  const now = opts.now ?? Date.now;
  const map = new Map<string, StoredSession & { expires: number }>();
  const live = (user: string) => {
    const s = map.get(user);
    if (s !== undefined && s.expires <= now()) {
      map.delete(user);
      return undefined;
    }
    return s;
  };
  const backend: MemorySessionBackend = {
    kind: "memory",
    down: false,
    async load(user) {
      if (backend.down) throw new SessionStoreUnavailable("session store is down");
      const s = live(user);
      return s === undefined ? null : { version: s.version, text: s.text };
    },
    async version(user) {
      if (backend.down) throw new SessionStoreUnavailable("session store is down");
      return live(user)?.version ?? 0;
    },
    async save(user, text, expected): Promise<SaveOutcome> {
      if (backend.down) throw new SessionStoreUnavailable("session store is down");
      const stored = live(user)?.version ?? 0;
      if (stored !== expected) return { ok: false, stored };
      map.set(user, { version: expected + 1, text, expires: now() + opts.ttlMs });
      return { ok: true, version: expected + 1 };
    },
    close() {},
  };
  return backend;
}
