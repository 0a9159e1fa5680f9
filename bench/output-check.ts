/**
 * What checking a handler's output against its schema costs per call (the executor does it on
 * every call): the reference services' compiled TypeBox checks on typical outputs.
 *
 *   bun bench/output-check.ts
 */
import { TypeCompiler } from "@sinclair/typebox/compiler";
import counter from "../src/services/demo/counter.ts";
import echo from "../src/services/demo/echo.ts";
import quote from "../src/services/demo/quote.ts";
import type { AnyService } from "../src/services/types.ts";

const cases: Array<[AnyService, unknown]> = [
  [counter, { count: 42 }],
  [quote, { symbol: "IBM", a: { price: 1 }, b: { price: 2 }, recordId: "abc" }],
  [echo, { hello: "world" }],
];
for (const [def, output] of cases) {
  const check = TypeCompiler.Compile(def.output);
  const n = 2_000_000;
  let passed = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) if (check.Check(output)) passed++;
  const ns = ((performance.now() - t0) * 1e6) / n;
  console.log(`${def.name.padEnd(14)} ${ns.toFixed(1)} ns per check${passed === n ? "" : " (FAILED)"}`);
}
