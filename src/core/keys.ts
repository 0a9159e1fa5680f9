/**
 * The UAP key ring: which key ids may sign calls, and their HMAC secrets (CONTRACT.md §4).
 *
 * Keys come from `QDP_UAP_KEYS="keyId:secret,keyId2:secret2"` and/or a key file named by
 * `QDP_UAP_KEYS_FILE` (one `keyId:secret` per line, `#` comments and blank lines allowed).
 * Several keys side by side are how a secret is rotated: add the new key, move UAP over, drop
 * the old one.
 *
 * Secrets are credentials, so no message built here ever contains one — not even a fragment of a
 * malformed entry, because a malformed entry may well be a secret typed in the wrong place.
 * Errors name the variable (or file line), the entry's position and the accepted form instead.
 *
 * Pure TypeScript: the file is read by the caller (an adapter) and handed in as text.
 */

/** Key id → secret bytes (the UTF-8 bytes of the secret text). */
export type KeyRing = ReadonlyMap<string, Uint8Array>;

/** A parsed key ring plus advice that should be logged but does not stop start-up. */
export interface KeyRingResult {
  readonly ring: KeyRing;
  /** Human-readable warnings (e.g. short secrets); never contain a secret. */
  readonly warnings: string[];
}

/** Key ids: short, log-safe tokens. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** Secrets shorter than this still work, but draw a warning: HMAC-SHA256 wants ≥ 32 bytes of entropy. */
export const MIN_RECOMMENDED_SECRET_CHARS = 32;

const ENV_FORM = 'QDP_UAP_KEYS="keyId:secret,keyId2:secret2" (keyId = [A-Za-z0-9_.-]{1,64}, secret non-empty, no commas)';
const FILE_FORM = "one keyId:secret per line (keyId = [A-Za-z0-9_.-]{1,64}, secret non-empty; # comments and blank lines allowed)";

/** Where an entry came from, for messages: `QDP_UAP_KEYS entry 2` or `QDP_UAP_KEYS_FILE (/etc/k) line 7`. */
interface EntrySource {
  readonly label: string;
  readonly form: string;
}

/**
 * Parses the `QDP_UAP_KEYS` value. A blank or missing value yields an empty ring (open
 * development mode, which the server only allows on loopback). Empty entries (a trailing comma)
 * are skipped.
 *
 * @throws Error naming `QDP_UAP_KEYS`, the entry number and the accepted form; never the secret.
 * @example parseKeyList("uap-2024:3f9c...,uap-2025:a71b...")
 */
export function parseKeyList(spec: string | undefined, variable = "QDP_UAP_KEYS"): KeyRingResult {
  const ring = new Map<string, Uint8Array>();
  const warnings: string[] = [];
  if (spec === undefined) return { ring, warnings };
  spec.split(",").forEach((raw, i) => {
    const entry = raw.trim();
    if (entry === "") return;
    addEntry(ring, warnings, entry, { label: `${variable} entry ${i + 1}`, form: ENV_FORM });
  });
  return { ring, warnings };
}

/**
 * Parses the text of a `QDP_UAP_KEYS_FILE`: one `keyId:secret` per line; lines that are blank or
 * start with `#` (after leading spaces) are ignored. Surrounding whitespace of each line is
 * trimmed, so a CRLF file works too.
 *
 * @param text the file's contents.
 * @param fileName shown in messages (the path, never the contents).
 * @throws Error naming `QDP_UAP_KEYS_FILE`, the file and the line number; never the secret.
 */
export function parseKeyFile(text: string, fileName = "", variable = "QDP_UAP_KEYS_FILE"): KeyRingResult {
  const ring = new Map<string, Uint8Array>();
  const warnings: string[] = [];
  const where = fileName === "" ? variable : `${variable} (${fileName})`;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    addEntry(ring, warnings, line, { label: `${where} line ${i + 1}`, form: FILE_FORM });
  });
  return { ring, warnings };
}

/** The environment variables the key ring is read from. */
export interface KeyEnv {
  QDP_UAP_KEYS?: string | undefined;
  QDP_UAP_KEYS_FILE?: string | undefined;
}

/**
 * Builds the ring from both sources. The key file is read through `readTextFile` so this module
 * stays free of I/O; pass e.g. `(p) => readFileSync(p, "utf8")`. A key id present in both
 * sources is an error: silently preferring one would make rotation mistakes invisible.
 *
 * @throws Error (see {@link parseKeyList}, {@link parseKeyFile}); a file that cannot be read is
 *   reported with its path and the reader's reason.
 */
export function loadKeyRing(env: KeyEnv, readTextFile: (path: string) => string): KeyRingResult {
  const fromList = parseKeyList(env.QDP_UAP_KEYS);
  const path = env.QDP_UAP_KEYS_FILE?.trim() ?? "";
  if (path === "") return fromList;
  let text: string;
  try {
    text = readTextFile(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`QDP_UAP_KEYS_FILE: cannot read ${path}: ${reason}`, { cause: err });
  }
  const fromFile = parseKeyFile(text, path);
  const ring = new Map(fromList.ring);
  for (const [id, secret] of fromFile.ring) {
    if (ring.has(id)) {
      throw new Error(`key id '${id}' is defined in both QDP_UAP_KEYS and QDP_UAP_KEYS_FILE (${path}); define each key once`);
    }
    ring.set(id, secret);
  }
  return { ring, warnings: [...fromList.warnings, ...fromFile.warnings] };
}

/**
 * The key ids of a ring, sorted, for logs and stats. Secrets are never listed.
 * @example describeKeys(ring) // ["uap-2024", "uap-2025"]
 */
export function describeKeys(ring: KeyRing): string[] {
  return [...ring.keys()].sort();
}

function addEntry(ring: Map<string, Uint8Array>, warnings: string[], entry: string, src: EntrySource): void {
  const colon = entry.indexOf(":");
  // The entry is never echoed: without a colon it may be a bare secret.
  if (colon < 0) throw new Error(`${src.label} has no ':' between key id and secret; expected ${src.form}`);
  const id = entry.slice(0, colon).trim();
  // The secret is everything after the first colon, so a secret may itself contain ':'.
  const secret = entry.slice(colon + 1).trim();
  if (!KEY_ID_PATTERN.test(id)) {
    // Not echoed either: a swapped "secret:keyId" would put the secret here.
    throw new Error(`${src.label} has an invalid key id (${id.length} characters); expected ${src.form}`);
  }
  if (secret === "") throw new Error(`${src.label} (key id '${id}') has an empty secret; expected ${src.form}`);
  if (ring.has(id)) throw new Error(`${src.label} repeats key id '${id}'; each key id must appear once`);
  if (secret.length < MIN_RECOMMENDED_SECRET_CHARS) {
    warnings.push(
      `${src.label} (key id '${id}') has a short secret (${secret.length} characters); ` +
        `use at least ${MIN_RECOMMENDED_SECRET_CHARS}, e.g. \`openssl rand -hex 32\``,
    );
  }
  ring.set(id, new TextEncoder().encode(secret));
}
