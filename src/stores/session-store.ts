/**
 * The session store port: where an owner keeps the durable copy of its users' sessions
 * (CONTRACT.md §7). The owner serves from memory (src/affinity/durable-sessions.ts); this port
 * is only asked on a miss, to re-check an old copy, and to store a change before the reply.
 *
 * Adapters: `session-memory.ts` (one process's map; the `memory` setting runs without any
 * durable copy at all, and the in-process tests use this adapter to drive the durable path)
 * and `session-redis.ts` (QDP_SESSION_STORE=redis). Both pass test/session-store.contract.ts.
 *
 * Versions make a stale owner harmless: 0 means "nothing stored", the first write makes 1, and
 * a write succeeds only if the stored version is the one the writer names, checked and written
 * in one atomic step (the etag compare-and-swap of Orleans' storage providers).
 */

/** A stored session: its JSON text and its version (1 or more). */
export interface StoredSession {
  version: number;
  text: string;
}

/** A write's outcome: stored with its new version, or refused because the stored version differs. */
export type SaveOutcome = { ok: true; version: number } | { ok: false; stored: number };

export interface SessionBackend {
  readonly kind: "memory" | "redis";
  /** The stored session, or null when there is none (never stored, or expired). */
  load(user: string): Promise<StoredSession | null>;
  /** The stored version only (0 when none): the cheap freshness check of a copy in memory. */
  version(user: string): Promise<number>;
  /**
   * Stores `text` if the stored version is `expected` (0: nothing stored yet); the new version
   * is `expected + 1`, and the session expires `ttlMs` after this write. Writes issued in the
   * same event-loop tick travel together (pipelined).
   */
  save(user: string, text: string, expected: number): Promise<SaveOutcome>;
  /** Releases connections. Idempotent. */
  close(): void;
}

/** The backend could not answer in time (unreachable, timed out, overloaded). */
export class SessionStoreUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SessionStoreUnavailable";
  }
}
