local raw = require "bench.raw"
local ufl = require "uffdlist"
raw.raise_nofile()
local checker = assert(ufl.checker())
local fc = raw.fault_child(10)
local sp = raw.spawner()
local fds = sp:spawn(100)
local ctx = assert(ufl.waitctx())
local l = assert(ufl.list(assert(ufl.adopt(fc:fd())), checker, ctx))
l:set_num_static_devices(0)
for i = 1, #fds do l:register(assert(ufl.adopt(fds[i]))) end
local vf, vp = sp:spawn(1)
local u = assert(ufl.adopt(vf[1])); l:register(u); local i = u:index()
sp:kill(vp[1])
io.stderr:write("MARK\n")
local t = raw.now()
local c = l:gc{ only = { i } }
t = raw.now() - t
io.stderr:write("MARK2\n")
print(c, t / 1e3, "us")
l:close() sp:close() fc:close()
