-- POST a fixed JSON body as one of N rotating users: header X-QDP-User: <prefix><0..N-1>,
-- drawn at random per request. Requests are pre-formatted in init so the per-request
-- Lua cost is one table lookup.
-- wrk ... <url> -- '<json body>' <N> [prefix=u]
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local reqs = {}
local n

function init(args)
  n = tonumber(args[2]) or 1000
  local prefix = args[3] or "u"
  math.randomseed(os.time() + (tonumber(wrk.thread:get("id")) or 0) * 7919)
  for i = 0, n - 1 do
    reqs[i + 1] = wrk.format("POST", nil, {
      ["Content-Type"] = "application/json",
      ["X-QDP-User"] = prefix .. i,
    }, args[1])
  end
end

function request()
  return reqs[math.random(n)]
end
