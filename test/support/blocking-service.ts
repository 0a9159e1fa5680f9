/**
 * A test-only service for real clusters, loaded into each worker with
 * `QDP_WORKER_BUN_ARGS="--preload <this file>"` (the documented way to pass Bun flags to workers):
 * it adds `9901 test.block` to the list of services before the worker builds its registry.
 * `test.block` spins the CPU for `ms` milliseconds without yielding — a handler that blocks the
 * event loop, as a runaway regex or a synchronous loop would. Never part of the server itself.
 * Do not import it from a test: the push would change the test process's own service list.
 */
import { defineService, t } from "../../src/services/api.ts";
import { SERVICES } from "../../src/services/index.ts";

SERVICES.push(
  defineService({
    funcNo: 9901,
    name: "test.block",
    description: "blocks the event loop for `ms` milliseconds (tests only)",
    stateful: false,
    input: t.Object({ ms: t.Integer({ minimum: 0 }) }),
    output: t.Unknown(),
    handler: ({ input }) => {
      const until = Date.now() + input.ms;
      while (Date.now() < until) {
        // spin: nothing else in this worker runs meanwhile
      }
      return { blockedMs: input.ms };
    },
  }),
);
