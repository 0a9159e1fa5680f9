-- POST a fixed JSON body with pre-computed UAP signatures (CONTRACT section 4). Lua cannot
-- HMAC, so bench/lib/sign.ts writes one file per wrk thread, "<prefix>-<thread id>.txt", one
-- line per request: "<user> <timestamp> <nonce> <signature hex>". Each thread streams its own
-- file (no nonce is ever sent twice); if a file runs out the thread wraps around, the server
-- rejects the replays with 401, and done() reports the count as "exhausted".
-- wrk ... <url> -- '<json body>' <file prefix> <key id>
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local path, file, head, tail
local exhausted = 0

-- The request is one concatenation of fixed parts and the line's fields, the bytes wrk.format
-- would make: wrk shares the 2 cores with the server, and building a header table and calling
-- wrk.format per request cost it 11.0-11.4 us per request against 9.3-9.8 for users.lua; this
-- costs 10.6-10.9 (bench/wrk against a Bun.serve echo, /usr/bin/time, 2 rounds). Formatting
-- every request in init instead is not an option: wrk starts its clock after the last thread's
-- init, and the threads already running meanwhile inflated req/s past the ceiling.
function init(args)
  path = args[2] .. "-" .. wrk.thread:get("id") .. ".txt"
  file = assert(io.open(path, "r"))
  local host = wrk.headers["Host"] or (wrk.host .. ":" .. wrk.port)
  head = "POST " .. wrk.path .. " HTTP/1.1\r\nHost: " .. host .. "\r\nContent-Type: application/json\r\nContent-Length: "
    .. #args[1] .. "\r\nX-QDP-Key-Id: " .. args[3] .. "\r\nX-QDP-Timestamp: "
  tail = "\r\n\r\n" .. args[1]
end

function request()
  local line = file:read("*l")
  if not line then
    exhausted = exhausted + 1
    wrk.thread:set("exhausted", exhausted)
    file:close()
    file = assert(io.open(path, "r"))
    line = file:read("*l")
  end
  local user, ts, nonce, sig = line:match("^(%S*) (%d+) (%S+) (%x+)$")
  local signed = head .. ts .. "\r\nX-QDP-Nonce: " .. nonce .. "\r\nX-QDP-Signature: v1=" .. sig
  if user == "" then return signed .. tail end
  return signed .. "\r\nX-QDP-User: " .. user .. tail
end
