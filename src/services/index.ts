/**
 * The services this server runs. Adding one: write `src/services/<area>/<name>.ts` exporting
 * `defineService({...})` by default, and add it to the list below. Function ranges served by
 * existing HTTP services (the migration bridge) come from QDP_FORWARD_FILE instead.
 */
import { ConfigError } from "../core/config.ts";
import { parseForwardFile } from "../core/forward-file.ts";
import counter from "./demo/counter.ts";
import echo from "./demo/echo.ts";
import quote from "./demo/quote.ts";
import { forwardRanges } from "./forward/ranges.ts";
import { Registry } from "./registry.ts";
import type { AnyService } from "./types.ts";

/** Reference services (CONTRACT.md §6), on unless QDP_DEMO_SERVICES=0. */
export const DEMO_SERVICES: AnyService[] = [echo, counter, quote];

/** Your services: add them here. */
export const SERVICES: AnyService[] = [];

/** Every service that could run: the config file accepts all their settings' keys. */
export const ALL_SERVICES: AnyService[] = [...DEMO_SERVICES, ...SERVICES];

export interface RegistryOptions {
  demo: boolean;
  /** Text of the forward file (CONTRACT.md §8), when there is one. */
  forwardText?: string;
  /** Extra local services (tests). */
  services?: readonly AnyService[];
}

/**
 * The registry of local services plus the forwarded ranges.
 * @throws ConfigError for a bad forward file or a forwarded number that is also a local service
 */
export function buildRegistry(opts: RegistryOptions): Registry {
  const registry = new Registry([...(opts.demo ? DEMO_SERVICES : []), ...SERVICES, ...(opts.services ?? [])]);
  if (opts.forwardText === undefined) return registry;
  const { ranges } = forwardRanges(parseForwardFile(opts.forwardText));
  const problems: string[] = [];
  for (const range of ranges) {
    try {
      registry.addRange(range);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return registry;
}
