/**
 * Swagger as an operator on an intranet meets it: the UI comes from the server itself (no CDN),
 * a real headless Chromium with every outside host unresolvable renders it and lists every
 * function, and /swagger/json is a valid OpenAPI document (swagger-parser) with the signing
 * scheme and each function's own error codes. Assets travel through the public port's own
 * transport and Elysia fallback byte for byte.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import SwaggerParser from "@apidevtools/swagger-parser";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { errorCodesOf } from "../src/edge/openapi.ts";
import { DEMO_SERVICES } from "../src/services/index.ts";
import { type Cluster, startCluster } from "./support/cluster.ts";
import { createTestEdge } from "./support/edge.ts";
import { ensureTool } from "./support/tools.ts";

const chromium = ensureTool("chromium", "chromium");
if (!chromium.path) console.warn(`swagger: the browser check is skipped — ${chromium.why}`);

test.if(!chromium.path && !!process.env.CI)("chromium is available in CI", () => {
  throw new Error(`chromium is required in CI: ${chromium.why}`);
});

const DIST = dirname(fileURLToPath(import.meta.resolve("swagger-ui-dist/package.json")));
const FUNCS = DEMO_SERVICES.map((s) => s.funcNo);

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({ workers: 2, env: { QDP_UAP_KEYS: "k1:swagger-test-secret-0123456789" } });
});
afterAll(async () => {
  await cluster.stop();
});

async function openApi(url: string): Promise<any> {
  const r = await fetch(`${url}/swagger/json`);
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toStartWith("application/json");
  return r.json();
}

describe("OpenAPI document", () => {
  test("is valid OpenAPI 3.1 for swagger-parser, with one operation per function and no catch-all", async () => {
    const doc = await openApi(cluster.url);
    expect(doc.openapi).toBe("3.1.0");
    // validate() dereferences in place: give it a copy.
    await SwaggerParser.validate(structuredClone(doc));
    expect(Object.keys(doc.paths).sort()).toEqual([...FUNCS.map((n) => `/api/${n}`), "/qdp"].sort());
    for (const op of Object.values(doc.paths).map((p: any) => p.post)) {
      for (const [status, r] of Object.entries(op.responses) as Array<[string, any]>)
        expect({ status, description: typeof r.description }).toEqual({ status, description: "string" });
    }
    expect(JSON.stringify(doc)).not.toContain("swagger-test-secret");
  });

  test("signing is a security scheme with the string to sign, and its headers are required when keys are set", async () => {
    const doc = await openApi(cluster.url);
    const scheme = doc.components.securitySchemes.uapSignature;
    expect(scheme).toMatchObject({ type: "apiKey", in: "header", name: "X-QDP-Signature" });
    for (const line of ["v1", "<METHOD>", "<request target>", "<X-QDP-Timestamp>", "<X-QDP-Nonce>", "<X-QDP-User>", "<sha256(body)>", "HMAC-SHA256"])
      expect(scheme.description).toContain(line);
    expect(doc.security).toEqual([{ uapSignature: [] }]);
    for (const n of FUNCS) {
      const params = doc.paths[`/api/${n}`].post.parameters as Array<{ name: string; required: boolean }>;
      for (const h of ["X-QDP-Key-Id", "X-QDP-Timestamp", "X-QDP-Nonce", "X-QDP-Signature"]) expect(params.find((p) => p.name === h)?.required).toBe(true);
    }
  });

  test("each function shows its own error codes", async () => {
    const doc = await openApi(cluster.url);
    const codes = (n: number) =>
      Object.values(doc.paths[`/api/${n}`].post.responses)
        .flatMap((r: any) => r.content?.["application/json"]?.schema?.properties?.error?.properties?.code?.enum ?? [])
        .sort();
    const echo = codes(1000);
    expect(echo).toContain("UNAUTHENTICATED");
    expect(echo).not.toContain("UPSTREAM_ERROR"); // echo calls no upstream
    expect(echo).not.toContain("USER_REQUIRED"); // stateless
    expect(echo).not.toContain("UNKNOWN_FUNCTION"); // the path names an existing function
    expect(echo).not.toContain("FORBIDDEN"); // no QDP_ALLOW_CIDRS
    expect(codes(1001)).toContain("USER_REQUIRED");
    expect(codes(1001)).not.toContain("SESSION_CONFLICT"); // sessions in memory
    expect(codes(1002)).toContain("UPSTREAM_ERROR");
    const quote502 = doc.paths["/api/1002"].post.responses["502"];
    expect(quote502.description).toContain("UPSTREAM_ERROR");
    expect(doc.paths["/api/1000"].post.responses["502"]).toBeUndefined();
    expect(doc.paths["/api/1000"].post.responses["503"].headers["Retry-After"]).toBeDefined();
  });

  test("without keys the signing headers are optional and no security applies; options change the codes", async () => {
    const edge = createTestEdge();
    try {
      const doc = (await (await edge.app.handle(new Request("http://localhost/swagger/json"))).json()) as any;
      await SwaggerParser.validate(structuredClone(doc));
      expect(doc.security).toEqual([]);
      expect(doc.paths["/api/1000"].post.parameters.find((p: any) => p.name === "X-QDP-Signature").required).toBe(false);
    } finally {
      edge.close();
    }
    const counter = DEMO_SERVICES.find((s) => s.funcNo === 1001)!;
    expect(errorCodesOf(counter, { signing: false, allowList: true, durableSessions: true })).toEqual(
      expect.arrayContaining(["FORBIDDEN", "SESSION_UNAVAILABLE", "SESSION_CONFLICT", "USER_REQUIRED"]),
    );
    expect(errorCodesOf(counter, { signing: false, allowList: false, durableSessions: false })).not.toContain("UNAUTHENTICATED");
  });
});

describe("Swagger UI", () => {
  test("assets are served from the server, byte for byte, with their content types", async () => {
    const page = await fetch(`${cluster.url}/swagger`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const html = await page.text();
    const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(urls.length).toBeGreaterThanOrEqual(3);
    for (const u of urls) expect(u).toStartWith("/swagger/"); // nothing from a CDN
    const types: Record<string, string> = { css: "text/css; charset=utf-8", js: "text/javascript; charset=utf-8", png: "image/png" };
    for (const u of urls) {
      const r = await fetch(cluster.url + u);
      expect(r.status).toBe(200);
      const file = new URL(u, "http://x").pathname.split("/").pop()!;
      expect(r.headers.get("content-type")).toBe(types[file.split(".").pop()!]!);
      const got = new Uint8Array(await r.arrayBuffer());
      const want = new Uint8Array(readFileSync(join(DIST, file)));
      expect({ file, length: got.length, same: Buffer.compare(got, want) === 0 }).toEqual({ file, length: want.length, same: true });
      expect(r.headers.get("x-qdp-worker")).toMatch(/^\d$/);
    }
    expect((await fetch(`${cluster.url}/swagger/assets/package.json`)).status).toBe(404);
    expect((await fetch(`${cluster.url}/swagger/assets/..%2Fpackage.json`)).status).toBe(404);
  });

  test.if(!!chromium.path)(
    "a headless Chromium with no outside network renders the page and lists every function",
    async () => {
      const profile = mkdtempSync(join(tmpdir(), "qdp-chromium-"));
      const proc = Bun.spawn(
        [
          chromium.path!,
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-dev-shm-usage",
          "--no-proxy-server",
          // Every host name but loopback is unresolvable: a CDN reference would leave the page blank.
          "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
          `--user-data-dir=${profile}`,
          "--virtual-time-budget=15000",
          "--dump-dom",
          `${cluster.url}/swagger`,
        ],
        { stdout: "pipe", stderr: "pipe" },
      );
      const timer = setTimeout(() => proc.kill("SIGKILL"), 45_000);
      try {
        const dom = await new Response(proc.stdout).text();
        await proc.exited;
        const paths = [...dom.matchAll(/class="opblock-summary-path" data-path="([^"]+)"/g)].map((m) => m[1]);
        expect(paths.sort()).toEqual([...FUNCS.map((n) => `/api/${n}`), "/qdp"].sort());
        for (const s of DEMO_SERVICES) expect(dom).toContain(`${s.funcNo} ${s.name}`);
        expect(dom).toContain("QDP services");
      } finally {
        clearTimeout(timer);
        if (proc.exitCode === null) proc.kill("SIGKILL");
        await proc.exited;
        rmSync(profile, { recursive: true, force: true });
      }
    },
    60_000,
  );
});
