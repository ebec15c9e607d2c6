--- bench/list_bench.lua: the list benchmarks of `make bench`, run by
-- build/list_bench (bench/list_bench.c, which provides "bench.raw": the
-- spawner, the faulting child and the raw C loops).
--
-- Every figure times our path (the Lua binding) and a raw C loop of the
-- same syscalls on the same fds, interleaved run by run (the order
-- alternates), and prints min and median of both, then
-- `RATIO <name> <ours/raw median> <goal>`.
--
-- Arguments: [--entries N] [--runs R]
local raw = require "bench.raw"
local ufl = require "uffdlist"

local now = raw.now
local fmt = string.format

local N, RUNS = 10000, 5
local ONLY   -- nil: all; else {name = true}
local SPLIT = false   -- gc_pause: monitor and child on cpus 0 and 1
local BUDGET = 1
do
  local a = { ... }
  local i = 1
  while i <= #a do
    if a[i] == "--entries" then
      N = assert(tonumber(a[i + 1]), "--entries N"); i = i + 2
    elseif a[i] == "--runs" then
      RUNS = assert(tonumber(a[i + 1]), "--runs R"); i = i + 2
    elseif a[i] == "--split" then
      SPLIT = true; i = i + 1
    elseif a[i] == "--budget" then
      BUDGET = assert(tonumber(a[i + 1]), "--budget N"); i = i + 2
    elseif a[i] == "--only" then
      ONLY = {}
      for w in assert(a[i + 1], "--only a,b"):gmatch("[^,]+") do
        ONLY[w] = true
      end
      i = i + 2
    else
      error("usage: list_bench bench/list_bench.lua [--entries N] [--runs R] "
        .. "[--only register,gc_scan,dispatch,collect_one,gc_pause] "
        .. "[--split] [--budget N]")
    end
  end
end

local function sorted(v)
  local c = {}
  for i = 1, #v do c[i] = v[i] end
  table.sort(c)
  return c
end
local function median(v)
  local c = sorted(v)
  local n = #c
  if n % 2 == 1 then return c[(n + 1) / 2] end
  return (c[n / 2] + c[n / 2 + 1]) / 2
end
local function min(v) return sorted(v)[1] end
local function wanted(name) return ONLY == nil or ONLY[name] end
-- After tearing down 10,000 epoll entries or processes the kernel frees
-- them after an RCU grace period, in softirqs on this cpu: let that pass
-- before the next timed run, whichever side it is.
local SETTLE_MS = 100

-- Prints both sides (µs) and the RATIO line.
local function report(name, ours, rawv, goal, unit, scale)
  unit, scale = unit or "us", scale or 1e-3
  print(fmt("%-12s ours: min %10.2f median %10.2f %s | raw C: min %10.2f "
    .. "median %10.2f %s  (%d runs)", name, min(ours) * scale,
    median(ours) * scale, unit, min(rawv) * scale, median(rawv) * scale,
    unit, #ours))
  if os.getenv("BENCH_SAMPLES") then   -- every run, in order: ours | raw
    local o, r = {}, {}
    for i = 1, #ours do o[i] = fmt("%.2f", ours[i] * scale) end
    for i = 1, #rawv do r[i] = fmt("%.2f", rawv[i] * scale) end
    print(fmt("  samples %s: %s | %s", name, table.concat(o, " "),
      table.concat(r, " ")))
  end
  print(fmt("RATIO %s %.3f %s", name, median(ours) / median(rawv), goal))
end

local function placement()
  local f = io.open("/proc/self/status")
  local cpus = "?"
  if f then
    for l in f:lines() do
      local v = l:match("^Cpus_allowed_list:%s*(%S+)")
      if v then cpus = v end
    end
    f:close()
  end
  return cpus
end

-- ------------------------------------------------------------- set up
local fds0 = raw.nfds()
local _, hard = raw.raise_nofile()
print(fmt("uffdlist list benchmarks: %d entries, %d interleaved runs, "
  .. "cpus %s (the whole process, the spawned devices and the faulting "
  .. "child)", N, RUNS, placement()))
print(fmt("RLIMIT_NOFILE: soft raised to the hard limit %d", hard))
local MARGIN = 400
if hard < N + MARGIN then
  local n = hard - MARGIN
  print(fmt("!!! RLIMIT_NOFILE hard limit %d is below %d entries + %d: "
    .. "running with %d entries; the figures are NOT the 10,000 ones !!!",
    hard, N, MARGIN, n))
  N = n
end
local V = math.max(1, math.floor(N / 100))   -- 1% dead per gc_scan run
local STABLE = N - V                         -- alive for the whole run

local checker = assert(ufl.checker())
local PAGE, PS = checker:addr(), checker:page_size()
local FAULT_PAGES = 4000
local fc = raw.fault_child(FAULT_PAGES)
local sp = raw.spawner()

local t0 = now()
local sfds = sp:spawn(STABLE)
local xfds = sp:spawn(V)                     -- alive too: register's last V
print(fmt("spawned %d device processes (one uffd each) in %.2f s",
  #sfds + #xfds, (now() - t0) * 1e-9))

-- ------------------------------------------ list A: the 10,000 entries
collectgarbage("collect")
local kb0, m0 = collectgarbage("count"), raw.mallinfo()
local ctxA = assert(ufl.waitctx())
local mainA = assert(ufl.adopt(fc:fd()))
local listA = assert(ufl.list(mainA, checker, ctxA))
listA:set_num_static_devices(0)
local raddr, rlen = fc:region()
assert(mainA:register(raddr, rlen))
local adopt_ns, reg_ns = 0, 0
for i = 1, #sfds do
  local a = now()
  local u = assert(ufl.adopt(sfds[i]))
  local b = now()
  assert(listA:register(u) == true)
  adopt_ns, reg_ns = adopt_ns + (b - a), reg_ns + (now() - b)
end
collectgarbage("collect")
local kb1, m1 = collectgarbage("count"), raw.mallinfo()
print(fmt("memory per registered uffd: Lua %.0f bytes, C (malloc) %.0f "
  .. "bytes (%d uffds; the kernel's epitem and file are not counted)",
  (kb1 - kb0) * 1024 / #sfds, (m1 - m0) / #sfds, #sfds))
print(fmt("ufl.adopt: %.2f us per fd", adopt_ns / #sfds * 1e-3))

-- The raw set over the same fds: main first, then the stable ones.
local S = raw.set()
S:add({ fc:fd() })
S:add(sfds)

-- ------------------------------------------------------------ register
if wanted("register") then
  local all = {}
  for i = 1, #sfds do all[i] = sfds[i] end
  for i = 1, #xfds do all[#all + 1] = xfds[i] end
  local ours, rawv = {}, {}
  local gc1k, gc10k
  for r = 1, RUNS * 3 do   -- a side: see bench/README.md, round 5
    local function lua_side()
      local objs = {}
      for i = 1, #all do objs[i] = assert(ufl.adopt(all[i], { own = false })) end
      local ctx = assert(ufl.waitctx())
      local main = assert(ufl.adopt(fc:fd(), { own = false }))
      local l = assert(ufl.list(main, checker, ctx))
      l:set_num_static_devices(0)
      local reg = l.register
      collectgarbage("collect")   -- the bench's own garbage is not the path's
      local a = now()
      for i = 1, #objs do reg(l, objs[i]) end
      ours[#ours + 1] = now() - a
      if l:len() ~= #all + 1 then error("register: " .. l:len()) end
      if r == 1 then
        -- gc over 1,000 then 10,000 entries (none dead): the growth
        local ctx2 = assert(ufl.waitctx())
        local l2 = assert(ufl.list(assert(ufl.adopt(fc:fd(), { own = false })),
          checker, ctx2))
        l2:set_num_static_devices(0)
        local k = math.min(1000, #objs)
        local o2 = {}
        for i = 1, k do o2[i] = assert(ufl.adopt(all[i], { own = false })) end
        for i = 1, k do l2:register(o2[i]) end
        a = now(); assert(l2:gc() == 0); gc1k = now() - a
        a = now(); assert(l:gc() == 0); gc10k = now() - a
        l2:close()
        ctx2:close()
      end
      l:close()
      ctx:close()
      raw.sleep_ms(SETTLE_MS)
    end
    local function raw_side()
      local s = raw.set()
      collectgarbage("collect")
      rawv[#rawv + 1] = s:register(all, PAGE, PS)
      s:close()
      raw.sleep_ms(SETTLE_MS)
    end
    if r % 2 == 1 then lua_side(); raw_side() else raw_side(); lua_side() end
  end
  print(fmt("register: %d uffds per run (list:register, checker page "
    .. "registered on each | UFFDIO_REGISTER + EPOLL_CTL_ADD + append)", #all))
  print(fmt("register per uffd: ours %.2f us, raw %.2f us",
    median(ours) / #all * 1e-3, median(rawv) / #all * 1e-3))
  report("register", ours, rawv, "1.20", "ms", 1e-6)
  print(fmt("gc time (full list:gc(), none dead): %.2f ms at %d entries, "
    .. "%.2f ms at %d entries", gc1k * 1e-6, math.min(1000, #all), gc10k * 1e-6,
    #all))
end

-- ------------------------------------------------------------- gc_scan
if wanted("gc_scan") then
  local ours, rawv = {}, {}
  for r = 1, RUNS * 3 do   -- a side: see bench/README.md, round 5
    local function lua_side()
      local vf, vp = sp:spawn(V)
      for i = 1, #vf do assert(listA:register(assert(ufl.adopt(vf[i])))) end
      for i = 1, #vp do sp:kill(vp[i]) end
      raw.sleep_ms(SETTLE_MS)
      collectgarbage("collect")
      local a = now()
      local c = listA:gc()
      ours[#ours + 1] = now() - a
      if c ~= V then error("gc collected " .. tostring(c) .. " of " .. V) end
    end
    local function raw_side()
      local vf, vp = sp:spawn(V)
      S:register(vf, PAGE, PS)   -- as list:register does (untimed here)
      for i = 1, #vp do sp:kill(vp[i]) end
      raw.sleep_ms(SETTLE_MS)
      collectgarbage("collect")
      local ns, c = S:gc(PAGE, PS)
      rawv[#rawv + 1] = ns
      if c ~= V then error("raw gc collected " .. c .. " of " .. V) end
    end
    if r % 2 == 1 then lua_side(); raw_side() else raw_side(); lua_side() end
  end
  print(fmt("gc_scan: %d dynamic entries, %d dead (1%%), full scan", STABLE + V, V))
  report("gc_scan", ours, rawv, "1.10", "ms", 1e-6)
end

-- ------------------------------------------------------------ dispatch
if wanted("dispatch") then
  local K = 64
  local tf, tp = sp:spawn(K, true)
  local taddr = sp:touch_addr()
  local us = {}
  for i = 1, K do
    us[i] = assert(ufl.adopt(tf[i]))
    assert(us[i]:register(taddr, PS))
  end
  local alive = {
    register = function() return true end,
    is_dead = function() return false end,
    reset = function() return true end,
  }
  local ctx = assert(ufl.waitctx())
  local l = assert(ufl.list(us[1], alive, ctx))
  l:set_num_static_devices(K - 1)
  for i = 2, K do assert(l:register(us[i]) == false) end
  local s = raw.set()
  s:add(tf)
  for i = 1, K do raw.kill(tp[i], 10) end   -- SIGUSR1: touch now
  local ready = {}
  local deadline = now() + 5e9
  while (l:wait(10, ready) or 0) < K do
    if now() > deadline then error("dispatch: the touchers never faulted") end
  end
  local ITERS = 20000
  local get, wait = l.get, l.wait
  -- "Touching each": the dispatcher's own per-entry state, looked up by
  -- the ready index (the raw loop looks its fd up by the token).
  local state = {}
  for i = 1, K do state[i] = 1 end
  local function lua_dispatch(iters)
    local sink = 0
    local a = now()
    for _ = 1, iters do
      local n = wait(l, 0, ready)
      for i = 1, n do
        sink = sink + state[ready[i]]
      end
    end
    local t = now() - a
    if sink ~= iters * K then error("dispatch: " .. sink .. " ready") end
    return t
  end
  -- The same, fetching each entry's uffd object (a C call per entry).
  local function lua_dispatch_get(iters)
    local sink = 0
    local a = now()
    for _ = 1, iters do
      local n = wait(l, 0, ready)
      for i = 1, n do
        if get(l, ready[i]) then sink = sink + 1 end
      end
    end
    local t = now() - a
    if sink ~= iters * K then error("dispatch: " .. sink .. " ready") end
    return t
  end
  local ours, rawv = {}, {}
  lua_dispatch(1000); s:dispatch(1000)   -- warm-up (and the JIT)
  for r = 1, RUNS do
    if r % 2 == 1 then
      ours[#ours + 1] = lua_dispatch(ITERS); rawv[#rawv + 1] = s:dispatch(ITERS)
    else
      rawv[#rawv + 1] = s:dispatch(ITERS); ours[#ours + 1] = lua_dispatch(ITERS)
    end
  end
  local withget = {}
  for _ = 1, RUNS do withget[#withget + 1] = lua_dispatch_get(ITERS) end
  print(fmt("dispatch: %d ready uffds, %d x (list:wait(0) + a Lua loop over "
    .. "the ready indices, state[i] | epoll_wait + array lookup by token) per "
    .. "run", K, ITERS))
  print(fmt("dispatch with list:get(i) of each entry too: %.0f ns per wait "
    .. "(%.2fx raw; no goal)", median(withget) / ITERS,
    median(withget) / median(rawv)))
  print(fmt("dispatch per wait: ours %.0f ns, raw %.0f ns; per ready entry "
    .. "%.1f ns vs %.1f ns", median(ours) / ITERS, median(rawv) / ITERS,
    median(ours) / ITERS / K, median(rawv) / ITERS / K))
  report("dispatch", ours, rawv, "1.10", "ms", 1e-6)
  -- Lua heap growth per 100,000 waits (the collector stopped)
  collectgarbage("collect")
  collectgarbage("stop")
  local k0 = collectgarbage("count")
  lua_dispatch(100000)
  local k1 = collectgarbage("count")
  collectgarbage("restart")
  print(fmt("Lua heap growth per 100,000 waits (64 ready each, the loop over "
    .. "them): %.0f bytes", (k1 - k0) * 1024))
  s:close()
  l:close()
  ctx:close()
  for i = 1, K do sp:kill(tp[i]) end
end

-- ---------------------------------------------- incremental and hinted gc
-- list:gc{budget = N} -> collected, more and list:gc{only = {i...}} ->
-- collected (issue 8, items 2 and 3).  An older binding ignores the table
-- and runs a full gc returning one number: detected on a list without
-- dynamic entries.
local has_budget, has_only
do
  local ctx = assert(ufl.waitctx())
  local l = assert(ufl.list(assert(ufl.adopt(fc:fd(), { own = false })),
    checker, ctx))
  l:set_num_static_devices(0)
  local ok, c, more = pcall(l.gc, l, { budget = 1 })
  has_budget = ok and c == 0 and type(more) == "boolean"
  has_only = not pcall(l.gc, l, { only = "not a table" })
    and pcall(l.gc, l, { only = {} })
  l:close()
  ctx:close()
end

-- From here list A holds 10,000 dynamic entries: the V extra alive ones
-- join (owned by the list from now on).
for i = 1, #xfds do assert(listA:register(assert(ufl.adopt(xfds[i])))) end
xfds = {}

-- ---------------------------------------------------------- collect_one
if has_only and wanted("collect_one") then
  local ours, rawv = {}, {}
  -- One ~3 us call a sample, each after a spawn and a kill: the medians
  -- need many samples to settle (14 gave 1.34 to 1.96 for the same code).
  for r = 1, RUNS * 8 do
    local function lua_side()
      local vf, vp = sp:spawn(1)
      local u = assert(ufl.adopt(vf[1]))
      assert(listA:register(u))
      local i = u:index()
      sp:kill(vp[1])
      local opt = { only = { i } }
      local a = now()
      local c = listA:gc(opt)
      ours[#ours + 1] = now() - a
      if c ~= 1 then error("gc{only} collected " .. tostring(c)) end
    end
    local function raw_side()
      local vf, vp = sp:spawn(1)
      S:register(vf, PAGE, PS)   -- as list:register does (untimed here)
      sp:kill(vp[1])
      rawv[#rawv + 1] = S:collect_one(vf[1], PAGE, PS)
    end
    if r % 2 == 1 then lua_side(); raw_side() else raw_side(); lua_side() end
  end
  print(fmt("collect_one: one dead among %d dynamic entries: "
    .. "list:gc{only = {i}} | one probe + EPOLL_CTL_DEL + close",
    listA:len() - 1))
  report("collect_one", ours, rawv, "1.5", "us", 1e-3)
elseif not has_only then
  print("collect_one: needs list:gc{only = {i, ...}} (issue 8 item 3), "
    .. "not in this binding")
  print("RATIO collect_one n/a 1.5")
end

-- ------------------------------------------------------------- gc_pause
if has_budget and wanted("gc_pause") then
  -- Two placements.  The headline (RATIO): monitor and child on cpu 0, as
  -- the fault benchmarks' headline.  Second figure (no goal): the monitor
  -- on cpu 0 and the child on cpu 1, a VMM's placement, where each fault
  -- of the idle baseline wakes the idle vCPU (15-20 us here, milliseconds
  -- when the host is busy) and any other load on either cpu lands in the
  -- p99.  --split swaps them.
  local placements = { "same", "split" }
  if SPLIT then placements = { "split", "same" } end
  if raw.unpin(0) < 2 then placements = { "same" } end
  local ready, evs = {}, {}
  local get, wait = listA.get, listA.wait
  local steps, step_ns = 0, 0
  local gcopt = { budget = BUDGET }   -- reused: no table per step
  local function serve_run(collect)
    fc:reset()
    fc:go()
    local passes = 0
    while not fc:done() do
      -- The collector never polls: every round blocks in the wait (at
      -- most 1 ms while collecting), then runs one budgeted step.  On a
      -- shared cpu the child it just woke runs first, and when nothing
      -- faults the collector still makes 1,000 steps a second without
      -- spinning.  A wait(0) between steps (the first version) kept the
      -- cpu from the child until the scheduler preempted the collector:
      -- that measured the scheduler's slice, not the step.
      local n = wait(listA, collect and 1 or 5, ready)
      for i = 1, n do
        local u = get(listA, ready[i])
        local m = u:read_events(evs, 64)
        for j = 1, m or 0 do
          local ev = evs[j]
          if ev.kind == "pagefault" then
            local a = ev.address - ev.address % PS
            assert(u:zeropage(a, PS))
          end
        end
      end
      if collect then
        local t = now()
        local c, more = listA:gc(gcopt)
        step_ns, steps = step_ns + (now() - t), steps + 1
        if c == nil then error("gc{budget}: " .. tostring(more)) end
        if not more then passes = passes + 1 end
      end
    end
    local _, p99 = fc:latencies()
    return p99, passes
  end
  for _, where in ipairs(placements) do
    local placed
    if where == "split" then
      raw.pin(0, 0)
      raw.pin(fc:pid(), 1)
      placed = "monitor on cpu 0, child on cpu 1"
    else
      raw.pin(0, 0)
      raw.pin(fc:pid(), 0)
      placed = "monitor and child on cpu 0"
    end
    steps, step_ns = 0, 0
    serve_run(false)
    local ours, base, passes = {}, {}, 0
    for r = 1, RUNS do
      if r % 2 == 1 then
        local p, k = serve_run(true); ours[#ours + 1] = p; passes = passes + k
        base[#base + 1] = serve_run(false)
      else
        base[#base + 1] = serve_run(false)
        local p, k = serve_run(true); ours[#ours + 1] = p; passes = passes + k
      end
    end
    print(fmt("gc_pause (%s): p99 latency of %d faults of one child "
      .. "(zeropage) while list:gc{budget = %d} runs between waits over %d "
      .. "dynamic entries (%d full passes in all, %.1f us per step) | the "
      .. "same with no collection", placed, FAULT_PAGES, BUDGET,
      listA:len() - 1, passes, step_ns / math.max(steps, 1) * 1e-3))
    if where == placements[1] then
      report("gc_pause", ours, base, "2.0", "us", 1e-3)
    else
      print(fmt("gc_pause (%s): p99 %.1f us with collection, %.1f us "
        .. "without: %.2fx (no goal)", placed, median(ours) * 1e-3,
        median(base) * 1e-3, median(ours) / median(base)))
    end
  end
elseif not has_budget then
  print("gc_pause: needs list:gc{budget = N} -> collected, more "
    .. "(issue 8 item 2), not in this binding")
  print("RATIO gc_pause n/a 2.0")
end

-- ------------------------------------------------------------- tear down
S:close()
for i = 1, #xfds do raw.close(xfds[i]) end
listA:close()
ctxA:close()
checker:close()   -- its memfd: a list does not close the checker it used
sp:close()
fc:close()
collectgarbage("collect")
print(fmt("fds: %d at start, %d at the end", fds0, raw.nfds()))
