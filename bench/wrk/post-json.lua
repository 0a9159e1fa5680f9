-- POST a fixed JSON body; optional fixed X-QDP-User.
-- wrk ... <url> -- '<json body>' [user]
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local req

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  if args[2] and args[2] ~= "" then headers["X-QDP-User"] = args[2] end
  req = wrk.format("POST", nil, headers, args[1])
end

function request()
  return req
end
