-- users.lua plus a count of responses by status code (reported by done() as BENCH_STATUS).
-- The response() hook makes wrk parse every response, so use it only where calls are slow.
-- wrk ... <url> -- '<json body>' <N> [prefix=u]
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "users.lua")

function response(status, headers, body)
  count_status(status)
end
