-- POST a fixed JSON body with pre-computed UAP signatures (CONTRACT section 4). Lua cannot
-- HMAC, so bench/lib/sign.ts writes one file per wrk thread, "<prefix>-<thread id>.txt", one
-- line per request: "<user> <timestamp> <nonce> <signature hex>". Each thread reads its own
-- file in init (no nonce is ever sent twice); if it runs out the thread wraps around, the server
-- rejects the replays with 401, and done() reports the count as "exhausted".
-- wrk ... <url> -- '<json body>' <file prefix> <key id>
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local reqs = {}
local n, i
local exhausted = 0

-- Every request is formatted here, before wrk starts its clock, so request() costs what
-- users.lua's does: a table lookup. Reading and formatting a line per request made wrk, which
-- shares the 2 cores with the servers, take more CPU for signed runs than for the others
-- (same server, users.lua with the five headers made constant: 8-20% more req/s than this
-- script's earlier per-request version).
function init(args)
  local path = args[2] .. "-" .. wrk.thread:get("id") .. ".txt"
  local keyId = args[3]
  for line in io.lines(path) do
    local user, ts, nonce, sig = line:match("^(%S*) (%d+) (%S+) (%x+)$")
    local headers = {
      ["Content-Type"] = "application/json",
      ["X-QDP-Key-Id"] = keyId,
      ["X-QDP-Timestamp"] = ts,
      ["X-QDP-Nonce"] = nonce,
      ["X-QDP-Signature"] = "v1=" .. sig,
    }
    if user ~= "" then headers["X-QDP-User"] = user end
    reqs[#reqs + 1] = wrk.format("POST", nil, headers, args[1])
  end
  n = #reqs
  i = 0
end

function request()
  i = i + 1
  if i > n then
    -- the file ran out: start over; the server refuses these replays with 401
    i = 1
    exhausted = exhausted + 1
    wrk.thread:set("exhausted", exhausted)
  end
  return reqs[i]
end
