-- quick dispatch micro (own-process fds): 64 eventfds? use list of fake uffds (eventfd, nocheck)
local ufl = require "uffdlist"
local raw = require "bench.raw"
local mode = ...
if mode == "off" then jit.off() end
if mode == "v" then require("jit.v").on("/tmp/jv.txt") end
local alive = { register = function() return true end, is_dead = function() return false end, reset = function() return true end }
local efds = {}
local us = {}
for i = 1, 64 do
  local e = assert(ufl.eventfd(1))
  efds[i] = e
  us[i] = assert(ufl.adopt(e:fd(), { check = false, own = false }))
end
local ctx = assert(ufl.waitctx())
local l = assert(ufl.list(us[1], alive, ctx))
l:set_num_static_devices(63)
for i = 2, 64 do l:register(us[i]) end
local ready = {}
local N = 20000
local function run()
  local t0 = raw.now()
  local sink = 0
  for _ = 1, N do
    local n = l:wait(0, ready)
    for i = 1, n do
      local u = l:get(ready[i])
      if u then sink = sink + 1 end
    end
  end
  return (raw.now() - t0) / N
end
run()
local t1 = run()
local t0 = raw.now()
for _ = 1, N do l:wait(0, ready) end
local tw = (raw.now() - t0) / N
local t0 = raw.now()
for _ = 1, N * 64 do l:get(1) end
local tg = (raw.now() - t0) / N / 64
print(string.format("%s: per wait+64 gets %.0f ns; wait alone %.0f ns; one get %.1f ns", mode or "on", t1, tw, tg))
