import { Type as t } from "@sinclair/typebox";
import { defineService } from "../types.ts";

/** 1001 demo.counter — stateful: counts the caller's calls in the owner's session. */
export default defineService({
  funcNo: 1001,
  name: "demo.counter",
  description: "Increments the caller's counter kept in the owner worker's session; returns {count} (1 on the first call).",
  stateful: true,
  input: t.Unknown({ description: "Ignored" }),
  output: t.Object({ count: t.Integer({ minimum: 1 }) }),
  example: {},
  initSession: () => ({ count: 0 }),
  handler: ({ session }) => {
    session.count++;
    return { count: session.count };
  },
});
