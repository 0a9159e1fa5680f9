/**
 * The source-address allow list, `QDP_ALLOW_CIDRS` (CONTRACT.md §4): calls from outside it get
 * 403 FORBIDDEN before any signature work.
 *
 * Form: comma-separated CIDRs, e.g. "10.0.0.0/8,127.0.0.1/32,::1/128,fd00::/8". A bare address
 * means a single host (/32 or /128). Host bits set below the prefix are ignored ("10.1.2.3/8"
 * equals "10.0.0.0/8"), as in most routers' and Go's parsers.
 *
 * Every address is handled as 16 bytes: an IPv4 address becomes its IPv4-mapped IPv6 form
 * `::ffff:a.b.c.d` and an IPv4 prefix /n becomes /(96+n). That is why a dual-stack socket's
 * `::ffff:10.1.2.3` matches the rule `10.0.0.0/8` with no special case at match time.
 *
 * Pure TypeScript.
 */

/** The allow list the edge consults per connection. */
export interface AllowList {
  /**
   * True when `ip` (IPv4, IPv6 in any compressed form, IPv4-mapped IPv6, optionally in brackets
   * or with a `%zone`) falls in one of the ranges. An unparseable address is never allowed.
   * An open list (no spec) allows everything.
   */
  allows(ip: string): boolean;
  /** True when no restriction is configured (`QDP_ALLOW_CIDRS` unset or blank). */
  readonly open: boolean;
  /** The ranges in canonical text, for logs and stats. */
  readonly ranges: readonly string[];
}

interface Range {
  readonly bytes: Uint8Array;
  /** Prefix length over the 16-byte form (IPv4 rules are 96 + n). */
  readonly prefix: number;
  readonly text: string;
}

const FORM = "comma-separated CIDRs or addresses, e.g. 10.0.0.0/8,127.0.0.1/32,::1/128,fd00::/8";

/**
 * Parses `QDP_ALLOW_CIDRS`. `undefined` or a blank string gives an open list.
 * @throws Error naming `QDP_ALLOW_CIDRS`, the bad entry and the accepted form.
 * @example createAllowList("10.0.0.0/8,::1").allows("::ffff:10.2.3.4") // true
 */
export function createAllowList(spec: string | undefined, variable = "QDP_ALLOW_CIDRS"): AllowList {
  const ranges: Range[] = [];
  for (const raw of (spec ?? "").split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const range = parseRange(entry);
    if (range === null) throw new Error(`${variable}: bad entry '${entry}'; expected ${FORM}`);
    ranges.push(range);
  }
  const open = ranges.length === 0;
  return {
    open,
    ranges: ranges.map((r) => r.text),
    allows(ip) {
      if (open) return true;
      const bytes = parseAddress(ip);
      if (bytes === null) return false;
      for (const r of ranges) if (matches(bytes, r)) return true;
      return false;
    },
  };
}

/**
 * Parses an address into its 16-byte form (IPv4 → IPv4-mapped), or null. Accepts surrounding
 * brackets and a trailing `%zone` (dropped) since socket APIs report both.
 */
export function parseAddress(ip: string): Uint8Array | null {
  let s = ip.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  if (s.includes(":")) return parseIPv6(s);
  const v4 = parseIPv4(s);
  return v4 === null ? null : mapped(v4);
}

function parseRange(entry: string): Range | null {
  const slash = entry.indexOf("/");
  const addr = slash < 0 ? entry : entry.slice(0, slash);
  if (addr.includes("%") || addr.includes("[")) return null;
  const isV6 = addr.includes(":");
  const bytes = isV6 ? parseIPv6(addr) : mappedOrNull(parseIPv4(addr));
  if (bytes === null) return null;
  const max = isV6 ? 128 : 32;
  let n = max;
  if (slash >= 0) {
    const p = entry.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p)) return null;
    n = Number(p);
    if (n > max) return null;
  }
  const prefix = isV6 ? n : 96 + n;
  mask(bytes, prefix);
  const text = isV6 ? `${formatIPv6(bytes)}/${n}` : `${[...bytes.subarray(12)].join(".")}/${n}`;
  return { bytes, prefix, text };
}

function matches(addr: Uint8Array, r: Range): boolean {
  const full = r.prefix >> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== r.bytes[i]) return false;
  const rest = r.prefix & 7;
  if (rest === 0) return true;
  const m = (0xff << (8 - rest)) & 0xff;
  return ((addr[full] ?? 0) & m) === r.bytes[full];
}

function mask(bytes: Uint8Array, prefix: number): void {
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
}

/** Strict dotted quad: four decimal octets 0..255, no leading zeros (which some parsers read as octal). */
function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] ?? "";
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

/** RFC 4291 text forms: up to 8 groups of 1..4 hex digits, one `::`, optional trailing dotted quad. */
function parseIPv6(s: string): Uint8Array | null {
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const head = groups(halves[0] ?? "");
  const tail = halves.length === 2 ? groups(halves[1] ?? "") : [];
  if (head === null || tail === null) return null;
  // A dotted quad counts as two groups and may only end the address.
  const inner = halves.length === 2 ? [...head, ...tail.slice(0, -1)] : head.slice(0, -1);
  if (inner.includes("v4")) return null;
  const count = [...head, ...tail].reduce<number>((n, w) => n + (w === "v4" ? 2 : 1), 0);
  if (halves.length === 2 ? count > 7 : count !== 8) return null;

  const out = new Uint8Array(16);
  const write = (list: Array<number | "v4">, start: number, v4Source: string): number => {
    let pos = start;
    for (const w of list) {
      if (w === "v4") {
        const q = parseIPv4(v4Source);
        if (q === null) return -1;
        out.set(q, pos);
        pos += 4;
      } else {
        out[pos] = w >> 8;
        out[pos + 1] = w & 0xff;
        pos += 2;
      }
    }
    return pos;
  };
  const lastGroup = s.slice(s.lastIndexOf(":") + 1);
  if (write(head, 0, lastGroup) < 0) return null;
  const tailBytes = tail.reduce<number>((n, w) => n + (w === "v4" ? 4 : 2), 0);
  if (write(tail, 16 - tailBytes, lastGroup) < 0) return null;
  return out;
}

/** Splits one side of `::` into 16-bit groups; "v4" marks a dotted quad (checked by the caller). */
function groups(side: string): Array<number | "v4"> | null {
  if (side === "") return [];
  const out: Array<number | "v4"> = [];
  for (const g of side.split(":")) {
    if (/^[0-9a-fA-F]{1,4}$/.test(g)) out.push(parseInt(g, 16));
    else if (g.includes(".")) out.push("v4");
    else return null;
  }
  return out;
}

function mapped(v4: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

function mappedOrNull(v4: Uint8Array | null): Uint8Array | null {
  return v4 === null ? null : mapped(v4);
}

/** Canonical-enough IPv6 text for logs (longest zero run compressed). */
function formatIPv6(bytes: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}
