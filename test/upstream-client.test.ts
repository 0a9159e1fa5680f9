/**
 * The request line services' upstream calls send: the configured URL, parsed once and reused, with
 * `query` written exactly as URLSearchParams.set on a fresh URL would write it (the behaviour
 * before the parsed URLs were cached), against a real Bun.serve that records what arrives.
 */
import { afterAll, expect, test } from "bun:test";
import { createUpstreamClient } from "../src/upstream/client.ts";

const seen: string[] = [];
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req) {
    const u = new URL(req.url);
    seen.push(u.pathname + u.search);
    return Response.json({ ok: true });
  },
});
afterAll(() => server.stop(true));
const base = `http://127.0.0.1:${server.port}`;
const client = createUpstreamClient({ aborted: false, children: [] }, { timeoutMs: 5000 });

/** What the request line held before: a fresh URL per call and searchParams.set per parameter. */
function before(url: string, query?: Record<string, string>): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(query ?? {})) u.searchParams.set(k, v);
  return u.pathname + u.search;
}

test("query parameters: encoded as before, a base URL's own parameter replaced, the cached URL never changed", async () => {
  const cases: Array<[string, Record<string, string> | undefined]> = [
    [`${base}/a`, { symbol: "600519.SH" }],
    [`${base}/a`, { q: "a b&c=d/é", empty: "" }],
    [`${base}/a?x=1&symbol=old`, { symbol: "new" }],
    [`${base}/a?x=1`, undefined],
    [`${base}/a`, undefined],
    [`${base}/a`, {}],
    [`${base}/b?`, { k: "v" }],
    [`${base}/a?x=1&symbol=old`, { other: "1" }],
  ];
  for (const [url, query] of cases) {
    seen.length = 0;
    await client.getJson(url, query === undefined ? {} : { query });
    expect({ url, query, sent: seen[0] }).toEqual({ url, query, sent: before(url, query) });
  }
});

test("an invalid URL is an upstream error, every time", async () => {
  for (let i = 0; i < 2; i++) await expect(client.getJson("not a url")).rejects.toThrow("upstream URL is not configured or invalid");
});
