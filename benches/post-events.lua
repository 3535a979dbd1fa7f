-- wrk script for benches/load.sh: POSTs the given event files in turn (1:1 for two files).
-- Usage: wrk ... -s post-events.lua <url> -- <path> <event.json>...

local bodies = {}
local path = "/collect"
local n = 0

function init(args)
  path = args[1] or path
  for i = 2, #args do
    local f = assert(io.open(args[i], "rb"))
    bodies[#bodies + 1] = f:read("*a")
    f:close()
  end
end

function request()
  n = n + 1
  local body = bodies[(n % #bodies) + 1]
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
end
