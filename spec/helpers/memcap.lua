-- spec/helpers/memcap.lua — calls f with the Lua heap capped at its
-- current size (ufl.memcap_arm), so that the first allocation inside it
-- raises "not enough memory".
local ufl = require "uffdlist"

local memcap = {}

local function finish(...)
  ufl.memcap_disarm()
  collectgarbage("restart")
  if jit then jit.on() end
  return ...
end

--- pcall(f, ...) with the heap capped; returns what pcall returns.  Runs
-- interpreted: Debian's LuaJIT 2.1.0-beta3 can crash when an allocation
-- fails while it records or runs a trace.
function memcap.pcall(f, ...)
  if jit then jit.off(); jit.flush() end
  collectgarbage(); collectgarbage("stop")
  ufl.memcap_arm(collectgarbage("count") * 1024)
  return finish(pcall(f, ...))
end

return memcap
