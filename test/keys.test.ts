import { describe, expect, test } from "bun:test";
import { describeKeys, loadKeyRing, parseKeyFile, parseKeyList } from "../src/core/keys.ts";

const S1 = "s3cr3t-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const S2 = "s3cr3t-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : new TextDecoder().decode(b));

/** The thrown message, asserting it does not leak `secret`. */
function errorOf(fn: () => unknown, secret: string): string {
  try {
    fn();
  } catch (e) {
    const msg = (e as Error).message;
    expect(msg).not.toContain(secret);
    return msg;
  }
  throw new Error("expected an error");
}

describe("QDP_UAP_KEYS", () => {
  test("parses several keys; secrets are bytes; a secret may contain ':'", () => {
    const { ring, warnings } = parseKeyList(` uap-1:${S1} , uap.2_x-y:${S2}:with:colons,`);
    expect(describeKeys(ring)).toEqual(["uap-1", "uap.2_x-y"]);
    expect(text(ring.get("uap-1"))).toBe(S1);
    expect(text(ring.get("uap.2_x-y"))).toBe(`${S2}:with:colons`);
    expect(warnings).toEqual([]);
  });

  test("unset or blank → empty ring (open development mode)", () => {
    expect(parseKeyList(undefined).ring.size).toBe(0);
    expect(parseKeyList("").ring.size).toBe(0);
    expect(parseKeyList(" ").ring.size).toBe(0);
  });

  test("short secrets work but warn, naming the key id only", () => {
    const { ring, warnings } = parseKeyList("k1:tooShortSecret");
    expect(ring.size).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("'k1'");
    expect(warnings[0]).toContain("32");
    expect(warnings[0]).not.toContain("tooShortSecret");
  });

  test("an entry without ':' is refused without echoing it (it may be a bare secret)", () => {
    const msg = errorOf(() => parseKeyList(`k1:${S1},${S2}`), S2);
    expect(msg).toContain("QDP_UAP_KEYS entry 2");
    expect(msg).toContain("keyId:secret");
  });

  test("an invalid key id is refused without echoing it (a swapped secret:keyId)", () => {
    const msg = errorOf(() => parseKeyList(`${S1}/x:k1`), S1);
    expect(msg).toContain("QDP_UAP_KEYS entry 1");
    expect(msg).toContain("invalid key id");
    expect(msg).toContain("[A-Za-z0-9_.-]{1,64}");
    errorOf(() => parseKeyList(`${"k".repeat(65)}:${S1}`), S1);
    errorOf(() => parseKeyList(`:${S1}`), S1);
    errorOf(() => parseKeyList(`key id:${S1}`), S1);
  });

  test("an empty secret is refused", () => {
    expect(errorOf(() => parseKeyList("k1:"), S1)).toContain("empty secret");
    expect(errorOf(() => parseKeyList("k1:   "), S1)).toContain("empty secret");
  });

  test("duplicate key ids are refused, without the secrets", () => {
    const msg = errorOf(() => parseKeyList(`k1:${S1},k1:${S2}`), S1);
    expect(msg).not.toContain(S2);
    expect(msg).toContain("repeats key id 'k1'");
  });
});

describe("QDP_UAP_KEYS_FILE", () => {
  test("one key per line, comments, blank lines and CRLF", () => {
    const { ring, warnings } = parseKeyFile(`# UAP keys\r\n\r\nuap-old:${S1}\r\n  # rotated in 2025\nuap-new:${S2}\n\n`, "/etc/qdp/keys");
    expect(describeKeys(ring)).toEqual(["uap-new", "uap-old"]);
    expect(text(ring.get("uap-old"))).toBe(S1);
    expect(text(ring.get("uap-new"))).toBe(S2);
    expect(warnings).toEqual([]);
  });

  test("errors name the variable, the file and the line, never the secret", () => {
    const msg = errorOf(() => parseKeyFile(`# c\nk1:${S1}\n${S2}\n`, "/etc/qdp/keys"), S2);
    expect(msg).toContain("QDP_UAP_KEYS_FILE (/etc/qdp/keys) line 3");
    const dup = errorOf(() => parseKeyFile(`k1:${S1}\nk1:${S2}\n`, "/etc/qdp/keys"), S1);
    expect(dup).not.toContain(S2);
    expect(dup).toContain("line 2");
  });
});

describe("loadKeyRing", () => {
  test("merges the variable and the file", () => {
    const files: Record<string, string> = { "/keys": `k2:${S2}\n` };
    const { ring } = loadKeyRing({ QDP_UAP_KEYS: `k1:${S1}`, QDP_UAP_KEYS_FILE: "/keys" }, (p) => files[p]!);
    expect(describeKeys(ring)).toEqual(["k1", "k2"]);
  });

  test("a key id in both sources is refused", () => {
    const msg = errorOf(() => loadKeyRing({ QDP_UAP_KEYS: `k1:${S1}`, QDP_UAP_KEYS_FILE: "/keys" }, () => `k1:${S2}\n`), S1);
    expect(msg).not.toContain(S2);
    expect(msg).toContain("'k1'");
  });

  test("an unreadable file is reported with its path", () => {
    const msg = errorOf(
      () =>
        loadKeyRing({ QDP_UAP_KEYS_FILE: "/nope" }, () => {
          throw new Error("ENOENT: no such file");
        }),
      S1,
    );
    expect(msg).toContain("QDP_UAP_KEYS_FILE");
    expect(msg).toContain("/nope");
  });

  test("no sources → empty ring", () => {
    expect(loadKeyRing({}, () => "").ring.size).toBe(0);
  });

  test("describeKeys lists ids only", () => {
    const { ring } = parseKeyList(`b:${S1},a:${S2}`);
    const described = JSON.stringify(describeKeys(ring));
    expect(described).toBe('["a","b"]');
  });
});
