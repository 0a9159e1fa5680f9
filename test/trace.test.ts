/** W3C trace context parsing (core/trace.ts). */
import { expect, test } from "bun:test";
import { traceFrom, traceparentOf } from "../src/core/trace.ts";

test("a valid traceparent is continued with a new span; flags kept", () => {
  const t = traceFrom("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  expect(t.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
  expect(t.spanId).toMatch(/^[0-9a-f]{16}$/);
  expect(t.spanId).not.toBe("00f067aa0ba902b7");
  expect(t.flags).toBe("00");
  expect(traceparentOf(t)).toBe(`00-4bf92f3577b34da6a3ce929d0e0e4736-${t.spanId}-00`);
  expect(traceFrom(traceparentOf(t)).traceId).toBe(t.traceId);
});

test("invalid, all-zero, version ff and extra fields on version 00 start a new trace", () => {
  for (const bad of [
    null,
    "",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
  ]) {
    const t = traceFrom(bad);
    expect(t.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(t.traceId).not.toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(t.flags).toBe("01");
  }
});

test("a future version's extra fields are allowed", () => {
  expect(traceFrom("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever").traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
});
