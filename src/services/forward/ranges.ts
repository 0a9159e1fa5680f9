/**
 * Turns the forward file's entries into service ranges for the registry: every number of an
 * entry becomes a function under the entry's name, validated by the entry's JSON Schema (as
 * TypeBox, like a local function's input) and handled by posting the call to a backend. So a
 * forwarded call is, from the edge onwards, an ordinary call: the same checks, the same route to
 * the user's owner worker, the same deadline — only its handler is remote.
 */
import { Type as t } from "@sinclair/typebox";
import { ConfigError } from "../../core/config.ts";
import { label, rangeText, type ForwardEntry } from "../../core/forward-file.ts";
import type { ServiceRange } from "../registry.ts";
import type { AnyService } from "../types.ts";
import { createForwarder, type Forwarder } from "./forwarder.ts";
import { fromJsonSchema, SchemaError } from "./json-schema.ts";

export interface ForwardRanges {
  ranges: ServiceRange[];
  forwarders: Forwarder[];
}

/**
 * @param source how messages name the file (`QDP_FORWARD_FILE`)
 * @throws ConfigError naming the entry and the schema keyword it cannot use
 */
export function forwardRanges(entries: readonly ForwardEntry[], source = "QDP_FORWARD_FILE"): ForwardRanges {
  const problems: string[] = [];
  const ranges: ServiceRange[] = [];
  const forwarders: Forwarder[] = [];
  for (const entry of entries) {
    let input;
    try {
      input = entry.input === undefined ? t.Unknown() : fromJsonSchema(entry.input);
    } catch (err) {
      if (!(err instanceof SchemaError)) throw err;
      problems.push(`${source} entry ${label(entry)}: "input" ${err.message}`);
      continue;
    }
    const forwarder = createForwarder(entry);
    forwarders.push(forwarder);
    const description =
      entry.description ??
      `Forwarded to ${entry.backends.length === 1 ? "its backend" : `one of ${entry.backends.length} backends (pinned per user)`} as POST ${entry.path} {funcNo, userId, data}; the backend's JSON answer is data.`;
    const output = t.Unknown({ description: "the backend's JSON answer" });
    const forward = { range: rangeText(entry), backends: entry.backends.length };
    const handler = (funcNo: number) => (ctx: Parameters<AnyService["handler"]>[0]) => forwarder.forward(funcNo, ctx);
    ranges.push({
      from: entry.from,
      to: entry.to,
      name: entry.name,
      label: `${source} entry ${label(entry)}`,
      input,
      define: (funcNo): AnyService => ({
        funcNo,
        name: entry.name,
        description,
        input,
        output,
        stateful: false,
        example: entry.example,
        handler: handler(funcNo),
        forward,
      }),
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { ranges, forwarders };
}
