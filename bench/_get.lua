local ufl = require "uffdlist"
local raw = require "bench.raw"
local alive = { register = function() return true end, is_dead = function() return false end, reset = function() return true end }
local e = assert(ufl.eventfd(1))
local u = assert(ufl.adopt(e:fd(), { check = false, own = false }))
local ctx = assert(ufl.waitctx())
local l = assert(ufl.list(u, alive, ctx))
l:set_num_static_devices(0)
local best = 1e9
for r = 1, 7 do
  local t0 = raw.now()
  for _ = 1, 2e6 do l:get(1) end
  best = math.min(best, (raw.now() - t0) / 2e6)
end
local best2 = 1e9
for r = 1, 7 do
  local t0 = raw.now()
  for _ = 1, 2e6 do l:len() end
  best2 = math.min(best2, (raw.now() - t0) / 2e6)
end
print(string.format("get %.1f ns, len %.1f ns", best, best2))
