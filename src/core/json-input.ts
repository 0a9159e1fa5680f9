/**
 * Reading a request body as JSON (CONTRACT.md §3): valid UTF-8 only — invalid bytes are
 * `400 BAD_JSON`, never replaced by U+FFFD — and nesting no deeper than {@link MAX_JSON_DEPTH},
 * checked on the bytes before parsing, so a body of 100,000 nested arrays is a 400 before any
 * work instead of a stack overflow when the input is serialised for the hop.
 * Pure TypeScript.
 */
import { QdpError } from "./errors.ts";

/** Deepest nesting of arrays and objects accepted in a body (the envelope counts as one level). */
export const MAX_JSON_DEPTH = 64;

const UTF8_STRICT = new TextDecoder("utf-8", { fatal: true });

/** Parses a JSON body, or throws BAD_JSON (not JSON, not UTF-8) / VALIDATION (too deep). */
export function parseJsonBody(bytes: Uint8Array, maxDepth: number = MAX_JSON_DEPTH): unknown {
  if (bytes.length > maxDepth && nestingExceeds(bytes, maxDepth)) {
    throw new QdpError("VALIDATION", `JSON nested deeper than ${maxDepth} levels`, {
      details: [{ path: "/", message: `nesting deeper than ${maxDepth} levels` }],
    });
  }
  let text: string;
  try {
    text = UTF8_STRICT.decode(bytes);
  } catch {
    throw new QdpError("BAD_JSON", "body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new QdpError("BAD_JSON", `body is not valid JSON: ${(err as Error).message}`);
  }
}

/** Whether `[`/`{` nest deeper than `max` outside strings (malformed JSON is left to the parser). */
export function nestingExceeds(bytes: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === 0x5b || b === 0x7b) {
      if (++depth > max) return true;
    } else if (b === 0x5d || b === 0x7d) depth--;
  }
  return false;
}
