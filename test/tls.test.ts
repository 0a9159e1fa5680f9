/**
 * HTTPS on the public port (QDP_TLS_CERT / QDP_TLS_KEY) with certificates the test makes with
 * openssl: every worker serves TLS on the shared port, signing still applies, plain HTTP gets
 * nothing, a rolling reload (SIGHUP via `qdp reload`) serves a renewed certificate, and
 * `qdp doctor` warns about one close to expiry.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";
import { signRequest } from "../src/client/sign.ts";
import { BUN, type Cluster, ROOT, startCluster } from "./support/cluster.ts";
import { ensureTool } from "./support/tools.ts";

const openssl = ensureTool("openssl", "openssl");
if (!openssl.path) console.warn(`tls: skipped — ${openssl.why}`);
test.if(!openssl.path && !!process.env.CI)("openssl is available in CI", () => {
  throw new Error(`openssl is required in CI: ${openssl.why}`);
});

const SECRET = "tls-test-secret-0123456789abcdef";
let dir = "";
let cluster: Cluster | null = null;

/** A self-signed certificate for 127.0.0.1 valid `days` days, written to cert.pem/key.pem. */
function makeCertificate(days: number, cn: string): { cert: string; fingerprint: string } {
  const r = Bun.spawnSync(
    [
      openssl.path!,
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
      "-days",
      String(days),
      "-subj",
      `/CN=${cn}`,
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  if (r.exitCode !== 0) throw new Error(`openssl failed: ${r.stderr.toString()}`);
  const cert = readFileSync(join(dir, "cert.pem"), "utf8");
  return { cert, fingerprint: new X509Certificate(cert).fingerprint256 };
}

/** The fingerprint of the certificate the server presents on a new connection. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.on("error", reject);
  });
}

function signedHttps(port: number, ca: string, user: string): Promise<Response> {
  const url = `https://127.0.0.1:${port}/api/1000`;
  const body = '{"tls":true}';
  const headers = signRequest({ keyId: "k1", secret: SECRET, method: "POST", url, user, body });
  return fetch(url, { method: "POST", headers: { ...headers, connection: "close" }, body, tls: { ca } });
}

let first = { cert: "", fingerprint: "" };

beforeAll(async () => {
  if (!openssl.path) return;
  dir = mkdtempSync(join(tmpdir(), "qdp-tls-"));
  first = makeCertificate(5, "qdp-first");
  cluster = await startCluster({
    workers: 2,
    env: { QDP_UAP_KEYS: `k1:${SECRET}`, QDP_TLS_CERT: join(dir, "cert.pem"), QDP_TLS_KEY: join(dir, "key.pem") },
    noWait: true, // the helper's readiness probe speaks plain HTTP
  });
  const until = Date.now() + 15_000;
  for (;;) {
    const stats = await cluster.stats().catch(() => null);
    if (stats?.workers.every((w) => w.state === "ready")) {
      const r = await fetch(`https://127.0.0.1:${cluster.port}/readyz/cluster`, { tls: { ca: first.cert } }).catch(() => null);
      if (r?.status === 200) break;
    }
    if (Date.now() > until) throw new Error(`TLS cluster not ready:\n${cluster.output()}`);
    await Bun.sleep(50);
  }
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test.if(!!openssl.path)("every worker serves HTTPS on the shared port, and signing still applies", async () => {
  const edges = new Set<string>();
  for (let i = 0; i < 30 && edges.size < 2; i++) {
    const r = await signedHttps(cluster!.port, first.cert, `tls-user-${i}`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ok: true, funcNo: 1000, data: { tls: true } });
    edges.add(r.headers.get("x-qdp-edge")!);
  }
  expect([...edges].sort()).toEqual(["0", "1"]);
  const unsigned = await fetch(`https://127.0.0.1:${cluster!.port}/api/1000`, { method: "POST", body: "{}", tls: { ca: first.cert } });
  expect(unsigned.status).toBe(401);
  expect(await servedFingerprint(cluster!.port)).toBe(first.fingerprint);
  // Plain HTTP to the TLS port gets no HTTP answer.
  const plain = await fetch(`http://127.0.0.1:${cluster!.port}/healthz`, { signal: AbortSignal.timeout(3000) }).then(
    (r) => `status ${r.status}`,
    () => "failed",
  );
  expect(plain).toBe("failed");
});

test.if(!!openssl.path)("qdp doctor warns about a certificate close to expiry", async () => {
  const r = Bun.spawnSync([BUN, "src/cli.ts", "doctor", "--json"], {
    cwd: ROOT,
    env: { ...process.env, QDP_STATS_PORT: String(cluster!.statsPort), QDP_TLS_CERT: join(dir, "cert.pem"), QDP_TLS_KEY: join(dir, "key.pem") },
  });
  const doc = JSON.parse(r.stdout.toString());
  const check = doc.checks.find((c: { id: string }) => c.id === "TLS certificate");
  expect(check).toMatchObject({ status: "WARN", value: expect.stringContaining("CN=qdp-first") });
  expect(check.message).toMatch(/expires in [45] days/);
});

test.if(!!openssl.path)(
  "a rolling reload serves the renewed certificate",
  async () => {
    const renewed = makeCertificate(90, "qdp-renewed");
    expect(renewed.fingerprint).not.toBe(first.fingerprint);
    const r = Bun.spawnSync([BUN, "src/cli.ts", "reload", "--wait", "--timeout", "60"], {
      cwd: ROOT,
      env: { ...process.env, QDP_STATS_PORT: String(cluster!.statsPort) },
    });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
    for (let i = 0; i < 10; i++) expect(await servedFingerprint(cluster!.port)).toBe(renewed.fingerprint);
    const ok = await signedHttps(cluster!.port, renewed.cert, "after-renewal");
    expect(ok.status).toBe(200);
  },
  90_000,
);
