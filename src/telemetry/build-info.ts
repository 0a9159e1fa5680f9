/** What is running: the server's version (package.json) and Bun's, for logs, /metrics and Swagger. */
import pkg from "../../package.json" with { type: "json" };

export const BUILD_INFO = {
  version: pkg.version,
  bun: Bun.version,
} as const;
