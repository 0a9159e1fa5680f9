/**
 * Where a JSON text stops being JSON, as line and column — `JSON.parse` in Bun names the
 * offending token but not its place, and an operator editing a config file needs the place.
 * A small strict JSON (RFC 8259) scanner; only used once `JSON.parse` has already failed.
 * Pure TypeScript.
 */

export interface JsonSyntaxError {
  /** 1-based. */
  line: number;
  /** 1-based, in characters. */
  column: number;
  message: string;
}

class Stop extends Error {
  constructor(
    readonly at: number,
    message: string,
  ) {
    super(message);
  }
}

/** The first syntax error in `text`, or null when it is valid JSON. */
export function findJsonSyntaxError(text: string): JsonSyntaxError | null {
  let i = 0;
  const ws = () => {
    while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  };
  const what = () => (i >= text.length ? "end of input" : JSON.stringify(text[i]));
  const expect = (c: string) => {
    if (text[i] !== c) throw new Stop(i, `expected ${JSON.stringify(c)}, found ${what()}`);
    i++;
  };
  const string = () => {
    expect('"');
    while (i < text.length && text[i] !== '"') {
      const c = text.charCodeAt(i);
      if (c < 0x20) throw new Stop(i, "control character in a string");
      if (text[i] === "\\") {
        i++;
        if (text[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) throw new Stop(i, "bad \\u escape");
          i += 5;
          continue;
        }
        if (!'"\\/bfnrt'.includes(text[i] ?? "x")) throw new Stop(i, "bad escape in a string");
      }
      i++;
    }
    expect('"');
  };
  const value = (depth: number): void => {
    if (depth > 512) throw new Stop(i, "nested too deeply");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') throw new Stop(i, `expected a key in double quotes, found ${what()}`);
        string();
        ws();
        expect(":");
        value(depth + 1);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return;
        }
        throw new Stop(i, `expected "," or "}", found ${what()}`);
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return;
        }
        throw new Stop(i, `expected "," or "]", found ${what()}`);
      }
    }
    if (c === '"') {
      string();
      return;
    }
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) throw new Stop(i, `unexpected ${what()}`);
    i += m[0].length;
  };
  try {
    value(0);
    ws();
    if (i < text.length) throw new Stop(i, `unexpected ${what()} after the value`);
    return null;
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
    const before = text.slice(0, err.at);
    const line = before.split("\n").length;
    return { line, column: err.at - before.lastIndexOf("\n"), message: err.message };
  }
}
