import { expect, test } from "bun:test";
import { Abort, type AbortSource } from "../src/core/abort.ts";

test("Abort: listeners run once, in order, on the first abort only; the reason is kept", () => {
  const a = new Abort();
  const seen: string[] = [];
  const first = () => seen.push("first");
  a.addEventListener("abort", first);
  a.addEventListener("abort", () => {
    throw new Error("a failing listener");
  });
  a.addEventListener("abort", () => seen.push("third"));
  expect(a.aborted).toBe(false);
  a.abort("deadline");
  a.abort("again");
  expect(seen).toEqual(["first", "third"]);
  expect(a.aborted).toBe(true);
  expect(a.reason).toBe("deadline");
  // Like an AbortSignal: a listener added after the abort is never called.
  a.addEventListener("abort", () => seen.push("late"));
  expect(seen).toEqual(["first", "third"]);
});

test("Abort: a removed listener is not called", () => {
  const a = new Abort();
  let n = 0;
  const l = () => n++;
  a.addEventListener("abort", l);
  a.removeEventListener("abort", l);
  a.removeEventListener("abort", l);
  a.abort();
  expect(n).toBe(0);
});

test("a real AbortSignal is an AbortSource too (a service's own signal goes the same way)", () => {
  const c = new AbortController();
  const s: AbortSource = c.signal;
  let n = 0;
  s.addEventListener("abort", () => n++, { once: true });
  c.abort(new Error("stop"));
  expect(s.aborted).toBe(true);
  expect(n).toBe(1);
});
