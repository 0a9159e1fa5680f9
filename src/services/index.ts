/**
 * The services this server runs. Adding one: write `src/services/<area>/<name>.ts` exporting
 * `defineService({...})` by default, and add it to the list below.
 */
import counter from "./demo/counter.ts";
import echo from "./demo/echo.ts";
import quote from "./demo/quote.ts";
import { Registry } from "./registry.ts";
import type { AnyService } from "./types.ts";

/** Reference services (CONTRACT.md §6), on unless QDP_DEMO_SERVICES=0. */
export const DEMO_SERVICES: AnyService[] = [echo, counter, quote];

/** Your services: add them here. */
export const SERVICES: AnyService[] = [];

/** Every service that could run: the config file accepts all their settings' keys. */
export const ALL_SERVICES: AnyService[] = [...DEMO_SERVICES, ...SERVICES];

export function buildRegistry(opts: { demo: boolean }): Registry {
  return new Registry([...(opts.demo ? DEMO_SERVICES : []), ...SERVICES]);
}
