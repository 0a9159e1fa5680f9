import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseKeyList } from "../src/core/keys.ts";
import { verifyRequest } from "../src/core/signing.ts";
import { signatureInput } from "../src/edge/signature-input.ts";
import { signCommand } from "../src/commands/sign-command.ts";
import fixtures from "./fixtures/signing-vectors.json";

const v = fixtures.vectors[0]!;
const secret = fixtures.keys["uap-test-2024"];
const dir = mkdtempSync(join(tmpdir(), "qdp-sign-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs signCommand in-process, capturing its output. */
function run(argv: string[], env: Record<string, string | undefined> = {}) {
  let out = "";
  let err = "";
  const code = signCommand(argv, { out: (t) => void (out += t), err: (t) => void (err += t), env });
  return { code, out, err };
}

const vectorArgs = [
  "--key-id",
  v.keyId,
  "--method",
  v.method,
  "--target",
  v.target,
  "--user",
  v.user!,
  "--body",
  v.body,
  "--timestamp",
  String(v.timestamp),
  "--nonce",
  v.nonce,
];

describe("qdp sign", () => {
  test("prints one Header: value per line, matching the published vector", () => {
    const r = run([...vectorArgs, "--secret", secret]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      `X-QDP-Key-Id: ${v.keyId}\nX-QDP-Timestamp: ${v.timestamp}\nX-QDP-Nonce: ${v.nonce}\nX-QDP-Signature: ${v.signature}\nX-QDP-User: ${v.user}\n`,
    );
  });

  test("takes the secret from QDP_UAP_KEYS or QDP_UAP_KEYS_FILE by key id", () => {
    const keys = Object.entries(fixtures.keys)
      .map(([k, s]) => `${k}:${s}`)
      .join(",");
    expect(run(vectorArgs, { QDP_UAP_KEYS: keys }).out).toContain(v.signature);
    const file = join(dir, "keys");
    writeFileSync(file, `# test keys\n${keys.replace(",", "\n")}\n`);
    expect(run(vectorArgs, { QDP_UAP_KEYS_FILE: file }).out).toContain(v.signature);
    const missing = run(["--key-id", "nope", "--target", "/x"], { QDP_UAP_KEYS: keys });
    expect(missing.code).toBe(2);
    expect(missing.err).toContain("key id 'nope'");
    expect(missing.err).not.toContain(secret);
  });

  test("--body-file signs the file's bytes; GET without a body by default", () => {
    const nb = fixtures.vectors.find((x) => x.user === null)!;
    const file = join(dir, "body.json");
    writeFileSync(file, nb.body);
    const r = run([
      "--key-id",
      nb.keyId,
      "--secret",
      secret,
      "--target",
      nb.target,
      "--body-file",
      file,
      "--timestamp",
      String(nb.timestamp),
      "--nonce",
      nb.nonce,
    ]);
    expect(r.out).toContain(nb.signature);
    expect(r.out).not.toContain("X-QDP-User");
    const empty = fixtures.vectors.find((x) => x.body === "")!;
    const g = run([
      `--key-id=${empty.keyId}`,
      `--secret=${secret}`,
      `--target=${empty.target}`,
      `--user=${empty.user}`,
      `--timestamp=${empty.timestamp}`,
      `--nonce=${empty.nonce}`,
    ]);
    expect(g.out).toContain(empty.signature);
    expect(g.out).toContain(`X-QDP-User: ${empty.user}`);
  });

  test("defaults to a fresh nonce and the current time", () => {
    const a = run(["--key-id", "k", "--secret", "s", "--target", "/api/1000"]);
    const b = run(["--key-id", "k", "--secret", "s", "--target", "/api/1000"]);
    expect(a.out).toMatch(/X-QDP-Nonce: [A-Za-z0-9_-]{22}\n/);
    expect(a.out).not.toBe(b.out);
  });

  test("--curl prints a runnable command", () => {
    const r = run(["--key-id", v.keyId, "--secret", secret, "--target", v.target, "--user", "u1", "--body", "it's", "--curl", "http://127.0.0.1:8080/"]);
    expect(r.code).toBe(0);
    expect(r.out).toStartWith(`curl -sS -X POST 'http://127.0.0.1:8080${v.target}' -H 'X-QDP-Key-Id: ${v.keyId}'`);
    expect(r.out).toContain("--data-binary 'it'\\''s'");
    expect(r.out).toContain("-H 'Content-Type: application/json'");
    expect(r.out).toContain("-H 'X-QDP-User: u1'");
  });

  test.skipIf(Bun.which("curl") === null)("the curl command passes verification byte for byte (unicode user, query, JSON body)", async () => {
    const keys = parseKeyList(`${v.keyId}:${secret}`).ring;
    const server = Bun.serve({
      port: 0,
      async fetch(req) {
        try {
          verifyRequest(signatureInput(req, new Uint8Array(await req.arrayBuffer())), keys, Math.floor(Date.now() / 1000));
          return new Response("verified");
        } catch (e) {
          return new Response((e as Error).message, { status: 401 });
        }
      },
    });
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const file = join(dir, "curl-body.json");
      writeFileSync(file, '{"symbol":"茅台",\n"n":1}\n');
      for (const body of [["--body", '{"symbol":"茅台"}'], ["--body-file", file], []]) {
        const r = run(["--key-id", v.keyId, "--secret", secret, "--target", "/api/1002?symbol=%E8%8C%85&x=1", "--user", "用户-é", ...body, "--curl", base]);
        expect(r.code).toBe(0);
        const p = Bun.spawn(["sh", "-c", r.out]);
        const text = await new Response(p.stdout).text();
        expect(text).toBe("verified");
      }
    } finally {
      server.stop(true);
    }
  });

  test("bad arguments: usage and status 2", () => {
    for (const argv of [
      [],
      ["--key-id", "k", "--secret", "s"],
      ["--target", "/x", "--secret", "s"],
      ["--key-id", "k", "--secret", "s", "--target", "api/1000"],
      ["--key-id", "k", "--secret", "s", "--target", "/x", "--timestamp", "soon"],
      ["--key-id", "k", "--secret", "s", "--target", "/x", "--nonce", "short"],
      ["--key-id", "k", "--secret", "s", "--target", "/x", "--body", "a", "--body-file", "f"],
      ["--key-id", "k", "--secret", "s", "--target", "/x", "--bogus"],
      ["--key-id", "k", "--secret", "s", "--target"],
      ["--key-id", "k", "--target", "/x"],
      ["stray"],
    ]) {
      const r = run(argv);
      expect(r.code).toBe(2);
      expect(r.err).toContain("Usage: bun run qdp sign");
      expect(r.out).toBe("");
    }
  });

  test("--help prints usage, status 0", () => {
    const r = run(["--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("--key-id");
  });

  test("an unreadable body file: status 1", () => {
    const r = run(["--key-id", "k", "--secret", "s", "--target", "/x", "--body-file", join(dir, "missing")]);
    expect(r.code).toBe(1);
  });

  test("as a process: bun src/commands/sign-command-main.ts", () => {
    const ok = Bun.spawnSync([process.execPath, "src/commands/sign-command-main.ts", ...vectorArgs], {
      cwd: join(import.meta.dir, ".."),
      env: { ...process.env, QDP_UAP_KEYS: `${v.keyId}:${secret}`, QDP_UAP_KEYS_FILE: "" },
    });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout.toString()).toContain(`X-QDP-Signature: ${v.signature}\n`);
    const bad = Bun.spawnSync([process.execPath, "src/commands/sign-command-main.ts", "--nope"], { cwd: join(import.meta.dir, "..") });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.toString()).toContain("unknown option --nope");
  });
});
