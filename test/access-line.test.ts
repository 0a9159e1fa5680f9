/** The access log's hand-built JSON (telemetry/logger.ts): the same text JSON.stringify would write. */
import { expect, test } from "bun:test";
import { writeJsonString } from "../src/telemetry/logger.ts";

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
