-- POST a fixed JSON body with pre-computed UAP signatures (CONTRACT section 4). Lua cannot
-- HMAC, so bench/lib/sign.ts writes one file per wrk thread, "<prefix>-<thread id>.txt", one
-- line per request: "<user> <timestamp> <nonce> <signature hex>". Each thread streams its own
-- file (no nonce is ever sent twice); if a file runs out the thread wraps around, the server
-- rejects the replays with 401, and done() reports the count as "exhausted".
-- wrk ... <url> -- '<json body>' <file prefix> <key id>
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local body, path, keyId, file
local exhausted = 0

function init(args)
  body = args[1]
  path = args[2] .. "-" .. wrk.thread:get("id") .. ".txt"
  keyId = args[3]
  file = assert(io.open(path, "r"))
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
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-QDP-Key-Id"] = keyId,
    ["X-QDP-Timestamp"] = ts,
    ["X-QDP-Nonce"] = nonce,
    ["X-QDP-Signature"] = "v1=" .. sig,
  }
  if user ~= "" then headers["X-QDP-User"] = user end
  return wrk.format("POST", nil, headers, body)
end
