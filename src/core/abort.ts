/**
 * Cancelling one upstream request without an AbortController: the part of an AbortSignal the
 * HTTP client reads (`aborted`, `reason`, "abort" listeners), as a plain object. An
 * AbortController per upstream request (two per demo.quote call) held ~10–30 MiB more of the
 * workers' RSS at 900 calls/s (`bun bench/profile.ts quote-nohop --upstream-ms 1000
 * --connections 2000`, alternated runs); CPU per call did not differ within the box's noise.
 * A caller's real AbortSignal still fits where an {@link AbortSource} is asked for.
 * Pure TypeScript.
 */

/** What the HTTP client needs of a signal; an AbortSignal is one too. */
export interface AbortSource {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** A signal and its controller in one: `abort()` once, listeners called once, in order. */
export class Abort implements AbortSource {
  aborted = false;
  reason: unknown = undefined;
  private listeners: Array<() => void> | null = null;

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = null;
    if (listeners === null) return;
    for (const listener of listeners) {
      try {
        listener();
      } catch {
        // One listener's failure must not keep the others from cleaning up.
      }
    }
  }

  /** Like AbortSignal's: a listener added after the abort is never called. */
  addEventListener(_type: "abort", listener: () => void): void {
    if (!this.aborted) (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const i = this.listeners?.indexOf(listener) ?? -1;
    if (i >= 0) this.listeners!.splice(i, 1);
  }
}
