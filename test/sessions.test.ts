/**
 * Owner-side session store (bounded, idle-expiring, handed over on reload) and the shared
 * deadline queue, both driven by an injected clock so time is exact.
 */
import { describe, expect, test } from "bun:test";
import { SessionStore, type SessionSnapshot } from "../src/affinity/sessions.ts";
import { DeadlineQueue, hostTimer } from "../src/core/deadlines.ts";

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

interface Counter {
  n: number;
  user: string;
}

/** Gets a user's session and counts a call on it; returns whether the session was new. */
function touch(store: SessionStore, user: string): { fresh: boolean; session: Counter } {
  let fresh = false;
  const session = store.get<Counter>(user, () => {
    fresh = true;
    return { n: 0, user };
  });
  session.n++;
  return { fresh, session };
}

const users = (store: SessionStore) => store.snapshot().map((s) => s.user);

describe("sessions: bounded by max, least recently used evicted", () => {
  test("the first use creates a session, later uses see the same one", () => {
    const store = new SessionStore(10, 60_000, clock().now);
    expect(touch(store, "a").fresh).toBe(true);
    const again = touch(store, "a");
    expect(again.fresh).toBe(false);
    expect(again.session.n).toBe(2);
    expect(store.size).toBe(1);
  });

  test("past max the least recently used session goes", () => {
    const c = clock();
    const store = new SessionStore(3, 60_000, c.now);
    for (const u of ["a", "b", "c"]) {
      touch(store, u);
      c.t++;
    }
    touch(store, "d");
    expect(store.size).toBe(3);
    expect(store.evicted).toBe(1);
    expect(users(store)).toEqual(["b", "c", "d"]);
    expect(touch(store, "a").fresh).toBe(true); // a's state was lost
  });

  test("a get() refreshes a session so another one goes instead", () => {
    const c = clock();
    const store = new SessionStore(3, 60_000, c.now);
    for (const u of ["a", "b", "c"]) {
      touch(store, u);
      c.t++;
    }
    touch(store, "a"); // a is now the most recently used; b is the oldest
    touch(store, "d");
    expect(users(store)).toEqual(["c", "a", "d"]);
    const a = touch(store, "a");
    expect(a.fresh).toBe(false);
    expect(a.session.n).toBe(3);
    expect(touch(store, "b").fresh).toBe(true);
  });

  test("a store of one keeps only the latest user", () => {
    const store = new SessionStore(1, 60_000, clock().now);
    touch(store, "a");
    touch(store, "b");
    expect(users(store)).toEqual(["b"]);
    expect(store.evicted).toBe(1);
  });
});

describe("sessions: expire after ttl idle", () => {
  test("a session idle exactly ttl survives; one ms more and get() starts a new one", () => {
    const c = clock();
    const store = new SessionStore(10, 1000, c.now);
    touch(store, "a");
    c.t += 1000;
    expect(touch(store, "a").session.n).toBe(2);
    c.t += 1001;
    const after = touch(store, "a");
    expect(after.fresh).toBe(true);
    expect(after.session.n).toBe(1);
    expect(store.expired).toBe(1);
  });

  test("use keeps a session alive past ttl since its creation", () => {
    const c = clock();
    const store = new SessionStore(10, 1000, c.now);
    touch(store, "a");
    for (let i = 0; i < 10; i++) {
      c.t += 900;
      expect(touch(store, "a").fresh).toBe(false);
    }
  });

  test("sweep() drops idle sessions and keeps fresh ones", () => {
    const c = clock(0);
    const store = new SessionStore(10, 1000, c.now);
    touch(store, "a"); // used at 0
    c.t = 500;
    touch(store, "b"); // used at 500
    c.t = 900;
    touch(store, "c"); // used at 900
    c.t = 1200;
    touch(store, "a"); // used at 1200: a was idle 1200 > 1000, so it restarts
    expect(store.expired).toBe(1);
    c.t = 1600;
    expect(store.sweep()).toBe(1); // b (idle 1100)
    expect(users(store)).toEqual(["c", "a"]);
    c.t = 1901;
    expect(store.sweep()).toBe(1); // c (idle 1001)
    expect(users(store)).toEqual(["a"]);
    expect(store.sweep()).toBe(0);
    c.t = 2201;
    expect(store.sweep()).toBe(1);
    expect(store.size).toBe(0);
    expect(store.expired).toBe(4);
  });

  test("snapshot() leaves out sessions past ttl that no sweep has dropped yet", () => {
    const c = clock(0);
    const store = new SessionStore(10, 1000, c.now);
    touch(store, "old");
    c.t = 800;
    touch(store, "new");
    c.t = 1500;
    expect(users(store)).toEqual(["new"]);
  });
});

describe("sessions: hand-off on reload", () => {
  test("snapshot()/restore() through JSON keeps state, order and idle time", () => {
    const before = clock(5_000_000);
    const old = new SessionStore(100, 10_000, before.now);
    for (const [u, at] of [
      ["a", 0],
      ["b", 2000],
      ["c", 3500],
      ["a2", 4000],
    ] as const) {
      before.t = 5_000_000 + at;
      touch(old, u);
    }
    touch(old, "b"); // b used again at +4000
    before.t = 5_000_000 + 6000;
    const snap = old.snapshot();
    expect(snap.map((s) => [s.user, s.idleMs])).toEqual([
      ["a", 6000],
      ["c", 2500],
      ["a2", 2000],
      ["b", 2000],
    ]);

    // The replacement process has its own clock.
    const after = clock(42);
    const next = new SessionStore(100, 10_000, after.now);
    next.restore(JSON.parse(JSON.stringify(snap)) as SessionSnapshot[]);
    expect(next.snapshot()).toEqual(snap);
    expect(touch(next, "b").session).toEqual({ n: 3, user: "b" });

    // a had 6000 ms of its 10000 ms ttl used up before the hand-off.
    after.t += 3999;
    expect(next.sweep()).toBe(0);
    after.t += 2;
    expect(next.sweep()).toBe(1);
    expect(users(next)).toEqual(["c", "a2", "b"]);
  });

  test("restore() into a smaller store keeps the most recently used", () => {
    const c = clock();
    const old = new SessionStore(10, 60_000, c.now);
    for (const u of ["a", "b", "c", "d"]) {
      touch(old, u);
      c.t += 10;
    }
    const next = new SessionStore(2, 60_000, clock().now);
    next.restore(old.snapshot());
    expect(users(next)).toEqual(["c", "d"]);
  });

  test("a restored user replaces a session the new process already started", () => {
    const c = clock();
    const next = new SessionStore(10, 60_000, c.now);
    touch(next, "a");
    next.restore([{ user: "a", state: { n: 7, user: "a" }, idleMs: 0 }]);
    expect(next.size).toBe(1);
    expect(touch(next, "a").session.n).toBe(8);
  });
});

describe("deadline queue", () => {
  test("fires due deadlines in order and leaves later ones", () => {
    const q = new DeadlineQueue();
    const fired: number[] = [];
    for (const at of [10, 20, 30]) q.add(at, () => fired.push(at));
    expect(q.size).toBe(3);
    expect(q.sweep(5)).toBe(0);
    expect(q.sweep(20)).toBe(2);
    expect(fired).toEqual([10, 20]);
    expect(q.size).toBe(1);
    expect(q.sweep(30)).toBe(1);
    expect(fired).toEqual([10, 20, 30]);
    expect(q.size).toBe(0);
    expect(q.sweep(1000)).toBe(0);
  });

  test("a finished call is skipped", () => {
    const q = new DeadlineQueue();
    const fired: string[] = [];
    q.add(10, () => fired.push("a"));
    const b = q.add(11, () => fired.push("b"));
    q.add(12, () => fired.push("c"));
    b.done = true;
    expect(q.sweep(100)).toBe(2);
    expect(fired).toEqual(["a", "c"]);
  });

  test("an expired deadline is marked done and never fires twice", () => {
    const q = new DeadlineQueue();
    let n = 0;
    const d = q.add(10, () => n++);
    q.sweep(10);
    q.sweep(20);
    expect(d.done).toBe(true);
    expect(n).toBe(1);
  });

  test("an earlier deadline added later fires in time order", () => {
    const q = new DeadlineQueue();
    const fired: number[] = [];
    for (const at of [10, 30, 20, 25, 5]) q.add(at, () => fired.push(at));
    expect(q.sweep(22)).toBe(3);
    expect(fired).toEqual([5, 10, 20]);
    expect(q.sweep(100)).toBe(2);
    expect(fired).toEqual([5, 10, 20, 25, 30]);
  });

  test("an out-of-order insert after a partial sweep lands before later deadlines", () => {
    const q = new DeadlineQueue();
    const fired: number[] = [];
    for (const at of [10, 20]) q.add(at, () => fired.push(at));
    q.sweep(15);
    q.add(30, () => fired.push(30));
    q.add(12, () => fired.push(12));
    expect(q.size).toBe(3);
    expect(q.sweep(25)).toBe(2);
    expect(fired).toEqual([10, 12, 20]);
    expect(q.size).toBe(1);
  });

  test("a throwing callback does not stop the others", () => {
    const q = new DeadlineQueue();
    const fired: number[] = [];
    q.add(1, () => {
      throw new Error("boom");
    });
    q.add(2, () => fired.push(2));
    expect(q.sweep(5)).toBe(2);
    expect(fired).toEqual([2]);
  });

  test("stays correct across many adds and sweeps", () => {
    const q = new DeadlineQueue();
    let fired = 0;
    let finished = 0;
    const pending: Array<{ done: boolean }> = [];
    for (let t = 0; t < 20_000; t++) {
      const d = q.add(t + 100, () => fired++);
      pending.push(d);
      if (t % 3 === 0) {
        d.done = true; // the call finished before its deadline
        finished++;
      }
      if (t % 50 === 0) q.sweep(t);
    }
    q.sweep(Number.MAX_SAFE_INTEGER);
    expect(fired + finished).toBe(20_000);
    expect(q.size).toBe(0);
    expect(pending.every((d) => d.done)).toBe(true);
  });
});

/** A clock and timers the test moves by hand: what the queue armed, and when. */
function fakeTimer() {
  let now = 0;
  let next = 1;
  const armed = new Map<number, { at: number; fire: () => void }>();
  let sets = 0;
  return {
    timer: {
      set: (fire: () => void, ms: number) => {
        sets++;
        const h = next++;
        armed.set(h, { at: now + ms, fire });
        return h;
      },
      clear: (h: unknown) => void armed.delete(h as number),
      now: () => now,
    },
    /** Moves the clock to `t`, firing the timers due on the way, in time order. */
    advance(t: number) {
      for (;;) {
        const due = [...armed.entries()].filter(([, a]) => a.at <= t).sort((x, y) => x[1].at - y[1].at)[0];
        if (due === undefined) break;
        armed.delete(due[0]);
        now = due[1].at;
        due[1].fire();
      }
      now = t;
    },
    armedAt: () => [...armed.values()].map((a) => a.at),
    get sets() {
      return sets;
    },
  };
}

describe("deadline queue with its own timer", () => {
  test("arms one timer at the earliest pending deadline, fires it on time and re-arms for the next", () => {
    const t = fakeTimer();
    const q = new DeadlineQueue(t.timer);
    const fired: number[] = [];
    expect(t.armedAt()).toEqual([]);
    for (const at of [100, 200, 300]) q.add(at, () => fired.push(at));
    expect(t.armedAt()).toEqual([100]);
    t.advance(99);
    expect(fired).toEqual([]);
    t.advance(100);
    expect(fired).toEqual([100]);
    expect(t.armedAt()).toEqual([200]);
    t.advance(1000);
    expect(fired).toEqual([100, 200, 300]);
    // Nothing pending: nothing armed, so an idle process is not woken.
    expect(t.armedAt()).toEqual([]);
  });

  test("calls that finish in time do not wake the process: the timer waits for the oldest call still running", () => {
    // A 20 ms interval per queue woke every worker 150 times a second whatever the load.
    const t = fakeTimer();
    const q = new DeadlineQueue(t.timer);
    const fired: number[] = [];
    // 30 s deadlines, one call a millisecond, each finishing 4 s after it started.
    const running: Array<{ done: boolean; startedAt: number }> = [];
    for (let ms = 0; ms < 60_000; ms++) {
      t.advance(ms);
      for (const d of running) if (!d.done && d.startedAt + 4000 <= ms) d.done = true;
      running.push(
        Object.assign(
          q.add(ms + 30_000, () => fired.push(ms)),
          { startedAt: ms },
        ),
      );
      if (running.length > 5000) running.splice(0, running.length - 5000);
    }
    expect(fired).toEqual([]);
    // Two fires over a minute (once per timeout, at the deadline the timer was armed for), not 3,000.
    expect(t.sets).toBeLessThanOrEqual(4);
    // Finished calls left the queue as new ones came: it holds about the last 4 s of calls.
    expect(q.size).toBeLessThan(4100);
  });

  test("on the runtime's own timers (hostTimer(globalThis)) a deadline fires when due", async () => {
    const q = new DeadlineQueue(hostTimer(globalThis));
    const at = Date.now() + 5;
    const firedAt = await new Promise<number>((resolve) => q.add(at, () => resolve(Date.now())));
    expect(firedAt).toBeGreaterThanOrEqual(at);
    expect(q.size).toBe(0);
  });

  test("an earlier deadline added later re-arms the timer; stop() disarms it", () => {
    const t = fakeTimer();
    const q = new DeadlineQueue(t.timer);
    const fired: number[] = [];
    q.add(500, () => fired.push(500));
    q.add(50, () => fired.push(50));
    expect(t.armedAt()).toEqual([50]);
    t.advance(60);
    expect(fired).toEqual([50]);
    expect(t.armedAt()).toEqual([500]);
    q.stop();
    expect(t.armedAt()).toEqual([]);
    q.add(600, () => fired.push(600));
    expect(t.armedAt()).toEqual([500]);
    t.advance(700);
    expect(fired).toEqual([50, 500, 600]);
  });
});
