/**
 * Pre-signed UAP header sets for wrk (CONTRACT section 4). Lua cannot HMAC, so right before a
 * signed run we write one file per wrk thread, one line per request:
 *   "<user> <timestamp> <nonce> <signature hex>"
 * bench/wrk/signed.lua streams its thread's file, so memory stays flat and no nonce repeats.
 * The timestamp is taken at generation: the run must start and end within the server's 300 s
 * window, which the caller checks.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { signRequest } from "../../src/client/sign.ts";

export interface SignArgs {
  keyId: string;
  secret: string;
  method: string;
  target: string;
  user?: string;
  body?: string;
  timestamp?: number;
  nonce?: string;
}
type SignFn = (a: SignArgs) => Record<string, string>;

/** The project's own signer (src/client/sign.ts), the one UAP implementers are given. */
export async function loadSigner(): Promise<{ sign: SignFn; source: string }> {
  return { sign: (a) => signRequest(a), source: "src/client/sign.ts" };
}

/** Case-insensitive header lookup (signers may spell names differently). */
function header(h: Record<string, string>, name: string): string {
  const key = Object.keys(h).find((k) => k.toLowerCase() === name.toLowerCase());
  if (key === undefined) throw new Error(`signer returned no ${name}`);
  return h[key]!;
}

export interface SignedFilesSpec {
  dir: string;
  threads: number;
  perThread: number;
  keyId: string;
  secret: string;
  target: string;
  body: string;
  /** Rotate users u0..users-1 (0 = no X-QDP-User). */
  users: number;
}

/** Write `<dir>/signed-<i>.txt` for each thread; returns the prefix for signed.lua. */
export async function writeSignedFiles(spec: SignedFilesSpec, sign: SignFn): Promise<string> {
  const prefix = join(spec.dir, "signed");
  const timestamp = Math.floor(Date.now() / 1000);
  const run = randomBytes(6).toString("base64url");
  for (let t = 0; t < spec.threads; t++) {
    const writer = Bun.file(`${prefix}-${t}.txt`).writer();
    for (let i = 0; i < spec.perThread; i++) {
      const user = spec.users > 0 ? `u${Math.floor(Math.random() * spec.users)}` : undefined;
      // Unique per run, thread and request; 16..64 chars of [A-Za-z0-9_-].
      const nonce = `${run}-${t}-${i.toString(36).padStart(8, "0")}`;
      const h = sign({ keyId: spec.keyId, secret: spec.secret, method: "POST", target: spec.target, user, body: spec.body, timestamp, nonce });
      const sig = header(h, "X-QDP-Signature").replace(/^v1=/, "");
      writer.write(`${user ?? ""} ${header(h, "X-QDP-Timestamp")} ${header(h, "X-QDP-Nonce")} ${sig}\n`);
      if (i % 10_000 === 9_999) await writer.flush();
    }
    await writer.end();
  }
  return prefix;
}
