/**
 * The forward file (`QDP_FORWARD_FILE`, CONTRACT.md §8): function-number ranges that this server
 * checks and then forwards to existing HTTP services — the migration bridge. This module only
 * reads the file's text into a checked table; it reports every problem at once, naming the entry
 * (and, for overlaps, both entries), like the configuration does. Pure TypeScript.
 *
 * Backends are `http://` or `https://` base URLs (the contract), or — an extension beyond
 * CONTRACT.md §8 — `uwsgi://host:port` or `uwsgi:///absolute/path.sock`: the native uwsgi
 * protocol nginx's `uwsgi_pass` speaks, so qdp can stand in front of Python processes that
 * already listen on uwsgi sockets for nginx without reconfiguring them.
 *
 * ```json
 * [{"funcNos": "2000-2099", "name": "legacy.pricing",
 *   "backends": ["http://127.0.0.1:9001", "http://127.0.0.1:9002"], "path": "/qdp",
 *   "maxInflight": 256, "keepAlive": true, "input": {"type": "object"}, "description": "…", "example": {}}]
 * ```
 */
import { ConfigError } from "./config.ts";

/** One checked entry of the forward file. */
export interface ForwardEntry {
  /** Position in the file (0-based), for messages. */
  readonly index: number;
  /** First and last function number of the range (inclusive). */
  readonly from: number;
  readonly to: number;
  /** Dotted name, like a local service's (`legacy.pricing`); shown in Swagger and stats. */
  readonly name: string;
  /**
   * Base URLs, without a trailing slash (`http://…`, `https://…`, `uwsgi://host:port`,
   * `uwsgi:///path.sock`; see {@link backendAddress}). A user's calls go to
   * `backends[ownerOf(user, backends.length)]`: pinning is by position, so reordering,
   * adding or removing a backend moves users (as it did with SessionManager).
   */
  readonly backends: readonly string[];
  /** Path appended to the backend URL. Default `/qdp`. */
  readonly path: string;
  /** Calls in flight to one backend from one worker; past it `503 OVERLOADED`. Default 256. */
  readonly maxInflight: number;
  /**
   * Reuse connections to the backends (default true). `false` opens one per call: for servers
   * that close a connection after each answer without saying so (uWSGI's `--http-socket`),
   * where a reused connection would fail with a reset. uwsgi backends always take one
   * connection per call (the protocol closes after each answer), whatever this says.
   */
  readonly keepAlive: boolean;
  /** JSON Schema of `data`, validated like a local function's input; absent = anything. */
  readonly input: unknown;
  readonly description: string | undefined;
  /** Example input for Swagger. */
  readonly example: unknown;
}

export const FORWARD_DEFAULT_PATH = "/qdp";
export const FORWARD_DEFAULT_MAX_INFLIGHT = 256;
/** Widest range: Swagger lists every forwarded number, so a range stays a readable size. */
export const FORWARD_MAX_RANGE = 1000;

const KEYS = ["funcNos", "name", "backends", "path", "maxInflight", "keepAlive", "input", "description", "example"];
const NAME = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
const MAX_FUNC_NO = Number.MAX_SAFE_INTEGER;

/**
 * Parses and checks the forward file.
 * @param text the file's contents
 * @param source how to name the file in messages (default `QDP_FORWARD_FILE`)
 * @throws ConfigError listing every problem
 */
export function parseForwardFile(text: string, source = "QDP_FORWARD_FILE"): ForwardEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`${source}: not valid JSON (${(err as Error).message})`]);
  }
  if (!Array.isArray(doc))
    throw new ConfigError([
      `${source}: expected a JSON array of entries like {"funcNos": "2000-2099", "name": "legacy.pricing", "backends": ["http://127.0.0.1:9001"]}`,
    ]);
  const problems: string[] = [];
  const entries: ForwardEntry[] = [];
  doc.forEach((raw, index) => {
    const entry = parseEntry(raw, index, source, problems);
    if (entry) entries.push(entry);
  });
  problems.push(...overlaps(entries, source));
  const names = new Map<string, ForwardEntry>();
  for (const e of entries) {
    const other = names.get(e.name);
    if (other) problems.push(`${source}: entries ${label(other)} and ${label(e)} have the same name ${e.name}`);
    else names.set(e.name, e);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return entries;
}

/** `1 (legacy.pricing, 2000-2099)`: how messages name an entry. */
export function label(e: Pick<ForwardEntry, "index" | "name" | "from" | "to">): string {
  return `${e.index} (${e.name}, ${rangeText(e)})`;
}

export function rangeText(e: Pick<ForwardEntry, "from" | "to">): string {
  return e.from === e.to ? String(e.from) : `${e.from}-${e.to}`;
}

function parseEntry(raw: unknown, index: number, source: string, problems: string[]): ForwardEntry | null {
  const at = `${source} entry ${index}`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    problems.push(`${at}: expected an object`);
    return null;
  }
  const o = raw as Record<string, unknown>;
  const before = problems.length;
  const name = typeof o.name === "string" && NAME.test(o.name) ? o.name : null;
  if (name === null) problems.push(`${at}: "name" must be dotted lower-case, like legacy.pricing (got ${JSON.stringify(o.name)})`);
  const named = `${at}${name ? ` (${name})` : ""}`;
  for (const k of Object.keys(o)) {
    // A typo ("backend", "maxInFlight") must stop start-up, not be silently ignored.
    if (!KEYS.includes(k)) problems.push(`${named}: unknown key ${JSON.stringify(k)} (known: ${KEYS.join(", ")})`);
  }
  const range = parseRange(o.funcNos);
  if (typeof range === "string") problems.push(`${named}: "funcNos" ${range}`);

  const backends: string[] = [];
  // URL → its index in the file (a bad URL before a duplicate must not shift the index named).
  const seen = new Map<string, number>();
  if (!Array.isArray(o.backends) || o.backends.length === 0) {
    problems.push(`${named}: "backends" must be a non-empty array of http://, https:// or uwsgi:// URLs`);
  } else {
    o.backends.forEach((b, i) => {
      const url = backendUrl(b);
      if (typeof url !== "string" || url.startsWith("!")) {
        problems.push(`${named}: backends[${i}] ${JSON.stringify(b)}: ${typeof url === "string" ? url.slice(1) : "expected a URL string"}`);
        return;
      }
      const dup = seen.get(url);
      if (dup !== undefined) problems.push(`${named}: backends[${dup}] and backends[${i}] are the same URL ${url}`);
      else seen.set(url, i);
      backends.push(url);
    });
  }
  let path = FORWARD_DEFAULT_PATH;
  if (o.path !== undefined) {
    if (typeof o.path === "string" && /^\/[\x21-\x7e]*$/.test(o.path) && !o.path.includes("#")) path = o.path;
    else problems.push(`${named}: "path" must start with / and hold no spaces (got ${JSON.stringify(o.path)})`);
  }
  let maxInflight = FORWARD_DEFAULT_MAX_INFLIGHT;
  if (o.maxInflight !== undefined) {
    if (typeof o.maxInflight === "number" && Number.isInteger(o.maxInflight) && o.maxInflight >= 1 && o.maxInflight <= 1_000_000) maxInflight = o.maxInflight;
    else problems.push(`${named}: "maxInflight" must be a whole number from 1 to 1000000 (got ${JSON.stringify(o.maxInflight)})`);
  }
  if (o.keepAlive !== undefined && typeof o.keepAlive !== "boolean") problems.push(`${named}: "keepAlive" must be true or false`);
  if (o.input !== undefined && (typeof o.input !== "object" || o.input === null || Array.isArray(o.input))) {
    problems.push(`${named}: "input" must be a JSON Schema object`);
  }
  if (o.description !== undefined && typeof o.description !== "string") problems.push(`${named}: "description" must be a string`);
  if (problems.length > before || typeof range === "string" || name === null) return null;
  return {
    index,
    from: range.from,
    to: range.to,
    name,
    backends,
    path,
    maxInflight,
    keepAlive: o.keepAlive !== false,
    input: o.input,
    description: o.description as string | undefined,
    example: o.example,
  };
}

/** `"2000-2099"`, `"2000"` or `2000` → the range, or why not. */
function parseRange(v: unknown): { from: number; to: number } | string {
  let from: number;
  let to: number;
  if (typeof v === "number") from = to = v;
  else if (typeof v === "string") {
    const m = /^\s*(\d{1,16})\s*(?:-\s*(\d{1,16})\s*)?$/.exec(v);
    if (!m) return `must be "first-last" (like "2000-2099") or one number (got ${JSON.stringify(v)})`;
    from = Number(m[1]);
    to = m[2] === undefined ? from : Number(m[2]);
  } else return `must be "first-last" (like "2000-2099") or one number (got ${JSON.stringify(v)})`;
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 1 || to > MAX_FUNC_NO)
    return `must hold positive whole numbers (got ${JSON.stringify(v)})`;
  if (to < from) return `${JSON.stringify(v)}: the last number is below the first`;
  if (to - from + 1 > FORWARD_MAX_RANGE)
    return `${JSON.stringify(v)} holds ${to - from + 1} numbers; at most ${FORWARD_MAX_RANGE} per entry (split it into several entries)`;
  return { from, to };
}

/** The normalised base URL, or `!why` when it is not one we can forward to. */
function backendUrl(v: unknown): string | null {
  if (typeof v !== "string") return null;
  if (v.startsWith("uwsgi:")) return uwsgiUrl(v);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return "!not a URL";
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return `!expected an http://, https:// or uwsgi:// URL`;
  if (u.username !== "" || u.password !== "") return "!credentials in the URL are not supported";
  if (u.search !== "" || u.hash !== "" || v.includes("?") || v.includes("#")) return '!no query or fragment: the entry\'s "path" is appended to the URL';
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`;
}

/** Longest Unix socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
const MAX_UNIX_PATH = 107;
const UWSGI_FORMS = "uwsgi://host:port or uwsgi:///absolute/path.sock";

/** `uwsgi://host:port` or `uwsgi:///absolute/path.sock`, normalised, or `!why`. */
function uwsgiUrl(v: string): string {
  if (v.includes("?") || v.includes("#")) return "!no query or fragment in a uwsgi URL: the entry's \"path\" is the request's REQUEST_URI";
  if (!v.startsWith("uwsgi://")) return `!a Unix socket needs an absolute path: expected ${UWSGI_FORMS}`;
  const rest = v.slice("uwsgi://".length);
  if (rest.startsWith("/")) {
    if (rest.endsWith("/")) return "!a Unix socket path cannot end with /";
    if (/[\0\r\n]/.test(rest)) return "!control character in the socket path";
    const bytes = new TextEncoder().encode(rest).length;
    if (bytes > MAX_UNIX_PATH) return `!the socket path has ${bytes} bytes; Unix sockets allow at most ${MAX_UNIX_PATH}`;
    return `uwsgi://${rest}`;
  }
  if (rest.includes("@")) return "!credentials in the URL are not supported";
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,6}))?(\/.*)?$/.exec(rest);
  if (m === null) return `!expected ${UWSGI_FORMS}`;
  if (m[2] === undefined) return `!a TCP address needs a port and a Unix socket an absolute path: expected ${UWSGI_FORMS}`;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return `!port ${m[2]} is out of range (1-65535)`;
  if (m[3] !== undefined && m[3] !== "/") return "!no path after host:port in a uwsgi URL: the entry's \"path\" is the request's REQUEST_URI";
  return `uwsgi://${m[1]!.toLowerCase()}:${port}`;
}

/** Where a checked backend URL sends its calls. */
export type BackendAddress =
  | { readonly protocol: "http"; readonly url: string }
  | { readonly protocol: "uwsgi"; readonly unix: string }
  | { readonly protocol: "uwsgi"; readonly hostname: string; readonly port: number };

/** How to reach a backend of a checked entry (`ForwardEntry.backends[i]`). */
export function backendAddress(url: string): BackendAddress {
  if (!url.startsWith("uwsgi://")) return { protocol: "http", url };
  const rest = url.slice("uwsgi://".length);
  if (rest.startsWith("/")) return { protocol: "uwsgi", unix: rest };
  const colon = rest.lastIndexOf(":");
  const host = rest.slice(0, colon);
  // The socket wants an IPv6 address without its brackets.
  return { protocol: "uwsgi", hostname: host.startsWith("[") ? host.slice(1, -1) : host, port: Number(rest.slice(colon + 1)) };
}

/** Every pair of entries whose ranges share a number, naming both. */
function overlaps(entries: readonly ForwardEntry[], source: string): string[] {
  const sorted = [...entries].sort((a, b) => a.from - b.from);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i + 1; j < sorted.length && sorted[j]!.from <= sorted[i]!.to; j++) {
      const a = sorted[i]!;
      const b = sorted[j]!;
      const shared = { from: b.from, to: Math.min(a.to, b.to) };
      const [first, second] = a.index < b.index ? [a, b] : [b, a];
      out.push(`${source}: entries ${label(first)} and ${label(second)} overlap at ${rangeText(shared)}`);
    }
  }
  return out;
}
