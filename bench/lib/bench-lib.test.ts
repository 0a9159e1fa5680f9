/** The benchmark's pure parts: wrk output parsing, aggregation, nginx config, SVG, signing. */
import { describe, expect, test } from "bun:test";
import { createHash, createHmac } from "node:crypto";
import { svgChart } from "./render.ts";
import { loadSigner } from "./sign.ts";
import { nginxConfig } from "./servers.ts";
import { paired, spread } from "./stats.ts";
import { errorCount, parseWrkOutput } from "./wrk.ts";

const TEXT = `Running 10s test @ http://127.0.0.1:8080/api/1000
  2 threads and 500 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.03ms    1.20ms   1.01s    90.00%
    Req/Sec    50.00k     2.00k   60.00k    70.00%
  Latency Distribution
     50%  612.00us
     75%    5.50ms
     90%    6.00ms
     99%    1.20s
  1.00M requests in 10.00s, 100.00MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 12
Requests/sec: 100000.00
Transfer/sec:     10.00MB
`;

describe("parseWrkOutput", () => {
  test("reads wrk's text report with its units", () => {
    const r = parseWrkOutput(TEXT);
    expect(r.rps).toBe(100000);
    expect(r.requests).toBe(1_000_000);
    expect(r.durationSec).toBe(10);
    expect(r.latency.p50).toBeCloseTo(0.612);
    expect(r.latency.p99).toBe(1200);
    expect(r.latency.max).toBe(1010);
    expect(r.errors).toEqual({ connect: 1, read: 2, write: 3, timeout: 4, status: 12 });
    expect(errorCount(r.errors)).toBe(22);
  });

  test("prefers the BENCH_JSON line of common.lua", () => {
    const json =
      'BENCH_JSON {"requests":500,"duration_us":2000000,"bytes":1,"connect":0,"read":0,"write":0,"status":7,"timeout":0,' +
      '"mean_us":1500.0,"max_us":9000,"p50_us":1000,"p75_us":1200,"p90_us":2000,"p99_us":8000,"p999_us":8500,"exhausted":3}';
    const r = parseWrkOutput(`${TEXT}${json}\n`);
    expect(r.rps).toBe(250);
    expect(r.latency.p50).toBe(1);
    expect(r.latency.p99).toBe(8);
    expect(r.errors.status).toBe(7);
    expect(r.exhausted).toBe(3);
  });

  test("a run without errors has zero counters", () => {
    const r = parseWrkOutput(TEXT.replace(/\s+Socket errors.*\n/, "\n").replace(/\s+Non-2xx.*\n/, "\n"));
    expect(errorCount(r.errors)).toBe(0);
  });
});

test("spread gives median and range, ignoring NaN", () => {
  expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
  expect(spread([4, 1, 2, Number.NaN, 3])).toEqual({ median: 2.5, min: 1, max: 4 });
});

test("paired differences follow each round, so a drift both variants share cancels out", () => {
  // The reference drifts from 18 to 25 µs mid-run; the variant is 1 µs cheaper in every round
  // but one. Medians of each alone (19.5 vs 20.5) would hide how consistent that is.
  const reference = [18, 18.5, 19, 25, 25.5, 26];
  const variant = [17, 17.5, 18, 24, 24.5, 26.5];
  expect(paired(variant, reference)).toEqual({ median: -1, lower: 5, higher: 1, rounds: 6 });
  // Rounds missing on either side (a failed run) are left out, not paired with another round.
  expect(paired([10, Number.NaN, 12], [11, 11, 11, 11])).toEqual({ median: 0, lower: 1, higher: 1, rounds: 2 });
});

test("nginx config: daemon off, unix upstreams, ip_hash only when asked", () => {
  const base = { dir: "/tmp/x", port: 1234, sockets: ["/tmp/x/a.sock", "/tmp/x/b.sock"], workers: "auto", backlog: 4096 };
  const plain = nginxConfig({ ...base, ipHash: false });
  expect(plain).toContain("daemon off;");
  expect(plain).toContain("server unix:/tmp/x/a.sock;");
  expect(plain).toContain("listen 127.0.0.1:1234 backlog=4096;");
  expect(plain).not.toContain("ip_hash");
  expect(nginxConfig({ ...base, ipHash: true })).toContain("ip_hash;");
});

test("the bench signs with the project's signer, which follows CONTRACT section 4", async () => {
  const { sign } = await loadSigner();
  const h = sign({ keyId: "k", secret: "s", method: "post", target: "/api/1000", user: "u1", body: "{}", timestamp: 100, nonce: "abcdefghijklmnop" });
  const s = ["v1", "POST", "/api/1000", "100", "abcdefghijklmnop", "u1", createHash("sha256").update("{}").digest("hex")].join("\n");
  expect(h["X-QDP-Signature"]).toBe(`v1=${createHmac("sha256", "s").update(s).digest("hex")}`);
  expect(h["X-QDP-User"]).toBe("u1");
});

test("svgChart draws a bar and whisker per contender and marks missing ones", () => {
  const svg = svgChart("t", "req/s", [
    {
      title: "-c500",
      bars: [
        { label: "a<b", median: 10, min: 8, max: 12 },
        { label: "b", median: Number.NaN, min: Number.NaN, max: Number.NaN },
      ],
    },
  ]);
  expect(svg.startsWith("<svg")).toBe(true);
  expect(svg).toContain("a&lt;b");
  expect(svg).toContain("not run");
  expect((svg.match(/<rect /g) ?? []).length).toBe(2); // background + one bar
});
