/**
 * What framing one request head costs on the public port: `bun bench/http1-parse.ts`.
 * Parses the head wrk sends in bench A (c) — a signed call with a user — and the unsigned echo's,
 * and prints ns per head. Prints only; no assertions.
 */
import { Buffer } from "node:buffer";
import { parseHead } from "../src/core/http1.ts";

const signed = Buffer.from(
  "POST /api/1000 HTTP/1.1\r\nHost: 127.0.0.1:41234\r\nContent-Type: application/json\r\nX-QDP-Key-Id: bench\r\nX-QDP-Timestamp: 1764244800\r\n" +
    "X-QDP-Nonce: q1w2e3r4-1-0000a1b2\r\nX-QDP-Signature: v1=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\r\nX-QDP-User: u417\r\n" +
    'Content-Length: 40\r\n\r\n{"symbol":"ACME","qty":1,"note":"bench"}',
);
const echo = Buffer.from(
  'POST /api/1000 HTTP/1.1\r\nHost: 127.0.0.1:41234\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"symbol":"ACME","qty":1,"note":"bench"}',
);

function measure(name: string, buf: Buffer, n = 500_000): void {
  for (let i = 0; i < 50_000; i++) parseHead(buf, 0);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) parseHead(buf, 0);
  console.log(`${name}: ${(((performance.now() - t0) * 1e6) / n).toFixed(0)} ns per head`);
}
measure("signed call with a user (9 fields)", signed);
measure("unsigned echo (3 fields)", echo);
