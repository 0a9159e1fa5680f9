/** The access log's hand-built JSON (telemetry/logger.ts): the same text JSON.stringify would write. */
import { expect, test } from "bun:test";
import { writeJsonString, writeMillis } from "../src/telemetry/logger.ts";
import { rng } from "./support/rng.ts";

/** What writeJsonString writes for `v`, as text. */
function jsonString(v: string | null): string {
  const buf = new Uint8Array(6 * (v?.length ?? 0) + 8);
  return new TextDecoder().decode(buf.subarray(0, writeJsonString(buf, 0, v)));
}

test("writeJsonString writes what JSON.stringify writes, for plain and hostile text alike", () => {
  const samples = [
    "",
    "u417",
    "abc123-0-1a2b",
    "demo.echo",
    "127.0.0.1",
    "::ffff:127.0.0.2",
    'a"b',
    "a\\b",
    "line\nbreak",
    "tab\there",
    "\0",
    "\x7f",
    "用户",
    "é",
    "\u2028",
    "\ud800",
    'a"},"level":"error',
  ];
  for (const s of samples) expect(jsonString(s)).toBe(JSON.stringify(s));
  for (let c = 0; c < 0x100; c++) expect(jsonString(`x${String.fromCharCode(c)}y`)).toBe(JSON.stringify(`x${String.fromCharCode(c)}y`));
  expect(jsonString(null)).toBe("null");
});

/** What writeMillis writes for `ms`, as text. */
function millis(ms: number): string {
  const buf = new Uint8Array(64);
  return new TextDecoder().decode(buf.subarray(0, writeMillis(buf, 0, ms)));
}

test("writeMillis writes what JSON.stringify writes, for a call's whole microseconds and for any other number", () => {
  const random = rng(7);
  for (let i = 0; i < 200_000; i++) {
    // As call-handler.ts makes it: seconds → whole microseconds → milliseconds.
    const ms = Math.round(random() * 10 ** Math.floor(random() * 13)) / 1000;
    expect(millis(ms)).toBe(JSON.stringify(ms));
  }
  for (const ms of [
    0,
    0.001,
    0.01,
    0.1,
    0.999,
    1,
    10.5,
    1000,
    123456.789,
    999999999999.999,
    1e15 / 1000,
    0.1 + 0.2,
    1 / 3,
    2 ** 53,
    1e21,
    1e-7,
    -0.001,
    -5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
  ]) {
    expect(millis(ms)).toBe(JSON.stringify(ms));
  }
});
