import { Type as t } from "@sinclair/typebox";
import { QdpError } from "../../core/errors.ts";
import { setting, settingSchemas } from "../settings.ts";
import { defineService } from "../types.ts";

/**
 * 1002 demo.quote — the design study's business call: two upstream lookups in sequence, then a
 * record write. Plain async/await: while it waits, the worker serves thousands of other calls.
 */
export default defineService({
  funcNo: 1002,
  name: "demo.quote",
  description:
    "Calls GET $QDP_UPSTREAM_A?symbol=…, then GET $QDP_UPSTREAM_B?symbol=…, writes {user, symbol, a, b, at} to the record store and returns {symbol, a, b, recordId}. Upstream failure → 502, upstream timeout → 504.",
  stateful: false,
  input: t.Object({ symbol: t.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: true }),
  output: t.Object({ symbol: t.String(), a: t.Unknown(), b: t.Unknown(), recordId: t.String() }),
  example: { symbol: "600519.SH" },
  settings: {
    upstreamA: setting(settingSchemas.url(), { env: "QDP_UPSTREAM_A", optional: true, description: "URL of upstream A (GET ?symbol=…)" }),
    upstreamB: setting(settingSchemas.url(), { env: "QDP_UPSTREAM_B", optional: true, description: "URL of upstream B (GET ?symbol=…)" }),
  },
  errors: ["UPSTREAM_ERROR"],
  handler: async ({ input, user, upstream, records, settings }) => {
    if (!settings.upstreamA || !settings.upstreamB) {
      throw new QdpError("UPSTREAM_ERROR", "QDP_UPSTREAM_A and QDP_UPSTREAM_B must be configured for demo.quote");
    }
    const query = { symbol: input.symbol };
    const a = await upstream.getJson(settings.upstreamA, { query, name: "upstream_a" });
    const b = await upstream.getJson(settings.upstreamB, { query, name: "upstream_b" });
    const recordId = await records.insert("quotes", { user, symbol: input.symbol, a, b, at: new Date().toISOString() });
    return { symbol: input.symbol, a, b, recordId };
  },
});
