import { Type as t } from "@sinclair/typebox";
import { defineService } from "../types.ts";

/** 1000 demo.echo — stateless: returns `data` unchanged. */
export default defineService({
  funcNo: 1000,
  name: "demo.echo",
  description: "Returns `data` unchanged (stateless; runs where the call arrives when no user is given).",
  stateful: false,
  input: t.Unknown({ description: "Any JSON value" }),
  output: t.Unknown(),
  example: { hello: "world" },
  handler: ({ input }) => input,
});
