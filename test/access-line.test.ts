/** The access log's hand-built JSON (telemetry/logger.ts): the same text JSON.stringify would write. */
import { expect, test } from "bun:test";
import { jsonString } from "../src/telemetry/logger.ts";

test("jsonString writes what JSON.stringify writes, for plain and hostile text alike", () => {
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
