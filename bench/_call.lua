local ufl = require "uffdlist"
local raw = require "bench.raw"
local alive = { register = function() return true end, is_dead = function() return false end, reset = function() return true end }
local e = assert(ufl.eventfd(1))
local u = assert(ufl.adopt(e:fd(), { check = false, own = false }))
local ctx = assert(ufl.waitctx())
local l = assert(ufl.list(u, alive, ctx))
l:set_num_static_devices(0)
local function bench(name, f)
  local best = 1e9
  for r = 1, 5 do
    local t0 = raw.now()
    f(2e6)
    best = math.min(best, (raw.now() - t0) / 2e6)
  end
  print(string.format("%-28s %6.1f ns", name, best))
end
local ps = ufl.page_size
local len = l.len
local get = l.get
bench("ufl.page_size()", function(n) for _ = 1, n do ps() end end)
bench("l:len()", function(n) for _ = 1, n do l:len() end end)
bench("len(l)", function(n) for _ = 1, n do len(l) end end)
bench("l:get(1)", function(n) for _ = 1, n do l:get(1) end end)
bench("u:is_closed()", function(n) for _ = 1, n do u:is_closed() end end)
bench("u:fd()", function(n) for _ = 1, n do u:fd() end end)
bench("rawlen-ish select", function(n) local s = 0 for _ = 1, n do s = s + select("#", 1, 2) end end)
