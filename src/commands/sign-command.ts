/**
 * `bun run qdp sign`: signs one call by hand, for operators and UAP implementers checking their
 * own signer against ours. Prints the X-QDP-* headers, or a ready-to-run curl command.
 *
 * The secret may come from `--secret`, but taking it from `QDP_UAP_KEYS`/`QDP_UAP_KEYS_FILE`
 * (by `--key-id` alone) keeps it out of shell history and `ps`.
 */
import { readFileSync } from "node:fs";
import { loadKeyRing } from "../core/keys.ts";
import { NONCE_PATTERN, SIGNING_HEADERS } from "../core/signing.ts";
import { signRequest } from "../client/sign.ts";

export const SIGN_USAGE = `Usage: bun run qdp sign --key-id ID [--secret S] --target PATH [options]

Signs one QDP call (docs/signing.md) and prints its headers, one "Header: value" per line.

  --key-id ID         key id to sign with (required)
  --secret S          the key's secret; default: looked up by key id in QDP_UAP_KEYS / QDP_UAP_KEYS_FILE
  --target PATH       request target: path plus ?query exactly as sent, e.g. /api/1000?x=1 (required)
  --method M          HTTP method (default: POST with a body, else GET)
  --user U            X-QDP-User value (default: none, the user line is empty)
  --body TEXT         the exact body (UTF-8)        } at most one;
  --body-file F       the exact body, read as bytes } default: empty body
  --timestamp N       unix seconds (default: now)
  --nonce N           16..64 chars of [A-Za-z0-9_-] (default: 22 random base64url chars)
  --curl BASE_URL     print a curl command for BASE_URL + target instead, e.g. http://127.0.0.1:8080
  -h, --help          this text

Exit status: 0 signed, 1 a file or key source could not be read, 2 bad arguments.`;

/** Where the command writes and what it reads; tests replace these. */
export interface SignCommandIo {
  out?: (text: string) => void;
  err?: (text: string) => void;
  env?: Record<string, string | undefined>;
}

const VALUE_OPTIONS = new Set(["key-id", "secret", "target", "method", "user", "body", "body-file", "timestamp", "nonce", "curl"]);

class UsageError extends Error {}

/**
 * Runs `qdp sign` with the arguments after `sign`.
 * @returns the exit status (0 ok, 1 unreadable file or key source, 2 bad arguments).
 */
export function signCommand(argv: string[], io: SignCommandIo = {}): number {
  const out = io.out ?? ((t: string) => void process.stdout.write(t));
  const err = io.err ?? ((t: string) => void process.stderr.write(t));
  const env = io.env ?? process.env;
  try {
    const opts = parseArgs(argv);
    if (opts.has("help")) {
      out(`${SIGN_USAGE}\n`);
      return 0;
    }
    const keyId = required(opts, "key-id");
    const target = required(opts, "target");
    if (!target.startsWith("/")) throw new UsageError("--target must start with '/' (path plus ?query, no scheme or host)");
    if (opts.has("body") && opts.has("body-file")) throw new UsageError("give --body or --body-file, not both");

    const timestampText = opts.get("timestamp");
    if (timestampText !== undefined && !/^[0-9]{1,15}$/.test(timestampText)) {
      throw new UsageError("--timestamp must be unix seconds (digits only)");
    }
    const nonce = opts.get("nonce");
    if (nonce !== undefined && !NONCE_PATTERN.test(nonce)) {
      throw new UsageError("--nonce must be 16..64 characters of [A-Za-z0-9_-]");
    }
    const bodyFile = opts.get("body-file");
    const body: string | Uint8Array = bodyFile !== undefined ? readFileSync(bodyFile) : (opts.get("body") ?? "");
    const hasBody = opts.has("body") || bodyFile !== undefined;
    const method = (opts.get("method") ?? (hasBody ? "POST" : "GET")).toUpperCase();
    if (!/^[A-Z]+$/.test(method)) throw new UsageError("--method must be an HTTP method name, e.g. POST");
    const user = opts.get("user") ?? null;
    const secret = opts.get("secret") ?? secretFromEnv(keyId, env);

    const headers = signRequest({
      keyId,
      secret,
      method,
      target,
      user,
      body,
      ...(timestampText === undefined ? {} : { timestamp: Number(timestampText) }),
      ...(nonce === undefined ? {} : { nonce }),
    });
    // Print the user as text: a terminal and curl's argv carry UTF-8, not fetch's byte string.
    if (user !== null) headers[SIGNING_HEADERS.user] = user;

    const base = opts.get("curl");
    if (base === undefined) {
      out(
        Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\n`)
          .join(""),
      );
    } else {
      out(`${curlCommand(base, method, target, headers, hasBody, body, bodyFile)}\n`);
    }
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`qdp sign: ${e.message}\n\n${SIGN_USAGE}\n`);
      return 2;
    }
    err(`qdp sign: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

function parseArgs(argv: string[]): Map<string, string> {
  const opts = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "-h" || arg === "--help") {
      opts.set("help", "");
      continue;
    }
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument '${arg}'`);
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    if (!VALUE_OPTIONS.has(name)) throw new UsageError(`unknown option --${name}`);
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
    }
    if (opts.has(name)) throw new UsageError(`--${name} given twice`);
    opts.set(name, value);
  }
  return opts;
}

function required(opts: Map<string, string>, name: string): string {
  const value = opts.get(name);
  if (value === undefined || value === "") throw new UsageError(`--${name} is required`);
  return value;
}

function secretFromEnv(keyId: string, env: Record<string, string | undefined>): Uint8Array {
  if ((env.QDP_UAP_KEYS ?? "").trim() === "" && (env.QDP_UAP_KEYS_FILE ?? "").trim() === "") {
    throw new UsageError("no --secret given and neither QDP_UAP_KEYS nor QDP_UAP_KEYS_FILE is set");
  }
  const { ring } = loadKeyRing(env, (p) => readFileSync(p, "utf8"));
  const secret = ring.get(keyId);
  if (secret === undefined) {
    const known = [...ring.keys()].sort().join(", ");
    throw new UsageError(`key id '${keyId}' is not in QDP_UAP_KEYS / QDP_UAP_KEYS_FILE (known: ${known || "none"})`);
  }
  return secret;
}

function curlCommand(
  base: string,
  method: string,
  target: string,
  headers: Record<string, string>,
  hasBody: boolean,
  body: string | Uint8Array,
  bodyFile: string | undefined,
): string {
  const parts = ["curl", "-sS", "-X", method, quote(`${base.replace(/\/+$/, "")}${target}`)];
  for (const [k, v] of Object.entries(headers)) parts.push("-H", quote(`${k}: ${v}`));
  if (hasBody) {
    parts.push("-H", quote("Content-Type: application/json"));
    // --data-binary sends the bytes untouched (plain -d would strip newlines from a file).
    parts.push("--data-binary", bodyFile !== undefined ? quote(`@${bodyFile}`) : quote(typeof body === "string" ? body : ""));
  }
  return parts.join(" ");
}

/** POSIX shell single-quoting. */
function quote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
