/**
 * Swagger UI served by the server itself, from the pinned `swagger-ui-dist` package: the page
 * works on an intranet with no route to a CDN, and it is the same UI version on every start.
 * Asset files are read on first use and kept (about 1.5 MB per worker, only once someone opens
 * the page); the validator badge is off so the page makes no outside request at all.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import dist from "swagger-ui-dist/package.json" with { type: "json" };

/** The Swagger UI version served (pinned in package.json). */
export const SWAGGER_UI_VERSION: string = dist.version;

const DIST_DIR = dirname(fileURLToPath(import.meta.resolve("swagger-ui-dist/package.json")));

/** The files the page loads, with their content types; nothing else under /swagger/assets/. */
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
  "favicon-16x16.png": "image/png",
};

const cache = new Map<string, Uint8Array>();

/** One asset as a response, or null when `file` is not one of them. */
export function swaggerAsset(file: string): Response | null {
  const type = ASSETS[file];
  if (type === undefined) return null;
  let bytes = cache.get(file);
  if (bytes === undefined) {
    bytes = new Uint8Array(readFileSync(join(DIST_DIR, file)));
    cache.set(file, bytes);
  }
  return new Response(bytes, {
    headers: {
      "content-type": type,
      // The version is in the page's asset URLs, so a new UI version is a new URL.
      "cache-control": "public, max-age=86400, immutable",
    },
  });
}

/** The page: the UI pointed at /swagger/json. Every URL is on this server. */
export function swaggerPage(title: string): Response {
  const v = encodeURIComponent(SWAGGER_UI_VERSION);
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title.replace(/[<&>"]/g, "")}</title>
<link rel="stylesheet" href="/swagger/assets/swagger-ui.css?v=${v}">
<link rel="icon" type="image/png" href="/swagger/assets/favicon-32x32.png?v=${v}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/swagger/assets/swagger-ui-bundle.js?v=${v}"></script>
<script>
window.ui = SwaggerUIBundle({
  url: "/swagger/json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  docExpansion: "list",
  validatorUrl: null,
  tryItOutEnabled: false
});
</script>
</body>
</html>
`;
  return new Response(html, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache" } });
}
